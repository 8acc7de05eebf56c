"""The saved history of a training run's equilibrium metrics (schema ``auctionsim.training_history/v1``).

Any training run (BPG, self-play, ...) that wants exploitability curves writes one JSON file::

    {
      "schema": "auctionsim.training_history/v1",
      "run": {"algorithm": "bpg", "label": "bpg eps=0.08 seed 0", "seed": 0, "epsilon": 0.08, ...},
      "records": [
        {
          "iteration": 10,                       # int, strictly increasing
          "env_steps": 245760,                   # optional: environment steps so far
          "wall_seconds": 81.2,                  # optional: seconds since the start of training
          "social_welfare": {"estimate": 5486.5, "low": 5432.1, "high": 5540.9},
          "revenue": {"estimate": 4629.4, "low": 4400.0, "high": 4850.0},
          "max_exploitability": {                # BPG Eq. 15 (normalised by social welfare)
            "lower": {"estimate": 0.10, "low": 0.09, "high": 0.11},
            "upper": {"estimate": 0.31, "low": 0.29, "high": 0.33},
            "ppo": {...}, "unified": {...}       # any estimator name
          },
          "nash_conv": {"lower": {...}, "upper": {...}},   # OpenSpiel NashConv (currency)
          "scalars": {"lambda_mean": 0.2, "loss": 1.3}     # anything else, plain numbers
        }
      ]
    }

Every metric value is ``{"estimate", "low", "high"}`` (a confidence interval; ``low = high =
estimate`` when there is none); a plain number is accepted when adding and stored that way.
``run`` is free-form JSON; ``epsilon`` (normalised by social welfare) is read by the
exploitability-vs-epsilon plot when present. :meth:`TrainingHistory.add_report` fills a record
from an :class:`~agents.equilibrium.report.ExploitabilityReport`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from agents.equilibrium.report import ExploitabilityReport, JsonFile
from auctionsim.stats import Interval
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int, is_number

__all__ = ["HISTORY_SCHEMA", "TrainingHistory"]

HISTORY_SCHEMA = "auctionsim.training_history/v1"
_INTERVAL_METRICS = ("social_welfare", "revenue")
_BY_ESTIMATOR = ("max_exploitability", "nash_conv")


def _interval(name: str, value: object) -> dict[str, float]:
    if isinstance(value, Interval):
        value = value.to_dict()
    if isinstance(value, Mapping):
        try:
            result = {key: float(value[key]) for key in ("estimate", "low", "high")}
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{name} must be a number or {{estimate, low, high}}, got {describe(value)}") from None
    elif is_number(value):
        result = {"estimate": float(value), "low": float(value), "high": float(value)}
    else:
        raise ConfigError(f"{name} must be a number or {{estimate, low, high}}, got {describe(value)}")
    if not all(math.isfinite(x) for x in result.values()):
        raise ConfigError(f"{name} must be finite, got {result}")
    return result


@dataclass
class TrainingHistory(JsonFile):
    """Equilibrium metrics of a training run over its iterations (see the module docstring).

    Attributes:
        run: free-form JSON description of the run (algorithm, label, seed, epsilon, ...).
        records: one dict per evaluation point, in increasing ``iteration``.
    """

    run: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        iteration: int,
        *,
        env_steps: int | None = None,
        wall_seconds: float | None = None,
        social_welfare: object = None,
        revenue: object = None,
        max_exploitability: Mapping[str, object] | None = None,
        nash_conv: Mapping[str, object] | None = None,
        scalars: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Append a record (validated; nothing is appended on error). Returns it."""
        iteration = check_int("iteration", iteration, low=0)
        if self.records and iteration <= self.records[-1]["iteration"]:
            raise ConfigError(f"iterations must increase, got {iteration} after {self.records[-1]['iteration']}")
        record: dict[str, Any] = {"iteration": int(iteration)}
        if env_steps is not None:
            record["env_steps"] = check_int("env_steps", env_steps, low=0)
        if wall_seconds is not None:
            record["wall_seconds"] = _interval("wall_seconds", wall_seconds)["estimate"]
        for name, value in (("social_welfare", social_welfare), ("revenue", revenue)):
            if value is not None:
                record[name] = _interval(name, value)
        for name, values in (("max_exploitability", max_exploitability), ("nash_conv", nash_conv)):
            if values is not None:
                if not isinstance(values, Mapping):
                    raise ConfigError(f"{name} must map estimator names to values, got {describe(values)}")
                record[name] = {str(key): _interval(f"{name}[{key}]", value) for key, value in values.items()}
        if scalars is not None:
            record["scalars"] = {str(key): _interval(f"scalars[{key}]", value)["estimate"] for key, value in scalars.items()}
        self.records.append(record)
        return record

    def add_report(self, iteration: int, report: ExploitabilityReport, **extra: Any) -> dict[str, Any]:
        """Append a record holding a report's welfare, revenue, Max Exploitability and NashConv
        for each of its estimators and brackets. ``extra``: the other :meth:`add` arguments."""
        summary = report.summary()
        return self.add(
            iteration,
            social_welfare=summary["social_welfare"],
            revenue=summary["revenue"],
            max_exploitability={name: entry["max_exploitability"] for name, entry in summary["estimators"].items()},
            nash_conv={name: entry["nash_conv"] for name, entry in summary["estimators"].items()},
            **extra,
        )

    def series(self, metric: str, name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(iterations, estimate, low, high)`` of a metric (``name``: the estimator, for
        ``max_exploitability`` and ``nash_conv``); records without it are skipped."""
        rows = []
        for record in self.records:
            value = record.get(metric)
            if metric in _BY_ESTIMATOR:
                value = None if value is None else value.get(name)
            if value is not None:
                rows.append((record["iteration"], value["estimate"], value["low"], value["high"]))
        if not rows:
            return tuple(np.zeros(0) for _ in range(4))  # type: ignore[return-value]
        return tuple(np.array(column, dtype=np.float64) for column in zip(*rows))  # type: ignore[return-value]

    def estimator_names(self) -> list[str]:
        """Estimator names with a Max Exploitability in some record, in first-seen order."""
        names: list[str] = []
        for record in self.records:
            for name in record.get("max_exploitability", {}):
                if name not in names:
                    names.append(name)
        return names

    def to_dict(self) -> dict[str, Any]:
        return {"schema": HISTORY_SCHEMA, "run": self.run, "records": self.records}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingHistory":
        """Validate and load (each record goes through :meth:`add`)."""
        if not isinstance(data, Mapping) or data.get("schema") != HISTORY_SCHEMA:
            found = data.get("schema") if isinstance(data, Mapping) else describe(data)
            raise ConfigError(f"not a training history (schema {found!r}, expected {HISTORY_SCHEMA!r})")
        history = cls(run=dict(data.get("run", {})))
        for record in data.get("records", []):
            history.add(**record)
        return history
