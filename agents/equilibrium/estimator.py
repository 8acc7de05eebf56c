"""What every best-response estimator returns, and the protocol estimators follow.

An estimator searches for advertiser ``i``'s best unilateral deviation ``max_pi G_i(pi; theta)``
(BPG paper, Section 2.2, the "i-th unilateral optimisation problem"). Lower-bound estimators
(grid search, RL) choose a deviation on *fit* seeds and report its returns on separate
*evaluation* seeds: a deviation's return on held-out episodes is an unbiased estimate of a
value some strategy achieves, hence of a lower bound on the best response (choosing and
scoring on the same episodes would be biased upwards by the choice). Upper-bound estimators
(the hindsight oracle) bound the best response from above on each evaluation episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from agents.equilibrium.deviation import DeviationEvaluator

__all__ = ["AdvertiserBestResponse", "BestResponseEstimator", "LOWER", "UPPER"]

LOWER, UPPER = "lower", "upper"


@dataclass(frozen=True, eq=False)
class AdvertiserBestResponse:
    """One estimator's best deviation for one advertiser (money in currency).

    Attributes:
        fit_return: mean return on the fit seeds (the criterion it was chosen by; ``nan`` for
            upper bounds).
        eval_returns: ``(S,)`` its return on each evaluation seed.
        details: JSON-ready description (e.g. the multiplier schedule, training curve).
        seconds: compute time spent on this advertiser.
        episodes: market episodes played.
        artifact: anything worth keeping in memory but not in JSON (e.g. network weights, for
            warm starts).
    """

    fit_return: float
    eval_returns: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    episodes: int = 0
    artifact: Any = None


@runtime_checkable
class BestResponseEstimator(Protocol):
    """Searches one advertiser's best deviation (a lower bound on the best response).

    Attributes:
        names: the estimator names it reports (one entry per kind of deviation searched).
    """

    names: tuple[str, ...]

    def estimate(
        self,
        evaluator: DeviationEvaluator,
        fit_seeds: Sequence[int],
        eval_seeds: Sequence[int],
        previous: Mapping[str, AdvertiserBestResponse],
    ) -> dict[str, AdvertiserBestResponse]:
        """Best deviations found, by name. ``previous`` holds the results of estimators run
        before it for the same advertiser (e.g. for a warm start)."""
        ...


def as_array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)
