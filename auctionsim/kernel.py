"""The tick kernel: run every impression of one tick through the auction, in arrival order.

Array in, array out; all state lives in the arrays the caller passes (``budget_left`` is updated
in place, per-advertiser and market outputs are overwritten). :class:`auctionsim.market.Market` owns the
arrays and validates everything before calling in.

Per impression ``j`` (global index in the episode):

1. Contest: every advertiser, or (with ``n_candidates = K > 0``) the ``K`` retrieved by
   :func:`auctionsim.traffic.retrieve_candidates`.
2. Values and bids: ``pValue_ij`` is drawn (or read from explicit traffic); the bid is
   ``bid_scale_i x pValue_ij`` with ``bid_scale_i = multiplier_i x cpa_target_i``, or the
   advertiser's explicit per-impression bid. An advertiser whose remaining budget is ``<= 0`` or
   below the budget floor (the larger of the reserve and the market's minimum budget to bid)
   does not bid.
3. Allocation and prices by the mechanism (:mod:`auctionsim.mechanisms`). Hard budget cap: if a
   winner's price exceeds its remaining budget, it is removed from this impression and the auction
   is re-run, so spend never exceeds budget.
4. Exposure: slots ``0..seen-1`` are seen (drawn by the market's exposure model, see
   :func:`auctionsim.mechanisms.exposed_slots`). Exposed winners pay their price, gain value
   ``pValue x cpa_target`` and convert at random.

The impression's least winning cost is AuctionNet's: the ``(S+1)``-th highest bid taking part,
floored at the reserve (the reserve when fewer bid), i.e. the price of the last slot.

:func:`run_tick` takes its inputs grouped by role into named tuples, so that callers cannot
silently pass them in the wrong order: the auction rules (:class:`House`), the candidate
retrieval (:class:`Retrieval`), the episode's working tables (:class:`Tables`, from
:func:`new_tables`), the advertisers as a mechanism sees them
(:class:`auctionsim.mechanisms.Advertisers`), explicit per-impression inputs
(:class:`ExplicitInputs`), the outputs (:class:`Outputs`) and the per-impression log
(:class:`TickLog`). The mechanism is a built-in's ``MECHANISM_*`` code (:func:`run_tick`,
compiled once and cached) or a plugged-in function with the signature of
:mod:`auctionsim.mechanisms`: a Python one in :func:`run_tick` too, a jitted one in
:func:`run_tick_plugged`, compiled once per process for each (see :func:`plugged_mechanism`).
Both unpack the tuples and call the loop, :func:`_tick`, with plain arguments: reading the
tuples' fields inside the loop measured 3-5% slower on the ``large-1k`` preset.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numba
import numpy as np

from auctionsim import _jit  # noqa: F401  (package-wide Numba cache stamps)
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic, overload

from auctionsim import rng
from auctionsim.mechanisms import (
    SHORTLIST_LANES,
    Auction,
    exposed_slots,
    exposure_marginals,
    rank_bids,
    shortlist_bids,
    slot_prices,
)
from auctionsim.traffic import (
    KEY_CONVERSION,
    KEY_CONVERSION_RATE,
    KEY_PVALUE,
    KEY_SIGMA,
    KEY_TIE_BREAK,
    impression_conversion,
    impression_pvalue,
    impression_sigma,
    pvalue_from_normal,
    retrieve_candidates,
)

# Rows of the per-advertiser parameter array ``params``, float64 ``(N_PARAMS, N)``.
PARAM_BID_SCALE = 0  # multiplier x CPA target: bid per unit of pValue (currency)
PARAM_CPA_TARGET = 1  # value of a conversion (currency)
PARAM_PVALUE_MEAN = 2  # this tick's pValue mean
PARAM_PVALUE_STD = 3  # this tick's pValue standard deviation
PARAM_SIGMA_RATIO = 4  # mean of sigma / pValue
PARAM_TRUNCATION_CDF_LOW = 5  # conversion-rate truncation: Phi(lower bound)
PARAM_TRUNCATION_CDF_WIDTH = 6  # Phi(upper bound) - Phi(lower bound)
N_PARAMS = 7

# Rows of the per-advertiser output array, float64 ``(N_OUTPUTS, N)``: the tick's totals.
OUT_OPPORTUNITIES = 0  # impressions the advertiser was a candidate for
OUT_BID_SUM = 1  # sum of its bids on them (currency)
OUT_PVALUE_SUM = 2  # sum of its pValues on them
OUT_LEAST_WINNING_COST_SUM = 3  # sum over them of the impression's least winning cost (AuctionNet's; currency)
OUT_WINS = 4  # slots allocated
OUT_EXPOSURES = 5  # allocated slots that were seen
OUT_CONVERSIONS = 6  # realised conversions
OUT_SPEND = 7  # money paid (currency)
OUT_VALUE_WON = 8  # sum of pValue x CPA target over exposures (currency)
N_OUTPUTS = 9

# Entries of the market-level output array, float64 ``(N_MARKET,)``.
MARKET_IMPRESSIONS = 0
MARKET_SOLD = 1  # impressions with at least one slot allocated
MARKET_LEAST_WINNING_COST_SUM = 2
MARKET_LEAST_WINNING_COST_SQUARE_SUM = 3
MARKET_LEAST_WINNING_COST_MIN = 4
MARKET_LEAST_WINNING_COST_MAX = 5
MARKET_TOP_BID_SUM = 6  # sum of the highest bid taking part (0 when none)
MARKET_REVENUE = 7
MARKET_EXPOSED_SLOTS = 8
MARKET_CONVERSIONS = 9
MARKET_BUDGET_EXCLUSIONS = 10  # winners removed because they could not pay
N_MARKET = 11

# Bids shortlisted beyond the S + 1 ranked, so that removing a winner who cannot pay usually
# re-ranks only the shortlist.
_SPARE_RANKS = 2


class House(NamedTuple):
    """The auction rules for an episode.

    Attributes:
        mechanism: the built-in mechanism's ``MECHANISM_*`` code (-1 with a plugged-in one).
        slot_exposure: ``(S,)`` float64 the market's slot exposure probabilities, drawn by
            ``exposure_model`` (an ``EXPOSURE_*`` code).
        reserve: reserve price (currency).
        budget_floor: advertisers with less budget left than this do not bid (currency).
        exposure_key: uint64 platform key of the exposure stream.
        sigma_ratio_cap: cap of sigma / pValue.
    """

    mechanism: int
    slot_exposure: np.ndarray
    exposure_model: int
    reserve: float
    budget_floor: float
    exposure_key: np.uint64
    sigma_ratio_cap: float


class Retrieval(NamedTuple):
    """Candidate retrieval (see :func:`auctionsim.traffic.retrieve_candidates`).

    Attributes:
        n_candidates: ``0`` for a full contest (every advertiser bids), else ``K``.
        own_category_share: expected share of the ``K`` from the impression's category.
        candidates_key: uint64 platform key of the retrieval draws.
        layout: :attr:`auctionsim.traffic.EpisodeTraffic.retrieval`, the episode's five arrays.
    """

    n_candidates: int
    own_category_share: float
    candidates_key: np.uint64
    layout: tuple


class Tables(NamedTuple):
    """The episode's working tables, from :func:`new_tables`.

    Attributes:
        row_positions: ``(N,)`` int64 the array position of the advertiser in each table row.
        table, winner_table: ``(N, BIDDER_TABLE_WIDTH)`` and ``(N, WINNER_TABLE_WIDTH)``.
        tie_keys: ``(N,)`` uint64 tie-break keys by row.
        won_rows: ``(N,)`` int64 scratch for the rows that won in a tick.
    """

    row_positions: np.ndarray
    table: np.ndarray
    winner_table: np.ndarray
    tie_keys: np.ndarray
    won_rows: np.ndarray


class ExplicitInputs(NamedTuple):
    """A tick's user-supplied values and bids (``n`` impressions, ``N`` advertisers).

    Attributes:
        pvalues, sigmas: ``(n, N)`` pValues and sigmas, or ``(0, 0)`` arrays to draw them.
        bid_columns: ``(N,)`` int64 column of ``bids`` per advertiser, ``-1`` for multiplier bids.
        bids: ``(n, n_explicit)`` per-impression bids (currency).
    """

    pvalues: np.ndarray
    sigmas: np.ndarray
    bid_columns: np.ndarray
    bids: np.ndarray


class Outputs(NamedTuple):
    """A tick's totals (overwritten): ``advertisers`` ``(N_OUTPUTS, N)`` and ``market``
    ``(N_MARKET,)`` float64, rows ``OUT_*`` and entries ``MARKET_*``."""

    advertisers: np.ndarray
    market: np.ndarray


class TickLog(NamedTuple):
    """The per-impression log of a tick (``n`` impressions, ``S`` slots), or arrays with 0 rows
    to skip logging.

    Attributes:
        winners: ``(n, S)`` int64 winners' array positions, -1 where a slot was not allocated.
        prices: ``(n, S)`` price per exposure; exposed, converted: ``(n, S)`` bool.
        least_winning_cost, top_bid: ``(n,)``.
        ranked_bids: ``(n, S + 1)`` the final ranking's bids, 0 where fewer took part.
        ranked_bidders: ``(n, S + 1)`` int64 their array positions, -1 where none.
        slots_seen: ``(n,)`` int64.
    """

    winners: np.ndarray
    prices: np.ndarray
    exposed: np.ndarray
    converted: np.ndarray
    least_winning_cost: np.ndarray
    top_bid: np.ndarray
    ranked_bids: np.ndarray
    ranked_bidders: np.ndarray
    slots_seen: np.ndarray


@numba.njit(cache=True, error_model="numpy", inline="always")
def _can_bid(budget_left, budget_floor):
    """Whether an advertiser still bids: its remaining budget is positive and at least the floor
    (the larger of the reserve price, below which it could pay no price, and the market's
    minimum budget to bid)."""
    return budget_left > 0.0 and budget_left >= budget_floor


@intrinsic
def _prefetch(typingctx, table, row, column):
    """Ask the CPU to start loading ``table[row, column]``'s cache line (LLVM ``prefetch``; no
    effect on results), so that the load overlaps other work instead of stalling it."""
    signature = types.void(table, row, column)

    def codegen(context, builder, signature, args):
        table_type = signature.args[0]
        array = context.make_array(table_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, table_type, array, [args[1], args[2]], wraparound=False
        )
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), int32, int32, int32])
        function = cgutils.get_or_insert_function(builder.module, function_type, "llvm.prefetch.p0")
        # read, keep in all cache levels, data cache
        builder.call(function, [byte_pointer, ir.Constant(int32, 0), ir.Constant(int32, 3), ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return signature, codegen


@numba.njit(cache=True, error_model="numpy")
def _multiplier_bids(impression, n_bidders, keys, mean, std, scale, draws, normals, pvalues, bids):
    """Draw each bidder's pValue and bid ``scale x pValue`` (contiguous per-bidder arrays).

    The same draws as :func:`auctionsim.traffic.impression_pvalue`, in three passes so that the
    first and last compile to SIMD code: the random bits (vectorised 64-bit multiplies), the
    normal variates (a table lookup with a rare exact-tail branch, which stays scalar), then
    pValue and bid. ``draws`` (uint64) and ``normals`` are ``(>= n_bidders,)`` scratch arrays.
    """
    for bidder in range(n_bidders):
        draws[bidder] = rng.draw_bits(keys[bidder], impression)
    for bidder in range(n_bidders):
        normals[bidder] = rng.normal_from_bits(draws[bidder])
    for bidder in range(n_bidders):
        pvalue = pvalue_from_normal(mean[bidder], std[bidder], normals[bidder])
        pvalues[bidder] = pvalue
        bids[bidder] = scale[bidder] * pvalue


# The kernel keeps each advertiser's data in rows of two float64 tables (integers and keys stored
# as uint64 bits), with rows aligned to 64-byte cache lines. The bidder table holds what every
# candidate reads and updates, in one cache line; the winner table what only winners need. With
# K candidates the rows are in retrieval (category member) order, so a candidate costs one cache
# line (prefetched an impression ahead) rather than a dozen scattered reads across ``(N,)``
# arrays; winners' rows are settled in batches, their cache lines prefetched, so that their
# misses overlap instead of stalling the auction loop. The caller allocates the tables once per
# episode (:func:`new_tables`); each tick loads that tick's parameters into the bidder table,
# and into a winner row when the advertiser first wins in the tick (only rows that won are read
# back and cleared at the end of the tick).
COL_PVALUE_MEAN = 0
COL_PVALUE_STD = 1
COL_SCALE = 2  # effective bid per unit of pValue; -1 once the advertiser no longer bids
COL_PVALUE_KEY = 3  # bits
COL_BUDGET_LEFT = 4
COL_PVALUE_SUM = 5
COL_OPPORTUNITIES = 6
COL_LEAST_WINNING_COST_SUM = 7
BIDDER_TABLE_WIDTH = 8
# Columns of the winner table.
WIN_CPA_TARGET = 0
WIN_SIGMA_RATIO = 1
WIN_SIGMA_KEY = 2  # bits
WIN_RATE_KEY = 3  # bits
WIN_CONVERSION_KEY = 4  # bits
WIN_WINS = 5
WIN_EXPOSURES = 6
WIN_CONVERSIONS = 7
WIN_SPEND = 8
WIN_VALUE_WON = 9
WIN_TRUNCATION_CDF_LOW = 10
WIN_TRUNCATION_CDF_WIDTH = 11
WINNER_TABLE_WIDTH = 16  # 12 columns used, padded to two cache lines

_CACHE_LINE_FLOATS = 8  # 64-byte cache lines
# Impressions whose winners are settled together, and how many winners ahead a winner's rows
# are prefetched while settling.
_SETTLE_BATCH = 512
_SETTLE_PREFETCH_DISTANCE = 8


@numba.njit(cache=True, error_model="numpy")
def _zeros_by_cache_line(n_rows, width):
    """A zeroed ``(n_rows, width)`` float64 array whose rows start on 64-byte boundaries (for
    ``width`` a multiple of 8); Numba aligns new arrays to 32 bytes only."""
    buffer = np.zeros(n_rows * width + _CACHE_LINE_FLOATS)
    offset = ((-buffer.ctypes.data) % (8 * _CACHE_LINE_FLOATS)) // 8
    return buffer[offset:offset + n_rows * width].reshape((n_rows, width))


@numba.njit(cache=True, error_model="numpy")
def new_tables(retrieval, keys):
    """The kernel's working :class:`Tables` for one episode, to pass to every :func:`run_tick`.

    The array position of the advertiser in each table row is the identity in a full contest
    and the retrieval's member order with ``K`` candidates; the bidder and winner tables get
    the episode's stream keys (``keys``, ``(5, N)``); the tie-break keys are by row.
    """
    n_advertisers = keys.shape[1]
    row_positions = retrieval.layout[0].copy() if retrieval.n_candidates > 0 else np.arange(n_advertisers)
    table = _zeros_by_cache_line(n_advertisers, BIDDER_TABLE_WIDTH)
    bits = table.view(np.uint64)
    winner_table = _zeros_by_cache_line(n_advertisers, WINNER_TABLE_WIDTH)
    winner_bits = winner_table.view(np.uint64)
    tie_keys = np.empty(n_advertisers, dtype=np.uint64)
    for row in range(n_advertisers):
        position = row_positions[row]
        bits[row, COL_PVALUE_KEY] = keys[KEY_PVALUE, position]
        winner_bits[row, WIN_SIGMA_KEY] = keys[KEY_SIGMA, position]
        winner_bits[row, WIN_RATE_KEY] = keys[KEY_CONVERSION_RATE, position]
        winner_bits[row, WIN_CONVERSION_KEY] = keys[KEY_CONVERSION, position]
        tie_keys[row] = keys[KEY_TIE_BREAK, position]
    return Tables(row_positions, table, winner_table, tie_keys, np.empty(n_advertisers, dtype=np.int64))


@numba.njit(cache=True, error_model="numpy")
def _load_tick(row_positions, params, budget_left, budget_floor, table):
    """Load the tick's parameters and budgets into the bidder table and zero its tick totals."""
    for row in range(row_positions.shape[0]):
        position = row_positions[row]
        budget = budget_left[position]
        table[row, COL_PVALUE_MEAN] = params[PARAM_PVALUE_MEAN, position]
        table[row, COL_PVALUE_STD] = params[PARAM_PVALUE_STD, position]
        table[row, COL_SCALE] = params[PARAM_BID_SCALE, position] if _can_bid(budget, budget_floor) else -1.0
        table[row, COL_BUDGET_LEFT] = budget
        table[row, COL_PVALUE_SUM] = 0.0
        table[row, COL_OPPORTUNITIES] = 0.0
        table[row, COL_LEAST_WINNING_COST_SUM] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _write_back(
    row_positions, table, winner_table, won_rows, n_won, bid_columns, explicit_bid_sums, params, budget_left,
    out_advertisers, n_impressions, full_contest, market_lwc_sum,
):
    """Copy the tick's per-advertiser results from the tables to the caller's arrays, and clear
    the winner rows for the next tick."""
    for row in range(row_positions.shape[0]):
        position = row_positions[row]
        budget_left[position] = table[row, COL_BUDGET_LEFT]
        if full_contest:
            # Every advertiser saw every impression: its sums equal the market's.
            out_advertisers[OUT_OPPORTUNITIES, position] = n_impressions
            out_advertisers[OUT_LEAST_WINNING_COST_SUM, position] = market_lwc_sum
        else:
            out_advertisers[OUT_OPPORTUNITIES, position] = table[row, COL_OPPORTUNITIES]
            out_advertisers[OUT_LEAST_WINNING_COST_SUM, position] = table[row, COL_LEAST_WINNING_COST_SUM]
        pvalue_sum = table[row, COL_PVALUE_SUM]
        out_advertisers[OUT_PVALUE_SUM, position] = pvalue_sum
        # Multiplier bidders bid scale x pValue on every opportunity (notionally once out of budget).
        column = bid_columns[position]
        if column >= 0:
            out_advertisers[OUT_BID_SUM, position] = explicit_bid_sums[column]
        else:
            out_advertisers[OUT_BID_SUM, position] = params[PARAM_BID_SCALE, position] * pvalue_sum
        for output in (OUT_WINS, OUT_EXPOSURES, OUT_CONVERSIONS, OUT_SPEND, OUT_VALUE_WON):
            out_advertisers[output, position] = 0.0
    for won in range(n_won):
        row = won_rows[won]
        position = row_positions[row]
        out_advertisers[OUT_WINS, position] = winner_table[row, WIN_WINS]
        out_advertisers[OUT_EXPOSURES, position] = winner_table[row, WIN_EXPOSURES]
        out_advertisers[OUT_CONVERSIONS, position] = winner_table[row, WIN_CONVERSIONS]
        out_advertisers[OUT_SPEND, position] = winner_table[row, WIN_SPEND]
        out_advertisers[OUT_VALUE_WON, position] = winner_table[row, WIN_VALUE_WON]
        for column in range(WIN_WINS, WIN_VALUE_WON + 1):
            winner_table[row, column] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _gather_bidders(table, bits, rows, n_bidders, keys, mean, std, scale):
    """Copy the bidders' pValue parameters from their table rows (``bits`` is the table viewed as
    uint64) into contiguous per-bidder arrays."""
    for bidder in range(n_bidders):
        row = rows[bidder]
        keys[bidder] = bits[row, COL_PVALUE_KEY]
        mean[bidder] = table[row, COL_PVALUE_MEAN]
        std[bidder] = table[row, COL_PVALUE_STD]
        scale[bidder] = table[row, COL_SCALE]


