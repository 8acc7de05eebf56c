"""What an advertiser's agent observes, and the rewards it can be given. One place, with names.

Observation of advertiser ``i`` before tick ``t`` (float32, ``16 + 2 + C`` features; ``C`` the
number of categories). AuctionNet's 16 state features come first, in AuctionNet's order, then
the advertiser's own features (so one shared policy can serve every advertiser: the BPG paper's
``pi(a | s_i, i)``). Scales make typical values O(1): ``P`` is the traffic model's base pValue
(``TrafficConfig.pvalue_base_mean``, 0.0005), ``M`` impressions per episode, ``T`` ticks, and an
advertiser's "expected opportunities per tick" is ``(M / T) x (bidders per impression / N)``.

====  ============================  ===========================================================
 #    name                          definition
====  ============================  ===========================================================
 0    time_left                     ticks left including this one / T, in (0, 1]
 1    budget_left                   budget left / budget, in [0, 1]
 2    bid_mean                      mean bid per opportunity so far / (CPA target x P)
 3    bid_mean_last3                same over the last 3 ticks
 4    least_winning_cost_mean       mean least winning cost of its opportunities so far
                                    / (CPA target x P): the market price, in units of its value.
                                    AuctionNet's definition: the (S+1)-th highest bid floored
                                    at the reserve, i.e. the price of the last slot
                                    (``ImpressionLog.least_winning_cost``)
 5    least_winning_cost_mean_last3 same over the last 3 ticks
 6    pvalue_mean                   mean pValue of its opportunities so far / P
 7    pvalue_mean_last3             same over the last 3 ticks
 8    conversion_rate               conversions per opportunity so far / P
 9    conversion_rate_last3         same over the last 3 ticks
10    win_rate                      slots won per opportunity so far, in [0, 1]
11    win_rate_last3                same over the last 3 ticks
12    pvalue_mean_now               mean pValue of this tick's impressions (traffic model) / P
13    impressions_now               impressions in this tick / (M / T)
14    opportunities_last3           opportunities in the last 3 ticks / (3 x expected per tick)
15    opportunities_total           opportunities so far / (T x expected per tick)
16    budget_in_target_conversions  budget / CPA target / 100: conversions its budget buys
                                    at target, in hundreds
17    cpa_target                    CPA target / 100
18+   category_<c>                  one-hot of its category
====  ============================  ===========================================================

Means over no opportunities are 0. Rewards (per tick, per advertiser), chosen by name:

* ``value``: value won, ``sum pValue x CPA target`` over exposed wins (currency; BPG's return).
* ``expected_conversions``: value won / CPA target (conversions in expectation; low variance).
* ``conversions``: realised conversions.
* ``score``: the increase of the episode's AuctionNet score ``C min(1, (CPA target / CPA)^2)``
  over the tick, so that the episode's rewards sum exactly to its score.
"""

from __future__ import annotations

import numpy as np

from auctionsim.market import Market, TickResult
from auctionsim.metrics import cpa_ratio, score
from auctionsim.validation import check_choice

__all__ = ["FEATURE_NAMES", "REWARDS", "feature_names", "ObservationBuilder", "RewardTracker"]

FEATURE_NAMES = (
    "time_left",
    "budget_left",
    "bid_mean",
    "bid_mean_last3",
    "least_winning_cost_mean",
    "least_winning_cost_mean_last3",
    "pvalue_mean",
    "pvalue_mean_last3",
    "conversion_rate",
    "conversion_rate_last3",
    "win_rate",
    "win_rate_last3",
    "pvalue_mean_now",
    "impressions_now",
    "opportunities_last3",
    "opportunities_total",
    "budget_in_target_conversions",
    "cpa_target",
)
REWARDS = ("value", "expected_conversions", "conversions", "score")

# Bounds of each named feature (the category one-hot is in [0, 1]).
_UNIT_INTERVAL = {"time_left", "budget_left", "win_rate", "win_rate_last3"}

# Per-tick sums kept for the "so far" and "last 3 ticks" features.
_SUMS = ("opportunities", "bids", "least_winning_cost", "pvalues", "conversions", "wins")
_WINDOW = 3


def feature_names(n_categories: int) -> tuple[str, ...]:
    """All observation feature names for a market with ``n_categories`` categories."""
    return FEATURE_NAMES + tuple(f"category_{c}" for c in range(n_categories))


