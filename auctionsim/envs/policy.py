"""The contract between environments and the bidders that drive many advertisers at once.

A :class:`PopulationPolicy` maps the observations of the advertisers it manages, an ``(n, D)``
float32 array (see :mod:`auctionsim.envs.observations`), to their bid multipliers, an ``(n,)``
array; after each tick it may read its advertisers' results as a :class:`TickFeedback`. One
array call per tick serves 100,000 advertisers. Bidders live in the ``agents`` package; this
module only defines what environments expect of them, plus the simplest policy,
:class:`FixedMultipliers`, which environments use as their default population.

Per-impression bidders (AuctionNet's interface: read the tick's pValues, return one bid per
impression) are first-class too: a policy with ``bids_per_impression`` also answers
:meth:`PopulationPolicy.impression_bids` each tick, and every driver (``play_episode``, both
environments, the focal evaluation and exploitability tools) passes those bids to the market.
Multiplier policies never pay for it: the per-impression values are computed only for policies
that ask for them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from auctionsim.config import MarketConfig, Population
from auctionsim.market import ImpressionLog, Market, TickResult, TickValues

__all__ = [
    "AdvertiserFeedback",
    "AdvertiserImpressions",
    "AdvertiserSpec",
    "FixedMultipliers",
    "PolicyContext",
    "PopulationPolicy",
    "TickFeedback",
    "impression_outcomes",
    "select_values",
]


def select_values(values: TickValues, rows: Sequence[int] | np.ndarray) -> TickValues:
    """The columns ``rows`` of a tick's :class:`~auctionsim.market.TickValues`."""
    rows = np.asarray(rows, dtype=np.int64)
    return TickValues(
        advertiser_ids=values.advertiser_ids[rows],
        pvalues=values.pvalues[:, rows],
        sigmas=values.sigmas[:, rows],
        is_candidate=values.is_candidate[:, rows],
    )


@dataclass(frozen=True)
class AdvertiserSpec:
    """What a one-advertiser bidder is told at the start of an episode (money in currency).

    Attributes:
        advertiser_id, budget, cpa_target, category: the advertiser.
        n_ticks, impressions_per_episode: the market's day (ticks and impressions in all).
        feature_names: the observation columns (see :mod:`auctionsim.envs.observations`).
        seed: a seed for the bidder's own randomness (``None`` if unseeded).
        budget_floor: below this remaining budget the advertiser no longer bids (AuctionNet's
            ``min_remaining_budget``).
    """

    advertiser_id: int
    budget: float
    cpa_target: float
    category: int
    n_ticks: int
    impressions_per_episode: int
    feature_names: tuple[str, ...]
    seed: int | None
    budget_floor: float = 0.0


@dataclass(frozen=True)
class AdvertiserFeedback:
    """One advertiser's results for a tick (see :class:`TickFeedback`; money in currency).

    ``impressions`` holds its per-impression record for bidders that asked for it (a bidder
    with ``bid_impressions`` or ``needs_impression_values``), else ``None``.
    """

    tick: int
    multiplier: float
    opportunities: int
    wins: int
    exposures: int
    conversions: int
    spend: float
    value_won: float
    mean_bid: float
    mean_pvalue: float
    mean_least_winning_cost: float
    budget_left: float
    impressions: "AdvertiserImpressions | None" = None


