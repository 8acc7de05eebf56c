"""Baseline bidders, vectorised over the advertisers they manage.

* :class:`~auctionsim.envs.policy.FixedMultipliers` (re-exported): a constant multiplier.
* :class:`PIDPacing`: budget pacing; a PID controller on the log multiplier keeps spend on the
  plan "budget in proportion to the traffic seen so far".
* :class:`CPAPacing`: the same budget pacing, capped by a second controller that keeps the
  realised cost per (expected) conversion at the CPA target.
* :class:`OnlineLP`: each tick, solves the budget-constrained value-maximisation LP on the market
  prices it has seen so far (the least winning cost and its own pValue of past impressions),
  whose solution is a bid multiplier (AuctionNet's OnlineLP baseline).

Bid convention: a multiplier ``m`` bids ``m x CPA target x pValue``; ``m = 1`` bids the
expected value of the impression, so under GSP/VCG no multiplier ``<= 1`` can overshoot the CPA
target in expectation.
"""

from __future__ import annotations

import numpy as np

from auctionsim.envs.policy import FixedMultipliers, PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.errors import ConfigError

__all__ = ["FixedMultipliers", "PIDPacing", "CPAPacing", "OnlineLP"]


def _check_bounds(low: float, high: float) -> None:
    if not (0.0 < low <= high and np.isfinite(high)):
        raise ConfigError(f"multiplier bounds must satisfy 0 < min_multiplier <= max_multiplier < inf, got {low}, {high}")


class PIDPacing(PopulationPolicy):
    """Budget pacing with a PID controller (one per advertiser, vectorised).

    After each tick, with ``planned = (opportunities so far) / (expected opportunities per
    episode)`` and ``spent = spend so far / budget``, the pacing error is
    ``e = planned - spent`` (positive when under-spending) and the next multiplier is
    ``m = initial x exp(kp e + ki sum(e) + kd (e - e_prev))``, clipped to the bounds.

    Args:
        initial_multiplier: the multiplier of the first tick.
        kp, ki, kd: controller gains on the log multiplier.
        min_multiplier, max_multiplier: bounds of the multiplier.
    """

    def __init__(
        self,
        initial_multiplier: float = 1.0,
        kp: float = 4.0,
        ki: float = 0.4,
        kd: float = 1.0,
        min_multiplier: float = 0.05,
        max_multiplier: float = 5.0,
    ) -> None:
        _check_bounds(min_multiplier, max_multiplier)
        self.initial_multiplier = float(initial_multiplier)
        self.gains = (float(kp), float(ki), float(kd))
        self.bounds = (float(min_multiplier), float(max_multiplier))

    def reset(self, context: PolicyContext) -> None:
        population = context.population
        self._expected_opportunities = context.expected_opportunities
        self._budgets = population.budgets.astype(np.float64)
        self._spend = np.zeros(len(population))
        self._opportunities = np.zeros(len(population))
        self._integral = np.zeros(len(population))
        self._previous_error = np.zeros(len(population))
        self._multipliers = np.full(len(population), self.initial_multiplier)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._multipliers.copy()

    def pacing_error(self) -> np.ndarray:
        """Planned minus actual share of the budget spent so far, per advertiser."""
        planned = np.minimum(self._opportunities / self._expected_opportunities, 1.0)
        return planned - self._spend / self._budgets

    def observe(self, feedback: TickFeedback) -> None:
        self._spend += feedback.spend
        self._opportunities += feedback.opportunities
        error = self.pacing_error()
        self._integral += error
        kp, ki, kd = self.gains
        log_multiplier = np.log(self.initial_multiplier) + kp * error + ki * self._integral + kd * (error - self._previous_error)
        self._previous_error = error
        low, high = self.bounds
        self._multipliers = np.clip(np.exp(log_multiplier), low, high)


class CPAPacing(PopulationPolicy):
    """Budget pacing capped by a CPA controller.

    The budget controller is a :class:`PIDPacing`. The CPA controller estimates the realised
    CPA ratio as ``spend / value won`` (value = expected conversions x CPA target, which is far
    less noisy than realised conversions) and updates its own multiplier
    ``m_cpa <- m_cpa x exp(gain x (target_ratio - ratio))``. The bid multiplier is
    ``min(m_budget, m_cpa)``: spend the budget, but never at a CPA above target.

    Args:
        target_ratio: CPA ratio aimed at (< 1 keeps a safety margin).
        cpa_gain: gain of the CPA controller.
        pacing: the budget controller (default :class:`PIDPacing` with its defaults).
    """

    def __init__(self, target_ratio: float = 0.95, cpa_gain: float = 2.0, pacing: PIDPacing | None = None) -> None:
        if not target_ratio > 0:
            raise ConfigError(f"target_ratio must be > 0, got {target_ratio}")
        self.target_ratio = float(target_ratio)
        self.cpa_gain = float(cpa_gain)
        self.pacing = PIDPacing() if pacing is None else pacing

    def reset(self, context: PolicyContext) -> None:
        self.pacing.reset(context)
        size = len(context.population)
        self._spend = np.zeros(size)
        self._value = np.zeros(size)
        self._cpa_multipliers = np.full(size, self.pacing.initial_multiplier)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.minimum(self.pacing.act(observations), self._cpa_multipliers)

    def observe(self, feedback: TickFeedback) -> None:
        self.pacing.observe(feedback)
        self._spend += feedback.spend
        self._value += feedback.value_won
        ratio = np.divide(self._spend, self._value, out=np.full_like(self._spend, self.target_ratio), where=self._value > 0)
        low, high = self.pacing.bounds
        self._cpa_multipliers = np.clip(self._cpa_multipliers * np.exp(self.cpa_gain * (self.target_ratio - ratio)), low, high)