class ObservationBuilder:
    """Builds every advertiser's observation as one ``(N, D)`` float32 array (vectorised).

    Keeps running sums since the start of the episode and a ring of the last 3 ticks' sums.
    """

    def __init__(self, market: Market) -> None:
        self._market = market
        config, population = market.config, market.population
        self.names = feature_names(population.n_categories)
        self.dimension = len(self.names)
        self._n = len(population)
        self._pvalue_scale = config.traffic.pvalue_base_mean
        self._value_scale = population.cpa_targets * config.traffic.pvalue_base_mean
        bidders = config.candidates_per_impression or len(population)
        self._impressions_per_tick = config.impressions_per_episode / config.n_ticks
        self._expected_opportunities = self._impressions_per_tick * bidders / len(population)
        self._static = np.zeros((self._n, self.dimension - 16), dtype=np.float64)
        self._static[:, 0] = population.budgets / population.cpa_targets / 100.0
        self._static[:, 1] = population.cpa_targets / 100.0
        self._static[np.arange(self._n), 2 + population.categories] = 1.0
        self._totals = np.zeros((len(_SUMS), self._n))
        self._recent = np.zeros((_WINDOW, len(_SUMS), self._n))
        self._ticks_seen = 0

    def low_high(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature lower and upper bounds (float32) for a ``gymnasium.spaces.Box``."""
        low = np.zeros(self.dimension, dtype=np.float32)
        high = np.full(self.dimension, np.inf, dtype=np.float32)
        for index, name in enumerate(self.names):
            if name in _UNIT_INTERVAL or name.startswith("category_"):
                high[index] = 1.0
        return low, high

    def reset(self) -> None:
        """Forget the episode so far (call after ``market.reset``)."""
        self._totals[:] = 0.0
        self._recent[:] = 0.0
        self._ticks_seen = 0

    def update(self, result: TickResult) -> None:
        """Add a tick's per-advertiser results."""
        sums = np.stack(
            [
                result.opportunities,
                result.mean_bid * result.opportunities,
                result.mean_least_winning_cost * result.opportunities,
                result.mean_pvalue * result.opportunities,
                result.conversions,
                result.wins,
            ]
        ).astype(np.float64)
        self._totals += sums
        self._recent[self._ticks_seen % _WINDOW] = sums
        self._ticks_seen += 1

    def observe(self) -> np.ndarray:
        """``(N, D)`` float32 observations for the market's next tick."""
        market = self._market
        opportunities, bids, lwc, pvalues, conversions, wins = self._totals
        recent = self._recent.sum(axis=0)
        recent_opportunities = recent[0]
        features = np.empty((self._n, self.dimension), dtype=np.float64)
        features[:, 0] = (market.n_ticks - market.tick) / market.n_ticks
        features[:, 1] = market.budget_left / market.population.budgets
        for column, (total, window, scale) in enumerate(
            (
                (bids, recent[1], self._value_scale),
                (lwc, recent[2], self._value_scale),
                (pvalues, recent[3], self._pvalue_scale),
                (conversions, recent[4], self._pvalue_scale),
                (wins, recent[5], 1.0),
            )
        ):
            features[:, 2 + 2 * column] = _ratio(total, opportunities) / scale
            features[:, 3 + 2 * column] = _ratio(window, recent_opportunities) / scale
        features[:, 12] = market.mean_pvalue_next_tick() / self._pvalue_scale
        features[:, 13] = market.impressions_next_tick / self._impressions_per_tick
        features[:, 14] = recent_opportunities / (_WINDOW * self._expected_opportunities)
        features[:, 15] = opportunities / (market.n_ticks * self._expected_opportunities)
        features[:, 16:] = self._static
        return features.astype(np.float32)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


class RewardTracker:
    """Per-tick rewards of every advertiser for one of :data:`REWARDS`."""

    def __init__(self, kind: str, cpa_targets: np.ndarray, score_exponent: float = 2.0) -> None:
        self.kind = check_choice("reward", kind, REWARDS)
        self._cpa_targets = np.asarray(cpa_targets, dtype=np.float64)
        self._score_exponent = score_exponent
        self._spend = np.zeros_like(self._cpa_targets)
        self._conversions = np.zeros_like(self._cpa_targets)
        self._score = np.zeros_like(self._cpa_targets)

    def reset(self) -> None:
        self._spend[:] = 0.0
        self._conversions[:] = 0.0
        self._score[:] = 0.0

    def rewards(self, result: TickResult) -> np.ndarray:
        """``(N,)`` float rewards for the tick just played."""
        self._spend += result.spend
        self._conversions += result.conversions
        if self.kind == "value":
            return result.value_won.copy()
        if self.kind == "expected_conversions":
            return result.value_won / self._cpa_targets
        if self.kind == "conversions":
            return result.conversions.astype(np.float64)
        ratio = cpa_ratio(self._spend, self._conversions, self._cpa_targets)
        new_score = score(self._conversions, ratio, self._score_exponent)
        increase = new_score - self._score
        self._score = new_score
        return increase