@dataclass(frozen=True, eq=False)
class PolicyContext:
    """What a policy is told at the start of an episode.

    Attributes:
        population: the advertisers it manages, in the order of its observation rows.
        market: the market's configuration (ticks, impressions, mechanism, ...).
        market_size: number of advertisers in the whole market (the policy may manage a subset).
        feature_names: names of the observation columns.
        seed: the episode's seed, for the policy's own randomness (``None`` if unseeded).
    """

    population: Population
    market: MarketConfig
    market_size: int
    feature_names: tuple[str, ...]
    seed: int | None

    @classmethod
    def of(cls, market: Market, feature_names: Sequence[str], seed: int | None, rows: Sequence[int] | np.ndarray | None = None) -> "PolicyContext":
        """The context of ``market``'s episode for the advertisers at ``rows`` (default: all),
        e.g. to drive a policy on a bare :class:`~auctionsim.market.Market` with an
        :class:`~auctionsim.envs.observations.ObservationBuilder`'s observations."""
        population = market.population if rows is None else market.population.subset(rows)
        return cls(population, market.config, market.n_advertisers, tuple(feature_names), seed)

    @property
    def expected_opportunities(self) -> float:
        """Impressions each advertiser is expected to contest in an episode:
        ``M x min(1, K / market_size)``."""
        candidates = self.market.candidates_per_impression
        share = 1.0 if candidates is None else candidates / self.market_size
        return self.market.impressions_per_episode * share

    @property
    def budget_floor(self) -> float:
        """Remaining budget below which an advertiser no longer bids (currency)."""
        return max(self.market.reserve_price, self.market.min_budget_to_bid)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "PolicyContext":
        """The same episode for some of the managed advertisers (by row)."""
        return replace(self, population=self.population.subset(rows))

    def advertiser_spec(self, row: int) -> AdvertiserSpec:
        """The :class:`AdvertiserSpec` of managed advertiser ``row`` (its seed is the episode's
        seed plus the row, so bidders of one episode draw independent randomness)."""
        population, market = self.population, self.market
        return AdvertiserSpec(
            advertiser_id=int(population.ids[row]),
            budget=float(population.budgets[row]),
            cpa_target=float(population.cpa_targets[row]),
            category=int(population.categories[row]),
            n_ticks=market.n_ticks,
            impressions_per_episode=market.impressions_per_episode,
            feature_names=self.feature_names,
            seed=None if self.seed is None else self.seed + int(row),
            budget_floor=self.budget_floor,
        )


@dataclass(frozen=True, eq=False)
class AdvertiserImpressions:
    """One advertiser's side of a tick: the ``n`` impressions it contested, in impression order.

    This is AuctionNet's per-tick history of one advertiser (its runner's ``historyPValueInfo``,
    ``historyAuctionResult``, ``historyImpressionResult`` and ``historyLeastWinningCost``
    entries), read from the market's :class:`~auctionsim.market.ImpressionLog`.

    Attributes:
        impression: ``(n,)`` global impression index in the episode.
        pvalues, sigmas: ``(n,)`` its pValue and the pValue's uncertainty.
        slot: ``(n,)`` the slot it won, 1-based (AuctionNet's ``adSlot``), 0 where none.
        price: ``(n,)`` per-exposure price of that slot (currency; 0 where none), charged only
            when exposed.
        exposed, converted: ``(n,)`` whether its ad was seen / converted.
        least_winning_cost: ``(n,)`` the impression's least winning cost as the market logs it
            (:attr:`~auctionsim.market.ImpressionLog.least_winning_cost`).
    """

    impression: np.ndarray
    pvalues: np.ndarray
    sigmas: np.ndarray
    slot: np.ndarray
    price: np.ndarray
    exposed: np.ndarray
    converted: np.ndarray
    least_winning_cost: np.ndarray

    @property
    def won(self) -> np.ndarray:
        """``(n,)`` whether a slot was allocated."""
        return self.slot > 0

    @property
    def cost(self) -> np.ndarray:
        """``(n,)`` money paid (the price where exposed, else 0)."""
        return np.where(self.exposed, self.price, 0.0)


