"""Hypothesis strategies for auctionsim's inputs: small markets, populations, bids and auctions.

Every strategy draws *small* inputs (a few advertisers, slots and ticks) on coarse grids, so
that ties (equal bids, equal CPA targets, equal multipliers), budgets that run out, reserves
that bind and bidders that are out all happen often, and so that hypothesis shrinks a failure
to a few readable numbers. Compose them in your own ``@given`` tests, or let the checkers of
:mod:`auctionsim.testing` use them.

* :func:`populations`: :class:`~auctionsim.config.Population` with shuffled unique ids, tight
  budgets, CPA targets and categories.
* :func:`market_configs`: small :class:`~auctionsim.config.MarketConfig` over given mechanisms,
  with 1-3 slots, both exposure models, reserves, budget floors and candidate retrieval.
* :func:`multipliers`, :func:`impression_bids`: actions for a market.
* :func:`permutations`: a reordering of ``n`` rows, as an int64 array.
* :func:`auctions`: one impression's auction for a mechanism (an :class:`AuctionCase`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from auctionsim import rng
from auctionsim.config import MarketConfig, Population
from auctionsim.mechanisms import Advertisers, Auction

__all__ = [
    "BID_GRID",
    "AuctionCase",
    "auctions",
    "impression_bids",
    "market_configs",
    "multipliers",
    "permutations",
    "populations",
]

#: Bids (currency) the strategies favour: equal bids, bids at the reserves below, zero and out
#: (-1). Failures shrink towards the first.
BID_GRID = (0.01, 0.02, 0.05, 0.05, 0.1, 0.2, 0.5, 0.0, -1.0)
_MULTIPLIER_GRID = (0.0, 0.5, 1.0, 1.0, 2.0, 4.0)
_CPA_GRID = (50.0, 80.0, 80.0, 100.0, 130.0)
_RESERVES = (0.0, 0.01, 0.05)


@functools.lru_cache(maxsize=None)
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    """``st.integers(low, high)``, built once (a strategy built per draw costs its validation)."""
    return st.integers(low, high)


def _grid_or_float(grid: Sequence[float], low: float, high: float) -> st.SearchStrategy[float]:
    """A value from ``grid`` (ties) or, less often, any float in ``[low, high]``."""
    return st.one_of(st.sampled_from(grid), st.floats(low, high, allow_nan=False, allow_infinity=False))


_N_CATEGORIES = 3
_BID = _grid_or_float(BID_GRID, 0.0, 2.0)
_PALETTE = st.lists(_BID, min_size=1, max_size=3)
_FROM_PALETTE = st.booleans().map(lambda other: not other)  # shrinks towards the palette
_EXPOSURE = st.sampled_from((0.3, 0.48, 0.6, 0.8, 1.0))


@functools.lru_cache(maxsize=None)
def _advertiser(
    n_categories: int = _N_CATEGORIES, budget_range: tuple[float, float] = (0.2, 5.0)
) -> st.SearchStrategy[tuple[int, float, float, int]]:
    """One advertiser's ``(id, budget, CPA target, category)`` (built once per arguments)."""
    return st.tuples(
        st.integers(0, 10_000),
        _grid_or_float(budget_range, *budget_range),
        _grid_or_float(_CPA_GRID, 20.0, 200.0),
        st.integers(0, n_categories - 1),
    )


def _population(rows: Sequence[tuple[int, float, float, int]], n_categories: int) -> Population:
    ids, budgets, cpa_targets, categories = zip(*rows)
    return Population(ids=ids, budgets=budgets, cpa_targets=cpa_targets, categories=categories, n_categories=n_categories)


def populations(
    min_size: int = 2,
    max_size: int = 8,
    n_categories: int = _N_CATEGORIES,
    budget_range: tuple[float, float] = (0.2, 5.0),
) -> st.SearchStrategy[Population]:
    """A population of ``min_size..max_size`` advertisers.

    Ids are unique and in no particular order (array order never follows id order), budgets lie
    in ``budget_range`` (tight enough that advertisers run out within a small episode), CPA
    targets are often equal, categories lie in ``[0, n_categories)``. Failures shrink by
    deleting whole advertisers.
    """
    rows = st.lists(
        _advertiser(n_categories, tuple(budget_range)), min_size=min_size, max_size=max_size, unique_by=lambda row: row[0]
    )
    return rows.map(lambda rows: _population(rows, n_categories))


