"""Configuration validation: every bad field is named with its value."""

from __future__ import annotations

import numpy as np
import pytest

from auctionsim import ConfigError, MarketConfig, Mechanism, Population, TrafficConfig, presets


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(n_ticks=0), "n_ticks must be >= 1, got 0"),
        (dict(n_ticks=2.5), "n_ticks must be an integer"),
        (dict(impressions_per_episode=-1), "impressions_per_episode must be >= 1"),
        (dict(slot_exposure=()), "slot_exposure must be a non-empty"),
        (dict(slot_exposure=(0.5, 0.8)), r"non-increasing.*slot_exposure\[1\]=0.8"),
        (dict(slot_exposure=(1.2,)), r"slot_exposure\[0\] must be <= 1.0, got 1.2"),
        (dict(slot_exposure=(1.0, 0.0)), r"slot_exposure\[1\] must be > 0.0"),
        (dict(exposure_model="cascade"), "exposure_model must be one of chained, nested, got 'cascade'"),
        (dict(mechanism="second"), "mechanism must be one of gsp, fpa, vcg(, [^,]+)*, got 'second'"),
        (dict(reserve_price=-0.1), "reserve_price must be >= 0.0, got -0.1"),
        (dict(reserve_price=float("nan")), "reserve_price must be finite, got nan"),
        (dict(min_budget_to_bid=-1.0), "min_budget_to_bid must be >= 0.0"),
        (dict(seed=-3), "seed must be >= 0, got -3"),
        (dict(candidates_per_impression=0), "candidates_per_impression must be >= 1"),
        (dict(candidate_own_category_share=1.5), "candidate_own_category_share must be <= 1.0"),
        (dict(traffic=TrafficConfig(tick_shares=(1.0, 1.0))), "traffic.tick_shares has 2 entries but n_ticks is 48"),
    ],
)
def test_market_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        MarketConfig(**fields)


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(volume_noise_range=(1.4, 0.6)), "volume_noise_range must have low <= high"),
        (dict(volume_noise_range=(0.0, 1.0)), "volume_noise_range must be positive"),
        (dict(volume_noise_window=0), "volume_noise_window must be >= 1"),
        (dict(pvalue_base_mean=0.0), "pvalue_base_mean must be > 0.0"),
        (dict(tick_shares=(1.0, -1.0)), r"tick_shares\[1\] must be >= 0.0"),
    ],
)
def test_traffic_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrafficConfig(**fields)


def _population(**overrides):
    fields = dict(ids=[1, 2, 3], budgets=[10.0, 20.0, 30.0], cpa_targets=[50.0, 60.0, 70.0], categories=[0, 1, 1])
    fields.update(overrides)
    return Population(**fields)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(ids=[1, 1, 2]), "ids must be unique, got duplicate id 1"),
        (dict(ids=[1, -2, 3]), r"ids must be >= 0, got ids\[1\]=-2"),
        (dict(ids=[1, 2.5, 3]), r"ids\[1\] must be an integer, got 2.5"),
        (dict(budgets=[10.0, -1.0, 5.0]), r"budgets must be finite and > 0, got budgets\[1\]=-1.0"),
        (dict(budgets=[10.0, np.nan, 5.0]), r"budgets\[1\]=nan"),
        (dict(budgets=[10.0, 5.0]), "budgets must have length 3"),
        (dict(cpa_targets=[1.0, 2.0, np.inf]), r"cpa_targets\[2\]=inf"),
        (dict(categories=[0, -1, 1]), r"categories must be >= 0, got categories\[1\]=-1"),
        (dict(categories=[0, 1, 2], n_categories=2), "categories must be < n_categories=2, got 2"),
        (dict(ids=[]), "at least one advertiser"),
        (dict(budgets=["a", "b", "c"]), "budgets must be an array of numbers"),
    ],
)
def test_population_errors(overrides, match):
    if overrides.get("ids") == []:
        overrides.update(budgets=[], cpa_targets=[], categories=[])
    with pytest.raises(ConfigError, match=match):
        _population(**overrides)


def test_population_is_read_only_and_permutable():
    population = _population()
    with pytest.raises(ValueError):
        population.budgets[0] = 1.0
    permuted = population.permuted([2, 0, 1])
    assert permuted.ids.tolist() == [3, 1, 2]
    assert population.positions_of([3, 1]).tolist() == [2, 0]
    with pytest.raises(ConfigError, match="unknown advertiser id 9"):
        population.positions_of([9])
    with pytest.raises(ConfigError, match="permutation"):
        population.permuted([0, 0, 1])


def test_mechanism_accepts_strings_and_enum():
    assert MarketConfig(mechanism="fpa").mechanism is Mechanism.FPA
    assert MarketConfig(mechanism=Mechanism.VCG).mechanism is Mechanism.VCG


def test_presets():
    assert presets.names() == ["auctionnet", "large-1k", "large-100k"]
    auctionnet = presets.get("auctionnet")
    population = auctionnet.population
    assert len(population) == 48 and population.n_categories == 6
    assert np.bincount(population.categories).tolist() == [8] * 6
    assert population.budgets.min() >= 2000 and population.budgets.max() <= 4850
    assert population.cpa_targets.min() >= 60 and population.cpa_targets.max() <= 130
    market = auctionnet.market
    assert (market.n_ticks, market.impressions_per_episode, market.slot_exposure) == (48, 500_000, (1.0, 0.8, 0.6))
    assert market.exposure_model.value == "chained" and market.exposure_probabilities == pytest.approx((1.0, 0.8, 0.48))
    assert population.budgets[:3].tolist() == [2900, 4350, 3000] and population.cpa_targets[-2:].tolist() == [130, 120]
    assert market.mechanism is Mechanism.GSP and market.reserve_price == 0.01
    large = presets.get("large-100k")
    assert len(large.population) == 100_000 and large.market.candidates_per_impression == 64
    assert presets.get("auctionnet", mechanism="fpa").market.mechanism is Mechanism.FPA
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        presets.get("nope")
    with pytest.raises(ConfigError, match="unknown MarketConfig field 'slots'"):
        presets.get("auctionnet", slots=2)


def test_preset_scale_budgets_follows_the_impressions():
    full = presets.get("auctionnet")
    small = presets.get("auctionnet", impressions_per_episode=24_000, scale_budgets=True)
    np.testing.assert_allclose(small.population.budgets, full.population.budgets * 24_000 / 500_000)
    np.testing.assert_array_equal(small.population.cpa_targets, full.population.cpa_targets)
    unscaled = presets.get("auctionnet", impressions_per_episode=24_000)
    np.testing.assert_array_equal(unscaled.population.budgets, full.population.budgets)
    with pytest.raises(ConfigError, match="scale_budgets"):
        presets.get("auctionnet", scale_budgets="yes")
