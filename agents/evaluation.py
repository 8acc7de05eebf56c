"""Host any :class:`~auctionsim.envs.policy.PopulationPolicy` bidder as the focal learner of a
:class:`~auctionsim.envs.single.SingleBidderEnv` and measure its episode.

The env asks for one action per tick; this adapter resets the bidder with the focal advertiser
as its one-row population, calls ``act`` on the ``(1, D)`` observation and feeds the tick's
results back through ``observe`` (so stateful bidders, e.g. PID pacing or a decision
transformer keeping its context, behave exactly as they would inside a population).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.envs.single import SingleBidderEnv
from auctionsim.errors import ConfigError, describe

__all__ = ["FocalResult", "play_focal_episode"]


@dataclass(frozen=True)
class FocalResult:
    """The focal advertiser's episode (money in currency).

    Attributes:
        advertiser_id, budget, cpa_target: who it bid for.
        conversions, spend: realised totals.
        cpa_ratio: realised CPA / CPA target (0 without conversions and spend).
        score: AuctionNet's ``conversions x min(1, (1 / cpa_ratio)^2)``.
        budget_utilisation: spend / budget.
        episode_return: sum of the env's rewards.
        mean_multiplier: mean multiplier the bidder played over the ticks it acted.
    """

    advertiser_id: int
    budget: float
    cpa_target: float
    conversions: float
    spend: float
    cpa_ratio: float
    score: float
    budget_utilisation: float
    episode_return: float
    mean_multiplier: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def play_focal_episode(env: SingleBidderEnv, bidder: PopulationPolicy, seed: int | None = None) -> FocalResult:
    """Play one episode of ``env`` with ``bidder`` bidding for its focal advertiser."""
    if not isinstance(env, SingleBidderEnv):
        raise ConfigError(f"env must be a SingleBidderEnv, got {describe(env)}")
    if not isinstance(bidder, PopulationPolicy):
        raise ConfigError(f"bidder must be a PopulationPolicy, got {describe(bidder)}")
    if bidder.needs_impression_values and not env.population.needs_impression_values:
        raise ConfigError(f"{type(bidder).__name__} needs per-impression values, which this env computes only for its population")
    observation, info = env.reset(seed=seed)
    market, row = env.market, env.focal_row
    bidder.reset(
        PolicyContext(
            population=market.population.subset([row]),
            market=market.config,
            market_size=market.n_advertisers,
            feature_names=env.core.feature_names,
            seed=info["market_seed"],
        )
    )
    low, high = env.core.multiplier_bounds
    total_reward, multipliers, done = 0.0, [], False
    while not done:
        multiplier = float(np.clip(bidder.act(observation[None, :])[0], low, high))
        observation, reward, terminated, truncated, _ = env.step(np.array([multiplier], dtype=np.float32))
        bidder.observe(TickFeedback.from_result(market.history[-1], market.n_ticks).subset(np.array([row])))
        total_reward += reward
        multipliers.append(multiplier)
        done = terminated or truncated
    metrics = market.episode_metrics()
    return FocalResult(
        advertiser_id=int(metrics.ids[row]),
        budget=float(metrics.budget[row]),
        cpa_target=float(metrics.cpa_target[row]),
        conversions=float(metrics.conversions[row]),
        spend=float(metrics.spend[row]),
        cpa_ratio=float(metrics.cpa_ratio[row]),
        score=float(metrics.score[row]),
        budget_utilisation=float(metrics.budget_utilisation[row]),
        episode_return=float(total_reward),
        mean_multiplier=float(np.mean(multipliers)),
    )
