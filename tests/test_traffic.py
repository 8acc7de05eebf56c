"""Traffic generation and candidate retrieval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auctionsim import ConfigError, ExplicitTraffic, Market, MarketConfig, Population, presets
from auctionsim import TrafficConfig, rng
from auctionsim.traffic import (
    AUCTIONNET_TICK_SHARES,
    auctionnet_tick_shares,
    generate_episode_traffic,
    impression_conversion,
    retrieve_candidates,
)
from tests.conftest import small_population


def test_auctionnet_curve_is_the_published_one_and_resamples_by_time_of_day():
    shares = auctionnet_tick_shares(48)
    published = np.array(AUCTIONNET_TICK_SHARES)
    np.testing.assert_allclose(shares, published / published.sum(), rtol=1e-12)
    assert 0.0025 < shares.min() < 0.0035 and 0.035 < shares.max() < 0.040
    assert np.argmin(shares) == 7 and np.argmax(shares) == 18
    np.testing.assert_allclose(auctionnet_tick_shares(24), shares[0::2] + shares[1::2], rtol=1e-12)
    half_ticks = auctionnet_tick_shares(96)
    np.testing.assert_allclose(half_ticks[0::2] + half_ticks[1::2], shares, rtol=1e-12)
    assert auctionnet_tick_shares(7).sum() == pytest.approx(1.0)


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
    # flat base 0.0005 x category noise [0.3, 1.7] x advertiser noise [0.5, 1.5], over 8-tick windows
    assert 0.0005 * 0.3 * 0.5 <= mean.min() and mean.max() <= 0.0005 * 1.7 * 1.5
    np.testing.assert_array_equal(mean[:8], np.repeat(mean[:1], 8, axis=0))
    # The lowest id of each category follows its category's curve; within a category the others
    # are that curve times factors in [0.5, 1.5].
    leaders = mean[:, 0::8]
    relative = mean / np.repeat(leaders, 8, axis=1)
    assert relative.min() >= 0.5 and relative.max() <= 1.5 and np.unique(relative[0]).size > 6
    np.testing.assert_array_equal(relative[:, 0::8], 1.0)
    ratio = traffic.pvalue_std / mean
    assert 0.1 <= ratio.min() and ratio.max() <= 1.0 and 0.4 < np.median(ratio) < 0.6
    assert (traffic.sigma_ratio_mean >= 0).all() and (traffic.sigma_ratio_mean <= 0.3).all()


def test_leader_is_chosen_by_id_not_array_order():
    population = presets.auctionnet_population()
    config = presets.get("auctionnet").market
    order = np.random.default_rng(0).permutation(48)
    base = generate_episode_traffic(config, population, 5, 0)
    permuted = generate_episode_traffic(config, population.permuted(order), 5, 0)
    np.testing.assert_array_equal(permuted.pvalue_mean, base.pvalue_mean[:, order])
    np.testing.assert_array_equal(permuted.truncation_cdf_low, base.truncation_cdf_low[order])


def test_std_ratio_is_clipped_like_auctionnet():
    """Advertisers' mean ratios below 0 become 0.1 and above 1 become 1 (a wide spread makes both
    happen; without per-tick spread the ratio is the advertiser's)."""
    traffic_config = TrafficConfig(std_ratio_mean=0.5, std_ratio_std=1.0, std_ratio_tick_std=0.0)
    scenario = presets.get("auctionnet", traffic=traffic_config)
    traffic = generate_episode_traffic(scenario.market, scenario.population, 1, 0)
    ratio = traffic.pvalue_std / traffic.pvalue_mean
    assert np.isclose(ratio, 0.1, rtol=1e-12).any() and np.isclose(ratio, 1.0, rtol=1e-12).any()
    assert ratio.min() >= 0.1 - 1e-12 and ratio.max() <= 1.0 + 1e-12


def test_conversion_rate_is_the_truncated_normal():
    """Mean realised conversion rate = pValue + sigma x E[z | -t u1 < z < t u2]."""
    low_bound, high_bound = -2.0 * 0.9, 2.0 * 0.2
    cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    density = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf_low, cdf_width = cdf(low_bound), cdf(high_bound) - cdf(low_bound)
    expected_shift = (density(low_bound) - density(high_bound)) / cdf_width
    pvalue, sigma, n = 0.3, 0.1, 200_000
    keys = rng.stream_keys(4, 0, rng.STREAM_CONVERSION_RATE, np.array([1, 2], dtype=np.int64))
    conversions = np.array(
        [impression_conversion(keys[0], keys[1], pvalue, sigma, cdf_low, cdf_width, j) for j in range(n)]
    )
    assert conversions.mean() == pytest.approx(pvalue + sigma * expected_shift, abs=4 * math.sqrt(0.25 / n))
    assert expected_shift < -0.3  # the test is sensitive to the truncation


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