@dataclass(frozen=True, eq=False)
class TickFeedback:
    """A tick's results for the advertisers a policy manages (``(k,)`` arrays, its row order).

    The per-impression fields are filled only for policies with ``needs_impression_values`` or
    ``bids_per_impression``: ``impression_pvalues``, ``impression_sigmas`` and
    ``impression_candidate`` are ``(n_impressions, k)``, ``advertiser_ids`` the rows' ids and
    ``impression_log`` the market-wide :class:`~auctionsim.market.ImpressionLog`;
    :meth:`impressions` turns them into one :class:`AdvertiserImpressions` per row.
    """

    tick: int
    n_ticks: int
    multipliers: np.ndarray
    opportunities: np.ndarray
    wins: np.ndarray
    exposures: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    mean_bid: np.ndarray
    mean_pvalue: np.ndarray
    mean_least_winning_cost: np.ndarray
    budget_left: np.ndarray
    impression_pvalues: np.ndarray | None = None
    impression_candidate: np.ndarray | None = None
    impression_log: ImpressionLog | None = None
    impression_sigmas: np.ndarray | None = None
    advertiser_ids: np.ndarray | None = None

    #: The per-advertiser ``(k,)`` fields, in the order of :class:`~auctionsim.market.TickResult`.
    PER_ADVERTISER = (
        "multipliers", "opportunities", "wins", "exposures", "conversions", "spend", "value_won",
        "mean_bid", "mean_pvalue", "mean_least_winning_cost", "budget_left",
    )

    @classmethod
    def from_result(cls, result: TickResult, n_ticks: int, values: TickValues | None = None) -> "TickFeedback":
        """Feedback for every advertiser of the market, in population order (``values``: the
        tick's per-impression values of every advertiser, for the per-impression fields)."""
        per_advertiser = {name: getattr(result, name) for name in cls.PER_ADVERTISER}
        return cls(
            tick=result.tick,
            n_ticks=n_ticks,
            impression_pvalues=None if values is None else values.pvalues,
            impression_candidate=None if values is None else values.is_candidate,
            impression_log=result.log,
            impression_sigmas=None if values is None else values.sigmas,
            advertiser_ids=None if values is None else values.advertiser_ids,
            **per_advertiser,
        )

    @classmethod
    def idle(cls, tick: int, n_ticks: int, budget_left: np.ndarray) -> "TickFeedback":
        """Feedback for advertisers that did not bid in the tick (finished): nothing won or
        spent, ``budget_left`` unchanged."""
        budget_left = np.asarray(budget_left, dtype=np.float64)
        zeros = {name: np.zeros(budget_left.shape) for name in cls.PER_ADVERTISER if name != "budget_left"}
        for name in ("opportunities", "wins", "exposures", "conversions"):
            zeros[name] = zeros[name].astype(np.int64)
        return cls(tick=tick, n_ticks=n_ticks, budget_left=budget_left.copy(), **zeros)

    @classmethod
    def concatenate(cls, parts: Sequence["TickFeedback"]) -> "TickFeedback":
        """The rows of several feedbacks of the same tick, one after the other (e.g. the focal
        advertisers of several markets). Per-impression fields are dropped: the parts' impressions
        are different auctions."""
        if not parts:
            raise ValueError("concatenate needs at least one TickFeedback")
        first = parts[0]
        fields = {name: np.concatenate([getattr(part, name) for part in parts]) for name in cls.PER_ADVERTISER}
        return cls(tick=first.tick, n_ticks=first.n_ticks, **fields)

    @property
    def has_impressions(self) -> bool:
        """Whether the per-impression fields are filled."""
        return self.impression_pvalues is not None and self.impression_log is not None

    def subset(self, rows: np.ndarray | Sequence[int], impressions: bool = True) -> "TickFeedback":
        """The same feedback restricted to some advertisers (by row); without the
        per-impression fields when ``impressions`` is false (slicing them costs a pass over
        the tick's impressions)."""
        rows = np.asarray(rows, dtype=np.int64)
        changes: dict[str, object] = {name: getattr(self, name)[rows] for name in self.PER_ADVERTISER}
        for name in ("impression_pvalues", "impression_candidate", "impression_sigmas", "advertiser_ids", "impression_log"):
            value = getattr(self, name)
            if value is None or not impressions:
                changes[name] = None
            elif name != "impression_log":
                changes[name] = value[rows] if name == "advertiser_ids" else value[:, rows]
        return replace(self, **changes)

    def impressions(self) -> list[AdvertiserImpressions]:
        """Each row's :class:`AdvertiserImpressions` (needs the per-impression fields)."""
        if not self.has_impressions or self.advertiser_ids is None:
            raise ValueError("this feedback has no per-impression fields: the policy must set needs_impression_values")
        log = self.impression_log
        k = self.advertiser_ids.shape[0]
        sigmas = self.impression_sigmas if self.impression_sigmas is not None else np.zeros_like(self.impression_pvalues)
        # One row per advertiser, contiguous: slicing columns of (n, k) arrays row by row is slow.
        by_row = [np.ascontiguousarray(array.T) for array in (self.impression_pvalues, sigmas, *impression_outcomes(log, self.advertiser_ids))]
        candidate = self.impression_candidate
        everyone = bool(candidate.all())
        candidate_rows = None if everyone else np.ascontiguousarray(candidate.T)
        records = []
        for row in range(k):
            seen = slice(None) if everyone else candidate_rows[row]
            pvalues, row_sigmas, slot, price, exposed, converted = (array[row][seen] for array in by_row)
            records.append(
                AdvertiserImpressions(
                    impression=log.impression[seen],
                    pvalues=pvalues,
                    sigmas=row_sigmas,
                    slot=slot,
                    price=price,
                    exposed=exposed,
                    converted=converted,
                    least_winning_cost=log.least_winning_cost[seen],
                )
            )
        return records


