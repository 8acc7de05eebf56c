"""Drive a population policy through a parallel env: one tick (:func:`policy_step`, the one place
where a policy's ``act``, ``impression_bids`` and ``observe`` are called by every driver) and
whole episodes (:func:`play_episode`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from auctionsim.envs.parallel import ArrayStep, AuctionParallelEnv
from auctionsim.envs.policy import PopulationPolicy, TickFeedback
from auctionsim.errors import ActionError, ActionTypeError, describe
from auctionsim.market import TickResult
from auctionsim.metrics import EpisodeMetrics

__all__ = ["EpisodeRecord", "play_episode", "policy_bids", "policy_step"]


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
        impression_bids: per tick, the per-impression bids played (``{row: (n,) bids}``, or
            ``None`` when every advertiser bid its multiplier).
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
    impression_bids: tuple[Mapping[int, np.ndarray] | None, ...] = ()


def policy_bids(env: AuctionParallelEnv, policy: PopulationPolicy, observations: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray] | None]:
    """What ``policy`` bids for every advertiser of ``env`` in the next tick: ``(N,)``
    multipliers and, for a per-impression policy, ``{row: (n,) bids}`` (``None`` otherwise)."""
    size = env.market.n_advertisers
    multipliers = np.asarray(policy.act(observations), dtype=np.float64).copy()
    if multipliers.shape != (size,):
        raise ActionError(f"{type(policy).__name__}.act returned shape {multipliers.shape}, expected ({size},)")
    if not policy.bids_per_impression:
        return multipliers, None
    bids = policy.impression_bids(observations, env.tick_values())
    if not isinstance(bids, Mapping):
        raise ActionTypeError(f"{type(policy).__name__}.impression_bids must return {{row: bids}}, got {describe(bids)}")
    return multipliers, dict(bids)


def policy_step(
    env: AuctionParallelEnv,
    policy: PopulationPolicy,
    observations: np.ndarray,
    *,
    focal_row: int | None = None,
    focal_multiplier: float = 0.0,
    focal_bids: np.ndarray | None = None,
    perturb: Callable[[np.ndarray], np.ndarray] | None = None,
    with_values: bool = False,
    log_impressions: bool = False,
) -> ArrayStep:
    """Play one tick of ``env`` with ``policy`` bidding for every live advertiser, then let it
    observe the tick.

    Args:
        observations: ``(N, D)`` the observations the policy acts on.
        focal_row: an advertiser that bids its own way instead (the policy's action for it is
            still computed, and it still observes the row, so stateful policies see the same
            rows whoever bids): ``focal_multiplier``, or ``focal_bids`` per impression.
        perturb: applied to the policy's multipliers (e.g. exploration noise), not to the focal's.
        with_values, log_impressions: ask for the tick's per-impression values / log in the
            returned step (they are computed anyway for a policy that wants them).
    """
    multipliers, bids = policy_bids(env, policy, observations)
    if perturb is not None:
        multipliers = perturb(multipliers)
    if focal_row is not None:
        multipliers[focal_row] = focal_multiplier
        if bids is not None:
            bids.pop(focal_row, None)
        if focal_bids is not None:
            bids = {**(bids or {}), focal_row: focal_bids}
    detailed = policy.wants_impressions
    step = env.step_arrays(
        np.where(env.live, multipliers, 0.0),
        impression_bids=bids,
        with_values=detailed or with_values,
        log_impressions=detailed or log_impressions,
    )
    policy.observe(TickFeedback.from_result(step.result, env.market.n_ticks, step.values if detailed else None))
    return step


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
    policy.reset(env.policy_context(seed))
    noise = np.random.default_rng(noise_seed)
    low, high = env.multiplier_bounds

    def perturb(multipliers: np.ndarray) -> np.ndarray:
        return np.clip(multipliers * np.exp(action_noise * noise.standard_normal(multipliers.shape)), low, high)

    actions, rewards, live, terminated, truncated, ticks, bids = [], [], [env.live], [], [], [], []
    while not market.done:
        step = policy_step(env, policy, observations[-1], perturb=perturb if action_noise > 0 else None, log_impressions=log_impressions)
        observations.append(step.observations)
        actions.append(step.result.multipliers)
        rewards.append(step.rewards)
        live.append(step.live)
        terminated.append(step.terminated)
        truncated.append(step.truncated)
        ticks.append(step.result)
        bids.append(step.impression_bids)
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
        impression_bids=tuple(bids),
    )
