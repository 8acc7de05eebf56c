"""Plugged-in mechanisms: registered by name, a jitted one runs in the compiled kernel through the
Market, both envs, the exploitability tools and the CLI; a Python one on the slow path; the
built-ins written as plug-ins reproduce the built-in mechanisms bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from agents.baselines import PIDPacing
from agents.equilibrium import ExploitabilityConfig, GridBestResponse, evaluate_exploitability
from auctionsim import (
    ConfigError,
    CustomMechanism,
    Market,
    MarketConfig,
    MechanismError,
    Population,
    mechanism_names,
    mechanisms,
    register_mechanism,
)
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, SingleBidderEnv, play_episode
from auctionsim.testing import check_mechanism
from examples.quality_gsp import QUALITY_GSP, quality_gsp
from experiments import cli

# The quality GSP with every quality 1 is GSP: the same jitted function (one kernel compile).
UNIT_QUALITY_GSP = CustomMechanism("unit-quality-gsp", quality_gsp, lambda population: np.ones((1, len(population))))


def tiny_population(order=None) -> Population:
    population = Population(
        ids=[3, 11, 17, 25], budgets=[2.0, 3.0, 1.5, 4.0], cpa_targets=[80.0, 100.0, 100.0, 120.0], categories=[0, 0, 1, 1],
        n_categories=2,
    )
    return population if order is None else population.permuted(order)


def tiny_config(mechanism, **overrides) -> MarketConfig:
    fields = dict(n_ticks=3, impressions_per_episode=600, slot_exposure=(1.0, 0.7), mechanism=mechanism, reserve_price=0.01)
    fields.update(overrides)
    return MarketConfig(**fields)


MULTIPLIERS = {3: 1.0, 11: 2.0, 17: 1.0, 25: 0.5}  # by advertiser id


def play(config: MarketConfig, population: Population, seed: int = 5, explicit: bool = False):
    market = Market(config, population)
    multipliers = np.array([MULTIPLIERS[int(i)] for i in population.ids])
    market.reset(seed=seed)
    ticks = []
    while not market.done:
        bids = {17: np.full(market.impressions_next_tick, 1.0)} if explicit else None
        ticks.append(market.step(multipliers, impression_bids=bids, log_impressions=True))
    return market, ticks


def assert_same_episode(first, second) -> None:
    (market_a, ticks_a), (market_b, ticks_b) = first, second
    for a, b in zip(ticks_a, ticks_b):
        for name in ("wins", "exposures", "conversions", "spend", "value_won", "budget_left"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        for name in ("winners", "prices", "exposed", "converted", "least_winning_cost", "ranked_bids"):
            np.testing.assert_array_equal(getattr(a.log, name), getattr(b.log, name), err_msg=name)
    assert market_a.episode_metrics().social_welfare == market_b.episode_metrics().social_welfare


# ---------------------------------------------------------------------------------------- slow path
@pytest.mark.parametrize("name", ["gsp", "fpa", "vcg"])
def test_built_ins_written_as_python_plug_ins_reproduce_them_bit_for_bit(name):
    template = mechanisms.BUILTIN_MECHANISMS[name]
    plugged = CustomMechanism(f"python-{name}", lambda *args, template=template: template.py_func(*args))
    for candidates in (None, 3):
        assert_same_episode(
            play(tiny_config(name, candidates_per_impression=candidates), tiny_population(), explicit=True),
            play(tiny_config(plugged, candidates_per_impression=candidates), tiny_population(), explicit=True),
        )


def test_a_broken_mechanism_names_the_impression_and_changes_nothing():
    def gives_a_slot_to_nobody(auction, ranked_index, ranked_bids, prices):
        ranked_index[0], prices[0] = 0, -1.0
        return 1, 1

    market = Market(tiny_config(CustomMechanism("broken", gives_a_slot_to_nobody)), tiny_population())
    market.reset(seed=0)
    before = market.budget_left.copy()
    with pytest.raises(MechanismError, match="mechanism 'broken'.*impression"):
        market.step(np.ones(4))
    assert market.tick == 0 and np.array_equal(market.budget_left, before)


# ---------------------------------------------------------------------------------------- registry
def test_registration_is_checked_and_names_resolve():
    assert "quality-gsp" in mechanism_names() and MarketConfig(mechanism="quality-gsp").mechanism is QUALITY_GSP
    assert MarketConfig(mechanism="examples.quality_gsp:QUALITY_GSP").mechanism is QUALITY_GSP
    with pytest.raises(ConfigError, match="built-in mechanism"):
        register_mechanism("gsp", quality_gsp)
    with pytest.raises(ConfigError, match="lower-case letters"):
        register_mechanism("My Mechanism", quality_gsp)
    with pytest.raises(ConfigError, match=r"must take \(auction, ranked_index, ranked_bids, prices\)"):
        register_mechanism("two-args", lambda auction, prices: (0, 0))
    with pytest.raises(ConfigError, match="cannot import"):
        MarketConfig(mechanism="examples.quality_gsp:MISSING")
    restored = pickle.loads(pickle.dumps(QUALITY_GSP))  # Ray workers get the function with the name
    assert restored == "quality-gsp" and restored.function is quality_gsp
    with pytest.raises(ConfigError, match=r"advertiser_data must return shape \(F, 4\)"):
        CustomMechanism("bad-data", quality_gsp, lambda population: np.ones(3)).data_for(tiny_population())


def test_the_quality_gsp_passes_the_checks_it_should():
    data = QUALITY_GSP.advertiser_data
    report = check_mechanism(QUALITY_GSP, max_examples=15)
    # Ranked by bid x quality, it gives slots to lower bids by design; everything else holds.
    assert [failure.name for failure in report.failures] == ["winners_hold_top_bids"], report
    assert check_mechanism(quality_gsp, advertiser_data=lambda population: np.ones((1, len(population))), max_examples=15)
    assert data is QUALITY_GSP.advertiser_data


# ---------------------------------------------------------------------------------------- fast path
def test_a_jitted_plug_in_reproduces_gsp_and_is_permutation_equivariant():
    assert_same_episode(play(tiny_config("gsp"), tiny_population()), play(tiny_config(UNIT_QUALITY_GSP), tiny_population()))
    order = [2, 0, 3, 1]
    (_, base), (_, moved) = play(tiny_config(QUALITY_GSP), tiny_population()), play(tiny_config(QUALITY_GSP), tiny_population(order))
    for a, b in zip(base, moved):
        np.testing.assert_array_equal(b.spend, a.spend[order])
        np.testing.assert_array_equal(b.log.winners, a.log.winners)


def test_a_jitted_plug_in_runs_through_both_envs_the_exploitability_tools_and_the_cli(capsys):
    overrides = dict(mechanism="quality-gsp", impressions_per_episode=2_000, n_ticks=4)
    record = play_episode(AuctionParallelEnv("auctionnet", **overrides), PIDPacing(), seed=1)
    assert record.actions.shape == (4, 48)
    single = SingleBidderEnv("auctionnet", population=PIDPacing(), focal=3, **overrides)
    single.reset(seed=0)
    assert single.core.market.config.mechanism is QUALITY_GSP
    _, reward, *_ = single.step(np.array([1.0], dtype=np.float32))
    assert np.isfinite(reward)

    config = ExploitabilityConfig(
        estimators=(GridBestResponse((0.5, 1.0, 2.0), periods=1),), max_advertisers=1, eval_seeds=(1,), fit_seeds=(0,),
        backend="serial", progress=False,
    )
    report = evaluate_exploitability(FixedMultipliers(1.0), "auctionnet", config=config, market_overrides=overrides)
    assert np.isfinite(report.max_exploitability("grid-constant").estimate)

    printed = []
    for mechanism in ("examples.quality_gsp:QUALITY_GSP", "gsp"):
        assert cli.main(["simulate", "--population", "pid", "--set", f"mechanism={mechanism}", "--set", "impressions_per_episode=2000", "--rows", "0"]) == 0
        printed.append(capsys.readouterr().out.splitlines()[0])
    assert printed[0].startswith("episode 0") and printed[0] != printed[1]  # the quality GSP played, not GSP
