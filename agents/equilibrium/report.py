"""Exploitability of a population policy: definitions, bounds and the report that holds them.

Definitions (``N`` advertisers, population policy ``theta``, BPG paper Section 2.2 and Eq. 15;
OpenSpiel ``python/algorithms/exploitability.py`` for NashConv):

* return ``G_i(theta)``: advertiser ``i``'s expected return when everyone follows ``theta``
  (objective ``"value"``: value won under its budget, the paper's ``G_i``);
* best response value ``max_pi G_i(pi; theta)``: its best expected return when it alone deviates;
* unilateral gain ``g_i = max_pi G_i(pi; theta) - G_i(theta) >= 0`` (``theta``'s own play is
  one of the ``pi``);
* social welfare ``SW = sum_i G_i(theta)``;
* **Max Exploitability** (paper, Eq. 15): ``max_i g_i / SW``, normalised by social welfare
  (``inf`` when ``SW <= 0`` and some gain is positive, e.g. utilities of truthful first-price bids);
* **epsilon-NE** (paper, Section 2.2, with ``epsilon`` normalised by social welfare as in its
  Section 6): ``g_i <= epsilon x SW`` for every ``i``, i.e. Max Exploitability ``<= epsilon``;
* **Compliance Rate** (paper, Section 6): the share of repetitions (seeds) that satisfy the
  epsilon-NE constraint; :func:`compliance_rate` over independent reports (e.g. one per training
  seed), and :meth:`ExploitabilityReport.episode_compliance_rate` over the evaluation episodes
  of one report (each episode's gains against its own welfare);
* **NashConv** (OpenSpiel): ``sum_i g_i``; **exploitability** (OpenSpiel): ``NashConv / N``;
* revenue: total spend of all advertisers (the paper's "Revenue").

Estimates. Expectations are means over evaluation seeds (market episodes); gains are paired
differences on the same episodes. Best responses are not computed exactly, so each metric is
reported per estimator and bracketed:

* ``lower``: per advertiser, the lower-bound estimator (grid, RL) whose deviation did best on
  the *fit* seeds, scored on the evaluation seeds (choosing by the evaluation seeds themselves
  would bias the bound upwards);
* ``upper``: per advertiser and episode, the smallest upper bound (the hindsight oracle, see
  :mod:`agents.oracle` for what it assumes about the others' reactions).

Per-advertiser gains are clipped at 0 before the maximum or the sum (the true gain is >= 0;
the paper's Eq. 15 maximum is unaffected unless every estimate is negative). When the
advertisers evaluated are a uniform sample of the population (``sampled``), NashConv is
estimated as ``N x`` the sample mean gain, and the maxima are over the sample only: the
population's maximum can be higher, including for the ``upper`` bound.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from agents.equilibrium.estimator import LOWER, UPPER
from auctionsim.stats import Interval, bootstrap_interval, t_interval
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_number
from auctionsim.runs import atomic_write_text

__all__ = ["EstimatorValues", "ExploitabilityReport", "compliance_rate", "SCHEMA"]

SCHEMA = "auctionsim.exploitability_report/v1"


@dataclass(frozen=True, eq=False)
class EstimatorValues:
    """One best-response estimator's results for the ``k`` advertisers evaluated.

    Attributes:
        name: e.g. ``"grid-constant"``, ``"grid-piecewise"``, ``"ppo"``, ``"oracle"``.
        bound: ``"lower"`` or ``"upper"`` (what its values bound: the best response value).
        returns: ``(S, k)`` return of its best deviation (upper: the bound) per evaluation seed.
        fit_returns: ``(k,)`` mean return on the fit seeds (``nan`` for upper bounds).
        details: ``k`` JSON-ready dicts (e.g. the schedule found).
        seconds: ``(k,)`` compute seconds; episodes: ``(k,)`` market episodes played.
        artifacts: ``k`` in-memory objects (e.g. trained weights for warm starts); not saved.
    """

    name: str
    bound: str
    returns: np.ndarray
    fit_returns: np.ndarray
    details: tuple[dict, ...] = ()
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episodes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    artifacts: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.bound not in (LOWER, UPPER):
            raise ConfigError(f"bound must be {LOWER!r} or {UPPER!r}, got {describe(self.bound)}")
        returns = np.asarray(self.returns, dtype=np.float64)
        if returns.ndim != 2:
            raise ConfigError(f"returns of {self.name} must be (seeds, advertisers), got shape {returns.shape}")
        object.__setattr__(self, "returns", returns)
        object.__setattr__(self, "fit_returns", np.asarray(self.fit_returns, dtype=np.float64).reshape(-1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bound": self.bound,
            "returns": self.returns.tolist(),
            "fit_returns": [None if math.isnan(x) else x for x in self.fit_returns.tolist()],
            "details": list(self.details),
            "seconds": np.asarray(self.seconds, dtype=np.float64).tolist(),
            "episodes": np.asarray(self.episodes).astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EstimatorValues":
        return cls(
            name=data["name"],
            bound=data["bound"],
            returns=np.asarray(data["returns"], dtype=np.float64),
            fit_returns=np.array([np.nan if x is None else x for x in data["fit_returns"]], dtype=np.float64),
            details=tuple(data.get("details", ())),
            seconds=np.asarray(data.get("seconds", []), dtype=np.float64),
            episodes=np.asarray(data.get("episodes", []), dtype=np.int64),
        )


class JsonFile:
    """``save``/``load`` as JSON for a class with ``to_dict`` and a validating ``from_dict``
    (reports and training histories share this file format plumbing)."""

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write :meth:`to_dict` as JSON atomically (creating the folder); returns the path."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))  # type: ignore[attr-defined]

    @classmethod
    def load(cls, path: str | pathlib.Path):
        """Read a file written by :meth:`save` (validated by ``from_dict``)."""
        return cls.from_dict(json.loads(pathlib.Path(path).read_text()))  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class ExploitabilityReport(JsonFile):
    """Gains of unilateral deviations from a population policy, by estimator (``S`` evaluation
    seeds, ``k`` advertisers evaluated out of ``n_advertisers``). Money in currency.

    Attributes:
        advertiser_ids: ``(k,)`` advertisers evaluated.
        n_advertisers: ``N``, advertisers in the market.
        sampled: whether the ``k`` are a uniform random sample of the ``N`` (``k < N``).
        objective: ``"value"`` or ``"utility"`` (see :mod:`agents.equilibrium.deviation`).
        eval_seeds, fit_seeds: market seeds used to score and to choose deviations.
        population_returns: ``(S, k)`` ``G_i(theta)`` per evaluation seed.
        social_welfare: ``(S,)`` ``sum_i G_i(theta)`` over all ``N`` advertisers.
        revenue: ``(S,)`` total spend.
        value_welfare: ``(S,)`` total value won (equals ``social_welfare`` for ``"value"``).
        estimators: results by estimator name.
        metadata: JSON-ready context (market, population, configuration, wall time).
        confidence: level of every confidence interval.
    """

    advertiser_ids: np.ndarray
    n_advertisers: int
    sampled: bool
    objective: str
    eval_seeds: np.ndarray
    fit_seeds: np.ndarray
    population_returns: np.ndarray
    social_welfare: np.ndarray
    revenue: np.ndarray
    value_welfare: np.ndarray
    estimators: dict[str, EstimatorValues]
    metadata: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.95
    _intervals: dict[tuple[str, str], Interval] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.advertiser_ids, dtype=np.int64).reshape(-1)
        returns = np.asarray(self.population_returns, dtype=np.float64)
        shape = (np.asarray(self.eval_seeds).shape[0], ids.shape[0])
        if returns.shape != shape:
            raise ConfigError(f"population_returns must have shape {shape}, got {returns.shape}")
        for name, values in self.estimators.items():
            if values.returns.shape != shape:
                raise ConfigError(f"estimator {name} returns must have shape {shape}, got {values.returns.shape}")
        for name in ("social_welfare", "revenue", "value_welfare"):
            array = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if array.shape != (shape[0],):
                raise ConfigError(f"{name} must have one entry per evaluation seed ({shape[0]}), got {array.shape}")
            object.__setattr__(self, name, array)
        object.__setattr__(self, "advertiser_ids", ids)
        object.__setattr__(self, "population_returns", returns)
        object.__setattr__(self, "eval_seeds", np.asarray(self.eval_seeds, dtype=np.int64))
        object.__setattr__(self, "fit_seeds", np.asarray(self.fit_seeds, dtype=np.int64))

    # ------------------------------------------------------------------ gains
    @property
    def names(self) -> list[str]:
        """Estimator names, plus the brackets ``lower`` and ``upper`` when available."""
        names = list(self.estimators)
        names += [bound for bound in (LOWER, UPPER) if any(v.bound == bound for v in self.estimators.values())]
        return names

    def _of_bound(self, bound: str) -> list[EstimatorValues]:
        return [values for values in self.estimators.values() if values.bound == bound]

    def deviation_returns(self, name: str) -> np.ndarray:
        """``(S, k)`` best-response returns of an estimator, or of a bracket (``lower``:
        per advertiser the lower estimator best on the fit seeds; ``upper``: the smallest upper
        bound per advertiser and seed)."""
        if name in self.estimators:
            return self.estimators[name].returns
        if name == LOWER:
            lower = self._of_bound(LOWER)
            if not lower:
                raise ConfigError("the report has no lower-bound estimator")
            fit = np.stack([np.nan_to_num(v.fit_returns, nan=-np.inf) for v in lower])  # (E, k)
            choice = fit.argmax(axis=0)
            stacked = np.stack([v.returns for v in lower])  # (E, S, k)
            return np.take_along_axis(stacked, choice[None, None, :], axis=0)[0]
        if name == UPPER:
            upper = self._of_bound(UPPER)
            if not upper:
                raise ConfigError("the report has no upper-bound estimator")
            return np.min(np.stack([v.returns for v in upper]), axis=0)
        raise ConfigError(f"unknown estimator {name!r}; the report has {', '.join(self.names)}")

    def lower_choice(self) -> list[str]:
        """Per advertiser, the lower estimator that the ``lower`` bracket uses."""
        lower = self._of_bound(LOWER)
        fit = np.stack([np.nan_to_num(v.fit_returns, nan=-np.inf) for v in lower])
        return [lower[index].name for index in fit.argmax(axis=0)]

    def gains(self, name: str = LOWER) -> np.ndarray:
        """``(S, k)`` per-seed gains ``G_i(pi_i; theta) - G_i(theta)`` (paired on each seed)."""
        return self.deviation_returns(name) - self.population_returns

    def advertiser_gains(self, name: str = LOWER) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, low, high)``, each ``(k,)``: mean gain per advertiser over the evaluation seeds
        with its Student-t interval (not clipped)."""
        return t_interval(self.gains(name), self.confidence)

    # ------------------------------------------------------------------ metrics
    def _statistic(self, name: str, kind: str):
        gains = self.gains(name)
        welfare = self.social_welfare
        scale = self.n_advertisers / gains.shape[1] if self.sampled else 1.0

        def statistic(seeds: np.ndarray, advertisers: np.ndarray) -> float:
            mean_gains = np.maximum(gains[seeds][:, advertisers].mean(axis=0), 0.0)
            if kind == "max_exploitability":
                return _normalised(float(mean_gains.max()), float(welfare[seeds].mean()))
            nash_conv = float(mean_gains.sum() * scale)
            return nash_conv if kind == "nash_conv" else nash_conv / self.n_advertisers

        return statistic

    def _interval(self, name: str, kind: str) -> Interval:
        if (name, kind) not in self._intervals:
            self.deviation_returns(name)  # unknown names raise here
            # A sampled population's sum is uncertain through the sample too; a maximum over a
            # sample is not (it is a statement about the sample).
            self._intervals[name, kind] = bootstrap_interval(
                self._statistic(name, kind),
                self.eval_seeds.shape[0],
                self.advertiser_ids.shape[0],
                resample_advertisers=self.sampled and kind != "max_exploitability",
                confidence=self.confidence,
            )
        return self._intervals[name, kind]

    def max_exploitability(self, name: str = LOWER) -> Interval:
        """BPG Eq. 15: ``max_i max(g_i, 0) / SW`` with a bootstrap interval over seeds."""
        return self._interval(name, "max_exploitability")

    def nash_conv(self, name: str = LOWER) -> Interval:
        """OpenSpiel's NashConv ``sum_i max(g_i, 0)`` (``N x`` the sample mean when sampled)."""
        return self._interval(name, "nash_conv")

    def exploitability(self, name: str = LOWER) -> Interval:
        """OpenSpiel's exploitability: ``NashConv / N``."""
        return self._interval(name, "exploitability")

    def per_seed_max_exploitability(self, name: str = LOWER) -> np.ndarray:
        """``(S,)`` Eq. 15 on each evaluation episode alone: ``max(0, max_i g_si) / SW_s``."""
        gains = np.maximum(self.gains(name).max(axis=1), 0.0)
        return np.array([_normalised(gain, welfare) for gain, welfare in zip(gains, self.social_welfare)])

    def episode_compliance_rate(self, epsilon: float, name: str = LOWER) -> float:
        """Share of evaluation episodes whose Max Exploitability is ``<= epsilon``."""
        return float(np.mean(self.per_seed_max_exploitability(name) <= _check_epsilon(epsilon)))

    def epsilon_ne(self, epsilon: float) -> str:
        """The epsilon-NE check on the mean gains (``epsilon`` normalised by social welfare):
        ``"satisfied"`` when even the upper bound is ``<= epsilon``, ``"violated"`` when even the
        lower bound exceeds it, else ``"undecided"``."""
        epsilon = _check_epsilon(epsilon)
        if LOWER in self.names and self.max_exploitability(LOWER).estimate > epsilon:
            return "violated"
        if UPPER in self.names and self.max_exploitability(UPPER).estimate <= epsilon:
            return "satisfied"
        return "undecided"

    # ------------------------------------------------------------------ outputs
    def summary(self, epsilons: Sequence[float] = ()) -> dict[str, Any]:
        """JSON-ready metrics: welfare, revenue and, per estimator and bracket, Max
        Exploitability, NashConv and exploitability with intervals, the per-seed Max
        Exploitability, and the epsilon-NE check and compliance for each ``epsilons``."""
        welfare = t_interval(self.social_welfare[:, None], self.confidence)
        revenue = t_interval(self.revenue[:, None], self.confidence)
        value_welfare = t_interval(self.value_welfare[:, None], self.confidence)
        result: dict[str, Any] = {
            "label": self.metadata.get("label"),
            "objective": self.objective,
            "n_advertisers": self.n_advertisers,
            "n_evaluated": int(self.advertiser_ids.shape[0]),
            "sampled": self.sampled,
            "n_eval_seeds": int(self.eval_seeds.shape[0]),
            "social_welfare": _interval_dict(welfare),
            "value_welfare": _interval_dict(value_welfare),
            "revenue": _interval_dict(revenue),
            "estimators": {},
        }
        for name in self.names:
            entry = {
                "bound": self.estimators[name].bound if name in self.estimators else name,
                "max_exploitability": self.max_exploitability(name).to_dict(),
                "nash_conv": self.nash_conv(name).to_dict(),
                "exploitability": self.exploitability(name).to_dict(),
                "per_seed_max_exploitability": self.per_seed_max_exploitability(name).tolist(),
            }
            if name in self.estimators:
                entry["seconds"] = float(np.sum(self.estimators[name].seconds))
            result["estimators"][name] = entry
        result["epsilon"] = {
            f"{epsilon:g}": {
                "epsilon_ne": self.epsilon_ne(epsilon),
                "episode_compliance": {
                    bound: self.episode_compliance_rate(epsilon, bound) for bound in (LOWER, UPPER) if bound in self.names
                },
            }
            for epsilon in epsilons
        }
        if self.sampled:
            result["note"] = (
                f"{self.advertiser_ids.shape[0]} of {self.n_advertisers} advertisers sampled uniformly: NashConv is "
                f"N x the sample mean; maxima are over the sample (the population's can be higher)"
            )
        return result

    def advertiser_table(self, max_rows: int = 40) -> str:
        """Per-advertiser breakdown: ``G_i(theta)`` and each estimator's mean gain +- half-width."""
        names = self.names
        header = f"{'id':>7} {'G_i(theta)':>11} " + " ".join(f"{name:>18}" for name in names)
        lines = [header, "-" * len(header)]
        base = self.population_returns.mean(axis=0)
        columns = {name: self.advertiser_gains(name) for name in names}
        for row in range(min(max_rows, self.advertiser_ids.shape[0])):
            cells = []
            for name in names:
                mean, low, high = (array[row] for array in columns[name])
                cells.append(f"{mean:>10.2f} +-{(high - low) / 2:>6.2f}")
            lines.append(f"{int(self.advertiser_ids[row]):>7} {base[row]:>11.2f} " + " ".join(f"{c:>18}" for c in cells))
        if self.advertiser_ids.shape[0] > max_rows:
            lines.append(f"... {self.advertiser_ids.shape[0] - max_rows} more advertisers")
        return "\n".join(lines)

    def summary_table(self) -> str:
        """One line per estimator and bracket: Max Exploitability, NashConv, exploitability."""
        lines = [f"{'estimator':>15} {'max exploitability (Eq. 15)':>30} {'NashConv':>28} {'exploitability':>24}"]
        for name in self.names:
            cells = [self.max_exploitability(name), self.nash_conv(name), self.exploitability(name)]
            text = [f"{c.estimate:.4f} [{c.low:.4f}, {c.high:.4f}]" for c in cells[:1]]
            text += [f"{c.estimate:.2f} [{c.low:.2f}, {c.high:.2f}]" for c in cells[1:]]
            lines.append(f"{name:>15} {text[0]:>30} {text[1]:>28} {text[2]:>24}")
        sw = self.social_welfare
        lines.append(f"social welfare {sw.mean():.2f} (per seed {np.round(sw, 2).tolist()}), revenue {self.revenue.mean():.2f}")
        if self.sampled:
            lines.append(f"note: {self.advertiser_ids.shape[0]} of {self.n_advertisers} advertisers sampled; maxima are over the sample")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the artifacts, JSON-ready (:meth:`from_dict` restores it)."""
        return {
            "schema": SCHEMA,
            "advertiser_ids": self.advertiser_ids.tolist(),
            "n_advertisers": self.n_advertisers,
            "sampled": self.sampled,
            "objective": self.objective,
            "eval_seeds": self.eval_seeds.tolist(),
            "fit_seeds": self.fit_seeds.tolist(),
            "population_returns": self.population_returns.tolist(),
            "social_welfare": self.social_welfare.tolist(),
            "revenue": self.revenue.tolist(),
            "value_welfare": self.value_welfare.tolist(),
            "estimators": {name: values.to_dict() for name, values in self.estimators.items()},
            "metadata": self.metadata,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExploitabilityReport":
        if data.get("schema") != SCHEMA:
            raise ConfigError(f"not an exploitability report (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        return cls(
            advertiser_ids=np.asarray(data["advertiser_ids"], dtype=np.int64),
            n_advertisers=int(data["n_advertisers"]),
            sampled=bool(data["sampled"]),
            objective=data["objective"],
            eval_seeds=np.asarray(data["eval_seeds"], dtype=np.int64),
            fit_seeds=np.asarray(data["fit_seeds"], dtype=np.int64),
            population_returns=np.asarray(data["population_returns"], dtype=np.float64),
            social_welfare=np.asarray(data["social_welfare"], dtype=np.float64),
            revenue=np.asarray(data["revenue"], dtype=np.float64),
            value_welfare=np.asarray(data["value_welfare"], dtype=np.float64),
            estimators={name: EstimatorValues.from_dict(values) for name, values in data["estimators"].items()},
            metadata=dict(data.get("metadata", {})),
            confidence=float(data.get("confidence", 0.95)),
        )



def _normalised(gain: float, welfare: float) -> float:
    """``gain / welfare``; Eq. 15 is undefined for a welfare <= 0: ``inf`` for a positive gain
    (any epsilon is violated), 0 for none."""
    if welfare > 0:
        return gain / welfare
    return math.inf if gain > 0 else 0.0


def _interval_dict(interval: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    mean, low, high = (float(np.asarray(x).reshape(-1)[0]) for x in interval)
    return {"estimate": mean, "low": low, "high": high}


def _check_epsilon(epsilon: object) -> float:
    return check_number("epsilon (normalised by social welfare)", epsilon, low=0.0)


def compliance_rate(reports: Iterable[ExploitabilityReport], epsilon: float, name: str = LOWER) -> float:
    """Compliance Rate (BPG paper, Section 6): the share of reports, one per repetition (e.g.
    training seed), whose Max Exploitability by estimator ``name`` is ``<= epsilon``. With
    ``name="upper"`` it is a lower bound on the true rate, with ``"lower"`` an upper bound."""
    epsilon = _check_epsilon(epsilon)
    reports = list(reports)
    if not reports:
        raise ConfigError("compliance_rate needs at least one report")
    return float(np.mean([report.max_exploitability(name).estimate <= epsilon for report in reports]))
