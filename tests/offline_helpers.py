"""Datasets for the offline-RL tests: a synthetic contextual bandit with a known optimum, and
tiny real logs from the market."""

from __future__ import annotations

import numpy as np

from agents.base import MixedPopulation
from agents.baselines import CPAPacing, PIDPacing
from agents.datasets import OfflineDataset, collect_dataset
from auctionsim.envs import AuctionParallelEnv
from auctionsim.envs.observations import feature_names

BANDIT_OFFSET = 0.6  # the behaviour policy bids exp(0.6) ~ 1.8x the optimal multiplier on average
BANDIT_NOISE = 0.5  # log-normal exploration noise of the behaviour policy
BANDIT_STATES = 16  # distinct contexts


def optimal_log_multiplier(observations: np.ndarray) -> np.ndarray:
    """The bandit's best log multiplier, ``-1 + 2 x`` with ``x`` the first feature."""
    return -1.0 + 2.0 * observations[..., 0]


def bandit_dataset(episodes: int = 64, advertisers: int = 32, seed: int = 0, reward_scale: float = 1.0) -> OfflineDataset:
    """One-tick episodes of a contextual bandit; the reward ("value") is
    ``reward_scale x exp(-(log m - log m*)^2 / 0.5)`` (``reward_scale`` at the optimum); budgets
    equal CPA targets so the scaled reward equals the raw one."""
    generator = np.random.default_rng(seed)
    names = feature_names(6)
    shape = (episodes, 1, advertisers)
    # The context is the first feature on a grid of BANDIT_STATES values (the rest constant), so
    # every state is logged with many actions. With unique continuous states (e.g. noise in the
    # other features) IQL's V(s) can memorise Q(s, a) of the one logged action, which makes every
    # advantage ~0 and IQL collapse to behaviour cloning.
    observations = np.zeros((episodes, 2, advertisers, len(names)), dtype=np.float32)
    observations[..., 0] = generator.integers(0, BANDIT_STATES, (episodes, 2, advertisers)) / (BANDIT_STATES - 1)
    best = optimal_log_multiplier(observations[:, :1])
    log_multiplier = best + BANDIT_OFFSET + BANDIT_NOISE * generator.standard_normal(shape)
    reward = reward_scale * np.exp(-((log_multiplier - best) ** 2) / 0.5)
    zeros_int = np.zeros(shape, dtype=np.int32)
    zeros = np.zeros(shape)
    cpa = np.full(advertisers, 100.0)
    return OfflineDataset(
        observations=observations,
        actions=np.exp(log_multiplier).astype(np.float32),
        rewards=reward.astype(np.float32),
        live=np.concatenate([np.ones(shape, bool), np.zeros(shape, bool)], axis=1),
        terminated=np.zeros(shape, bool),
        truncated=np.ones(shape, bool),
        spend=zeros,
        value_won=reward,
        conversions=zeros_int,
        wins=zeros_int,
        exposures=zeros_int,
        opportunities=zeros_int,
        mean_bid=zeros,
        mean_pvalue=zeros,
        mean_least_winning_cost=zeros,
        budget_left=zeros,
        seeds=np.arange(episodes),
        advertiser_ids=np.arange(advertisers),
        budgets=cpa.copy(),
        cpa_targets=cpa,
        categories=np.arange(advertisers) % 6,
        feature_names=np.array(names),
        metadata={"reward": "value", "description": "synthetic contextual bandit"},
    )


def bandit_log_error(bidder, dataset: OfflineDataset) -> float:
    """Mean absolute error of a bidder's log multiplier from the optimum on the dataset's states."""
    observations = dataset.observations[:, 0].reshape(-1, dataset.observations.shape[-1])
    multipliers = bidder.act(observations)
    return float(np.mean(np.abs(np.log(multipliers) - optimal_log_multiplier(observations))))


def tiny_market_env(**overrides) -> AuctionParallelEnv:
    """The AuctionNet population on a small, short market (12 ticks, 20,000 impressions)."""
    settings = dict(impressions_per_episode=20_000, n_ticks=12)
    settings.update(overrides)
    return AuctionParallelEnv("auctionnet", reward="score", **settings)


def behaviour_mix(env: AuctionParallelEnv) -> MixedPopulation:
    """Half PID pacing, half CPA pacing."""
    ids = env.market.population.ids
    return MixedPopulation([(ids[0::2], PIDPacing())], default=CPAPacing())


def tiny_logs(episodes: int = 4, seed: int = 0, **overrides) -> OfflineDataset:
    """Real logs of the behaviour mix with exploration noise on the tiny market."""
    env = tiny_market_env(**overrides)
    return collect_dataset(env, behaviour_mix(env), episodes, seed=seed, action_noise=0.3, progress=False)
