"""The Market: episodes, determinism, permutation equivariance, budgets and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from auctionsim import (
    ActionError,
    ActionTypeError,
    ConfigError,
    EpisodeOverError,
    Market,
    MarketConfig,
)
from auctionsim.testing import check_market, strategies
from tests.conftest import small_config, small_population


def _play(market: Market, multipliers, seed=None):
    market.reset(seed)
    results = []
    while not market.done:
        results.append(market.step(multipliers, log_impressions=True))
    return results, market.episode_metrics()


def _snapshot(market: Market):
    return (market.tick, market.budget_left.copy(), {k: v.copy() for k, v in market.totals().items()}, len(market.history))


@pytest.mark.parametrize("mechanism", ["gsp", "fpa", "vcg"])
@pytest.mark.parametrize("candidates", [None, 4])
def test_same_seed_same_episode_and_different_seeds_differ(mechanism, candidates):
    market = Market(small_config(mechanism=mechanism, candidates_per_impression=candidates), small_population(8))
    multipliers = np.linspace(0.5, 2.0, 8)
    first, metrics_first = _play(market, multipliers, seed=3)
    second, metrics_second = _play(market, multipliers, seed=3)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.spend, b.spend)
        np.testing.assert_array_equal(a.log.winners, b.log.winners)
        np.testing.assert_array_equal(a.conversions, b.conversions)
    _, other = _play(market, multipliers, seed=4)
    assert metrics_first.social_welfare == metrics_second.social_welfare
    assert other.social_welfare != metrics_first.social_welfare


def test_reset_without_seed_moves_to_the_next_episode():
    market = Market(small_config(seed=7), small_population())
    market.reset()
    assert (market.seed, market.episode) == (7, 0)
    market.reset()
    assert (market.seed, market.episode) == (7, 1)
    starts_episode_1 = market.traffic.tick_starts.copy()
    market.reset(seed=7)
    assert (market.seed, market.episode) == (7, 0)
    market.reset()
    np.testing.assert_array_equal(market.traffic.tick_starts, starts_episode_1)


@pytest.mark.parametrize("mechanism", ["gsp", "fpa", "vcg"])
def test_whole_episodes_are_permutation_equivariant_and_keep_the_budget_cap(mechanism):
    """auctionsim.testing's market checks on our mechanisms: shuffling the advertisers shuffles every
    per-advertiser outcome identically, exactly (and leaves the per-impression log by id and the
    episode's welfare, revenue and scores unchanged); spend never exceeds budget; exposure
    continuity; individual rationality; reserve; determinism by seed."""
    configs = strategies.market_configs(mechanisms=[mechanism], impressions_per_episode=(200, 1500))
    assert check_market(configs, max_examples=8)


def test_budget_exclusions_keep_the_hard_cap_and_are_counted():
    population = small_population(6, budget=0.5)
    market = Market(small_config(min_budget_to_bid=0.0, reserve_price=0.0), population)
    results, metrics = _play(market, np.full(6, 5.0), seed=1)
    assert sum(r.market.budget_exclusions for r in results) > 0
    assert (metrics.budget_utilisation <= 1.0).all() and metrics.budget_utilisation.max() > 0.9


def test_reserve_is_respected_and_low_bids_never_win():
    market = Market(small_config(reserve_price=0.05), small_population(5))
    results, _ = _play(market, np.array([0.0, 0.01, 1.0, 2.0, 3.0]), seed=0)
    for result in results:
        prices = result.log.prices[result.log.winners >= 0]
        assert (prices >= 0.05 - 1e-15).all()
        assert result.wins[0] == 0  # multiplier 0 never bids


def test_explicit_bids_equal_to_multiplier_bids_give_the_same_tick():
    population = small_population(5)
    market_a = Market(small_config(), population)
    market_b = Market(small_config(), population)
    multipliers = np.array([0.8, 1.0, 1.2, 1.5, 0.5])
    market_a.reset(seed=2)
    market_b.reset(seed=2)
    values = market_b.tick_values([int(population.ids[1]), int(population.ids[3])])
    explicit = {
        int(population.ids[1]): multipliers[1] * population.cpa_targets[1] * values.pvalues[:, 0],
        int(population.ids[3]): multipliers[3] * population.cpa_targets[3] * values.pvalues[:, 1],
    }
    a = market_a.step(multipliers, log_impressions=True)
    b = market_b.step(multipliers, impression_bids=explicit, log_impressions=True)
    np.testing.assert_array_equal(a.log.winners, b.log.winners)
    np.testing.assert_array_equal(a.spend, b.spend)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.array([1.0, np.nan, 1.0, 1.0]), ActionError, r"multipliers\[1\]=nan"),
        (np.array([1.0, 1.0, np.inf, 1.0]), ActionError, r"multipliers\[2\]=inf"),
        (np.array([1.0, 1.0, 1.0, -0.5]), ActionError, r"multipliers\[3\]=-0.5"),
        (np.ones(3), ActionError, r"shape \(4,\)"),
        (np.ones((4, 1)), ActionError, r"shape \(4,\)"),
        (["a", "b", "c", "d"], ActionTypeError, "numbers"),
        (np.array([True, False, True, True]), ActionTypeError, "numbers"),
        (None, ActionTypeError, "numbers"),
    ],
)
def test_bad_multipliers_raise_and_change_nothing(bad, error, match):
    market = Market(small_config(), small_population(4))
    market.reset(seed=0)
    market.step(np.ones(4))
    before = _snapshot(market)
    with pytest.raises(error, match=match):
        market.step(bad)
    after = _snapshot(market)
    assert before[0] == after[0] and before[3] == after[3]
    np.testing.assert_array_equal(before[1], after[1])
    for key in before[2]:
        np.testing.assert_array_equal(before[2][key], after[2][key])


def test_bad_impression_bids_raise_and_change_nothing():
    population = small_population(4)
    market = Market(small_config(), population)
    market.reset(seed=0)
    n = market.impressions_next_tick
    good_id = int(population.ids[0])
    cases = [
        ({999: np.zeros(n)}, ActionError, "unknown advertiser id 999"),
        ({good_id: np.zeros(n + 1)}, ActionError, "shape"),
        ({good_id: np.full(n, np.nan)}, ActionError, "finite"),
        ({good_id: -np.ones(n)}, ActionError, ">= 0"),
        ([1, 2], ActionTypeError, "map advertiser id"),
    ]
    for bids, error, match in cases:
        before = _snapshot(market)
        with pytest.raises(error, match=match):
            market.step(np.ones(4), impression_bids=bids)
        assert _snapshot(market)[0] == before[0]
        np.testing.assert_array_equal(market.budget_left, before[1])


def test_stepping_needs_a_running_episode():
    market = Market(MarketConfig(n_ticks=2, impressions_per_episode=50), small_population(3))
    with pytest.raises(EpisodeOverError, match="reset"):
        market.step(np.ones(3))
    market.reset(seed=0)
    market.step(np.ones(3))
    market.step(np.ones(3))
    assert market.done
    with pytest.raises(EpisodeOverError, match="over"):
        market.step(np.ones(3))
    with pytest.raises(ConfigError, match="seed"):
        market.reset(seed=-1)


def test_unknown_ids_in_tick_values_are_rejected():
    market = Market(small_config(), small_population(3))
    market.reset(seed=0)
    with pytest.raises(ActionError, match="unknown advertiser id 12345"):
        market.tick_values([12345])


def test_candidates_cannot_exceed_population():
    with pytest.raises(ConfigError, match="candidates_per_impression=9 exceeds"):
        Market(MarketConfig(candidates_per_impression=9), small_population(4))


def test_metrics_totals_match_the_ticks():
    market = Market(small_config(), small_population(6))
    results, metrics = _play(market, np.full(6, 1.5), seed=0)
    np.testing.assert_allclose(sum(r.spend for r in results), metrics.spend)
    np.testing.assert_array_equal(sum(r.conversions for r in results), metrics.conversions)
    assert metrics.revenue == pytest.approx(sum(r.market.revenue for r in results))
    assert metrics.social_welfare == pytest.approx(sum(r.market.social_welfare for r in results))
    assert sum(r.market.n_impressions for r in results) == 2_000
