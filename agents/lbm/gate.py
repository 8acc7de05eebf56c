"""The forced-direction gate: does LBM-Act read the decision word of its chain of thought?

LBM's claims (Tables 1/2, 4, 5) rest on LBM-Act following the direction LBM-Think reasons for
(paper Section 3.2: "the LBM-Act can comprehend language guidance, follow its instructions").
Before any LBM ordering is reported, this gate checks it on **held-out logged states**
(episodes no learner trained on):

1. LBM-Think writes its CoT for each held-out decision ``(s_t, history)``;
2. the CoT's conclusion is set to ``decrease``, ``keep`` and ``increase`` in turn
   (:func:`agents.lbm.prompts.with_direction`: the facts it states are kept; the verdict sentence
   and the decision word change together, as they go together in every CoT LBM-Act trained on);
3. LBM-Act acts on each, and the **log-multiplier change** ``log(a~_t / a_{t-1})`` against the
   logged previous multiplier is recorded (:func:`forced_log_changes`).

The gate passes when the mean changes are ordered ``increase > keep > decrease`` with
non-overlapping 95% intervals (:func:`direction_gate`). The intervals come from
:func:`auctionsim.stats.grid_mean` over (training seeds x held-out trajectories): decisions of
one trajectory share its advertiser and market, so each trajectory's decisions are averaged
first and the trajectory is the unit (the decisions are not independent draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from agents.lbm.act import LBMAct
from agents.lbm.data import Trajectories
from agents.lbm.prompts import DIRECTIONS, with_direction
from auctionsim import stats
from auctionsim.errors import ConfigError

__all__ = ["DirectionGate", "direction_gate", "forced_log_changes", "trajectory_means", "GATE_ORDER"]

GATE_ORDER = ("decrease", "keep", "increase")
"""The decision words from the lowest to the highest expected change."""


def forced_log_changes(
    act: LBMAct, cot_texts: Sequence[str], trajectories: Trajectories, rows: np.ndarray, ticks: np.ndarray, batch_size: int = 512
) -> dict[str, np.ndarray]:
    """Per decision word, ``(B,)`` log changes ``log(a~_t / a_{t-1})`` of LBM-Act's multiplier
    when the decision of each CoT is forced to that word (decisions at ticks >= 1).

    Args:
        act: the trained LBM-Act.
        cot_texts: LBM-Think's CoT for each decision ``(rows[b], ticks[b])``.
        trajectories, rows, ticks: the held-out logged decisions.
        batch_size: decisions per forward pass.
    """
    rows, ticks = np.asarray(rows), np.asarray(ticks)
    if len(cot_texts) != len(rows) or len(ticks) != len(rows) or not len(rows):
        raise ConfigError(f"need one CoT per decision (> 0), got {len(cot_texts)} CoTs for {len(rows)} rows and {len(ticks)} ticks")
    if (ticks < 1).any():
        raise ConfigError("forced-direction changes need a previous multiplier: every tick must be >= 1")
    previous = np.maximum(trajectories.actions[rows, ticks - 1], act.config.action_scale.low)
    window = trajectories.window(rows, ticks, act.config.context)
    tokenizer = act.backbone.tokenizer
    changes = {}
    for label in GATE_ORDER:
        ids = [tokenizer.encode(" " + with_direction(text, DIRECTIONS[label])) for text in cot_texts]
        multipliers = np.concatenate([act.act(ids[start:start + batch_size], window.rows(slice(start, start + batch_size))) for start in range(0, len(ids), batch_size)])
        changes[label] = np.log(multipliers / previous)
    return changes


def trajectory_means(values: np.ndarray, rows: np.ndarray, units: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``values`` per trajectory (row) in the order of ``units`` (default: the sorted
    distinct ``rows``): the independent units of the gate's intervals."""
    values, rows = np.asarray(values, dtype=np.float64), np.asarray(rows)
    units = np.unique(rows) if units is None else np.asarray(units)
    index = np.searchsorted(units, rows)
    if (index >= len(units)).any() or not np.array_equal(units[np.minimum(index, len(units) - 1)], rows):
        raise ConfigError("every decision's row must be one of the units")
    counts = np.bincount(index, minlength=len(units))
    if (counts == 0).any():
        raise ConfigError("every unit needs at least one decision")
    return np.bincount(index, weights=values, minlength=len(units)) / counts


@dataclass(frozen=True)
class DirectionGate:
    """The gate's outcome: per decision word, the mean log change with its interval, and whether
    they are ordered ``increase > keep > decrease`` with non-overlapping intervals."""

    estimates: Mapping[str, stats.Estimate]
    passed: bool

    def to_dict(self) -> dict:
        """``{"passed": bool, "decrease": {"mean","low","high",...}, "keep": ..., "increase": ...}``."""
        return {"passed": self.passed, **{label: self.estimates[label].to_dict() for label in GATE_ORDER}}

    def format(self, digits: int = 3) -> str:
        words = ", ".join(f"{label} {self.estimates[label].format(digits)}" for label in GATE_ORDER)
        return f"{'passed' if self.passed else 'FAILED'}: {words}"


def direction_gate(changes: Mapping[str, object], confidence: float = 0.95) -> DirectionGate:
    """The gate from per-word grids of log changes ``(n_training_seeds, n_units)`` (each unit a
    held-out trajectory's mean change, :func:`trajectory_means`; the same units for every word
    and training seed)."""
    missing = [label for label in GATE_ORDER if label not in changes]
    if missing:
        raise ConfigError(f"the gate needs log changes for {', '.join(GATE_ORDER)}; missing {missing}")
    estimates = {label: stats.grid_mean(changes[label], confidence, name=f"{label} log changes") for label in GATE_ORDER}
    ordered = all(estimates[high].low > estimates[low].high for low, high in zip(GATE_ORDER, GATE_ORDER[1:]))
    return DirectionGate(estimates, bool(ordered))
