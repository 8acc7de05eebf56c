"""Play whole episodes of a parallel env with a population policy driving every advertiser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from auctionsim.envs.parallel import AuctionParallelEnv
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.market import TickResult
from auctionsim.metrics import EpisodeMetrics

__all__ = ["EpisodeRecord", "play_episode"]


@dataclass(frozen=True, eq=False)
class EpisodeRecord:
    """One episode, tick by tick: ``T`` ticks, ``N`` advertisers (population order).

    Attributes:
        seed: the market seed of the episode.
        observations: ``(T + 1, N, D)`` float32, the observation before each tick and after the last.
        actions: ``(T, N)`` the multipliers played (0 for finished advertisers).
        rewards: ``(T, N)``.
        live: ``(T + 1, N)`` whether each advertiser was acting before each tick.
        terminated, truncated: ``(T, N)`` the flags returned by each tick.
        ticks: the market's :class:`~auctionsim.market.TickResult` of each tick.
        metrics: the episode's :class:`~auctionsim.metrics.EpisodeMetrics`.
    """

    seed: int | None
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    live: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    ticks: tuple[TickResult, ...]
    metrics: EpisodeMetrics


def play_episode(
    env: AuctionParallelEnv,
    policy: PopulationPolicy,
    seed: int | None = None,
    action_noise: float = 0.0,
    noise_seed: int | None = None,
    log_impressions: bool = False,
) -> EpisodeRecord:
    """Reset ``env`` and play it to the end with ``policy`` bidding for every advertiser.

    Args:
        action_noise: standard deviation of multiplicative log-normal exploration noise
            (``m x exp(noise x Normal(0, 1))``, clipped to the action bounds), e.g. to log
            behaviour data with coverage; 0 plays the policy as is.
        noise_seed: seed of the exploration noise.
        log_impressions: keep each tick's per-impression log (``ticks[t].log``), e.g. for the
            hindsight oracle.
    """
    observations = [env.reset_arrays(seed)]
    market = env.market
    policy.reset(
        PolicyContext(
            population=market.population,
            market=market.config,
            market_size=market.n_advertisers,
            feature_names=env.feature_names,
            seed=seed,
        )
    )
    noise = np.random.default_rng(noise_seed)
    low, high = env.multiplier_bounds
    actions, rewards, live, terminated, truncated, ticks = [], [], [env.live], [], [], []
    while not market.done:
        multipliers = np.asarray(policy.act(observations[-1]), dtype=np.float64)
        if action_noise > 0:
            multipliers = np.clip(multipliers * np.exp(action_noise * noise.standard_normal(multipliers.shape)), low, high)
        multipliers = np.where(env.live, multipliers, 0.0)
        detailed = policy.needs_impression_values
        step = env.step_arrays(multipliers, with_values=detailed, log_impressions=detailed or log_impressions)
        policy.observe(TickFeedback.from_result(step.result, market.n_ticks, step.values))
        observations.append(step.observations)
        actions.append(multipliers)
        rewards.append(step.rewards)
        live.append(step.live)
        terminated.append(step.terminated)
        truncated.append(step.truncated)
        ticks.append(step.result)
    return EpisodeRecord(
        seed=seed,
        observations=np.stack(observations),
        actions=np.stack(actions),
        rewards=np.stack(rewards),
        live=np.stack(live),
        terminated=np.stack(terminated),
        truncated=np.stack(truncated),
        ticks=tuple(ticks),
        metrics=market.episode_metrics(),
    )
