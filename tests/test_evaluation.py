"""The focal-evaluation engine: lockstep batches equal episodes played one by one, episodes are the
population's own (common random numbers), and every evaluation tool goes through it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents import PIDPacing
from agents.equilibrium import DeviationEvaluator, MarketSpec, ScheduleDeviation
from agents.evaluation import play_focal, play_focal_episode
from agents.lbm.evaluate import FocalCase, evaluate_focal
from agents.populations import named_population
from auctionsim import ConfigError, Market, presets
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, PopulationPolicy, SingleBidderEnv, play_episode

SMALL = dict(n_ticks=6, impressions_per_episode=12_000)


def _env(focal: int, population: PopulationPolicy | None = None) -> SingleBidderEnv:
    scenario = presets.get("auctionnet", **SMALL)
    population = named_population("mixed", scenario.population.ids) if population is None else population
    return SingleBidderEnv(Market(scenario.market, scenario.population, record_history=False), population=population, focal=focal)


class CountingPID(PIDPacing):
    """PID pacing that counts its batched calls."""

    calls = 0

    def act(self, observations):
        CountingPID.calls += 1
        return super().act(observations)


def test_lockstep_batches_equal_episodes_played_one_by_one_with_one_call_per_tick():
    cases = [(3, 0), (3, 1), (17, 0), (40, 2)]
    CountingPID.calls = 0
    batched = play_focal(CountingPID(), [_env(a) for a, _ in cases], [s for _, s in cases])
    assert CountingPID.calls == SMALL["n_ticks"]  # one call per tick for all four episodes
    singles = [play_focal(PIDPacing(), [_env(a)], [s]) for a, s in cases]
    for name in ("multipliers", "spend", "value_won", "conversions", "rewards", "acted"):
        np.testing.assert_array_equal(getattr(batched, name), np.concatenate([getattr(one, name) for one in singles]), err_msg=name)
    np.testing.assert_array_equal(batched.advertiser_ids, [a for a, _ in cases])


def test_focal_episodes_are_the_populations_own_episodes():
    # A focal bidder that bids exactly as the population would reproduces the population's own
    # play of that market episode: same seed, same traffic, exposures and conversions.
    scenario = presets.get("auctionnet", **SMALL)
    own = play_episode(AuctionParallelEnv(Market(scenario.market, scenario.population)), FixedMultipliers(1.3), seed=7)
    row = scenario.population.positions_of([21])[0]
    episodes = play_focal(FixedMultipliers(1.3), [_env(21, FixedMultipliers(1.3))], [7])
    assert episodes.returns()[0] == own.metrics.value_won[row]
    assert episodes.total(episodes.spend)[0] == own.metrics.spend[row]
    assert episodes.total(episodes.conversions)[0] == own.metrics.conversions[row]


def test_every_evaluation_tool_reports_the_engines_numbers():
    spec = MarketSpec("auctionnet", SMALL)
    deviation = DeviationEvaluator(spec, named_population("mixed", spec.build().population.ids), 9).returns(ScheduleDeviation((1.1,), SMALL["n_ticks"]), [4])
    engine = play_focal(FixedMultipliers(1.1), [_env(9)], [4])
    assert deviation[0] == engine.returns()[0]
    focal = play_focal_episode(_env(9), FixedMultipliers(1.1), seed=4)
    assert focal.conversions == engine.total(engine.conversions)[0] and focal.score == engine.score(2.0)[0]
    scenario = presets.get("auctionnet", **SMALL)
    lbm = evaluate_focal(FixedMultipliers(1.1), scenario.market, scenario.population, lambda: named_population("mixed", scenario.population.ids), [FocalCase(9, 4)], progress=False)
    assert lbm.conversions[0] == pytest.approx(engine.total(engine.expected_conversions)[0], rel=1e-12)


def test_on_tick_reports_every_tick_and_finished_cases_stop_acting():
    scenario = presets.get("auctionnet", **SMALL)
    ticks = []
    tight = Market(scenario.market, dataclasses.replace(scenario.population, budgets=scenario.population.budgets * 0.01))
    env = SingleBidderEnv(tight, population=FixedMultipliers(1.0), focal=5)
    episodes = play_focal(FixedMultipliers(5.0), [env, _env(6)], [0, 0], on_tick=ticks.append)
    assert [tick.tick for tick in ticks] == list(range(len(ticks)))
    for tick in ticks:
        assert tick.observations.shape == (2, env.observation_space.shape[0])
        np.testing.assert_array_equal(tick.acted, episodes.acted[:, tick.tick])
    # The poor advertiser runs out early; its rows after that are idle: nothing played or spent.
    assert episodes.terminated[0] and episodes.acted[0].sum() < SMALL["n_ticks"] and episodes.acted[1].all()
    idle = ~episodes.acted
    assert (episodes.spend[idle] == 0).all() and (episodes.multipliers[idle] == 0).all()


def test_bad_engine_input_is_refused():
    env = _env(3)
    with pytest.raises(ConfigError, match="one seed per env"):
        play_focal(PIDPacing(), [env], [0, 1])
    with pytest.raises(ConfigError, match="distinct"):
        play_focal(PIDPacing(), [env, env], [0, 1])
    with pytest.raises(ConfigError, match="PopulationPolicy"):
        play_focal(lambda observations: observations, [env], [0])