@numba.njit(cache=True, error_model="numpy")
def _allocate(
    mechanism, bids, n_bidders, rows, tie_keys, table, reserve, impression, seen_probability,
    shortlist, lane_tops, ranked_index, ranked_bids, prices,
):
    """Rank the bids and price the slots under the hard budget cap.

    A winner that cannot pay its price (more than its budget left, ``table[rows[b],
    COL_BUDGET_LEFT]``) leaves this impression (its bid is set to -1) and the auction is re-run
    without it. Re-ranking the shortlist is exact as long as it still fills every rank (all bids
    left out of it are below those ranked), else everyone is re-ranked. Fills ``ranked_index``,
    ``ranked_bids`` and ``prices``; returns ``(n_ranked, n_winners, n_excluded)``.
    """
    rank_capacity = ranked_index.shape[0]
    n_shortlist = shortlist_bids(bids, n_bidders, rank_capacity + _SPARE_RANKS, lane_tops, shortlist)
    n_excluded = 0
    while True:
        n_ranked = rank_bids(
            bids, shortlist, n_shortlist, rows, tie_keys, reserve, impression, rank_capacity, ranked_index, ranked_bids
        )
        if n_excluded > 0 and n_ranked < rank_capacity and n_shortlist < n_bidders:
            for index in range(n_bidders):
                shortlist[index] = index
            n_shortlist = n_bidders
            continue
        n_winners = slot_prices(mechanism, ranked_bids, n_ranked, seen_probability, reserve, prices)
        unaffordable = -1
        for slot in range(n_winners):
            if prices[slot] > table[rows[ranked_index[slot]], COL_BUDGET_LEFT]:
                unaffordable = slot
                break
        if unaffordable < 0:
            return n_ranked, n_winners, n_excluded
        bids[ranked_index[unaffordable]] = -1.0
        n_excluded += 1