def impression_outcomes(log: ImpressionLog, advertiser_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each advertiser's outcome on each impression of a logged tick, ``(n, k)`` arrays with
    columns in ``advertiser_ids`` order: the slot won (1-based, 0 where none), its price per
    exposure (0 where none), and whether it was exposed and converted."""
    advertiser_ids = np.asarray(advertiser_ids, dtype=np.int64)
    n_impressions, k = log.winners.shape[0], advertiser_ids.shape[0]
    order = np.argsort(advertiser_ids, kind="stable")
    sorted_ids = advertiser_ids[order]
    slot_of = np.zeros((n_impressions, k), dtype=np.int64)
    price_of = np.zeros((n_impressions, k))
    exposed_of = np.zeros((n_impressions, k), dtype=bool)
    converted_of = np.zeros((n_impressions, k), dtype=bool)
    if k == 0:
        return slot_of, price_of, exposed_of, converted_of
    for slot in range(log.winners.shape[1]):  # scatter each slot's logged winner into its column
        winners = log.winners[:, slot]
        found = np.minimum(np.searchsorted(sorted_ids, winners), k - 1)
        mine = (winners >= 0) & (sorted_ids[found] == winners)
        impressions, columns = np.flatnonzero(mine), order[found[mine]]
        slot_of[impressions, columns] = slot + 1
        price_of[impressions, columns] = log.prices[impressions, slot]
        exposed_of[impressions, columns] = log.exposed[impressions, slot]
        converted_of[impressions, columns] = log.converted[impressions, slot]
    return slot_of, price_of, exposed_of, converted_of


class PopulationPolicy(abc.ABC):
    """Bids for many advertisers at once. Subclass and implement :meth:`act`.

    Attributes:
        needs_impression_values: set to ``True`` to receive, in :meth:`observe`, the tick's
            per-impression pValues of the managed advertisers and the market's impression log
            (costs an extra pass over the tick's traffic).
        bids_per_impression: set to ``True`` to bid per impression: each tick the driver then
            calls :meth:`impression_bids` after :meth:`act` (implies the per-impression
            feedback).
    """

    needs_impression_values: bool = False
    bids_per_impression: bool = False

    def reset(self, context: PolicyContext) -> None:
        """Start an episode for ``context.population`` (default: nothing to do)."""

    @abc.abstractmethod
    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(k, D)`` float32 observations -> ``(k,)`` bid multipliers (finite, >= 0)."""

    def impression_bids(self, observations: np.ndarray, values: TickValues) -> Mapping[int, np.ndarray]:
        """Per-impression bids of this tick, for policies with ``bids_per_impression``.

        Args:
            observations: ``(k, D)`` the managed advertisers' observations (as given to
                :meth:`act` just before).
            values: the tick's pValues, sigmas and candidacy, ``(n, k)`` in row order.

        Returns:
            ``{row: (n,) bids}`` (currency, finite, >= 0) for the rows that bid per impression
            this tick; the other rows bid their :meth:`act` multiplier. Bids on impressions a
            row does not contest are ignored, and so are rows that have finished.
        """
        raise NotImplementedError(f"{type(self).__name__} sets bids_per_impression but does not implement impression_bids")

    def observe(self, feedback: TickFeedback) -> None:
        """Read the tick's results (default: ignore them)."""

    @property
    def wants_impressions(self) -> bool:
        """Whether drivers must compute the tick's per-impression values for this policy."""
        return bool(self.needs_impression_values or self.bids_per_impression)


class FixedMultipliers(PopulationPolicy):
    """Every advertiser bids the same fixed multiplier all episode (per advertiser if an array).

    Args:
        multipliers: one value for everyone, or ``{advertiser id: multiplier}`` with ``default``
            for the others.
        default: multiplier of advertisers missing from the mapping.
    """

    def __init__(self, multipliers: float | dict[int, float] = 1.0, default: float = 1.0) -> None:
        self._multipliers = multipliers
        self._default = float(default)
        self._current = np.zeros(0)

    def reset(self, context: PolicyContext) -> None:
        ids = context.population.ids
        if isinstance(self._multipliers, dict):
            self._current = np.array([self._multipliers.get(int(i), self._default) for i in ids], dtype=np.float64)
        else:
            self._current = np.full(len(ids), float(self._multipliers))

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._current.copy()
