"""Auction mechanisms for one impression with ``S`` ad slots: ranking and slot prices.

Small pure jitted kernels, array in, array out, used by the tick kernel and testable alone.

Conventions for one impression:

* Only bids ``>= reserve`` and ``> 0`` take part. Bidders are ranked by bid, highest first; equal
  bids are ordered by a per-(advertiser id, impression) random priority, so ties are broken
  uniformly at random and the outcome does not depend on array order (permutation equivariance,
  BPG paper Assumption 2.1).
* ``ranked_bids`` holds the top ``min(n_bidders, S + 1)`` bids in rank order; the ``(S+1)``-th is
  needed to price the last slot. Where fewer than ``S + 1`` bidders take part, the missing ranks
  count as phantom bids at the reserve price (the seller's own bid).
* Prices are per exposure: an advertiser pays only when its slot is seen. The slots seen are a
  prefix (exposure continuity), drawn by one of two models (:class:`auctionsim.config.ExposureModel`).

Mechanisms, with ``p_k`` the (marginal) probability that slot ``k`` is seen, ``b_k`` the
``k``-th ranked bid (phantoms at the reserve ``r``):

* GSP: ``price_k = max(r, b_{k+1})``.
* FPA: ``price_k = b_k``.
* VCG: ``price_k = sum_{j=k}^{S-1} (p_j - p_{j+1}) max(r, b_{j+1}) / p_k`` with ``p_S = 0``: the
  expected externality slot ``k`` imposes on the bidders below it, per exposure. With one slot it
  equals GSP; it never exceeds GSP.

Plugging in a mechanism
-----------------------
A mechanism is a function of one impression's auction, with this fixed signature::

    def my_mechanism(auction, ranked_index, ranked_bids, prices) -> (n_ranked, n_winners)

* ``auction`` is an :class:`Auction` (a named tuple; fields are documented there): the bids of
  the impression's contest, each bidder's array position in the population, the impression
  index, the reserve price, the slots' marginal exposure probabilities and the
  :class:`Advertisers` (ids, categories, CPA targets, tie-break keys and the mechanism's own
  per-advertiser data), plus working space.
* It writes the outcome in place: ``ranked_index[:n_ranked]`` the bidders (indices into
  ``auction.bids``) in rank order, at most ``S + 1`` of them, the first ``n_winners`` taking
  slots ``0 .. n_winners - 1`` (``n_winners <= min(n_ranked, S)``) and the next one, if any,
  setting the impression's least winning cost; ``ranked_bids[:n_ranked]`` their bids
  (currency); ``prices[:n_winners]`` each slot's price per exposure (finite, ``>= 0``).
* It returns ``(n_ranked, n_winners)``.

The tick kernel calls it once per impression (again, after removing a winner who cannot pay its
price, under the hard budget cap), then draws exposure and settles payments, values and
conversions exactly as for the built-in mechanisms. A winner must take part (its bid
``> 0``); the kernel raises an error naming the impression when an outcome breaks this
contract. :func:`gsp`, :func:`fpa` and :func:`vcg` are the built-in mechanisms written this way
(templates to copy), with :func:`rank_scores` and :func:`slot_prices` as building blocks.

Decorated with ``numba.njit`` it runs inside the compiled tick kernel (the fast path; the
kernel is compiled once per process for it, not cached, so that edits to it always take
effect); a plain Python function (NumPy allowed) runs on a slow path, called from the kernel
once per impression, for prototyping. Register it by name with
:func:`auctionsim.register_mechanism`; :mod:`auctionsim.testing` checks its properties.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from auctionsim import _jit  # noqa: F401  (package-wide Numba cache stamps)

from auctionsim import rng

__all__ = [
    "Advertisers",
    "Auction",
    "BUILTIN_MECHANISMS",
    "MECHANISM_GSP",
    "MECHANISM_FPA",
    "MECHANISM_VCG",
    "EXPOSURE_CHAINED",
    "EXPOSURE_NESTED",
    "outranks",
    "shortlist_bids",
    "rank_bids",
    "slot_prices",
    "exposed_slots",
    "exposure_marginals",
    "rank_scores",
    "gsp",
    "fpa",
    "vcg",
]

MECHANISM_GSP = 0
MECHANISM_FPA = 1
MECHANISM_VCG = 2

# Exposure models (codes of :class:`auctionsim.config.ExposureModel`).
EXPOSURE_CHAINED = 0
EXPOSURE_NESTED = 1


class Advertisers(NamedTuple):
    """What a plugged-in mechanism may know about the market's advertisers, indexed by array
    position (``N`` advertisers, the population's order).

    Attributes:
        ids: ``(N,)`` int64 stable advertiser ids.
        categories: ``(N,)`` int64 product categories.
        cpa_targets: ``(N,)`` float64 CPA targets (currency; the value of a conversion).
        tie_keys: ``(N,)`` uint64 tie-break keys (keyed by id and episode; see :func:`outranks`).
        data: ``(F, N)`` float64 the mechanism's own per-advertiser data (e.g. quality scores),
            from its ``advertiser_data`` function; ``(0, N)`` when it has none.
    """

    ids: np.ndarray
    categories: np.ndarray
    cpa_targets: np.ndarray
    tie_keys: np.ndarray
    data: np.ndarray


class Auction(NamedTuple):
    """One impression's auction, as a plugged-in mechanism sees it (``n`` bidders, ``S`` slots).

    Attributes:
        bids: ``(n,)`` float64 the contest's bids (currency). A bid takes part when it is
            ``> 0``; a negative bid marks a bidder that is out (no budget left, or removed by
            the budget cap). Honouring the reserve is the mechanism's job (``reserve``).
        positions: ``(n,)`` int64 each bidder's array position (indexes ``advertisers``).
        impression: global index of the impression in the episode (the counter of the
            tie-break draws).
        reserve: the market's reserve price (currency).
        seen_probability: ``(S,)`` float64 the marginal probability that each slot is seen,
            non-increasing.
        advertisers: the market's :class:`Advertisers`.
        scratch: ``(n,)`` float64 working space the mechanism may overwrite (e.g. scores).
        scratch_index: ``(n,)`` int64 working space (:func:`rank_scores` overwrites it).
    """

    bids: np.ndarray
    positions: np.ndarray
    impression: int
    reserve: float
    seen_probability: np.ndarray
    advertisers: Advertisers
    scratch: np.ndarray
    scratch_index: np.ndarray


@numba.njit(cache=True, error_model="numpy", inline="always")
def outranks(bid_a, tie_key_a, bid_b, tie_key_b, impression):
    """Whether bidder ``a`` ranks above bidder ``b``: higher bid, or equal bid and higher priority."""
    if bid_a != bid_b:
        return bid_a > bid_b
    return rng.draw_bits(tie_key_a, impression) > rng.draw_bits(tie_key_b, impression)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _wins_tie(index_a, index_b, bidder_positions, tie_keys, impression):
    """Whether bidder ``a`` outranks bidder ``b`` when their bids are equal."""
    return rng.draw_bits(tie_keys[bidder_positions[index_a]], impression) > rng.draw_bits(
        tie_keys[bidder_positions[index_b]], impression
    )


# Lanes of :func:`shortlist_bids`: independent chains the CPU runs side by side (two AVX2 vectors).
SHORTLIST_LANES = 8


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sort_eight_descending(values):
    """Sort ``values[:8]`` in place, largest first: Batcher's odd-even merge sorting network
    (19 branch-free compare-exchanges)."""
    v0, v1, v2, v3, v4, v5, v6, v7 = values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7]
    v0, v1 = max(v0, v1), min(v0, v1)
    v2, v3 = max(v2, v3), min(v2, v3)
    v0, v2 = max(v0, v2), min(v0, v2)
    v1, v3 = max(v1, v3), min(v1, v3)
    v1, v2 = max(v1, v2), min(v1, v2)
    v4, v5 = max(v4, v5), min(v4, v5)
    v6, v7 = max(v6, v7), min(v6, v7)
    v4, v6 = max(v4, v6), min(v4, v6)
    v5, v7 = max(v5, v7), min(v5, v7)
    v5, v6 = max(v5, v6), min(v5, v6)
    v0, v4 = max(v0, v4), min(v0, v4)
    v2, v6 = max(v2, v6), min(v2, v6)
    v2, v4 = max(v2, v4), min(v2, v4)
    v1, v5 = max(v1, v5), min(v1, v5)
    v3, v7 = max(v3, v7), min(v3, v7)
    v3, v5 = max(v3, v5), min(v3, v5)
    v1, v2 = max(v1, v2), min(v1, v2)
    v3, v4 = max(v3, v4), min(v3, v4)
    v5, v6 = max(v5, v6), min(v5, v6)
    values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7] = v0, v1, v2, v3, v4, v5, v6, v7


@numba.njit(cache=True, error_model="numpy", inline="always")
def shortlist_bids(bids, n_bidders, n_keep, lane_tops, shortlist):
    """Indices of the bids that can rank among the best ``n_keep``; returns how many.

    The bids are dealt round-robin into ``SHORTLIST_LANES`` lanes, each keeping its best in an
    independent branch-free chain. The lane bests are distinct bids, so the ``n_keep``-th best of
    them is a lower bound on the ``n_keep``-th best bid overall, and every bid below it can be
    left out. This costs a fraction of ranking every bid. With more than ``SHORTLIST_LANES`` to
    keep, every bid is shortlisted. ``lane_tops`` is a ``(SHORTLIST_LANES,)`` scratch array.
    """
    if n_keep > SHORTLIST_LANES or n_bidders <= n_keep:
        for index in range(n_bidders):
            shortlist[index] = index
        return n_bidders
    best0 = best1 = best2 = best3 = best4 = best5 = best6 = best7 = -np.inf
    n_whole = n_bidders - n_bidders % SHORTLIST_LANES
    for base in range(0, n_whole, SHORTLIST_LANES):
        best0 = max(best0, bids[base])
        best1 = max(best1, bids[base + 1])
        best2 = max(best2, bids[base + 2])
        best3 = max(best3, bids[base + 3])
        best4 = max(best4, bids[base + 4])
        best5 = max(best5, bids[base + 5])
        best6 = max(best6, bids[base + 6])
        best7 = max(best7, bids[base + 7])
    for index in range(n_whole, n_bidders):  # the remainder joins lane 0
        best0 = max(best0, bids[index])
    lane_tops[0], lane_tops[1], lane_tops[2], lane_tops[3] = best0, best1, best2, best3
    lane_tops[4], lane_tops[5], lane_tops[6], lane_tops[7] = best4, best5, best6, best7
    _sort_eight_descending(lane_tops)
    bound = lane_tops[n_keep - 1]
    count = 0
    for index in range(n_bidders):
        shortlist[count] = index
        count += bids[index] >= bound
    return count


@numba.njit(cache=True, error_model="numpy", inline="always")
def rank_bids(bids, shortlist, n_shortlist, bidder_positions, tie_keys, reserve, impression, capacity, ranked_index, ranked_bids):
    """Rank the best ``capacity`` bids that take part, among the shortlisted bidders.

    Args:
        bids: bids of the contest's bidders (currency). A bid takes part when it is ``> 0`` and
            ``>= reserve``; set it negative to keep a bidder out.
        shortlist: ``(>= n_shortlist,)`` indices into ``bids`` to consider (see
            :func:`shortlist_bids`, or every index).
        bidder_positions: array position of each bidder (indexes ``tie_keys``).
        tie_keys: ``(N,)`` uint64 tie-break keys by array position (keyed by advertiser id).
        reserve: reserve price.
        impression: impression index (counter of the tie-break draws).
        capacity: how many ranks to fill (``S + 1``).
        ranked_index: ``(capacity,)`` output, indices into ``bids`` by rank.
        ranked_bids: ``(capacity,)`` output, the bids by rank.

    Returns:
        The number of ranks filled, ``min(capacity, number of shortlisted bids taking part)``.

    Finds the best bids by value first, each bid passing down the ranks with max/min (no
    branches to mispredict), then the bidders holding them. Ineligible bids are all below
    eligible ones, so the eligible ranks are a prefix. This is exact whenever the ranked bids are
    held by one bidder each; when two bidders hold a ranked bid (a tie), it ranks again by
    insertion, with the tie-break priorities.
    """
    for rank in range(capacity):
        ranked_bids[rank] = -np.inf
        ranked_index[rank] = 0
    for item in range(n_shortlist):
        carried = bids[shortlist[item]]
        for rank in range(capacity):
            held = ranked_bids[rank]
            ranked_bids[rank] = max(held, carried)
            carried = min(held, carried)
    filled = 0
    for rank in range(capacity):
        filled += ranked_bids[rank] > 0.0 and ranked_bids[rank] >= reserve
    holders = 0
    for item in range(n_shortlist):
        index = shortlist[item]
        bid = bids[index]
        for rank in range(filled):
            holds = np.int64(bid == ranked_bids[rank])
            ranked_index[rank] += holds * index
            holders += holds
    if holders > filled:
        return _rank_bids_with_ties(
            bids, shortlist, n_shortlist, bidder_positions, tie_keys, reserve, impression, capacity, ranked_index, ranked_bids
        )
    return filled


@numba.njit(cache=True, error_model="numpy", inline="always")
def _rank_bids_with_ties(bids, shortlist, n_shortlist, bidder_positions, tie_keys, reserve, impression, capacity, ranked_index, ranked_bids):
    """:func:`rank_bids` by insertion, breaking ties between equal bids by priority."""
    filled = 0
    # Bids below ``threshold`` cannot enter: the reserve until the list is full, then the last
    # ranked bid. Tie-break keys are looked up only when bids are equal.
    threshold = reserve
    for item in range(n_shortlist):
        index = shortlist[item]
        bid = bids[index]
        if bid < threshold or bid <= 0.0:
            continue
        if filled == capacity:
            if bid == threshold and not _wins_tie(index, ranked_index[capacity - 1], bidder_positions, tie_keys, impression):
                continue
            slot = capacity - 1
        else:
            slot = filled
            filled += 1
        while slot > 0:
            above = ranked_bids[slot - 1]
            if bid < above or (bid == above and not _wins_tie(index, ranked_index[slot - 1], bidder_positions, tie_keys, impression)):
                break
            ranked_bids[slot] = above
            ranked_index[slot] = ranked_index[slot - 1]
            slot -= 1
        ranked_bids[slot] = bid
        ranked_index[slot] = index
        if filled == capacity:
            threshold = ranked_bids[capacity - 1]
    return filled


@numba.njit(cache=True, error_model="numpy", inline="always")
def rank_scores(scores, floor, auction, ranked_index, ranked_scores):
    """Rank an auction's bidders by score, highest first, for a plugged-in mechanism.

    Args:
        scores: ``(n,)`` one score per bidder of ``auction`` (e.g. its bid, or bid x quality).
            A bidder takes part when its score is ``> 0`` and ``>= floor``.
        floor: the lowest score that takes part (e.g. the reserve price for bids).
        auction: the :class:`Auction` (its positions, tie-break keys and impression index
            break ties exactly as the built-in mechanisms do, uniformly at random by id).
        ranked_index: ``(capacity,)`` output, indices into ``scores`` by rank.
        ranked_scores: ``(capacity,)`` output, the scores by rank.

    Returns:
        The number of ranks filled, ``min(capacity, bidders taking part)``.

    Uses ``auction.scratch_index`` as working space. Built on :func:`rank_bids`: the same
    ranking as the built-in mechanisms, ties included.
    """
    n_bidders = scores.shape[0]
    everyone = auction.scratch_index
    for index in range(n_bidders):
        everyone[index] = index
    return rank_bids(
        scores, everyone, n_bidders, auction.positions, auction.advertisers.tie_keys, floor, auction.impression,
        ranked_index.shape[0], ranked_index, ranked_scores,
    )


@numba.njit(cache=True, error_model="numpy", inline="always")
def slot_prices(mechanism, ranked_bids, n_ranked, slot_exposure, reserve, prices):
    """Per-exposure price of each allocated slot.

    Args:
        mechanism: ``MECHANISM_GSP``, ``MECHANISM_FPA`` or ``MECHANISM_VCG``.
        ranked_bids: ``(>= n_ranked,)`` bids in rank order (all ``>= reserve``).
        n_ranked: number of real ranked bids.
        slot_exposure: ``(S,)`` marginal probability that each slot is seen, non-increasing
            (:func:`exposure_marginals`).
        reserve: reserve price.
        prices: ``(S,)`` output; entries ``k < min(n_ranked, S)`` are written.

    Returns:
        The number of allocated slots, ``min(n_ranked, S)``.
    """
    n_slots = slot_exposure.shape[0]
    n_winners = min(n_ranked, n_slots)
    for slot in range(n_winners):
        if mechanism == MECHANISM_FPA:
            prices[slot] = ranked_bids[slot]
        elif mechanism == MECHANISM_GSP:
            prices[slot] = max(reserve, ranked_bids[slot + 1]) if slot + 1 < n_ranked else reserve
        else:
            externality = 0.0
            for below in range(slot, n_slots):
                next_bid = max(reserve, ranked_bids[below + 1]) if below + 1 < n_ranked else reserve
                exposure_below = slot_exposure[below + 1] if below + 1 < n_slots else 0.0
                externality += (slot_exposure[below] - exposure_below) * next_bid
            prices[slot] = externality / slot_exposure[slot]
    return n_winners


@numba.njit(cache=True, error_model="numpy")
def gsp(auction, ranked_index, ranked_bids, prices):
    """The built-in GSP as a plugged-in mechanism (same outcomes as ``mechanism="gsp"``): rank
    the bids at or above the reserve, slot ``k`` pays ``max(reserve, b_{k+1})``."""
    n_ranked = rank_scores(auction.bids, auction.reserve, auction, ranked_index, ranked_bids)
    return n_ranked, slot_prices(MECHANISM_GSP, ranked_bids, n_ranked, auction.seen_probability, auction.reserve, prices)


@numba.njit(cache=True, error_model="numpy")
def fpa(auction, ranked_index, ranked_bids, prices):
    """The built-in first-price auction as a plugged-in mechanism: every winner pays its bid."""
    n_ranked = rank_scores(auction.bids, auction.reserve, auction, ranked_index, ranked_bids)
    return n_ranked, slot_prices(MECHANISM_FPA, ranked_bids, n_ranked, auction.seen_probability, auction.reserve, prices)


@numba.njit(cache=True, error_model="numpy")
def vcg(auction, ranked_index, ranked_bids, prices):
    """The built-in VCG as a plugged-in mechanism: each slot pays its expected externality."""
    n_ranked = rank_scores(auction.bids, auction.reserve, auction, ranked_index, ranked_bids)
    return n_ranked, slot_prices(MECHANISM_VCG, ranked_bids, n_ranked, auction.seen_probability, auction.reserve, prices)


#: The built-in mechanisms written with the plug-in signature, by name.
BUILTIN_MECHANISMS = {"gsp": gsp, "fpa": fpa, "vcg": vcg}


@numba.njit(cache=True, error_model="numpy", inline="always")
def exposed_slots(exposure_model, exposure_key, slot_exposure, impression):
    """How many slots (a prefix, by exposure continuity) are seen for this impression.

    ``EXPOSURE_CHAINED``: slot ``k`` has its own uniform draw (counter ``impression + k x
    2**40``) and is seen iff it falls below ``slot_exposure[k]`` and slot ``k - 1`` was seen;
    a slot with probability 1 needs no draw. ``EXPOSURE_NESTED``: one uniform per impression,
    slot ``k`` seen iff it falls below ``slot_exposure[k]``.
    """
    n_slots = slot_exposure.shape[0]
    seen = 0
    if exposure_model == EXPOSURE_NESTED:
        u = rng.uniform_from_bits(rng.draw_bits(exposure_key, impression))
        while seen < n_slots and u < slot_exposure[seen]:
            seen += 1
        return seen
    while seen < n_slots:
        probability = slot_exposure[seen]
        if probability < 1.0:
            counter = np.int64(impression) + (np.int64(seen) << np.int64(40))
            if rng.uniform_from_bits(rng.draw_bits(exposure_key, counter)) >= probability:
                break
        seen += 1
    return seen


@numba.njit(cache=True, error_model="numpy")
def exposure_marginals(exposure_model, slot_exposure):
    """``(S,)`` the probability that each slot is seen: the cumulative products of
    ``slot_exposure`` under ``EXPOSURE_CHAINED``, ``slot_exposure`` itself under
    ``EXPOSURE_NESTED``."""
    marginals = slot_exposure.copy()
    if exposure_model != EXPOSURE_NESTED:
        for slot in range(1, marginals.shape[0]):
            marginals[slot] = marginals[slot - 1] * slot_exposure[slot]
    return marginals