@numba.njit(cache=True, error_model="numpy")
def _settle_winners(
    n_pending, pending_rows, pending_pvalues, pending_prices, pending_exposed, pending_local, pending_slots,
    winner_table, won_rows, n_won, params, row_positions, first_impression, sigma_ratio_cap, explicit_sigmas,
    log_converted,
):
    """Book the pending winners' wins, exposures, spend, value and conversions in the winner
    table, in impression order, prefetching each winner's rows a few winners ahead. A row's
    parameters are loaded at its first win of the tick, and the row is added to ``won_rows``.
    Returns ``(conversions, n_won)``."""
    winner_bits = winner_table.view(np.uint64)
    use_explicit_sigmas = explicit_sigmas.shape[0] > 0
    logging = log_converted.shape[0] > 0
    n_conversions = 0
    for record in range(n_pending):
        ahead = record + _SETTLE_PREFETCH_DISTANCE
        if ahead < n_pending:
            _prefetch(winner_table, pending_rows[ahead], WIN_CPA_TARGET)
            _prefetch(winner_table, pending_rows[ahead], WIN_SPEND)
        row = pending_rows[record]
        if winner_table[row, WIN_WINS] == 0.0:
            position = row_positions[row]
            winner_table[row, WIN_CPA_TARGET] = params[PARAM_CPA_TARGET, position]
            winner_table[row, WIN_SIGMA_RATIO] = params[PARAM_SIGMA_RATIO, position]
            winner_table[row, WIN_TRUNCATION_CDF_LOW] = params[PARAM_TRUNCATION_CDF_LOW, position]
            winner_table[row, WIN_TRUNCATION_CDF_WIDTH] = params[PARAM_TRUNCATION_CDF_WIDTH, position]
            won_rows[n_won] = row
            n_won += 1
        winner_table[row, WIN_WINS] += 1.0
        if not pending_exposed[record]:
            continue
        local = pending_local[record]
        impression = first_impression + local
        pvalue = pending_pvalues[record]
        winner_table[row, WIN_SPEND] += pending_prices[record]
        winner_table[row, WIN_EXPOSURES] += 1.0
        winner_table[row, WIN_VALUE_WON] += pvalue * winner_table[row, WIN_CPA_TARGET]
        if use_explicit_sigmas:
            sigma = explicit_sigmas[local, row_positions[row]]
        else:
            sigma = impression_sigma(
                winner_bits[row, WIN_SIGMA_KEY], pvalue, winner_table[row, WIN_SIGMA_RATIO], sigma_ratio_cap, impression
            )
        converted = impression_conversion(
            winner_bits[row, WIN_RATE_KEY], winner_bits[row, WIN_CONVERSION_KEY], pvalue, sigma,
            winner_table[row, WIN_TRUNCATION_CDF_LOW], winner_table[row, WIN_TRUNCATION_CDF_WIDTH], impression,
        )
        if converted:
            winner_table[row, WIN_CONVERSIONS] += 1.0
            n_conversions += 1
        if logging:
            log_converted[local, pending_slots[record]] = converted
    return n_conversions, n_won


