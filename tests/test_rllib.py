"""RLlib's stock PettingZoo wrapper on our env, as a user reading RLlib's docs would use it, and
the one-call helper: episodes end where they should, and one real PPO iteration trains."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="the RLlib tests need the [rl] extra")

from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: E402
from ray.train.constants import DEFAULT_STORAGE_PATH  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402

from auctionsim import Market, presets  # noqa: E402
from auctionsim.compat.rllib import SHARED_POLICY, ppo_config  # noqa: E402
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, play_episode  # noqa: E402

TICKS, IMPRESSIONS, MULTIPLIER, SEED = 4, 8_000, 1.5, 3


def last_tick_market() -> tuple[Market, int]:
    """A small AuctionNet market in which, at a constant multiplier of 1.5 on market seed 3, one
    advertiser's budget runs out in the last tick while everyone else's lasts the day: the
    episode that crashed RLlib's stock wrapper (the issue: "ActionError: the episode is over").
    Returns the market and that advertiser's id."""
    # A budget floor of 5 (instead of 0.1): the advertiser stops bidding with less than 5 left,
    # so paying for half of its last tick surely takes it below the floor.
    scenario = presets.get("auctionnet", n_ticks=TICKS, impressions_per_episode=IMPRESSIONS, min_budget_to_bid=5.0)
    population = scenario.population
    plenty = dataclasses.replace(population, budgets=population.budgets * 100)
    spend = np.stack([tick.spend for tick in play_episode(AuctionParallelEnv(Market(scenario.market, plenty)), FixedMultipliers(MULTIPLIER), seed=SEED).ticks])
    row = int(np.argmax(np.where(spend[:-1].sum(axis=0) > 0, spend[-1], 0.0)))
    budgets = population.budgets.copy()
    # It can pay for the first ticks and half of the last one; the others keep their budgets.
    budgets[row] = spend[:-1, row].sum() + 0.5 * spend[-1, row]
    return Market(scenario.market, dataclasses.replace(population, budgets=budgets)), int(population.ids[row])


def test_stock_wrapper_ends_the_episode_when_a_budget_runs_out_in_the_last_tick():
    market, short_of_budget = last_tick_market()
    env = ParallelPettingZooEnv(AuctionParallelEnv(market))
    observations, _ = env.reset(seed=SEED)
    name = f"adv_{short_of_budget}"
    for tick in range(TICKS):
        actions = {agent: np.array([MULTIPLIER], dtype=np.float32) for agent in observations}
        observations, _, terminateds, truncateds, _ = env.step(actions)
        if tick < TICKS - 1:
            assert not any(terminateds.values()) and not any(truncateds.values())
    # The case of the issue: it ran out in the last tick while the others were still bidding.
    assert env.par_env.market.budget_left[env.par_env.market.population.positions_of([short_of_budget])[0]] < env.par_env.market.budget_floor
    # Its flags agree with everyone's (the day's end: all terminated and truncated), so RLlib's
    # wrapper ends the episode here instead of stepping a finished env (the old flags,
    # terminated for it and only truncated for the others, did not).
    assert terminateds["__all__"] and truncateds["__all__"] and terminateds[name] and truncateds[name]
    assert env.par_env.market.done and env.par_env.agents == []


def _one_iteration(config: PPOConfig) -> tuple[dict, dict, dict]:
    """Build, train one iteration, stop; returns the result and the shared module's weights
    before and after. Removes the trial folder RLlib makes under ``~/ray_results`` (and that
    folder, if this made it): tests leave no files behind."""
    results_folder = pathlib.Path(DEFAULT_STORAGE_PATH)
    existed = results_folder.exists()
    algo = config.build_algo()
    try:
        before = {k: np.array(v) for k, v in algo.learner_group.get_weights()[SHARED_POLICY].items()}
        result = algo.train()
        after = {k: np.array(v) for k, v in algo.learner_group.get_weights()[SHARED_POLICY].items()}
    finally:
        algo.stop()
        shutil.rmtree(algo.logdir, ignore_errors=True)
        if not existed and results_folder.exists() and not any(results_folder.iterdir()):
            results_folder.rmdir()
    return result, before, after


def _small_training(config: PPOConfig) -> PPOConfig:
    episode_agent_steps = 48 * TICKS
    return (
        config.env_runners(num_env_runners=0, rollout_fragment_length="auto")
        .training(train_batch_size_per_learner=3 * episode_agent_steps, minibatch_size=128, num_epochs=1)
        .debugging(seed=0)
    )


def test_one_ppo_iteration_through_the_stock_wrapper(ray_instance):
    register_env("auctionsim_stock_test", lambda env_config: ParallelPettingZooEnv(AuctionParallelEnv(last_tick_market()[0])))
    config = (
        PPOConfig()
        .environment("auctionsim_stock_test")
        .multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=lambda agent_id, episode, **kwargs: SHARED_POLICY, count_steps_by="agent_steps")
    )
    result, before, after = _one_iteration(_small_training(config))
    runners = result["env_runners"]
    assert runners["num_episodes"] >= 2 and np.isfinite(runners["episode_return_mean"])
    assert any(not np.array_equal(before[k], after[k]) for k in before)  # the shared policy learned


def test_one_ppo_iteration_through_the_helper(ray_instance):
    config = ppo_config({"market": "auctionnet", "n_ticks": TICKS, "impressions_per_episode": IMPRESSIONS}, name="auctionsim_helper_test")
    result, before, after = _one_iteration(_small_training(config))
    assert result["env_runners"]["num_episodes"] >= 2
    assert any(not np.array_equal(before[k], after[k]) for k in before)
