"""Bad inputs found from outside (issue 17, items 1-8): each defect has a test here that failed on
the code before its fix. Every error is an ``AuctionSimError`` naming the field and value, raised
before any state changes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import small_config, small_population

from auctionsim import ActionError, ActionTypeError, ConfigError, Market, MarketConfig, Population
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, SingleBidderEnv
from auctionsim.errors import AuctionSimError, EpisodeOverError
from auctionsim.traffic import ExplicitTraffic

TINY = dict(impressions_per_episode=2_000, n_ticks=4)


def _market(**overrides) -> Market:
    return Market(small_config(**overrides), small_population())


def _state(market: Market) -> tuple:
    """Everything a rejected call must leave alone."""
    return (market.seed, market.episode, market.tick, market.budget_left.tolist(), {k: v.tolist() for k, v in market.totals().items()}, len(market.history))


class CountingPopulation(FixedMultipliers):
    """Bids 1.0 and counts its ``act`` calls (state a rejected step must not advance)."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.acts = 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.acts += 1
        return super().act(observations)


# ---------------------------------------------------------------- 1. float32 action-space bounds
@pytest.mark.parametrize("bounds", [(0.7, 1.3), (0.1, 0.3), (0.0, 5.0)])
def test_actions_at_the_action_space_bounds_are_accepted(bounds):
    env = AuctionParallelEnv("auctionnet", multiplier_bounds=bounds, **TINY)
    env.reset(seed=0)
    for edge in ("low", "high"):
        env.step({agent: getattr(env.action_space(agent), edge) for agent in env.agents})
    single = SingleBidderEnv("auctionnet", FixedMultipliers(float(np.mean(bounds))), multiplier_bounds=bounds, **TINY)
    single.reset(seed=0)
    single.step(single.action_space.low)
    single.step(single.action_space.high)


@pytest.mark.parametrize("bounds", [(0.7, 1.3), (0.1, 0.3)])
def test_actions_beyond_the_float32_bounds_are_still_rejected(bounds):
    """Accepting the space's own float32 bounds must not widen the accepted range beyond them."""
    env = AuctionParallelEnv("auctionnet", multiplier_bounds=bounds, **TINY)
    env.reset(seed=0)
    space = env.action_space(env.agents[0])
    below = np.nextafter(np.float64(space.low[0]), -np.inf)
    above = np.nextafter(np.float64(space.high[0]), np.inf)
    for outside in (below, above):
        actions = np.full(env.max_num_agents, float(space.low[0]))
        actions[3] = outside
        with pytest.raises(ActionError, match="adv_"):
            env.step_arrays(actions)
    assert env.market.tick == 0


def test_bounds_are_stored_as_the_space_has_them_and_bid_grids_must_fit_inside():
    """``multiplier_bounds`` is the float32 interval that is accepted, so code that clips to it (in
    float64) stays inside; a bid grid must fit the same interval."""
    env = AuctionParallelEnv("auctionnet", multiplier_bounds=(0.7, 1.3), **TINY)
    space = env.action_space(env.possible_agents[0])
    assert env.multiplier_bounds == (float(space.low[0]), float(space.high[0])) == (float(np.float32(0.7)), float(np.float32(1.3)))
    env.reset(seed=0)
    env.step_arrays(np.clip(np.linspace(0.0, 2.0, env.max_num_agents), *env.multiplier_bounds))
    low, high = env.multiplier_bounds
    single = SingleBidderEnv("auctionnet", multiplier_bounds=(0.7, 1.3), bid_grid=[low, 1.0, high], **TINY)
    single.reset(seed=0)
    for action in range(3):
        single.step(action)
    with pytest.raises(ConfigError, match="bid_grid"):
        SingleBidderEnv("auctionnet", multiplier_bounds=(0.7, 1.3), bid_grid=[0.7, 1.0, 1.3], **TINY)  # 1.3 > float32(1.3)