_PYTHON_MECHANISMS: list[Callable] = []  # slow-path mechanisms, by key


def _call_python_mechanism(key, auction, ranked_index, ranked_bids, prices):
    n_ranked, n_winners = _PYTHON_MECHANISMS[key](auction, ranked_index, ranked_bids, prices)
    return int(n_ranked), int(n_winners)


@numba.njit
def _python_caller(key, auction, ranked_index, ranked_bids, prices):
    """Leave compiled code to call the Python mechanism stored under ``key`` (one caller for
    every Python mechanism, so the kernel is compiled once for all of them)."""
    with numba.objmode(n_ranked="int64", n_winners="int64"):
        n_ranked, n_winners = _call_python_mechanism(key, auction, ranked_index, ranked_bids, prices)
    return n_ranked, n_winners


class PythonMechanism(NamedTuple):
    """A plain-Python mechanism, as the kernel holds it: its key in the slow-path registry."""

    key: int


def _call_mechanism(mechanism, auction, ranked_index, ranked_bids, prices):
    """Call a plugged-in mechanism: a jitted function, or a :class:`PythonMechanism`."""
    if isinstance(mechanism, PythonMechanism):
        return _python_caller(mechanism.key, auction, ranked_index, ranked_bids, prices)
    return mechanism(auction, ranked_index, ranked_bids, prices)


