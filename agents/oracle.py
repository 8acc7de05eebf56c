"""Hindsight oracle: an upper bound on the return one advertiser could have had in a played episode.

Definition. Replay an episode with every other advertiser's bids fixed as they were (their
ranked bids are in each tick's :class:`~auctionsim.market.ImpressionLog`). On impression ``j``
the advertiser knows in hindsight its pValue ``p_j`` and how many slots were seen. A seen slot
is worth ``v_j = CPA target x p_j`` whichever it is, so the only slot worth buying is the lowest
seen one reachable (below at most that many competitors), at the price ``c_j`` the mechanism
charges there given the others' bids below it (GSP: the next bid; FPA: the bid needed to outbid
the competitor above the slot; VCG: the externality on the bidders below; all floored at the
reserve). Choosing impressions is then a 0/1 knapsack with capacity the budget ``B``:

* objective ``"value"`` (the BPG paper's return ``G_i``: value won under a budget):
  ``max sum v_j x_j`` subject to ``sum c_j x_j <= B``;
* objective ``"utility"`` (quasi-linear utility, classical auction theory):
  ``max sum (v_j - c_j) x_j`` subject to the same budget, over items with ``v_j > c_j``.

Two numbers bracket the knapsack optimum:

* ``upper_bound``: the LP relaxation (fractional items taken greedily by profit per unit cost).
  It is at least the return of *any* bidding strategy of this advertiser against the replayed
  bids, per-impression bidding included: every impression such a strategy wins with exposure is
  a knapsack item bought at a price no lower than ``c_j``.
* ``achievable``: the longest prefix of the same greedy order that fits the budget: the return
  of a feasible per-impression plan, so the exact knapsack optimum lies between the two.

What "replayed" assumes. The bound is exact for others whose bids do not react to the
advertiser. Others react in two ways: adaptive bidders (pacing, online LP) change their
multipliers after seeing their own results, and budgets run out at different times when the
advertiser takes or leaves slots. The oracle ignores both, so against reactive populations it
is an upper bound on the best response *to the others' realised bid landscape*, not a proof
that no reactive exploitation exists. Its hindsight knowledge (pValues of every impression,
which slots were seen) is what makes it loose.

Only the budget constraint is modelled (the BPG paper's value-maximising advertiser), and the
market's "stop bidding below ``min_budget_to_bid``" rule is relaxed (which keeps it an upper
bound). Used by :mod:`agents.equilibrium` as the upper end of an exploitability bracket.

Cost: per tick, ``S + 2`` vectorised price computations serve every advertiser evaluated (their
cost on an impression only depends on where, if anywhere, they sat in the ranking), then one
sort per advertiser over its opportunities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from auctionsim.config import Mechanism
from auctionsim.errors import ConfigError, describe
from auctionsim.market import ImpressionLog, Market, TickResult
from auctionsim.validation import check_int

__all__ = ["OBJECTIVES", "OracleResult", "hindsight_oracle", "lowest_seen_slot_costs", "episode_returns"]

OBJECTIVES = ("value", "utility")


def check_objective(objective: object) -> str:
    """Validate an objective name (one of :data:`OBJECTIVES`)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {describe(objective)}")
    return str(objective)


def episode_returns(value_won: np.ndarray, spend: np.ndarray, objective: str) -> np.ndarray:
    """Return of each advertiser under ``objective``: value won (``"value"``) or value won minus
    spend (``"utility"``), currency."""
    value_won = np.asarray(value_won, dtype=np.float64)
    return value_won - np.asarray(spend, dtype=np.float64) if check_objective(objective) == "utility" else value_won


@dataclass(frozen=True)
class OracleResult:
    """Hindsight returns of one advertiser (currency) under ``objective``."""

    advertiser_id: int
    upper_bound: float
    achievable: float
    realised: float
    budget: float
    opportunities: int
    objective: str = "value"


def lowest_seen_slot_costs(
    others: np.ndarray, slots_seen: np.ndarray, mechanism: Mechanism, slot_exposure: Sequence[float], reserve: float
) -> np.ndarray:
    """Per-exposure price of the lowest seen slot an extra bidder could take on each impression.

    Args:
        others: ``(n, S)`` the other bidders' best ``S`` bids, descending, 0 where fewer bid.
        slots_seen: ``(n,)`` slots exposed on each impression (0: nothing to buy, cost ``inf``).
        mechanism, slot_exposure, reserve: the market's rules; ``slot_exposure`` are the marginal
            probabilities that each slot is seen (``MarketConfig.exposure_probabilities``).
    """
    n, n_slots = others.shape
    n_others = (others > 0).sum(axis=1)
    slot = np.minimum(slots_seen - 1, n_others)  # below `slot` competitors
    rows = np.arange(n)
    below = lambda k: np.where(k < n_others, np.maximum(others[rows, np.minimum(k, n_slots - 1)], reserve), reserve)  # noqa: E731
    if mechanism in (Mechanism.GSP, Mechanism.FPA):
        # GSP pays the bid below the slot; FPA must outbid it (the infimum of winning bids).
        cost = below(slot)
    else:
        exposure = np.append(np.asarray(slot_exposure, dtype=np.float64), 0.0)
        externality = np.zeros(n)
        for k in range(n_slots):
            # Slot k >= slot: the bidder below moves up from k + 1 to k if the advertiser leaves.
            active = k >= slot
            externality += np.where(active, (exposure[k] - exposure[k + 1]) * below(k), 0.0)
        cost = externality / exposure[np.clip(slot, 0, n_slots - 1)]
    return np.where(slots_seen > 0, cost, np.inf)