# ---------------------------------------------------------------- 2. rejected single-bidder step
@pytest.mark.parametrize("bad", [np.nan, 9.0, -1.0, np.array([[1.0]])])
def test_rejected_single_bidder_step_does_not_advance_the_population(bad):
    population = CountingPopulation()
    env = SingleBidderEnv("auctionnet", population=population, focal=5, **TINY)
    env.reset(seed=0)
    env.step(np.array([1.0], dtype=np.float32))
    before = (population.acts, _state(env.market))
    with pytest.raises(ActionError):
        env.step(bad)
    assert (population.acts, _state(env.market)) == before


# ---------------------------------------------------------------- 3. ids are never truncated
@pytest.mark.parametrize("bad_id", [100.5, "100", np.float64(107.9), True, 2**63, 2**64 + 100, -(2**63) - 1])
def test_advertiser_ids_that_are_not_integers_are_rejected(bad_id):
    market = _market()
    market.reset(seed=0)
    before = _state(market)
    bids = np.full(market.impressions_next_tick, 0.01)
    with pytest.raises(ActionError, match="impression_bids"):
        market.step(np.ones(6), impression_bids={bad_id: bids})
    with pytest.raises(ActionError):
        market.tick_values([bad_id])
    assert _state(market) == before
    with pytest.raises(ConfigError, match="focal"):
        SingleBidderEnv(Market(small_config(), small_population()), focal=bad_id)


def test_integral_ids_of_any_integer_type_still_work():
    market = _market()
    market.reset(seed=0)
    for same in (107, np.int64(107), np.uint16(107), 107.0):
        assert market.tick_values([same]).advertiser_ids.tolist() == [107]
    bids = np.full(market.impressions_next_tick, 0.01)
    market.step(np.ones(6), impression_bids={np.int32(107): bids})
    assert SingleBidderEnv(Market(small_config(), small_population()), focal=np.int64(107)).focal_id == 107


# ---------------------------------------------------------------- 4. run_episode validates first
@pytest.mark.parametrize("bad", [np.full(6, np.nan), np.ones(5), np.full(6, 1e308), "x"])
def test_run_episode_validates_before_resetting(bad):
    market = _market()
    market.reset(seed=3)
    market.step(np.ones(6))
    before = _state(market)
    with pytest.raises(AuctionSimError):
        market.run_episode(bad, seed=11)
    assert _state(market) == before


# ---------------------------------------------------------------- 5. exact tick welfare
def test_tick_social_welfare_is_an_exact_sum_and_permutation_invariant():
    population = Population(
        ids=np.arange(48),
        budgets=np.full(48, 1e9),
        cpa_targets=np.random.default_rng(0).uniform(60, 130, 48),
        categories=np.arange(48) % 6,
    )
    order = np.random.default_rng(1).permutation(48)
    config = MarketConfig(n_ticks=8, impressions_per_episode=4_000)
    market, permuted = Market(config, population), Market(config, population.permuted(order))
    market.reset(seed=5)
    permuted.reset(seed=5)
    multipliers = np.random.default_rng(2).uniform(0.5, 2.0, 48)
    while not market.done:
        result, result_permuted = market.step(multipliers), permuted.step(multipliers[order])
        np.testing.assert_array_equal(result.value_won[order], result_permuted.value_won)
        assert result.market.social_welfare == math.fsum(result.value_won.tolist())
        assert result.market.social_welfare == result_permuted.market.social_welfare


# ---------------------------------------------------------------- 6. huge finite multipliers
@pytest.mark.parametrize("huge", [1e308, 1e200, np.finfo(np.float64).max])
def test_huge_multipliers_are_rejected_without_overflow(huge):
    market = _market()
    market.reset(seed=0)
    before = _state(market)
    multipliers = np.ones(6)
    multipliers[2] = huge
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way to the error
        with pytest.raises(ActionError, match=r"multipliers\[2\]"):
            market.step(multipliers)
        with pytest.raises(ActionError, match="impression_bids"):
            market.step(np.ones(6), impression_bids={100: np.full(market.impressions_next_tick, huge)})
    assert _state(market) == before


def test_huge_multiplier_bounds_are_rejected():
    with pytest.raises(ConfigError, match="multiplier_bounds"):
        AuctionParallelEnv("auctionnet", multiplier_bounds=(0.0, 1e39), **TINY)
    with pytest.raises(ConfigError, match="multiplier_bounds"):
        AuctionParallelEnv("auctionnet", multiplier_bounds=(1.0, 1.0 + 1e-12), **TINY)  # one float32 value