@overload(_call_mechanism, inline="always")
def _call_mechanism_compiled(mechanism, auction, ranked_index, ranked_bids, prices):
    if isinstance(mechanism, types.BaseTuple):
        return lambda mechanism, auction, ranked_index, ranked_bids, prices: _python_caller(
            mechanism.key, auction, ranked_index, ranked_bids, prices
        )
    return lambda mechanism, auction, ranked_index, ranked_bids, prices: mechanism(auction, ranked_index, ranked_bids, prices)


@numba.njit(error_model="numpy")
def _allocate_plugged(mechanism, auction, rows, table, ranked_index, ranked_bids, prices):
    """Run a plugged-in mechanism under the hard budget cap (as :func:`_allocate` does for the
    built-in ones), checking each outcome against the contract of :mod:`auctionsim.mechanisms`.
    Returns ``(n_ranked, n_winners, n_excluded)``."""
    bids = auction.bids
    n_bidders = bids.shape[0]
    rank_capacity = ranked_index.shape[0]
    n_slots = prices.shape[0]
    n_excluded = 0
    while True:
        outcome = _call_mechanism(mechanism, auction, ranked_index, ranked_bids, prices)
        n_ranked = np.int64(outcome[0])
        n_winners = np.int64(outcome[1])
        if n_ranked < 0 or n_ranked > rank_capacity:
            raise ValueError("returned n_ranked outside [0, S + 1]: (impression, n_ranked) =", auction.impression, n_ranked)
        if n_winners < 0 or n_winners > min(n_ranked, n_slots):
            raise ValueError("returned n_winners outside [0, min(n_ranked, S)]: (impression, n_winners) =", auction.impression, n_winners)
        for rank in range(n_ranked):
            index = ranked_index[rank]
            if index < 0 or index >= n_bidders:
                raise ValueError("ranked a bidder index outside the contest: (impression, rank, index) =", auction.impression, rank, index)
        unaffordable = -1
        for slot in range(n_winners):
            index = ranked_index[slot]
            if not bids[index] > 0.0:
                raise ValueError("gave a slot to a bidder not taking part (bid <= 0): (impression, slot, bid) =", auction.impression, slot, bids[index])
            if not (prices[slot] >= 0.0 and np.isfinite(prices[slot])):
                raise ValueError("set a price that is negative or not finite: (impression, slot, price) =", auction.impression, slot, prices[slot])
            if unaffordable < 0 and prices[slot] > table[rows[index], COL_BUDGET_LEFT]:
                unaffordable = slot
        if unaffordable < 0:
            return n_ranked, n_winners, n_excluded
        bids[ranked_index[unaffordable]] = -1.0
        n_excluded += 1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _flat_inputs(house, retrieval, tables, explicit, outputs, log):
    """The grouped inputs of :func:`run_tick` as the flat arguments of :func:`_tick`."""
    return (
        house.mechanism, house.slot_exposure, house.exposure_model, house.reserve, house.budget_floor, house.exposure_key,
        house.sigma_ratio_cap, retrieval.n_candidates, retrieval.own_category_share, retrieval.candidates_key, retrieval.layout,
        tables.row_positions, tables.table, tables.winner_table, tables.tie_keys, tables.won_rows,
        explicit.pvalues, explicit.sigmas, explicit.bid_columns, explicit.bids, outputs.advertisers, outputs.market,
        log.winners, log.prices, log.exposed, log.converted, log.least_winning_cost, log.top_bid, log.slots_seen,
        log.ranked_bids, log.ranked_bidders,
    )


