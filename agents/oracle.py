"""Hindsight oracle: an upper bound on the value one advertiser could have won in a played episode.

Definition. Replay an episode with every other advertiser's bids fixed as they were (their
ranked bids are in each tick's :class:`~auctionsim.market.ImpressionLog`). On impression ``j``
the advertiser knows in hindsight its pValue ``p_j`` and how many slots were seen. A seen slot
is worth ``v_j = CPA target x p_j`` whichever it is, so the only slot worth buying is the lowest
seen one reachable (below at most that many competitors), at the price ``c_j`` the mechanism
charges there given the others' bids below it (GSP: the next bid; FPA: the bid needed to outbid
the competitor above the slot; VCG: the externality on the bidders below; all floored at the
reserve). Choosing impressions is then a 0/1 knapsack, ``max sum v_j x_j`` subject to
``sum c_j x_j <= budget``.

* ``upper_bound``: the knapsack's LP relaxation (fractional items taken greedily by ``v / c``).
  It is at least the value of *any* bidding strategy of this advertiser against the replayed
  bids, per-impression bidding included: every impression such a strategy wins with exposure is
  a knapsack item bought at a price no lower than ``c_j``.
* ``achievable``: the longest prefix of the same greedy order that fits the budget: the value
  of a feasible per-impression plan, so the exact knapsack optimum lies between the two.

Only the budget constraint is modelled (the BPG paper's value-maximising advertiser). Used by
the equilibrium tooling as the upper end of an exploitability bracket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from auctionsim.config import Mechanism
from auctionsim.errors import ConfigError
from auctionsim.market import Market, TickResult

__all__ = ["OracleResult", "hindsight_oracle", "lowest_seen_slot_costs"]


@dataclass(frozen=True)
class OracleResult:
    """Hindsight values of one advertiser (currency)."""

    advertiser_id: int
    upper_bound: float
    achievable: float
    realised: float
    budget: float
    opportunities: int


def lowest_seen_slot_costs(
    others: np.ndarray, slots_seen: np.ndarray, mechanism: Mechanism, slot_exposure: Sequence[float], reserve: float
) -> np.ndarray:
    """Per-exposure price of the lowest seen slot an extra bidder could take on each impression.

    Args:
        others: ``(n, S)`` the other bidders' best ``S`` bids, descending, 0 where fewer bid.
        slots_seen: ``(n,)`` slots exposed on each impression (0: nothing to buy, cost ``inf``).
        mechanism, slot_exposure, reserve: the market's rules.
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


def _others_top(log, advertiser_id: int, n_slots: int) -> np.ndarray:
    """``(n, S)`` ranked bids of everyone but the advertiser (descending, 0-padded)."""
    keep = log.ranked_bidders != advertiser_id
    bids = np.where(keep, log.ranked_bids, 0.0)
    order = np.argsort(~keep, axis=1, kind="stable")  # others first, in rank order
    return np.take_along_axis(bids, order, axis=1)[:, :n_slots]


def hindsight_oracle(market: Market, ticks: Sequence[TickResult], advertiser_ids: Sequence[int] | None = None) -> list[OracleResult]:
    """Hindsight values of advertisers in the episode ``market`` has just played.

    Args:
        market: the market that played ``ticks`` (its current episode: pValues are recomputed).
        ticks: every tick of the episode, played with ``log_impressions=True``.
        advertiser_ids: whom to evaluate (default: everyone).
    """
    if len(ticks) == 0 or any(tick.log is None for tick in ticks):
        raise ConfigError("hindsight_oracle needs every tick of the episode played with log_impressions=True")
    config, population = market.config, market.population
    ids = population.ids if advertiser_ids is None else np.asarray(advertiser_ids)
    positions = population.positions_of(ids)
    n_slots = config.n_slots
    per_tick_values = [market.tick_values(ids, tick=tick.tick) for tick in ticks]
    results = []
    for column, (advertiser_id, position) in enumerate(zip(ids, positions)):
        values, costs = [], []
        for tick, tick_values in zip(ticks, per_tick_values):
            candidate = tick_values.is_candidate[:, column]
            log = tick.log
            cost = lowest_seen_slot_costs(
                _others_top(log, int(advertiser_id), n_slots), log.slots_seen, config.mechanism, config.slot_exposure, config.reserve_price
            )
            value = population.cpa_targets[position] * tick_values.pvalues[:, column]
            useful = candidate & np.isfinite(cost) & (value > 0)
            values.append(value[useful])
            costs.append(cost[useful])
        value, cost = np.concatenate(values), np.concatenate(costs)
        budget = float(population.budgets[position])
        upper, achievable = _knapsack_bounds(value, cost, budget)
        realised = float(sum(tick.value_won[position] for tick in ticks))
        opportunities = int(sum(tick.opportunities[position] for tick in ticks))
        results.append(OracleResult(int(advertiser_id), upper, achievable, realised, budget, opportunities))
    return results


def _knapsack_bounds(value: np.ndarray, cost: np.ndarray, budget: float) -> tuple[float, float]:
    """LP-relaxation value and greedy-prefix value of a 0/1 knapsack."""
    with np.errstate(divide="ignore"):
        ratio = np.where(cost > 0, value / np.where(cost > 0, cost, 1.0), np.inf)
    order = np.argsort(-ratio, kind="stable")
    value, cost = value[order], cost[order]
    spent = np.cumsum(cost)
    fits = np.searchsorted(spent, budget, side="right")  # items 0..fits-1 fit entirely
    achievable = float(value[:fits].sum())
    upper = achievable
    if fits < value.size:
        remaining = budget - (spent[fits - 1] if fits > 0 else 0.0)
        upper += float(value[fits] * remaining / cost[fits])
    return upper, achievable