# ---------------------------------------------------------------- 7. score_exponent
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "2", True, None])
def test_score_exponent_is_validated(bad):
    with pytest.raises(ConfigError, match="score_exponent"):
        Market(small_config(), small_population(), score_exponent=bad)


# ---------------------------------------------------------------- 8. clear errors
def test_impression_bids_given_an_array_is_a_named_type_error():
    market = _market()
    market.reset(seed=0)
    with pytest.raises(ActionTypeError, match="impression_bids"):
        market.step(np.ones(6), impression_bids=np.ones(market.impressions_next_tick))
    assert market.tick == 0


def test_population_permuted_and_subset_take_integer_positions_only():
    population = small_population()
    with pytest.raises(ConfigError, match="order"):
        population.permuted(np.array([0.0, 1.5, 2.0, 3.0, 4.0, 5.0]))
    with pytest.raises(ConfigError, match="order"):
        population.permuted(["0", "1", "2", "3", "4", "5"])
    assert population.permuted(np.arange(6.0)[::-1]).ids.tolist() == population.ids[::-1].tolist()
    with pytest.raises(ConfigError, match="positions"):
        population.subset([0.5])
    with pytest.raises(ConfigError, match="positions"):
        population.subset([6])


def test_explicit_traffic_errors_are_named():
    with pytest.raises(ConfigError, match="pvalues"):
        ExplicitTraffic(pvalues=[["0.1", "0.2"]], impressions_per_tick=np.array([1]))
    with pytest.raises(ConfigError, match="sigmas"):
        ExplicitTraffic(pvalues=[[0.1, 0.2]], sigmas=[["a", "b"]], impressions_per_tick=np.array([1]))
    traffic = ExplicitTraffic(pvalues=np.full((10, 6), 0.1), impressions_per_tick=np.array([5, 5]))
    with pytest.raises(ConfigError, match="impressions_per_episode"):
        Market(MarketConfig(n_ticks=2, impressions_per_episode=20), small_population(), traffic)
    Market(MarketConfig(n_ticks=2, impressions_per_episode=10), small_population(), traffic)


@pytest.mark.parametrize("bounds", [("a", 1.0), (0.0, 1.0, 2.0), (0.5,), "01", None, (0.0, float("nan")), (True, 2.0)])
def test_bad_multiplier_bounds_are_named(bounds):
    with pytest.raises(ConfigError, match="multiplier_bounds"):
        AuctionParallelEnv("auctionnet", multiplier_bounds=bounds, **TINY)


def test_unknown_reward_is_a_config_error():
    with pytest.raises(ConfigError, match="reward must be one of"):
        AuctionParallelEnv("auctionnet", reward="bogus", **TINY)


def test_stepping_a_never_reset_env_asks_for_reset():
    env = AuctionParallelEnv("auctionnet", **TINY)
    actions = {agent: np.array([1.0], dtype=np.float32) for agent in env.possible_agents}
    with pytest.raises(EpisodeOverError, match="reset"):
        env.step(actions)
    with pytest.raises(EpisodeOverError, match="reset"):
        env.step_arrays(np.ones(env.max_num_agents))
    single = SingleBidderEnv("auctionnet", **TINY)
    with pytest.raises(EpisodeOverError, match="reset"):
        single.step(np.array([1.0], dtype=np.float32))


def test_one_multiplier_means_a_scalar_or_shape_1():
    env = AuctionParallelEnv("auctionnet", **TINY)
    env.reset(seed=0)
    actions = {agent: np.array([1.0], dtype=np.float32) for agent in env.agents}
    actions["adv_3"] = np.array([[1.0]])
    with pytest.raises(ActionError, match="adv_3"):
        env.step(actions)
    single = SingleBidderEnv("auctionnet", **TINY)
    single.reset(seed=0)
    with pytest.raises(ActionError, match="one multiplier"):
        single.step(np.array([[1.0]]))
    assert env.market.tick == single.market.tick == 0
    single.step(np.float32(1.0))
    single.step(np.array([1.0]))
