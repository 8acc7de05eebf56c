"""The jitted tick kernel agrees with the slow reference implementation on random small markets."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from auctionsim import Market, MarketConfig, Population
from tests.reference import reference_prices, reference_tick
from auctionsim.mechanisms import MECHANISM_FPA, MECHANISM_GSP, MECHANISM_VCG, slot_prices

MECHANISMS = {"gsp": MECHANISM_GSP, "fpa": MECHANISM_FPA, "vcg": MECHANISM_VCG}


@st.composite
def markets(draw):
    """A random small market, multipliers and (sometimes) explicit bids on a coarse grid (ties)."""
    n = draw(st.integers(2, 8))
    n_slots = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    generator = np.random.default_rng(seed)
    exposure = tuple(sorted(generator.uniform(0.3, 1.0, n_slots), reverse=True))
    if draw(st.booleans()):
        exposure = (1.0,) + exposure[1:]  # a sure first slot needs no draw
    candidates = draw(st.one_of(st.none(), st.integers(1, n)))
    config = MarketConfig(
        n_ticks=2,
        impressions_per_episode=400,
        slot_exposure=exposure,
        mechanism=draw(st.sampled_from(list(MECHANISMS))),
        exposure_model=draw(st.sampled_from(["chained", "nested"])),
        reserve_price=draw(st.sampled_from([0.0, 0.01, 0.05])),
        min_budget_to_bid=draw(st.sampled_from([0.0, 0.1])),
        candidates_per_impression=candidates,
        seed=seed,
    )
    population = Population(
        ids=generator.permutation(1000)[:n],
        budgets=generator.uniform(0.2, 3.0, n),  # tight: budget exclusions happen
        cpa_targets=generator.uniform(60, 130, n),
        categories=generator.integers(0, 3, n),
        n_categories=3,
    )
    multipliers = generator.choice([0.0, 0.5, 1.0, 2.0, 4.0], n)
    explicit = draw(st.booleans())
    return config, population, multipliers, explicit, seed


@given(markets())
def test_tick_kernel_matches_reference(case):
    config, population, multipliers, explicit, seed = case
    market = Market(config, population)
    market.reset(seed=seed)
    generator = np.random.default_rng(seed + 1)
    for _ in range(config.n_ticks):
        n_impressions = market.impressions_next_tick
        bids = None
        if explicit:
            chosen = population.ids[: max(1, len(population) // 2)]
            bids = {int(i): generator.choice([0.0, 0.02, 0.05, 0.1], n_impressions) for i in chosen}
        traffic = market.traffic
        expected, budget_after, log = reference_tick(
            first_impression=int(traffic.tick_starts[market.tick]),
            n_impressions=n_impressions,
            mechanism=config.mechanism.value,
            slot_exposure=list(config.slot_exposure),
            exposure_model=config.exposure_model.value,
            reserve=config.reserve_price,
            budget_floor=max(config.reserve_price, config.min_budget_to_bid),
            exposure_key=traffic.exposure_key,
            n_candidates=config.candidates_per_impression or 0,
            own_category_share=config.candidate_own_category_share,
            candidates_key=traffic.candidates_key,
            retrieval=traffic.retrieval,
            params=market._tick_params(multipliers),
            keys=traffic.keys,
            sigma_ratio_cap=config.traffic.sigma_ratio_cap,
            budget_left=market.budget_left,
            impression_bids=None if bids is None else {int(population.positions_of([i])[0]): b for i, b in bids.items()},
        )
        result = market.step(multipliers, impression_bids=bids, log_impressions=True)
        exact = config.mechanism.value != "vcg"  # VCG's reference prices differ in rounding
        compare = np.testing.assert_array_equal if exact else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12))
        np.testing.assert_array_equal(result.opportunities, expected["opportunities"])
        np.testing.assert_array_equal(result.wins, expected["wins"])
        np.testing.assert_array_equal(result.exposures, expected["exposures"])
        np.testing.assert_array_equal(result.conversions, expected["conversions"])
        compare(result.spend, expected["spend"])
        compare(result.budget_left, budget_after)
        np.testing.assert_allclose(result.value_won, expected["value_won"], rtol=1e-12)
        np.testing.assert_allclose(result.mean_pvalue * result.opportunities, expected["pvalue_sum"], rtol=1e-12)
        np.testing.assert_allclose(result.mean_bid * result.opportunities, expected["bid_sum"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(result.mean_least_winning_cost * result.opportunities, expected["lwc_sum"], rtol=1e-12)
        for row, (record, lwc, top, seen) in enumerate(log):
            assert result.log.least_winning_cost[row] == lwc
            lowest_winning_bid = top[config.n_slots - 1][0] if len(top) >= config.n_slots else config.reserve_price
            assert result.log.lowest_winning_bid[row] == lowest_winning_bid
            assert result.log.slots_seen[row] == seen
            assert result.log.ranked_bids[row, : len(top)].tolist() == [bid for bid, _ in top]
            assert result.log.ranked_bidders[row, : len(top)].tolist() == [population.ids[p] for _, p in top]
            assert (result.log.ranked_bidders[row, len(top):] == -1).all()
            for slot, (position, price, exposed, converted) in enumerate(record):
                assert result.log.winners[row, slot] == population.ids[position]
                assert result.log.exposed[row, slot] == exposed
                assert result.log.converted[row, slot] == converted
                np.testing.assert_allclose(result.log.prices[row, slot], price, rtol=1e-12)
            assert (result.log.winners[row, len(record):] == -1).all()


@given(
    st.lists(st.floats(0.01, 10.0), min_size=0, max_size=6),
    st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4),
    st.floats(0.0, 0.5),
    st.sampled_from(list(MECHANISMS)),
)
def test_closed_form_prices_match_first_principles(bids, exposure, reserve, mechanism):
    exposure = sorted(exposure, reverse=True)
    ranked = sorted([b for b in bids if b >= reserve and b > 0], reverse=True)
    prices = np.empty(len(exposure))
    padded = np.array(ranked + [0.0] * (len(exposure) + 1))
    n_winners = slot_prices(MECHANISMS[mechanism], padded, len(ranked), np.array(exposure), reserve, prices)
    expected = reference_prices(mechanism, ranked, exposure, reserve)
    assert n_winners == len(expected)
    np.testing.assert_allclose(prices[:n_winners], expected, rtol=1e-9, atol=1e-12)
