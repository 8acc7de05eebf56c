"""Environments: API conformance, determinism, spaces, dict vs array API, bad actions."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from auctionsim import ActionError, ActionTypeError, ConfigError, Market
from auctionsim.envs import (
    ENV_IDS,
    FEATURE_NAMES,
    REWARDS,
    AuctionParallelEnv,
    FixedMultipliers,
    SingleBidderEnv,
    feature_names,
    play_episode,
)
from agents import PIDPacing

SMALL = dict(impressions_per_episode=20_000)


def _small_parallel(**kwargs) -> AuctionParallelEnv:
    return AuctionParallelEnv("auctionnet", **{**SMALL, **kwargs})


@pytest.mark.parametrize("preset, overrides", [("auctionnet", SMALL), ("auctionnet", dict(SMALL, mechanism="fpa", n_ticks=6)), ("large-1k", dict(impressions_per_episode=30_000, n_ticks=4))])
@pytest.mark.parametrize("reward", REWARDS)
def test_parallel_api_conformance(preset, overrides, reward):
    env = AuctionParallelEnv(preset, reward=reward, **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports non-conformance as warnings
        parallel_api_test(env, num_cycles=60)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_single_bidder_envs_pass_check_env(env_id):
    env = gymnasium.make(env_id, **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_single_bidder_with_a_baseline_population_passes_check_env():
    env = SingleBidderEnv("auctionnet", population=PIDPacing(), focal=5, **SMALL)
    check_env(env, skip_render_check=True)


def test_observations_are_named_and_within_spaces():
    env = _small_parallel()
    observations, _ = env.reset(seed=1)
    names = env.feature_names
    assert names == feature_names(6) and names[:18] == FEATURE_NAMES and len(names) == 24
    space = env.observation_space(env.agents[0])
    while env.agents:
        for name, observation in observations.items():
            assert observation.dtype == np.float32 and space.contains(observation), name
        observations, *_ = env.step({name: env.action_space(name).sample() for name in env.agents})


def test_first_observation_reports_the_advertiser():
    env = _small_parallel()
    observations = env.reset_arrays(seed=0)
    population = env.market.population
    column = env.feature_names.index
    np.testing.assert_allclose(observations[:, column("time_left")], 1.0)
    np.testing.assert_allclose(observations[:, column("budget_left")], 1.0)
    np.testing.assert_allclose(observations[:, column("cpa_target")], population.cpa_targets / 100, rtol=1e-6)
    one_hot = observations[:, 18:]
    np.testing.assert_array_equal(one_hot.argmax(axis=1), population.categories)
    assert (observations[:, column("bid_mean")] == 0).all()


def _trajectory(env: AuctionParallelEnv, seed: int, use_dict: bool):
    multipliers_per_tick = np.random.default_rng(seed).uniform(0.3, 2.0, (env.market.n_ticks, env.max_num_agents))
    if use_dict:
        observations, _ = env.reset(seed=seed)
        rows = {name: row for row, name in enumerate(env.possible_agents)}
        trace = []
        for tick in range(env.market.n_ticks):
            actions = {name: np.array([multipliers_per_tick[tick, rows[name]]], dtype=np.float32) for name in env.agents}
            observations, rewards, terminations, truncations, _ = env.step(actions)
            trace.append((dict(observations), dict(rewards), dict(terminations), dict(truncations)))
            if not env.agents:
                break
        return trace
    observations = env.reset_arrays(seed)
    trace = []
    for tick in range(env.market.n_ticks):
        live = env.live
        step = env.step_arrays(multipliers_per_tick[tick].astype(np.float32).astype(np.float64))
        names = env.possible_agents
        trace.append(
            (
                {names[r]: step.observations[r] for r in np.flatnonzero(live)},
                {names[r]: float(step.rewards[r]) for r in np.flatnonzero(live)},
                {names[r]: bool(step.terminated[r]) for r in np.flatnonzero(live)},
                {names[r]: bool(step.truncated[r]) for r in np.flatnonzero(live)},
            )
        )
        if not step.live.any():
            break
    return trace


@pytest.mark.parametrize("reward", REWARDS)
def test_dict_and_array_apis_give_identical_trajectories(reward):
    env = _small_parallel(reward=reward, n_ticks=12)
    for seed in (0, 3):
        by_dict = _trajectory(env, seed, use_dict=True)
        by_array = _trajectory(env, seed, use_dict=False)
        assert len(by_dict) == len(by_array)
        for a, b in zip(by_dict, by_array):
            assert a[0].keys() == b[0].keys()
            for name in a[0]:
                np.testing.assert_array_equal(a[0][name], b[0][name])
            assert a[1:] == b[1:]


def test_seed_determinism_and_variation():
    env = _small_parallel(n_ticks=8)
    first = _trajectory(env, 5, use_dict=False)
    second = _trajectory(env, 5, use_dict=False)
    other = _trajectory(env, 6, use_dict=False)
    assert [t[1] for t in first] == [t[1] for t in second]
    assert [t[1] for t in first] != [t[1] for t in other]
    single = SingleBidderEnv("auctionnet", **SMALL)
    runs = []
    for _ in range(2):
        observation, info = single.reset(seed=11)
        rewards = [single.step(np.array([1.2], dtype=np.float32))[1] for _ in range(10)]
        runs.append((info["advertiser_id"], rewards))
    assert runs[0] == runs[1]


def test_budget_exhaustion_terminates_and_the_last_tick_ends_everyone_acting():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=50_000, n_ticks=6)
    env.reset(seed=0)
    ran_out, ran_out_last_tick, acted_last_tick = set(), set(), set()
    while env.agents:
        acting = set(env.agents)
        last = env.market.tick == env.market.n_ticks - 1
        _, _, term, trunc, infos = env.step({name: np.array([5.0], dtype=np.float32) for name in env.agents})
        assert set(term) == set(trunc) == acting
        out = {name for name in acting if infos[name]["budget_left"] < env.market.budget_floor}
        if last:
            # The day's end: everyone acting is terminated and truncated, whatever its budget.
            assert all(term.values()) and all(trunc.values())
            acted_last_tick, ran_out_last_tick = acting, out
        else:
            assert {name for name, done in term.items() if done} == out and not any(trunc.values())
            ran_out |= out
    assert ran_out and acted_last_tick and ran_out_last_tick  # at x5 some run out early, some in the last tick
    assert ran_out | acted_last_tick == set(env.possible_agents) and not ran_out & acted_last_tick


def test_score_rewards_sum_to_the_episode_score():
    env = _small_parallel(reward="score")
    record = play_episode(env, FixedMultipliers(1.3), seed=2)
    np.testing.assert_allclose(record.rewards.sum(axis=0), record.metrics.score, rtol=1e-9, atol=1e-9)
    env = _small_parallel(reward="value")
    record = play_episode(env, FixedMultipliers(1.3), seed=2)
    np.testing.assert_allclose(record.rewards.sum(axis=0), record.metrics.value_won, rtol=1e-9)


def test_weighted_focal_sampling():
    weights = np.zeros(48)
    weights[[3, 7]] = [1.0, 3.0]
    env = SingleBidderEnv("auctionnet", focal_weights=weights, **SMALL)
    ids = [env.reset(seed=s)[1]["advertiser_id"] for s in range(200)]
    counts = {i: ids.count(i) for i in set(ids)}
    assert set(counts) == {3, 7} and 0.15 < counts[3] / 200 < 0.35
    with pytest.raises(ConfigError, match="focal_weights"):
        env.set_focal_weights(np.full(48, -1.0))


@pytest.mark.parametrize(
    "actions, error, match",
    [
        ({"adv_999": np.array([1.0])}, ActionError, "unknown agent name 'adv_999'"),
        ({}, ActionError, "missing actions for 48 live agents"),
        ("not a dict", ActionTypeError, "map agent names"),
    ],
)
def test_bad_dict_actions_raise_and_change_nothing(actions, error, match):
    env = _small_parallel()
    env.reset(seed=0)
    before = (env.market.tick, env.market.budget_left, list(env.agents))
    with pytest.raises(error, match=match):
        env.step(actions)
    assert env.market.tick == before[0] and env.agents == before[2]
    np.testing.assert_array_equal(env.market.budget_left, before[1])


@pytest.mark.parametrize("bad, match", [(np.nan, "nan"), (np.inf, "inf"), (-0.5, "-0.5"), (7.0, "7.0")])
def test_bad_action_values_raise_and_change_nothing(bad, match):
    env = _small_parallel()
    env.reset(seed=0)
    actions = {name: np.array([1.0], dtype=np.float32) for name in env.agents}
    actions["adv_4"] = np.array([bad])
    with pytest.raises(ActionError, match=f"adv_4 must be a finite multiplier in \\[0.0, 5.0\\], got {match}"):
        env.step(actions)
    assert env.market.tick == 0
    with pytest.raises(ActionError, match="shape"):
        env.step_arrays(np.ones(47))
    with pytest.raises(ActionTypeError, match="numbers"):
        env.step_arrays(np.array(["x"] * 48))
    single = SingleBidderEnv("auctionnet", **SMALL)
    single.reset(seed=0)
    with pytest.raises(ActionError, match="one multiplier"):
        single.step(np.ones(3))
    discrete = gymnasium.make(ENV_IDS[1], **SMALL).unwrapped
    discrete.reset(seed=0)
    with pytest.raises(ActionError, match="integer in \\[0, 14\\)"):
        discrete.step(14)
    assert single.market.tick == 0 and discrete.market.tick == 0


def test_finished_agents_cannot_act():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=50_000, n_ticks=6)
    env.reset(seed=0)
    finished = []
    while not finished:
        _, _, terminations, _, _ = env.step({name: np.array([5.0], dtype=np.float32) for name in env.agents})
        finished = [name for name, done in terminations.items() if done]
    actions = {name: np.array([1.0], dtype=np.float32) for name in env.agents}
    actions[finished[0]] = np.array([1.0], dtype=np.float32)
    with pytest.raises(ActionError, match="already finished"):
        env.step(actions)


def test_construction_errors():
    with pytest.raises(ConfigError, match="multiplier_bounds"):
        AuctionParallelEnv("auctionnet", multiplier_bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="reward must be one of"):
        AuctionParallelEnv("auctionnet", reward="profit")
    with pytest.raises(ConfigError, match="unknown preset"):
        AuctionParallelEnv("nope")
    with pytest.raises(ConfigError, match="bid_grid"):
        SingleBidderEnv("auctionnet", bid_grid=[0.5, 9.0])
    with pytest.raises(ConfigError, match="overrides need a preset"):
        AuctionParallelEnv(Market.from_preset("auctionnet"), n_ticks=3)
