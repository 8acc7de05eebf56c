"""A slow, obviously-correct reference implementation of one tick, for cross-checking the kernels.

Plain Python, one impression at a time, written from the rules in the docs rather than from the
kernel: bidders are sorted with ``sorted``, VCG prices come from recomputing everyone else's
welfare without the winner (not from the closed form), and a winner who cannot pay is removed
and the whole auction re-run from scratch. It shares only the random draws (the counter-based
generator, the pValue/sigma/conversion formulas of the traffic model and candidate retrieval),
which define the market rather than the auction.
"""

from __future__ import annotations

import numpy as np

from auctionsim import rng
from auctionsim.kernel import (
    PARAM_BID_SCALE,
    PARAM_CPA_TARGET,
    PARAM_PVALUE_MEAN,
    PARAM_PVALUE_STD,
    PARAM_SIGMA_RATIO,
    PARAM_TRUNCATION_CDF_LOW,
    PARAM_TRUNCATION_CDF_WIDTH,
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
    retrieve_candidates,
)


def _allocate(bidders: list[tuple[float, int, int]], n_slots: int) -> list[tuple[float, int, int]]:
    """Top ``n_slots`` of (bid, priority, position) by bid then priority, highest first."""
    return sorted(bidders, key=lambda item: (item[0], item[1]), reverse=True)[:n_slots]


def reference_prices(mechanism: str, ranked: list[float], exposure: list[float], reserve: float) -> list[float]:
    """Per-exposure prices of the allocated slots, from first principles.

    ``ranked`` holds every participating bid, best first. Missing ranks are phantom bids at the
    reserve. VCG: expected welfare of the others (bid x exposure) when the winner is absent minus
    when it is present, divided by the winner's exposure probability.
    """
    n_slots = len(exposure)
    padded = list(ranked) + [reserve] * (n_slots + 1)
    winners = min(len(ranked), n_slots)
    prices = []
    for slot in range(winners):
        if mechanism == "fpa":
            prices.append(ranked[slot])
        elif mechanism == "gsp":
            prices.append(max(reserve, padded[slot + 1]))
        else:
            with_winner = sum(exposure[k] * max(reserve, padded[k]) for k in range(n_slots) if k != slot)
            without = [b for index, b in enumerate(padded) if index != slot]
            without_winner = sum(exposure[k] * max(reserve, without[k]) for k in range(n_slots))
            prices.append((without_winner - with_winner) / exposure[slot])
    return prices


def reference_seen(exposure_model: str, exposure_key, slot_exposure: list[float], impression: int) -> int:
    """How many slots are seen. ``chained``: slot ``k`` draws its own uniform (counter
    ``impression + k x 2**40``; none for probability 1) and is seen iff the draw is below its
    probability and every slot above is seen. ``nested``: one uniform, slot ``k`` seen iff below
    ``slot_exposure[k]``."""
    if exposure_model == "nested":
        u = rng.uniform_from_bits(np.uint64(rng.draw_bits(exposure_key, impression)))
        return sum(1 for p in slot_exposure if u < p)
    seen = [
        p >= 1.0 or rng.uniform_from_bits(np.uint64(rng.draw_bits(exposure_key, impression + (k << 40)))) < p
        for k, p in enumerate(slot_exposure)
    ]
    return next((k for k, is_seen in enumerate(seen) if not is_seen), len(seen))


def reference_marginals(exposure_model: str, slot_exposure: list[float]) -> list[float]:
    """Probability that each slot is seen: cumulative products when chained."""
    if exposure_model == "nested":
        return list(slot_exposure)
    marginals, product = [], 1.0
    for p in slot_exposure:
        product *= p
        marginals.append(product)
    return marginals


