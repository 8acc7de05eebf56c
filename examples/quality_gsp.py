"""A plugged-in auction mechanism: GSP with per-advertiser quality scores.

Search-ad platforms rank by ``score = bid x quality`` (quality: how good the ad is for the user,
e.g. its predicted click-through relative to others), not by bid alone. Slot ``k`` goes to the
``k``-th highest score and its winner pays, per exposure, the least bid that keeps its rank:
``max(reserve, score_{k+1} / quality_k)`` (the reserve when nobody is ranked below), which never
exceeds its own bid.

The mechanism is a ``numba.njit`` function with the fixed signature of
:mod:`auctionsim.mechanisms`, so the compiled tick kernel calls it directly; the quality scores
are the mechanism's per-advertiser data, computed from each advertiser's id (never from its row,
so outcomes stay permutation equivariant). Once registered, ``"quality-gsp"`` works wherever a
mechanism name does: ``MarketConfig``, presets, the environments, the exploitability tools and
the CLI (``auctionsim simulate --set mechanism=examples.quality_gsp:QUALITY_GSP`` from the
repository root, naming it by import path).

Run: ``python examples/quality_gsp.py``
"""

from __future__ import annotations

import numba
import numpy as np

from auctionsim import Market, Population, presets, register_mechanism
from auctionsim.mechanisms import rank_scores

QUALITY = 0  # row of ``auction.advertisers.data`` holding the quality scores


def quality_scores(population: Population) -> np.ndarray:
    """``(1, N)`` quality scores in [0.5, 1.5], a fixed function of each advertiser's id."""
    spread = (population.ids * 2654435761) % 1001 / 1000.0
    return (0.5 + spread)[None, :]


@numba.njit
def quality_gsp(auction, ranked_index, ranked_bids, prices):
    """Rank by bid x quality; slot ``k`` pays ``max(reserve, score_{k+1} / quality_k)``."""
    quality = auction.advertisers.data[QUALITY]
    scores = auction.scratch
    for bidder in range(auction.bids.shape[0]):
        bid = auction.bids[bidder]
        # Bids below the reserve (or out: negative) do not take part.
        scores[bidder] = bid * quality[auction.positions[bidder]] if bid >= auction.reserve else -1.0
    n_ranked = rank_scores(scores, 0.0, auction, ranked_index, ranked_bids)  # ranked_bids: scores for now
    n_winners = min(n_ranked, prices.shape[0])
    for slot in range(n_winners):
        own_quality = quality[auction.positions[ranked_index[slot]]]
        next_score = ranked_bids[slot + 1] if slot + 1 < n_ranked else 0.0
        prices[slot] = max(auction.reserve, next_score / own_quality)
    for rank in range(n_ranked):
        ranked_bids[rank] = auction.bids[ranked_index[rank]]  # report bids (currency), as the contract asks
    return n_ranked, n_winners


QUALITY_GSP = register_mechanism(
    "quality-gsp",
    quality_gsp,
    advertiser_data=quality_scores,
    description="GSP ranked by bid x quality; pays the least bid that keeps the rank",
)


def compare(seed: int = 0, impressions: int = 50_000) -> dict[str, dict[str, float]]:
    """Revenue and welfare of GSP and quality GSP on the AuctionNet market, everyone bidding
    its value (multiplier 1), on the same traffic."""
    results = {}
    for mechanism in ("gsp", QUALITY_GSP):
        scenario = presets.get("auctionnet", mechanism=mechanism, impressions_per_episode=impressions)
        market = Market(scenario.market, scenario.population)
        metrics = market.run_episode(np.ones(market.n_advertisers), seed=seed)
        results[str(mechanism)] = {"revenue": metrics.revenue, "social_welfare": metrics.social_welfare}
    return results


if __name__ == "__main__":
    for name, figures in compare().items():
        print(f"{name:<12} revenue {figures['revenue']:10.1f}   welfare {figures['social_welfare']:10.1f}")