@numba.njit(cache=True, error_model="numpy")
def run_tick(first_impression, n_impressions, house, plugged, retrieval, tables, advertisers, params, explicit, budget_left, outputs, log):
    """Run impressions ``first_impression .. first_impression + n_impressions - 1``.

    Args:
        first_impression, n_impressions: the tick's impressions (global indices).
        house: the auction rules (:class:`House`), with the built-in mechanism's code.
        plugged: ``None`` to run ``house.mechanism``, or a plugged-in mechanism from
            :func:`plugged_mechanism` (``house.mechanism`` is then ignored): a
            :class:`PythonMechanism` here, a jitted one in :func:`run_tick_plugged`. The
            branch not taken is pruned at compile time, so the built-in path carries nothing of
            the plugged-in one.
        retrieval: the candidate retrieval (:class:`Retrieval`).
        tables: the episode's working tables from :func:`new_tables` (built with the same
            retrieval and keys).
        advertisers: the advertisers as a plugged-in mechanism sees them
            (:class:`auctionsim.mechanisms.Advertisers`; unused by the built-in mechanisms).
        params: ``(N_PARAMS, N)`` per-advertiser parameters for this tick.
        explicit: this tick's user-supplied pValues, sigmas and bids (:class:`ExplicitInputs`).
        budget_left: ``(N,)`` remaining budgets, updated in place.
        outputs: the tick's totals (:class:`Outputs`, overwritten).
        log: the per-impression log (:class:`TickLog`), or arrays with 0 rows to skip logging.
    """
    _tick(first_impression, n_impressions, params, budget_left, plugged, advertisers, *_flat_inputs(house, retrieval, tables, explicit, outputs, log))