def _costs_by_rank(log: ImpressionLog, market: Market) -> np.ndarray:
    """``(S + 2, n)`` lowest-seen-slot cost for an advertiser that held rank ``r`` of the logged
    ranking (row ``r`` for ``r <= S``: its bid removed) or held none of it (row ``S + 1``)."""
    config = market.config
    n_slots = config.n_slots
    ranked = log.ranked_bids  # (n, S + 1), descending
    costs = np.empty((n_slots + 2, ranked.shape[0]))
    for rank in range(n_slots + 2):
        others = np.delete(ranked, rank, axis=1) if rank <= n_slots else ranked
        costs[rank] = lowest_seen_slot_costs(
            others[:, :n_slots], log.slots_seen, config.mechanism, config.exposure_probabilities, config.reserve_price
        )
    return costs


def _advertiser_costs(log: ImpressionLog, costs_by_rank: np.ndarray, advertiser_ids: np.ndarray) -> np.ndarray:
    """``(n, k)`` each advertiser's lowest-seen-slot cost, given where it sat in the ranking."""
    n_ranks = log.ranked_bidders.shape[1]
    held = log.ranked_bidders[:, :, None] == advertiser_ids[None, None, :]  # (n, S + 1, k)
    rank = np.where(held.any(axis=1), held.argmax(axis=1), n_ranks)  # (n, k); n_ranks: absent
    return np.take_along_axis(costs_by_rank.T, rank, axis=1)


def hindsight_oracle(
    market: Market,
    ticks: Sequence[TickResult],
    advertiser_ids: Sequence[int] | np.ndarray | None = None,
    objective: str = "value",
    chunk_size: int = 256,
) -> list[OracleResult]:
    """Hindsight returns of advertisers in the episode ``market`` has just played.

    Args:
        market: the market that played ``ticks`` (its current episode: pValues are recomputed).
        ticks: every tick of the episode, played with ``log_impressions=True``.
        advertiser_ids: whom to evaluate (default: everyone).
        objective: ``"value"`` or ``"utility"`` (see the module docstring).
        chunk_size: advertisers processed together (bounds memory at about
            ``impressions x chunk_size`` floats).
    """
    objective = check_objective(objective)
    if len(ticks) == 0 or any(tick.log is None for tick in ticks):
        raise ConfigError("hindsight_oracle needs every tick of the episode played with log_impressions=True")
    check_int("chunk_size", chunk_size, low=1)
    population = market.population
    ids = population.ids if advertiser_ids is None else np.asarray(advertiser_ids, dtype=np.int64).reshape(-1)
    positions = population.positions_of(ids)
    costs_by_rank = [_costs_by_rank(tick.log, market) for tick in ticks]
    results: list[OracleResult] = []
    for start in range(0, ids.shape[0], chunk_size):
        chunk_ids, chunk_positions = ids[start : start + chunk_size], positions[start : start + chunk_size]
        values, costs = [], []
        for tick, tick_costs in zip(ticks, costs_by_rank):
            tick_values = market.tick_values(chunk_ids, tick=tick.tick)
            cost = _advertiser_costs(tick.log, tick_costs, chunk_ids)
            value = population.cpa_targets[chunk_positions] * tick_values.pvalues
            useful = tick_values.is_candidate & np.isfinite(cost) & (value > 0)
            if objective == "utility":
                useful &= value > cost
            values.append(np.where(useful, value, np.nan))
            costs.append(cost)
        # (k, impressions): one contiguous row per advertiser.
        value_rows, cost_rows = np.concatenate(values).T.copy(), np.concatenate(costs).T.copy()
        for row, (advertiser_id, position) in enumerate(zip(chunk_ids, chunk_positions)):
            useful = ~np.isnan(value_rows[row])
            value, cost = value_rows[row, useful], cost_rows[row, useful]
            budget = float(population.budgets[position])
            upper, achievable = _knapsack_bounds(value, cost, budget, profit=value - cost if objective == "utility" else None)
            realised = sum(float(episode_returns(tick.value_won[position], tick.spend[position], objective)) for tick in ticks)
            opportunities = int(sum(tick.opportunities[position] for tick in ticks))
            results.append(OracleResult(int(advertiser_id), upper, achievable, realised, budget, opportunities, objective))
    return results


def _knapsack_bounds(value: np.ndarray, cost: np.ndarray, budget: float, profit: np.ndarray | None = None) -> tuple[float, float]:
    """LP-relaxation and greedy-prefix values of the 0/1 knapsack ``max sum profit x`` subject to
    ``sum cost x <= budget`` (``profit`` defaults to ``value``); returns ``(upper, achievable)``."""
    profit = value if profit is None else profit
    with np.errstate(divide="ignore"):
        ratio = np.where(cost > 0, profit / np.where(cost > 0, cost, 1.0), np.inf)
    order = np.argsort(-ratio)  # ties in any order: the LP value does not depend on it
    profit, cost = profit[order], cost[order]
    spent = np.cumsum(cost)
    fits = np.searchsorted(spent, budget, side="right")  # items 0..fits-1 fit entirely
    achievable = float(profit[:fits].sum())
    upper = achievable
    if fits < profit.size:
        remaining = budget - (spent[fits - 1] if fits > 0 else 0.0)
        upper += float(profit[fits] * remaining / cost[fits])
    return upper, achievable
