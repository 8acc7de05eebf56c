"""A rejected call leaves an identical twin: for every public mutating method of the market, both
environments (dict and array APIs), the single-bidder env and its discrete variant, the wrappers
and the bandit populations, an object that refused a bad call then plays exactly like a twin that
never saw it (every observation, reward, info, result and learner score equal, to the bit).

Each case builds two identical objects mid-episode, sends the bad call to one (it must raise an
``AuctionSimError``), then plays both on and compares everything they produce."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pytest
from conftest import small_config, small_population

from agents.bandits import BanditBidders, BatchExp3, Exp3, Exp3IX, UniformGridBids
from auctionsim import Market
from auctionsim.envs import AuctionParallelEnv, PolicyContext, SingleBidderEnv, TickFeedback
from auctionsim.envs.wrappers import BatchedDelayedFeedback, NormalizedProfit, ProfitNormalizer, ProfitReward
from auctionsim.errors import AuctionSimError

N = 6  # advertisers of the small population
SMALL = dict(n_ticks=5, impressions_per_episode=1_500)


def assert_twin(make: Callable[[], Any], bad: Callable[[Any], object], play: Callable[[Any], Any]) -> None:
    """``bad`` raises an AuctionSimError on one of two objects built alike; afterwards both play alike."""
    rejected, twin = make(), make()
    with pytest.raises(AuctionSimError):
        bad(rejected)
    np.testing.assert_equal(play(rejected), play(twin))


def _tick(result) -> dict:
    fields = {field.name: getattr(result, field.name) for field in dataclasses.fields(result) if field.name not in ("market", "log")}
    fields["market"] = dataclasses.asdict(result.market)
    if result.log is not None:
        fields["log"] = {field.name: getattr(result.log, field.name) for field in dataclasses.fields(result.log)}
    return fields


# ---------------------------------------------------------------------------------- Market
def _market() -> Market:
    market = Market(small_config(**SMALL), small_population())
    market.reset(seed=3)
    market.step(np.linspace(0.5, 1.5, N))
    return market


def _play_market(market: Market) -> list:
    record = [market.seed, market.episode, market.tick, market.budget_left, market.totals()]
    while not market.done:
        bids = {int(market.population.ids[1]): np.full(market.impressions_next_tick, 0.02)}
        record.append(_tick(market.step(np.linspace(0.8, 1.2, N), impression_bids=bids, log_impressions=True)))
    record.append(market.episode_metrics().to_dict())
    market.reset()
    record += [market.seed, market.episode, _tick(market.step(np.ones(N)))]
    return record


MARKET_BAD_CALLS = {
    "reset seed -1": lambda m: m.reset(seed=-1),
    "reset seed 2**63": lambda m: m.reset(seed=2**63),
    "reset seed 1.5": lambda m: m.reset(seed=1.5),
    "reset seed '1'": lambda m: m.reset(seed="1"),
    "step nan": lambda m: m.step(np.full(N, np.nan)),
    "step negative": lambda m: m.step(-np.ones(N)),
    "step 1e308": lambda m: m.step(np.full(N, 1e308)),
    "step short": lambda m: m.step(np.ones(N - 1)),
    "step strings": lambda m: m.step(["1"] * N),
    "step bools": lambda m: m.step(np.ones(N, dtype=bool)),
    "step complex": lambda m: m.step(np.ones(N, dtype=complex)),
    "bids as array": lambda m: m.step(np.ones(N), impression_bids=np.ones(m.impressions_next_tick)),
    "bids fractional id": lambda m: m.step(np.ones(N), impression_bids={107.5: np.ones(m.impressions_next_tick)}),
    "bids unknown id": lambda m: m.step(np.ones(N), impression_bids={999: np.ones(m.impressions_next_tick)}),
    "bids huge id": lambda m: m.step(np.ones(N), impression_bids={2**64: np.ones(m.impressions_next_tick)}),
    "bids wrong length": lambda m: m.step(np.ones(N), impression_bids={107: np.ones(m.impressions_next_tick + 1)}),
    "bids nan": lambda m: m.step(np.ones(N), impression_bids={107: np.full(m.impressions_next_tick, np.nan)}),
    "bids huge": lambda m: m.step(np.ones(N), impression_bids={107: np.full(m.impressions_next_tick, 1e300)}),
    "run_episode nan": lambda m: m.run_episode(np.full(N, np.nan), seed=9),
    "run_episode bad seed": lambda m: m.run_episode(np.ones(N), seed=-4),
    "tick_values bad id": lambda m: m.tick_values([100.5]),
    "tick_values bad tick": lambda m: m.tick_values(tick=99),
}


@pytest.mark.parametrize("bad", MARKET_BAD_CALLS.values(), ids=MARKET_BAD_CALLS.keys())
def test_market_twin(bad):
    assert_twin(_market, bad, _play_market)


def test_market_twin_after_the_episode_ended():
    def make():
        market = _market()
        while not market.done:
            market.step(np.ones(N))
        return market

    assert_twin(make, lambda m: m.step(np.ones(N)), _play_market)


# ---------------------------------------------------------------------------------- parallel env
def _parallel() -> AuctionParallelEnv:
    env = AuctionParallelEnv(Market(small_config(**SMALL), small_population()), reward="score", multiplier_bounds=(0.1, 2.5))
    env.reset(seed=3)
    env.step({agent: np.array([1.0], dtype=np.float32) for agent in env.agents})
    return env


def _play_parallel(env: AuctionParallelEnv) -> list:
    record = [list(env.agents), env.state(), env.live]
    tick = 0
    while env.agents:
        tick += 1
        actions = {agent: np.array([0.5 + 0.1 * row + 0.05 * tick], dtype=np.float32) for row, agent in enumerate(env.agents)}
        record.append(env.step(actions))
    record.append(env.reset(seed=None))
    step = env.step_arrays(np.full(N, 0.9), with_values=True)
    record.append([step.observations, step.rewards, step.terminated, step.truncated, step.live, _tick(step.result), step.values.pvalues])
    return record


def _actions(env: AuctionParallelEnv, **changes) -> dict:
    actions: dict[str, Any] = {agent: np.array([1.0], dtype=np.float32) for agent in env.agents}
    actions.update(changes)
    return actions


PARALLEL_BAD_CALLS = {
    "dict nan": lambda e: e.step(_actions(e, adv_100=np.array([np.nan]))),
    "dict above bound": lambda e: e.step(_actions(e, adv_100=np.array([2.6]))),
    "dict just below the float32 bound": lambda e: e.step(_actions(e, adv_100=np.nextafter(np.float64(np.float32(0.1)), 0.0))),
    "dict (1, 1) action": lambda e: e.step(_actions(e, adv_100=np.array([[1.0]]))),
    "dict string action": lambda e: e.step(_actions(e, adv_100="1.0")),
    "dict unknown agent": lambda e: e.step(_actions(e, adv_999=np.array([1.0]))),
    "dict missing agent": lambda e: e.step({agent: np.array([1.0]) for agent in e.agents[1:]}),
    "dict not a mapping": lambda e: e.step([1.0] * N),
    "arrays nan": lambda e: e.step_arrays(np.full(N, np.nan)),
    "arrays shape": lambda e: e.step_arrays(np.ones((N, 1))),
    "arrays strings": lambda e: e.step_arrays(np.array(["1"] * N)),
    "arrays huge": lambda e: e.step_arrays(np.full(N, 1e308)),
    "reset seed -1": lambda e: e.reset(seed=-1),
    "reset_arrays seed 'x'": lambda e: e.reset_arrays(seed="x"),
}


@pytest.mark.parametrize("bad", PARALLEL_BAD_CALLS.values(), ids=PARALLEL_BAD_CALLS.keys())
def test_parallel_env_twin(bad):
    assert_twin(_parallel, bad, _play_parallel)


# ---------------------------------------------------------------------------------- single-bidder envs and wrappers
def _normalizer() -> ProfitNormalizer:
    return ProfitNormalizer(
        traffic_weights=np.linspace(0.5, 1.0, SMALL["n_ticks"]),
        advertiser_ids=small_population().ids,
        low=np.full(N, -2.0),
        high=np.full(N, 3.0),
    )


def _single(discrete: bool = False, wrap: str = "none") -> Any:
    env = SingleBidderEnv(
        Market(small_config(**SMALL), small_population()),
        population=UniformGridBids(),
        bid_grid=[0.2, 0.6, 1.0, 1.4] if discrete else None,
    )
    if wrap in ("profit", "normalized", "batched"):
        env = ProfitReward(env)
    if wrap in ("normalized", "batched"):
        env = NormalizedProfit(env, _normalizer())
    if wrap == "batched":
        env = BatchedDelayedFeedback(env, batch_size=2, delay=1)
    env.reset(seed=4)
    env.step(1 if discrete else np.array([0.8], dtype=np.float32))
    return env


def _play_single(env: Any, discrete: bool = False, unit: bool = False) -> list:
    record = []
    for episode in range(2):
        done = False
        tick = 0
        while not done:
            tick += 1
            if discrete:
                action = tick % 4
            else:  # multipliers 0.5 to 1.3 (unit actions -0.5 to -0.1 with bounds (0, 5))
                action = np.array([-0.6 + 0.1 * tick if unit else 0.3 + 0.2 * tick], dtype=np.float32)
            observation, reward, terminated, truncated, info = env.step(action)
            record.append([observation, reward, terminated, truncated, info])
            done = terminated or truncated
        record.append(env.reset())
    record.append(getattr(env, "round", None))
    return record


SINGLE_BAD_CALLS = {
    "step nan": lambda e: e.step(np.array([np.nan])),
    "step above bound": lambda e: e.step(np.array([5.5])),
    "step negative": lambda e: e.step(-0.1),
    "step (1, 1)": lambda e: e.step(np.array([[1.0]])),
    "step two numbers": lambda e: e.step(np.ones(2)),
    "step string": lambda e: e.step("1.0"),
    "reset seed -1": lambda e: e.reset(seed=-1),
    "reset market_seed -1": lambda e: e.reset(options={"market_seed": -1}),
    "reset market_seed 1.5": lambda e: e.reset(options={"market_seed": 1.5}),
    "step_focal multiplier above bound": lambda e: e.unwrapped.step_focal(5.5),
    "step_focal multiplier nan": lambda e: e.unwrapped.step_focal(float("nan")),
    "step_focal bids wrong length": lambda e: e.unwrapped.step_focal(bids=np.ones(e.unwrapped.market.impressions_next_tick + 1)),
    "step_focal bids negative": lambda e: e.unwrapped.step_focal(bids=-np.ones(e.unwrapped.market.impressions_next_tick)),
    "focal weights negative": lambda e: e.unwrapped.set_focal_weights([-1.0] + [1.0] * (N - 1)),
    "focal weights short": lambda e: e.unwrapped.set_focal_weights([1.0] * (N - 1)),
}


@pytest.mark.parametrize("wrap", ["none", "profit", "normalized", "batched"])
@pytest.mark.parametrize("bad", SINGLE_BAD_CALLS.values(), ids=SINGLE_BAD_CALLS.keys())
def test_single_bidder_env_and_wrappers_twin(bad, wrap):
    assert_twin(lambda: _single(wrap=wrap), bad, _play_single)


def _unit_single() -> SingleBidderEnv:
    env = SingleBidderEnv(Market(small_config(**SMALL), small_population()), population=UniformGridBids(), action_scale="unit")
    env.reset(seed=4)
    env.step(np.array([-0.6], dtype=np.float32))
    return env


@pytest.mark.parametrize("bad", [np.array([1.5]), np.array([-1.01]), np.array([np.nan]), np.array([[0.0]])], ids=["above 1", "below -1", "nan", "(1, 1)"])
def test_unit_scaled_single_bidder_env_twin(bad):
    assert_twin(_unit_single, lambda e: e.step(bad), lambda env: _play_single(env, unit=True))


DISCRETE_BAD_CALLS = {
    "index too high": lambda e: e.step(4),
    "index negative": lambda e: e.step(-1),
    "float index": lambda e: e.step(1.0),
    "bool index": lambda e: e.step(True),
    "array index": lambda e: e.step(np.array([1])),
    "string index": lambda e: e.step("1"),
}


@pytest.mark.parametrize("wrap", ["none", "batched"])
@pytest.mark.parametrize("bad", DISCRETE_BAD_CALLS.values(), ids=DISCRETE_BAD_CALLS.keys())
def test_discrete_single_bidder_env_twin(bad, wrap):
    assert_twin(lambda: _single(discrete=True, wrap=wrap), bad, lambda env: _play_single(env, discrete=True))


# ---------------------------------------------------------------------------------- bandit learners
LEARNERS = {
    "exp3": lambda: Exp3(4, 3, learning_rate=0.3, seed=5),
    "exp3-ix": lambda: Exp3IX(4, 3, learning_rate=0.3, seed=5),
    "batch-exp3": lambda: BatchExp3(4, 3, learning_rate=0.3, batch_size=2, delay=1, seed=5),
}


def _learner(kind: str):
    learner = LEARNERS[kind]()
    for round_index in range(3):
        learner.act()
        learner.learn(np.array([0.2, 0.5, 0.9]) * (round_index + 1) / 3)
    learner.act()
    return learner


def _play_learner(learner) -> list:
    record = []
    learner.learn(np.array([0.1, np.nan, 0.7]))
    for round_index in range(6):
        record.append([learner.act(), learner.probabilities()])
        learner.learn(np.array([0.3, 0.6, 0.9]) * ((round_index % 3) + 1) / 3)
    return record + [learner.scores, learner.rounds_played]


LEARNER_BAD_CALLS = {
    "reward above 1": lambda l: l.learn(np.array([0.5, 1.5, 0.5])),
    "reward below 0": lambda l: l.learn(np.array([0.5, -0.1, 0.5])),
    "wrong shape": lambda l: l.learn(np.array([0.5, 0.5])),
    "strings": lambda l: l.learn(np.array(["0.5"] * 3)),
    "future round": lambda l: l.learn(np.full(3, 0.5), round_index=99),
    "fractional round": lambda l: l.learn(np.full(3, 0.5), round_index=3.0),
    "bool round": lambda l: l.learn(np.full(3, 0.5), round_index=True),
}


@pytest.mark.parametrize("kind", LEARNERS)
@pytest.mark.parametrize("bad", LEARNER_BAD_CALLS.values(), ids=LEARNER_BAD_CALLS.keys())
def test_bandit_learner_twin(bad, kind):
    assert_twin(lambda: _learner(kind), bad, _play_learner)


def test_batch_exp3_refuses_a_second_reward_for_a_round():
    def make():
        learner = _learner("batch-exp3")
        learner.learn(np.full(3, 0.4))
        learner.act()
        return learner

    assert_twin(make, lambda l: l.learn(np.full(3, 0.4), round_index=3), lambda l: _play_learner(l)[1:])


# ---------------------------------------------------------------------------------- bandit population
def _bandit_population():
    env = AuctionParallelEnv(Market(small_config(**SMALL), small_population()))
    policy = BanditBidders(BatchExp3(4, N, learning_rate=0.5, batch_size=2, delay=0, seed=1, item_ids=small_population().ids), _normalizer(), bid_grid=[0.4, 0.8, 1.2, 1.6])
    observations = env.reset_arrays(seed=2)
    policy.reset(PolicyContext(env.market.population, env.market.config, N, env.feature_names, 2))
    step = env.step_arrays(policy.act(observations))
    feedback = TickFeedback.from_result(step.result, env.market.n_ticks)
    policy.observe(feedback)
    return env, policy, step.observations, TickFeedback.from_result(step.result, env.market.n_ticks)


def _play_bandit_population(state) -> list:
    env, policy, observations, _ = state
    record = []
    while not env.market.done:
        step = env.step_arrays(policy.act(observations))
        policy.observe(TickFeedback.from_result(step.result, env.market.n_ticks))
        observations = step.observations
        record.append([policy.last_arms, step.result.multipliers, policy.learner.scores.copy()])
    return record


BANDIT_POPULATION_BAD_CALLS = {
    "feedback short": lambda s: s[1].observe(dataclasses.replace(s[3], spend=s[3].spend[:-1])),
    "feedback nan": lambda s: s[1].observe(dataclasses.replace(s[3], value_won=np.full(N, np.nan))),
    "feedback strings": lambda s: s[1].observe(dataclasses.replace(s[3], budget_left=np.array(["1"] * N))),
    "feedback tick out of range": lambda s: s[1].observe(dataclasses.replace(s[3], tick=99)),
    "feedback twice for one round": lambda s: s[1].observe(s[3]),
}


@pytest.mark.parametrize("bad", BANDIT_POPULATION_BAD_CALLS.values(), ids=BANDIT_POPULATION_BAD_CALLS.keys())
def test_bandit_population_twin(bad):
    assert_twin(_bandit_population, bad, _play_bandit_population)