class OnlineLP(PopulationPolicy):
    """Online LP bidding on the prices seen so far (AuctionNet's OnlineLP baseline).

    Each advertiser keeps a pool of its most recent ``pool_size`` opportunities, each with its
    pValue ``p`` and the impression's least winning cost ``c`` (the price of the last slot).
    Winning an impression at the margin costs about ``c x last slot's exposure`` and yields
    ``CPA target x p x exposure``, so the LP "maximise value subject to spending the remaining
    budget on the remaining traffic" is solved by a threshold: take impressions in increasing
    order of ``c / (CPA target x p)`` until the projected spend (pool spend scaled to the
    expected remaining opportunities) reaches the remaining budget. The threshold ratio is the
    bid multiplier (bidding ``m x CPA target x p`` wins exactly the impressions with
    ``c / (CPA target x p) <= m``), capped at ``max_multiplier`` (1 keeps the CPA at target).

    Cost: sorting the pools every tick, ``O(N x pool_size x log)``; it needs every managed
    advertiser's per-impression pValues (an ``(impressions, N)`` array per tick), so use it for
    up to about a thousand advertisers.

    Args:
        pool_size: impressions remembered per advertiser.
        initial_multiplier: the multiplier until the pool has data.
        min_multiplier, max_multiplier: bounds of the multiplier.
    """

    needs_impression_values = True

    def __init__(self, pool_size: int = 5000, initial_multiplier: float = 0.8, min_multiplier: float = 0.05, max_multiplier: float = 1.0) -> None:
        _check_bounds(min_multiplier, max_multiplier)
        if pool_size < 1:
            raise ConfigError(f"pool_size must be >= 1, got {pool_size}")
        self.pool_size = int(pool_size)
        self.initial_multiplier = float(initial_multiplier)
        self.bounds = (float(min_multiplier), float(max_multiplier))

    def reset(self, context: PolicyContext) -> None:
        population, market = context.population, context.market
        size = len(population)
        self._cpa = population.cpa_targets.astype(np.float64)
        self._budget_left = population.budgets.astype(np.float64)
        self._last_slot_exposure = market.exposure_probabilities[-1]
        self._opportunity_share = context.expected_opportunities / market.impressions_per_episode
        self._remaining_impressions = float(market.impressions_per_episode)
        self._pvalues = np.zeros((size, self.pool_size))
        self._costs = np.full((size, self.pool_size), np.inf)
        self._filled = np.zeros(size, dtype=np.int64)
        self._cursor = np.zeros(size, dtype=np.int64)
        self._multipliers = np.full(size, self.initial_multiplier)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._multipliers.copy()

    def observe(self, feedback: TickFeedback) -> None:
        if feedback.impression_pvalues is None or feedback.impression_log is None:
            raise ConfigError("OnlineLP needs per-impression values: run it through an auctionsim env or play_episode")
        self._budget_left = feedback.budget_left.astype(np.float64)
        self._remaining_impressions -= feedback.impression_pvalues.shape[0]
        costs = feedback.impression_log.least_winning_cost
        for row in range(self._pvalues.shape[0]):
            seen = feedback.impression_candidate[:, row]
            self._remember(row, feedback.impression_pvalues[seen, row], costs[seen])
        self._multipliers = self._solve()

    def _remember(self, row: int, pvalues: np.ndarray, costs: np.ndarray) -> None:
        """Append to the row's ring buffer, keeping the most recent ``pool_size``."""
        pvalues, costs = pvalues[-self.pool_size :], costs[-self.pool_size :]
        slots = (self._cursor[row] + np.arange(pvalues.size)) % self.pool_size
        self._pvalues[row, slots] = pvalues
        self._costs[row, slots] = costs
        self._cursor[row] = (self._cursor[row] + pvalues.size) % self.pool_size
        self._filled[row] = min(self._filled[row] + pvalues.size, self.pool_size)

    def _solve(self) -> np.ndarray:
        low, high = self.bounds
        value = self._cpa[:, None] * self._pvalues
        ratio = np.where(value > 0, self._costs / np.where(value > 0, value, 1.0), np.inf)
        order = np.argsort(ratio, axis=1)
        sorted_ratio = np.take_along_axis(ratio, order, axis=1)
        sorted_cost = np.take_along_axis(np.where(np.isfinite(self._costs), self._costs, 0.0), order, axis=1)
        cumulative_cost = np.cumsum(sorted_cost * self._last_slot_exposure, axis=1)
        # Scale the pool's spend to the advertiser's expected remaining opportunities.
        remaining = self._remaining_impressions * self._opportunity_share
        scale = remaining / np.maximum(self._filled, 1)
        affordable = cumulative_cost * scale[:, None] <= self._budget_left[:, None]
        count = affordable.sum(axis=1)
        index = np.clip(count - 1, 0, self.pool_size - 1)
        threshold = np.take_along_axis(sorted_ratio, index[:, None], axis=1)[:, 0]
        # Everything affordable: bid the cap; nothing affordable: the floor.
        threshold = np.where(count >= self._filled, high, np.where(count == 0, low, threshold))
        multipliers = np.clip(threshold, low, high)
        return np.where(self._filled > 0, multipliers, self.initial_multiplier)
