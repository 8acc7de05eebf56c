"""Properties of the single-impression mechanism kernels (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auctionsim import mechanisms, rng
from auctionsim.mechanisms import (
    EXPOSURE_CHAINED,
    EXPOSURE_NESTED,
    MECHANISM_FPA,
    MECHANISM_GSP,
    MECHANISM_VCG,
    SHORTLIST_LANES,
    exposed_slots,
    exposure_marginals,
    rank_bids,
    shortlist_bids,
    slot_prices,
)
from auctionsim.testing import check_mechanism

bid_values = st.one_of(st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1, -1.0]), st.floats(0.0, 2.0))


def _rank(bids, keys, reserve, capacity, impression=7):
    bids = np.asarray(bids, dtype=np.float64)
    shortlist = np.empty(len(bids), dtype=np.int64)
    n_shortlist = shortlist_bids(bids, len(bids), capacity + 2, np.empty(SHORTLIST_LANES), shortlist)
    ranked_index = np.empty(capacity, dtype=np.int64)
    ranked_bids = np.empty(capacity)
    n = rank_bids(bids, shortlist, n_shortlist, np.arange(len(bids)), keys, reserve, impression, capacity, ranked_index, ranked_bids)
    return ranked_index[:n].copy(), ranked_bids[:n].copy()


def _keys(ids):
    return rng.stream_keys(3, 0, rng.STREAM_TIE_BREAK, np.asarray(ids, dtype=np.int64))


@given(st.lists(bid_values, min_size=1, max_size=40), st.sampled_from([0.0, 0.01, 0.05]), st.integers(1, 6))
def test_ranking_is_sorted_reference(bids, reserve, capacity):
    """The shortlist + ranking equals sorting every eligible bid by (bid, tie-break priority)."""
    ids = np.arange(len(bids)) * 11 + 5
    keys = _keys(ids)
    ranked_index, ranked_bids = _rank(bids, keys, reserve, capacity)
    eligible = [(b, int(rng.draw_bits(keys[i], 7)), i) for i, b in enumerate(bids) if b > 0 and b >= reserve]
    expected = sorted(eligible, reverse=True)[:capacity]
    assert [i for _, _, i in expected] == ranked_index.tolist()
    assert [b for b, _, _ in expected] == ranked_bids.tolist()


@given(st.lists(bid_values, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_ranking_is_permutation_equivariant(bids, random):
    """Shuffling the bidders (with their ids) selects the same winners, by id, in the same order."""
    ids = np.arange(len(bids)) * 13 + 1
    order = list(range(len(bids)))
    random.shuffle(order)
    ranked, _ = _rank(bids, _keys(ids), 0.01, 4)
    shuffled_bids = [bids[k] for k in order]
    shuffled_ids = ids[order]
    ranked_shuffled, _ = _rank(shuffled_bids, _keys(shuffled_ids), 0.01, 4)
    assert ids[ranked].tolist() == shuffled_ids[ranked_shuffled].tolist()


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "fpa", mechanisms.gsp])
def test_our_mechanisms_pass_the_public_checks(mechanism):
    """auctionsim.testing's mechanism checks: contract, prices at most bids (FPA: equal), reserve,
    winners hold the top bids, permutation equivariance (bidders and population rows reordered),
    determinism. The names run the built-ins' plug-in forms, as the kernel ranks and prices."""
    report = check_mechanism(mechanism, first_price=mechanism == "fpa", max_examples=25)
    assert report
    assert report.results[1].name == ("pays_bid" if mechanism == "fpa" else "prices_at_most_bids")


def test_ties_are_broken_uniformly_at_random():
    """Among equal bids, each bidder wins the top slot about equally often over impressions."""
    keys = _keys(np.arange(4))
    counts = np.zeros(4)
    for impression in range(20_000):
        ranked_index, _ = _rank([0.5, 0.5, 0.5, 0.5], keys, 0.0, 1, impression)
        counts[ranked_index[0]] += 1
    np.testing.assert_allclose(counts / counts.sum(), 0.25, atol=0.015)


prices_case = st.tuples(
    st.lists(st.floats(0.01, 5.0), min_size=0, max_size=6),
    st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4),
    st.floats(0.0, 0.3),
)


def _prices(mechanism, bids, exposure, reserve):
    exposure = np.array(sorted(exposure, reverse=True))
    ranked = np.array(sorted([b for b in bids if b >= reserve and b > 0], reverse=True) + [0.0] * (len(exposure) + 1))
    n_ranked = sum(1 for b in bids if b >= reserve and b > 0)
    prices = np.empty(len(exposure))
    n = slot_prices(mechanism, ranked, n_ranked, exposure, reserve, prices)
    return ranked[:n], prices[:n], exposure


@given(prices_case)
def test_price_bounds(case):
    bids, exposure, reserve = case
    for mechanism in (MECHANISM_GSP, MECHANISM_VCG):
        winning_bids, prices, _ = _prices(mechanism, bids, exposure, reserve)
        assert (prices <= winning_bids + 1e-12).all()  # never above the bid
        assert (prices >= reserve - 1e-12).all()  # reserve respected
    winning_bids, prices, _ = _prices(MECHANISM_FPA, bids, exposure, reserve)
    np.testing.assert_array_equal(prices, winning_bids)  # FPA: pay your bid


@given(prices_case)
def test_vcg_never_exceeds_gsp_and_equals_it_with_one_slot(case):
    bids, exposure, reserve = case
    _, gsp, _ = _prices(MECHANISM_GSP, bids, exposure, reserve)
    _, vcg, _ = _prices(MECHANISM_VCG, bids, exposure, reserve)
    assert (vcg <= gsp + 1e-12).all()
    _, gsp_one, _ = _prices(MECHANISM_GSP, bids, exposure[:1], reserve)
    _, vcg_one, _ = _prices(MECHANISM_VCG, bids, exposure[:1], reserve)
    np.testing.assert_allclose(vcg_one, gsp_one, rtol=1e-12)


def test_exposure_is_a_prefix_with_each_models_marginals():
    exposure = np.array([1.0, 0.8, 0.6])
    key = rng.stream_key(1, 0, rng.STREAM_EXPOSURE, rng.PLATFORM_ENTITY)
    for model, marginals in ((EXPOSURE_CHAINED, [1.0, 0.8, 0.48]), (EXPOSURE_NESTED, [1.0, 0.8, 0.6])):
        np.testing.assert_allclose(exposure_marginals(model, exposure), marginals)
        seen = np.array([exposed_slots(model, key, exposure, j) for j in range(50_000)])
        for slot, probability in enumerate(marginals):
            assert abs((seen > slot).mean() - probability) < 0.01
    # Chained: slot 3 is seen with probability 0.6 given slot 2 was (independent draws).
    seen = np.array([exposed_slots(EXPOSURE_CHAINED, key, np.array([0.9, 0.8, 0.6]), j) for j in range(50_000)])
    assert abs((seen > 2).sum() / (seen > 1).sum() - 0.6) < 0.015 and abs((seen > 0).mean() - 0.9) < 0.01