def multipliers(size: int) -> st.SearchStrategy[np.ndarray]:
    """``(size,)`` bid multipliers, mostly from a coarse grid (ties, 0 = not bidding)."""
    return st.lists(_grid_or_float(_MULTIPLIER_GRID, 0.0, 5.0), min_size=size, max_size=size).map(np.array)


@st.composite
def permutations(draw, size: int) -> np.ndarray:
    """A permutation of ``range(size)`` as an int64 array: Fisher-Yates swaps, each drawn as a
    distance that shrinks to 0 (no swap), so failures shrink to the fewest, closest swaps."""
    order = np.arange(size, dtype=np.int64)
    for last in range(size - 1, 0, -1):
        other = last - draw(_integers(0, last))
        order[last], order[other] = order[other], order[last]
    return order


def impression_bids(advertiser_ids: Sequence[int], n_impressions: int) -> st.SearchStrategy[dict[int, np.ndarray]]:
    """Explicit per-impression bids for a subset of ``advertiser_ids`` (``{id: (n_impressions,)
    bids}``), on a grid of non-negative values: many equal bids."""
    grid = [bid for bid in BID_GRID if bid >= 0]
    bids = st.lists(st.sampled_from(grid), min_size=n_impressions, max_size=n_impressions).map(np.array)
    return st.dictionaries(st.sampled_from([int(i) for i in advertiser_ids]), bids, max_size=len(advertiser_ids))


@st.composite
def market_configs(
    draw,
    mechanisms: Sequence[object] = ("gsp", "fpa", "vcg"),
    max_slots: int = 3,
    n_ticks: tuple[int, int] = (1, 3),
    impressions_per_episode: tuple[int, int] = (50, 400),
    max_candidates: int | None = 4,
) -> MarketConfig:
    """A small market: one of ``mechanisms`` (names or :class:`~auctionsim.CustomMechanism`),
    ``1..max_slots`` slots with non-increasing exposure (sometimes a sure first slot), either
    exposure model, a reserve from ``(0, 0.01, 0.05)``, a budget floor of 0 or 0.1, and a full
    contest or ``K <= max_candidates`` retrieved candidates (``None``: always a full contest;
    populations must then hold at least ``K``, which :func:`populations` with
    ``min_size >= max_candidates`` ensures)."""
    n_slots = draw(st.integers(1, max_slots))
    exposure = sorted(draw(st.lists(_EXPOSURE, min_size=n_slots, max_size=n_slots)), reverse=True)
    candidates = None if max_candidates is None else draw(st.one_of(st.none(), st.integers(1, max_candidates)))
    return MarketConfig(
        n_ticks=draw(st.integers(*n_ticks)),
        impressions_per_episode=draw(st.integers(*impressions_per_episode)),
        slot_exposure=tuple(exposure),
        exposure_model=draw(st.sampled_from(("chained", "nested"))),
        mechanism=draw(st.sampled_from(list(mechanisms))),
        reserve_price=draw(st.sampled_from(_RESERVES)),
        min_budget_to_bid=draw(st.sampled_from((0.0, 0.1))),
        candidates_per_impression=candidates,
        seed=draw(st.integers(0, 2**31)),
    )