@numba.njit(cache=True, error_model="numpy")
def _tick(first_impression, n_impressions, params, budget_left, plugged, advertisers, mechanism, slot_exposure, exposure_model, reserve, budget_floor, exposure_key, sigma_ratio_cap, n_candidates, own_category_share, candidates_key, layout, row_positions, table, winner_table, tie_keys, won_rows, explicit_pvalues, explicit_sigmas, bid_columns, explicit_bids, out_advertisers, out_market, log_winners, log_prices, log_exposed, log_converted, log_least_winning_cost, log_top_bid, log_slots_seen, log_ranked_bids, log_ranked_bidders):
    """:func:`run_tick` on its inputs unpacked (see there)."""
    n_advertisers = params.shape[1]
    n_slots = slot_exposure.shape[0]
    seen_probability = exposure_marginals(exposure_model, slot_exposure)  # prices use the marginals
    full_contest = n_candidates == 0
    n_bidders = n_advertisers if full_contest else n_candidates
    _load_tick(row_positions, params, budget_left, budget_floor, table)
    bits = table.view(np.uint64)

    # Per-bidder working arrays. In a full contest bidder b is table row b and array position b,
    # its pValue parameters are copied once per tick and its pValue sum kept in a contiguous
    # array; with K candidates they are gathered from the candidates' rows at every impression
    # (the next impression's rows are retrieved one impression ahead, to prefetch them).
    rows = np.arange(n_bidders)
    next_rows = np.empty(n_bidders, dtype=np.int64)
    positions = np.arange(n_bidders)
    bidder_keys = np.empty(n_bidders, dtype=np.uint64)
    bidder_mean = np.empty(n_bidders)
    bidder_std = np.empty(n_bidders)
    bidder_scale = np.empty(n_bidders)
    pvalue_sums = np.zeros(n_bidders)
    if full_contest:
        _gather_bidders(table, bits, rows, n_bidders, bidder_keys, bidder_mean, bidder_std, bidder_scale)
    else:
        retrieve_candidates(first_impression, n_candidates, own_category_share, candidates_key, layout, next_rows)
    bids = np.empty(n_bidders)
    scratch = np.empty(n_bidders)
    scratch_index = np.empty(n_bidders, dtype=np.int64)
    pvalues = np.empty(n_bidders)
    draws = np.empty(n_bidders, dtype=np.uint64)
    normals = np.empty(n_bidders)
    rank_capacity = n_slots + 1
    shortlist = np.empty(n_bidders, dtype=np.int64)
    lane_tops = np.empty(SHORTLIST_LANES)
    ranked_index = np.empty(rank_capacity, dtype=np.int64)
    ranked_bids = np.empty(rank_capacity)
    prices = np.empty(n_slots)
    # Winners waiting to be settled (at most _SETTLE_BATCH impressions' worth).
    pending_capacity = _SETTLE_BATCH * n_slots
    pending_rows = np.empty(pending_capacity, dtype=np.int64)
    pending_pvalues = np.empty(pending_capacity)
    pending_prices = np.empty(pending_capacity)
    pending_exposed = np.empty(pending_capacity, dtype=np.bool_)
    pending_local = np.empty(pending_capacity, dtype=np.int64)
    pending_slots = np.empty(pending_capacity, dtype=np.int64)
    n_pending = 0
    n_won = 0
    explicit_bid_sums = np.zeros(explicit_bids.shape[1])
    use_explicit_pvalues = explicit_pvalues.shape[0] > 0
    use_explicit_bids = explicit_bids.shape[1] > 0
    need_positions = use_explicit_pvalues or use_explicit_bids or plugged is not None
    logging = log_top_bid.shape[0] > 0
    # Market statistics, kept in registers rather than read-modify-written in ``out_market``.
    n_sold = 0
    n_exposed_slots = 0
    n_conversions = 0
    n_budget_exclusions = 0
    revenue = 0.0
    top_bid_sum = 0.0
    least_winning_cost_sum = 0.0
    least_winning_cost_square_sum = 0.0
    least_winning_cost_min = np.inf
    least_winning_cost_max = -np.inf

    for local in range(n_impressions):
        impression = first_impression + local

        if not full_contest:
            for bidder in range(n_bidders):
                rows[bidder] = next_rows[bidder]
            if local + 1 < n_impressions:
                retrieve_candidates(impression + 1, n_candidates, own_category_share, candidates_key, layout, next_rows)
                for bidder in range(n_bidders):
                    _prefetch(table, next_rows[bidder], 0)
            _gather_bidders(table, bits, rows, n_bidders, bidder_keys, bidder_mean, bidder_std, bidder_scale)
            if need_positions:
                for bidder in range(n_bidders):
                    positions[bidder] = row_positions[rows[bidder]]

        # Values and bids: multiplier bids are ``scale x pValue``; explicit bids replace them.
        if use_explicit_pvalues:
            for bidder in range(n_bidders):
                pvalues[bidder] = explicit_pvalues[local, positions[bidder]]
                bids[bidder] = bidder_scale[bidder] * pvalues[bidder]
        else:
            _multiplier_bids(
                impression, n_bidders, bidder_keys, bidder_mean, bidder_std, bidder_scale, draws, normals, pvalues, bids
            )
        if full_contest:
            for bidder in range(n_bidders):
                pvalue_sums[bidder] += pvalues[bidder]
        if use_explicit_bids:
            for bidder in range(n_bidders):
                column = bid_columns[positions[bidder]]
                if column >= 0:
                    bid = explicit_bids[local, column]
                    explicit_bid_sums[column] += bid
                    bids[bidder] = bid if bidder_scale[bidder] >= 0.0 else -1.0

        if plugged is None:
            n_ranked, n_winners, n_excluded = _allocate(
                mechanism, bids, n_bidders, rows, tie_keys, table, reserve, impression, seen_probability,
                shortlist, lane_tops, ranked_index, ranked_bids, prices,
            )
        else:
            auction = Auction(bids, positions, impression, reserve, seen_probability, advertisers, scratch, scratch_index)
            n_ranked, n_winners, n_excluded = _allocate_plugged(
                plugged, auction, rows, table, ranked_index, ranked_bids, prices
            )
        n_budget_exclusions += n_excluded

        # Exposure and payment now (later impressions depend on the budgets); the winners' other
        # books (wins, value, conversions) are settled in batches.
        seen = exposed_slots(exposure_model, exposure_key, slot_exposure, impression)
        least_winning_cost = ranked_bids[n_slots] if n_ranked > n_slots else reserve
        for slot in range(n_winners):
            bidder = ranked_index[slot]
            row = rows[bidder]
            exposed = slot < seen
            if exposed:
                price = prices[slot]
                budget = table[row, COL_BUDGET_LEFT] - price
                table[row, COL_BUDGET_LEFT] = budget
                if not _can_bid(budget, budget_floor):
                    table[row, COL_SCALE] = -1.0
                    if full_contest:
                        bidder_scale[bidder] = -1.0
                revenue += price
                n_exposed_slots += 1
            pending_rows[n_pending] = row
            pending_pvalues[n_pending] = pvalues[bidder]
            pending_prices[n_pending] = prices[slot]
            pending_exposed[n_pending] = exposed
            pending_local[n_pending] = local
            pending_slots[n_pending] = slot
            n_pending += 1
            if logging:
                log_winners[local, slot] = row_positions[row]
                log_prices[local, slot] = prices[slot]
                log_exposed[local, slot] = exposed
                log_converted[local, slot] = False
        if logging:
            for slot in range(n_winners, n_slots):
                log_winners[local, slot] = -1
                log_prices[local, slot] = 0.0
                log_exposed[local, slot] = False
                log_converted[local, slot] = False
            log_least_winning_cost[local] = least_winning_cost
            log_top_bid[local] = ranked_bids[0] if n_ranked > 0 else 0.0
            log_slots_seen[local] = seen
            for rank in range(rank_capacity):
                log_ranked_bids[local, rank] = ranked_bids[rank] if rank < n_ranked else 0.0
                log_ranked_bidders[local, rank] = row_positions[rows[ranked_index[rank]]] if rank < n_ranked else -1

        if not full_contest:
            for bidder in range(n_bidders):
                row = rows[bidder]
                table[row, COL_PVALUE_SUM] += pvalues[bidder]
                table[row, COL_OPPORTUNITIES] += 1.0
                table[row, COL_LEAST_WINNING_COST_SUM] += least_winning_cost
        if n_winners > 0:
            n_sold += 1
        least_winning_cost_sum += least_winning_cost
        least_winning_cost_square_sum += least_winning_cost * least_winning_cost
        least_winning_cost_min = min(least_winning_cost_min, least_winning_cost)
        least_winning_cost_max = max(least_winning_cost_max, least_winning_cost)
        if n_ranked > 0:
            top_bid_sum += ranked_bids[0]
        if n_pending > pending_capacity - n_slots or local == n_impressions - 1:
            settled_conversions, n_won = _settle_winners(
                n_pending, pending_rows, pending_pvalues, pending_prices, pending_exposed, pending_local,
                pending_slots, winner_table, won_rows, n_won, params, row_positions, first_impression,
                sigma_ratio_cap, explicit_sigmas, log_converted,
            )
            n_conversions += settled_conversions
            n_pending = 0

    if full_contest:
        for row in range(n_advertisers):
            table[row, COL_PVALUE_SUM] = pvalue_sums[row]
    _write_back(
        row_positions, table, winner_table, won_rows, n_won, bid_columns, explicit_bid_sums, params, budget_left,
        out_advertisers, n_impressions, full_contest, least_winning_cost_sum,
    )
    out_market[MARKET_IMPRESSIONS] = n_impressions
    out_market[MARKET_SOLD] = n_sold
    out_market[MARKET_LEAST_WINNING_COST_SUM] = least_winning_cost_sum
    out_market[MARKET_LEAST_WINNING_COST_SQUARE_SUM] = least_winning_cost_square_sum
    out_market[MARKET_LEAST_WINNING_COST_MIN] = least_winning_cost_min if n_impressions > 0 else 0.0
    out_market[MARKET_LEAST_WINNING_COST_MAX] = least_winning_cost_max if n_impressions > 0 else 0.0
    out_market[MARKET_TOP_BID_SUM] = top_bid_sum
    out_market[MARKET_REVENUE] = revenue
    out_market[MARKET_EXPOSED_SLOTS] = n_exposed_slots
    out_market[MARKET_CONVERSIONS] = n_conversions
    out_market[MARKET_BUDGET_EXCLUSIONS] = n_budget_exclusions


