"""Traffic generation and candidate retrieval."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auctionsim import ConfigError, ExplicitTraffic, Market, MarketConfig, Population, presets
from auctionsim.traffic import auctionnet_tick_shares, generate_episode_traffic, retrieve_candidates
from tests.conftest import small_population


def test_auctionnet_curve_shape():
    shares = auctionnet_tick_shares(48)
    assert shares.sum() == pytest.approx(1.0)
    assert 0.0025 < shares.min() < 0.0035 and 0.035 < shares.max() < 0.040
    assert np.argmin(shares) in (6, 7, 8, 9) and np.argmax(shares) in (31, 32, 33)


def test_impressions_sum_exactly_and_vary_by_episode():
    scenario = presets.get("auctionnet")
    first = generate_episode_traffic(scenario.market, scenario.population, 0, 0)
    second = generate_episode_traffic(scenario.market, scenario.population, 0, 1)
    assert first.impressions_per_tick.sum() == second.impressions_per_tick.sum() == 500_000
    assert not np.array_equal(first.impressions_per_tick, second.impressions_per_tick)
    noise = first.impressions_per_tick / (500_000 * auctionnet_tick_shares(48))
    assert noise.min() > 0.6 / 1.4 - 0.01 and noise.max() < 1.4 / 0.6 + 0.01


def test_pvalue_parameters_follow_the_recipe():
    scenario = presets.get("auctionnet")
    traffic = generate_episode_traffic(scenario.market, scenario.population, 3, 0)
    mean = traffic.pvalue_mean
    assert mean.shape == (48, 48)
    # base 0.0005 x curve in [0.5, 1.5] x category noise [0.3, 1.7] x advertiser noise [0.5, 1.5]
    assert 0.0005 * 0.5 * 0.3 * 0.5 <= mean.min() and mean.max() <= 0.0005 * 1.5 * 1.7 * 1.5
    ratio = traffic.pvalue_std / mean
    assert 0.1 < np.median(ratio) < 1.0


def test_generated_pvalues_match_their_parameters():
    scenario = presets.get("auctionnet", impressions_per_episode=200_000)
    market = Market(scenario.market, scenario.population)
    market.reset(seed=5)
    values = market.tick_values()
    tick_mean = market.traffic.pvalue_mean[0]
    assert values.pvalues.shape == (market.impressions_next_tick, 48)
    # Normal(mean, std) clipped at 0: the sample mean is close to (a bit above) the parameter.
    ratio = values.pvalues.mean(axis=0) / tick_mean
    assert np.all((ratio > 0.95) & (ratio < 1.1))
    sigma_ratio = values.sigmas / np.where(values.pvalues > 0, values.pvalues, np.nan)
    assert np.nanmax(sigma_ratio) <= 0.3 + 1e-12


@given(st.integers(2, 300), st.integers(1, 8), st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_candidates_are_distinct_and_sized(n_advertisers, n_categories, own_share, seed):
    population = Population(
        ids=np.arange(n_advertisers) * 3 + 1,
        budgets=np.ones(n_advertisers),
        cpa_targets=np.ones(n_advertisers),
        categories=np.arange(n_advertisers) % n_categories,
        n_categories=n_categories,
    )
    k = max(1, n_advertisers // 3)
    config = MarketConfig(candidates_per_impression=k, candidate_own_category_share=own_share)
    traffic = generate_episode_traffic(config, population, seed, 0)
    members = np.empty(k, dtype=np.int64)
    for impression in range(50):
        retrieve_candidates(impression, k, own_share, traffic.candidates_key, traffic.retrieval, members)
        positions = traffic.category_members[members]
        assert np.unique(positions).size == k
        assert positions.min() >= 0 and positions.max() < n_advertisers


def test_candidate_own_category_share():
    scenario = presets.get("large-1k")
    traffic = generate_episode_traffic(scenario.market, scenario.population, 0, 0)
    k = 64
    members = np.empty(k, dtype=np.int64)
    categories = scenario.population.categories
    same = []
    for impression in range(2000):
        retrieve_candidates(impression, k, 0.5, traffic.candidates_key, traffic.retrieval, members)
        cats = categories[traffic.category_members[members]]
        own = traffic.member_categories[members[0]]  # the own-category draws come first
        same.append((cats == own).mean())
    assert np.mean(same) == pytest.approx(0.5, abs=0.01)


def test_candidate_sets_do_not_depend_on_array_order():
    population = small_population(30, n_categories=3)
    config = MarketConfig(candidates_per_impression=7)
    order = np.random.default_rng(1).permutation(30)
    sets = []
    for pop in (population, population.permuted(order)):
        traffic = generate_episode_traffic(config, pop, 9, 0)
        members = np.empty(7, dtype=np.int64)
        ids = []
        for impression in range(100):
            retrieve_candidates(impression, 7, 0.5, traffic.candidates_key, traffic.retrieval, members)
            ids.append(frozenset(pop.ids[traffic.category_members[members]].tolist()))
        sets.append(ids)
    assert sets[0] == sets[1]


def test_explicit_traffic_is_used_and_validated():
    population = small_population(3)
    pvalues = np.full((20, 3), 0.2)
    traffic = ExplicitTraffic(pvalues=pvalues, impressions_per_tick=np.array([10, 10]))
    market = Market(MarketConfig(n_ticks=2, impressions_per_episode=20), population, traffic)
    market.reset(seed=0)
    values = market.tick_values()
    np.testing.assert_array_equal(values.pvalues, 0.2)
    result = market.step(np.ones(3))
    np.testing.assert_allclose(result.mean_pvalue, 0.2)
    with pytest.raises(ConfigError, match="pvalues"):
        ExplicitTraffic(pvalues=np.full((4, 3), 1.5), impressions_per_tick=np.array([4]))
    with pytest.raises(ConfigError, match="impressions_per_tick"):
        ExplicitTraffic(pvalues=pvalues, impressions_per_tick=np.array([5, 5]))
    with pytest.raises(ConfigError, match="columns"):
        Market(MarketConfig(n_ticks=2, impressions_per_episode=20), small_population(4), traffic)