@dataclass(frozen=True, eq=False)
class AuctionCase:
    """One impression's auction for a mechanism check (``n`` bidders among ``N`` advertisers).

    Attributes:
        population: the market's advertisers.
        positions: ``(n,)`` the contest's bidders by array position (distinct).
        bids: ``(n,)`` their bids (currency; ``-1`` marks a bidder that is out).
        reserve: the reserve price.
        seen_probability: ``(S,)`` marginal exposure probabilities, non-increasing.
        impression: the impression index (counter of the tie-break draws).
        seed: the episode seed of the tie-break keys.
    """

    population: Population
    positions: np.ndarray
    bids: np.ndarray
    reserve: float
    seen_probability: np.ndarray
    impression: int
    seed: int

    @property
    def n_slots(self) -> int:
        return int(self.seen_probability.shape[0])

    def auction(self, data: np.ndarray | None = None) -> Auction:
        """The :class:`~auctionsim.mechanisms.Auction` a mechanism is called with (fresh arrays),
        with ``data`` ``(F, N)`` as the advertisers' mechanism data."""
        population = self.population
        size = len(population)
        advertisers = Advertisers(
            ids=population.ids,
            categories=population.categories,
            cpa_targets=population.cpa_targets,
            tie_keys=rng.stream_keys(self.seed, 0, rng.STREAM_TIE_BREAK, population.ids),
            data=np.zeros((0, size)) if data is None else np.ascontiguousarray(data, dtype=np.float64),
        )
        n = self.positions.shape[0]
        return Auction(
            bids=self.bids.astype(np.float64),
            positions=self.positions.astype(np.int64),
            impression=int(self.impression),
            reserve=float(self.reserve),
            seen_probability=self.seen_probability.astype(np.float64),
            advertisers=advertisers,
            scratch=np.zeros(n),
            scratch_index=np.zeros(n, dtype=np.int64),
        )

    def permuted(self, contest_order: np.ndarray, population_order: np.ndarray) -> "AuctionCase":
        """The same auction with the bidders listed in ``contest_order`` and the population's
        rows in ``population_order`` (row ``k`` of the new population is old row
        ``population_order[k]``)."""
        new_position = np.empty(len(self.population), dtype=np.int64)
        new_position[population_order] = np.arange(len(self.population))
        return dataclasses.replace(
            self,
            population=self.population.permuted(population_order),
            positions=new_position[self.positions[contest_order]],
            bids=self.bids[contest_order],
        )

    def describe(self) -> dict[str, object]:
        """A readable summary (for counterexamples)."""
        ids = self.population.ids[self.positions]
        return {
            "bids": self.bids.tolist(),
            "bidder_ids": ids.tolist(),
            "positions": self.positions.tolist(),
            "reserve": self.reserve,
            "seen_probability": self.seen_probability.tolist(),
            "impression": self.impression,
            "population_ids": self.population.ids.tolist(),
        }


@st.composite
def auctions(draw, max_bidders: int = 6, max_slots: int = 3, reserves: Sequence[float] = _RESERVES) -> AuctionCase:
    """One impression's auction: a contest of ``1..max_bidders`` advertisers among a population
    of up to 2 more (rows shuffled), with bids from :data:`BID_GRID` or any value in [0, 2]
    (ties, zeros, bids at the reserve, bidders out), a reserve from ``reserves`` and
    ``1..max_slots`` slots. Failures shrink to the fewest bidders, in population order."""
    bidders = draw(st.lists(_advertiser(), min_size=1, max_size=max_bidders, unique_by=lambda row: row[0]))
    # Bids mostly from a palette of 1-3 values (many ties), else any value.
    palette = draw(_PALETTE)
    bids = [palette[draw(_integers(0, len(palette) - 1))] if draw(_FROM_PALETTE) else draw(_BID) for _ in bidders]
    # Advertisers of the market not in this contest, with ids apart from the bidders'.
    others = draw(st.lists(_advertiser(), max_size=2, unique_by=lambda row: row[0]))
    rows = [*bidders, *[(10_001 + i, *rest) for i, *rest in others]]
    order = draw(permutations(len(rows)))  # population row k holds advertiser order[k]
    population = _population([rows[k] for k in order], _N_CATEGORIES)
    row_of = np.empty(len(rows), dtype=np.int64)
    row_of[order] = np.arange(len(rows))
    n_slots = draw(_integers(1, max_slots))
    exposure = sorted(draw(st.lists(_EXPOSURE, min_size=n_slots, max_size=n_slots)), reverse=True)
    return AuctionCase(
        population=population,
        positions=row_of[: len(bidders)].copy(),
        bids=np.array(bids, dtype=np.float64),
        reserve=float(draw(st.sampled_from(list(reserves)))),
        seen_probability=np.array(exposure, dtype=np.float64),
        impression=draw(st.integers(0, 10_000)),
        seed=draw(st.integers(0, 2**31)),
    )