#: :func:`_tick` for a jitted plugged-in mechanism (passed as ``plugged``): compiled once per
#: process for each, never cached, because Numba's cache would key it on the mechanism object
#: of one process (missing every time) and would not see edits to the mechanism's source. A
#: Python mechanism (:class:`PythonMechanism`) runs in the cached :func:`run_tick`.
_tick_plugged = numba.njit(error_model="numpy")(_tick.py_func)


@numba.njit(error_model="numpy")
def run_tick_plugged(first_impression, n_impressions, house, plugged, retrieval, tables, advertisers, params, explicit, budget_left, outputs, log):
    """:func:`run_tick` for a plugged-in mechanism (same arguments)."""
    _tick_plugged(first_impression, n_impressions, params, budget_left, plugged, advertisers, *_flat_inputs(house, retrieval, tables, explicit, outputs, log))


def plugged_mechanism(function: Callable) -> Dispatcher | PythonMechanism:
    """What :func:`run_tick_plugged` takes as ``plugged`` for ``function``: the function
    itself when it is ``numba.njit``-compiled (the fast path), else a :class:`PythonMechanism`
    that compiled code calls back (the slow path, for prototyping)."""
    if isinstance(function, Dispatcher):
        return function
    for key, known in enumerate(_PYTHON_MECHANISMS):
        if known is function:
            return PythonMechanism(key)
    _PYTHON_MECHANISMS.append(function)
    return PythonMechanism(len(_PYTHON_MECHANISMS) - 1)


@numba.njit(cache=True, error_model="numpy")
def tick_values(
    first_impression,
    n_impressions,
    selected,
    retrieval,
    params,
    keys,
    sigma_ratio_cap,
    out_pvalues,
    out_sigmas,
    out_candidate,
):
    """The pValues and sigmas that the tick kernel will draw, for selected advertisers.

    Lets a bidder see its own column of the upcoming tick's traffic before bidding per
    impression (AuctionNet's ``bidding(tick, pValues, pValueSigmas)`` interface). Fills
    ``(n_impressions, len(selected))`` arrays; ``out_candidate`` says whether the advertiser
    contests the impression (always true in a full contest). Values of non-candidates are still
    filled in but are never used by the auction. ``retrieval`` is the :class:`Retrieval`.
    """
    n_candidates = retrieval.n_candidates
    n_advertisers = params.shape[1]
    column_of = np.full(n_advertisers, -1, dtype=np.int64)
    for column in range(selected.shape[0]):
        column_of[selected[column]] = column
    members = np.empty(max(n_candidates, 1), dtype=np.int64)
    category_members = retrieval.layout[0]
    for local in range(n_impressions):
        impression = first_impression + local
        if n_candidates == 0:
            out_candidate[local, :] = True
        else:
            out_candidate[local, :] = False
            retrieve_candidates(
                impression, n_candidates, retrieval.own_category_share, retrieval.candidates_key, retrieval.layout, members
            )
            for bidder in range(n_candidates):
                column = column_of[category_members[members[bidder]]]
                if column >= 0:
                    out_candidate[local, column] = True
        for column in range(selected.shape[0]):
            position = selected[column]
            pvalue = impression_pvalue(
                keys[KEY_PVALUE, position], params[PARAM_PVALUE_MEAN, position],
                params[PARAM_PVALUE_STD, position], impression,
            )
            out_pvalues[local, column] = pvalue
            out_sigmas[local, column] = impression_sigma(
                keys[KEY_SIGMA, position], pvalue, params[PARAM_SIGMA_RATIO, position], sigma_ratio_cap, impression
            )
