"""Evaluate a bidder as the focal advertiser of single-bidder environments, many at once.

Each :class:`FocalCase` is one episode of :class:`~auctionsim.envs.single.SingleBidderEnv`: the
bidder plays one advertiser (optionally with its budget scaled, the paper's Table 5) while the
other advertisers follow a population policy. The cases are stepped in lockstep so that a
vectorised bidder (one :class:`~auctionsim.envs.policy.PopulationPolicy` row per case) makes one
batched call per tick: a language model then generates all the cases' CoTs in one batch. The
rows are independent, so the results equal those of playing the cases one by one (up to
sampling randomness, which is shared when ``temperature > 0``).

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
from tqdm.auto import tqdm

from auctionsim.config import MarketConfig, Population
from auctionsim.envs import SingleBidderEnv
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.errors import ConfigError
from auctionsim.market import Market
from auctionsim.metrics import cpa_ratio, score

__all__ = ["FocalCase", "FocalResults", "evaluate_focal"]

SCORE_EXPONENT = 1.0  # the LBM paper's score; AuctionNet's competition uses 2


@dataclass(frozen=True)
class FocalCase:
    """One evaluation episode: the bidder plays advertiser ``advertiser`` (an id) with its
    budget scaled by ``budget_ratio``, in the market episode drawn from ``seed``."""

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
        SingleBidderEnv(Market(market, _scaled_budget(population, c.advertiser, c.budget_ratio)), population=others(), focal=c.advertiser, reward=reward)
        for c in cases
    ]
    observations = np.stack([env.reset(seed=c.seed)[0] for env, c in zip(envs, cases)])
    rows = [env.focal_row for env in envs]
    focal = Population(
        ids=np.arange(len(cases)),
        budgets=np.array([env.market.population.budgets[row] for env, row in zip(envs, rows)]),
        cpa_targets=np.array([env.market.population.cpa_targets[row] for env, row in zip(envs, rows)]),
        categories=np.array([env.market.population.categories[row] for env, row in zip(envs, rows)]),
        n_categories=population.n_categories,
    )
    policy.reset(PolicyContext(focal, market, len(population), envs[0].core.feature_names, cases[0].seed))
    n_ticks, size = market.n_ticks, len(cases)
    multipliers, tick_spend, tick_conversions = (np.zeros((size, n_ticks)) for _ in range(3))
    realised = np.zeros(size)
    live = np.ones(size, dtype=bool)
    budget_left = focal.budgets.copy()
    fields = TickFeedback._PER_ADVERTISER
    for tick in tqdm(range(n_ticks), desc=description, disable=not progress, unit="tick"):
        actions = np.asarray(policy.act(observations), dtype=np.float64)
        feedback = {name: np.zeros(size) for name in fields}
        feedback["budget_left"] = budget_left.copy()  # finished cases keep what they had left
        for m in np.flatnonzero(live):
            env, row = envs[m], rows[m]
            observations[m], _, terminated, truncated, _ = env.step(np.array([actions[m]], dtype=np.float32))
            result = env.market.history[-1]
            for name in fields:
                feedback[name][m] = getattr(result, name)[row]
            multipliers[m, tick] = result.multipliers[row]
            tick_spend[m, tick] = result.spend[row]
            tick_conversions[m, tick] = result.value_won[row] / focal.cpa_targets[m]
            realised[m] += result.conversions[row]
            budget_left[m] = result.budget_left[row]
            live[m] = not (terminated or truncated)
        policy.observe(TickFeedback(tick=tick, n_ticks=n_ticks, **feedback))
        if not live.any():
            break
    return FocalResults(
        cases=cases,
        conversions=tick_conversions.sum(axis=1),
        spend=tick_spend.sum(axis=1),
        budget=focal.budgets,
        cpa_target=focal.cpa_targets,
        multipliers=multipliers,
        tick_spend=tick_spend,
        tick_conversions=tick_conversions,
        realised_conversions=realised,
    )
