"""Plug a custom bidder into a market of other bidders.

A bidder for one advertiser needs ``reset(spec)`` and ``act(observation) -> multiplier``
(``observe(feedback)`` is optional). Here a "day-parting" bidder shades its bids at night and
bids up in the afternoon, keeping an eye on its budget through the observation. We run it
(a) as the learner's seat of the single-bidder Gymnasium env, against PID-pacing bidders, and
(b) for a quarter of the advertisers of a population, through ``BidderPolicy``.

Run: ``python examples/custom_bidder.py``
"""

from __future__ import annotations

import numpy as np

from agents import AdvertiserFeedback, AdvertiserSpec, BidderPolicy, MixedPopulation, PIDPacing
from auctionsim.envs import AuctionParallelEnv, SingleBidderEnv, play_episode


class DayPartingBidder:
    """Bid ``night`` x value before 10:00, ``day`` x value after, and slow down when the budget
    is running out faster than time."""

    def __init__(self, night: float = 0.6, day: float = 1.3) -> None:
        self.night, self.day = night, day

    def reset(self, spec: AdvertiserSpec) -> None:
        self.names = spec.feature_names
        self.spend = 0.0

    def act(self, observation: np.ndarray) -> float:
        time_left = observation[self.names.index("time_left")]
        budget_left = observation[self.names.index("budget_left")]
        multiplier = self.night if time_left > 14 / 24 else self.day
        if budget_left < time_left - 0.1:  # spending faster than the clock
            multiplier *= 0.7
        return multiplier

    def observe(self, feedback: AdvertiserFeedback) -> None:
        self.spend += feedback.spend


def single_bidder_seat(seed: int = 0) -> float:
    env = SingleBidderEnv("auctionnet", population=PIDPacing(), focal=12)
    bidder = DayPartingBidder()
    observation, info = env.reset(seed=seed)
    market = env.market
    bidder.reset(
        AdvertiserSpec(
            advertiser_id=info["advertiser_id"], budget=float(market.population.budgets[env.focal_row]),
            cpa_target=float(market.population.cpa_targets[env.focal_row]), category=int(market.population.categories[env.focal_row]),
            n_ticks=market.n_ticks, impressions_per_episode=market.config.impressions_per_episode,
            feature_names=env.core.feature_names, seed=seed,
        )
    )
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(np.array([bidder.act(observation)], dtype=np.float32))
        total += reward
        done = terminated or truncated
    print(f"(a) day-parting bidder as advertiser 12 against PID pacers: value won {total:,.1f}, budget left {info['budget_left']:,.1f}")
    return total


def quarter_of_the_market(seed: int = 0) -> None:
    env = AuctionParallelEnv("auctionnet")
    ids = env.market.population.ids
    population = MixedPopulation([(ids[::4], BidderPolicy(lambda spec: DayPartingBidder()))], default=PIDPacing())
    metrics = play_episode(env, population, seed=seed).metrics
    custom = np.isin(ids, ids[::4])
    print(f"(b) 12 day-parting bidders among 36 PID pacers: mean score {metrics.score[custom].mean():.1f} vs {metrics.score[~custom].mean():.1f}")


if __name__ == "__main__":
    single_bidder_seat()
    quarter_of_the_market()
