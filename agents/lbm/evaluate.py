"""Evaluate a bidder as the focal advertiser of single-bidder environments, many at once.

Each :class:`FocalCase` is one focal episode (:mod:`agents.evaluation`): the bidder plays one
advertiser (optionally with its budget scaled, the paper's Table 5) in market episode ``seed``
while the other advertisers follow a population policy. :func:`agents.evaluation.play_focal`
steps the cases in lockstep, so a vectorised bidder (one
:class:`~auctionsim.envs.policy.PopulationPolicy` row per case) makes one batched call per tick:
a language model then generates all the cases' CoTs in one batch. The rows are independent, so
the results equal those of playing the cases one by one (up to sampling randomness, which is
shared when ``temperature > 0``).

Metrics per case (paper Section 4.1): conversions ``sum_i o_i v_i`` (expected conversions: value
won / CPA target, as the paper defines them; realised conversions are kept too), budget
utilisation, CPA ratio (spend / conversions / CPA target) and the LBM paper's score
``conversions x min(1, 1 / CPA ratio)`` (exponent 1; AuctionNet's competition squares it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from agents.evaluation import play_focal
from auctionsim.config import MarketConfig, Population
from auctionsim.envs import SingleBidderEnv
from auctionsim.envs.policy import PopulationPolicy
from auctionsim.errors import ConfigError
from auctionsim.market import Market
from auctionsim.metrics import cpa_ratio, score

__all__ = ["FocalCase", "FocalResults", "evaluate_focal"]

SCORE_EXPONENT = 1.0  # the LBM paper's score; AuctionNet's competition uses 2


@dataclass(frozen=True)
class FocalCase:
    """One evaluation episode: the bidder plays advertiser ``advertiser`` (an id) with its
    budget scaled by ``budget_ratio``, in market episode ``seed`` (the population's own
    episode ``seed``: common random numbers)."""

    advertiser: int
    seed: int
    budget_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.budget_ratio) and self.budget_ratio > 0):
            raise ConfigError(f"budget_ratio must be finite and > 0, got {self.budget_ratio!r}")


@dataclass(frozen=True, eq=False)
class FocalResults:
    """Results of ``M`` cases (arrays ``(M,)``, per-tick arrays ``(M, T)``)."""

    cases: tuple[FocalCase, ...]
    conversions: np.ndarray
    spend: np.ndarray
    budget: np.ndarray
    cpa_target: np.ndarray
    multipliers: np.ndarray  # (M, T) played (0 after the budget ran out)
    tick_spend: np.ndarray  # (M, T)
    tick_conversions: np.ndarray  # (M, T) expected conversions
    realised_conversions: np.ndarray  # (M,)

    @property
    def budget_utilisation(self) -> np.ndarray:
        return self.spend / self.budget

    @property
    def cpa_ratio(self) -> np.ndarray:
        return cpa_ratio(self.spend, self.conversions, self.cpa_target)

    @property
    def score(self) -> np.ndarray:
        return score(self.conversions, self.cpa_ratio, SCORE_EXPONENT)

    def records(self) -> list[dict]:
        """One JSON-ready dict per case."""
        return [
            {
                **dataclasses.asdict(case),
                "conversions": float(self.conversions[m]),
                "spend": float(self.spend[m]),
                "budget": float(self.budget[m]),
                "cpa_target": float(self.cpa_target[m]),
                "budget_utilisation": float(self.budget_utilisation[m]),
                "cpa_ratio": float(self.cpa_ratio[m]),
                "score": float(self.score[m]),
                "realised_conversions": float(self.realised_conversions[m]),
                "multipliers": self.multipliers[m].tolist(),
                "tick_spend": self.tick_spend[m].tolist(),
                "tick_conversions": self.tick_conversions[m].tolist(),
            }
            for m, case in enumerate(self.cases)
        ]


def _scaled_budget(population: Population, advertiser: int, ratio: float) -> Population:
    budgets = population.budgets.copy()
    budgets[population.positions_of([advertiser])[0]] *= ratio
    return dataclasses.replace(population, budgets=budgets)


def evaluate_focal(
    policy: PopulationPolicy,
    market: MarketConfig,
    population: Population,
    others: Callable[[], PopulationPolicy],
    cases: Sequence[FocalCase],
    reward: str = "expected_conversions",
    progress: bool = True,
    description: str = "evaluating",
) -> FocalResults:
    """Play every case with ``policy`` as the focal bidder (one policy row per case).

    Args:
        policy: the bidder; reset once with a population of the ``M`` focal advertisers.
        market, population: the market (the population before budget scaling).
        others: builds the population policy of the other advertisers (one per case).
        reward: the env's reward kind (what the bidder's observations are paired with).
    """
    cases = tuple(cases)
    if not cases:
        raise ConfigError("need at least one FocalCase")
    envs = [
        SingleBidderEnv(Market(market, _scaled_budget(population, c.advertiser, c.budget_ratio), record_history=False), population=others(), focal=c.advertiser, reward=reward)
        for c in cases
    ]
    episodes = play_focal(policy, envs, [c.seed for c in cases], progress=progress, description=description)
    return FocalResults(
        cases=cases,
        conversions=episodes.total(episodes.expected_conversions),
        spend=episodes.total(episodes.spend),
        budget=episodes.budget,
        cpa_target=episodes.cpa_target,
        multipliers=episodes.multipliers,
        tick_spend=episodes.spend,
        tick_conversions=episodes.expected_conversions,
        realised_conversions=episodes.total(episodes.conversions),
    )