def reference_tick(
    *,
    first_impression: int,
    n_impressions: int,
    mechanism: str,
    slot_exposure: list[float],
    exposure_model: str,
    reserve: float,
    budget_floor: float,
    exposure_key,
    n_candidates: int,
    own_category_share: float,
    candidates_key,
    retrieval,
    params: np.ndarray,
    keys: np.ndarray,
    sigma_ratio_cap: float,
    budget_left: np.ndarray,
    impression_bids: dict[int, np.ndarray] | None = None,
):
    """Play one tick; returns per-position totals, the market revenue and a per-impression log."""
    n_advertisers = params.shape[1]
    n_slots = len(slot_exposure)
    budget_left = budget_left.astype(float).copy()
    totals = {name: np.zeros(n_advertisers) for name in ("opportunities", "pvalue_sum", "bid_sum", "lwc_sum", "wins", "exposures", "conversions", "spend", "value_won")}
    log = []
    members = np.empty(max(n_candidates, 1), dtype=np.int64)
    for local in range(n_impressions):
        impression = first_impression + local
        if n_candidates == 0:
            contest = list(range(n_advertisers))
        else:
            retrieve_candidates(impression, n_candidates, own_category_share, candidates_key, retrieval, members)
            contest = [int(retrieval[0][member]) for member in members[:n_candidates]]
        pvalues, bidders = {}, []
        for position in contest:
            pvalue = impression_pvalue(
                keys[KEY_PVALUE, position], params[PARAM_PVALUE_MEAN, position], params[PARAM_PVALUE_STD, position], impression
            )
            pvalues[position] = pvalue
            totals["opportunities"][position] += 1
            totals["pvalue_sum"][position] += pvalue
            if impression_bids is not None and position in impression_bids:
                bid = float(impression_bids[position][local])
            else:
                bid = params[PARAM_BID_SCALE, position] * pvalue
            totals["bid_sum"][position] += bid
            can_bid = budget_left[position] > 0 and budget_left[position] >= budget_floor
            if can_bid and bid > 0 and bid >= reserve:
                priority = int(rng.draw_bits(keys[KEY_TIE_BREAK, position], impression))
                bidders.append((bid, priority, position))
        while True:
            ranked = _allocate(bidders, len(bidders))
            prices = reference_prices(
                mechanism, [b for b, _, _ in ranked], reference_marginals(exposure_model, slot_exposure), reserve
            )
            winners = [position for _, _, position in ranked[: len(prices)]]
            broke = [k for k, position in enumerate(winners) if prices[k] > budget_left[position]]
            if not broke:
                break
            bidders = [item for item in bidders if item[2] != winners[broke[0]]]
        seen = reference_seen(exposure_model, exposure_key, slot_exposure, impression)
        # AuctionNet's least winning cost: the (S+1)-th highest bid floored at the reserve.
        lwc = max(reserve, ranked[n_slots][0]) if len(ranked) > n_slots else reserve
        for position in contest:
            totals["lwc_sum"][position] += lwc
        record = []
        for slot, position in enumerate(winners):
            totals["wins"][position] += 1
            exposed = slot < seen
            converted = False
            if exposed:
                budget_left[position] -= prices[slot]
                totals["spend"][position] += prices[slot]
                totals["exposures"][position] += 1
                totals["value_won"][position] += pvalues[position] * params[PARAM_CPA_TARGET, position]
                sigma = impression_sigma(keys[KEY_SIGMA, position], pvalues[position], params[PARAM_SIGMA_RATIO, position], sigma_ratio_cap, impression)
                converted = bool(
                    impression_conversion(
                        keys[KEY_CONVERSION_RATE, position], keys[KEY_CONVERSION, position], pvalues[position], sigma,
                        params[PARAM_TRUNCATION_CDF_LOW, position], params[PARAM_TRUNCATION_CDF_WIDTH, position], impression,
                    )
                )
                totals["conversions"][position] += converted
            record.append((position, prices[slot], exposed, converted))
        top = [(bid, position) for bid, _, position in ranked[: n_slots + 1]]
        log.append((record, lwc, top, seen))
    return totals, budget_left, log
