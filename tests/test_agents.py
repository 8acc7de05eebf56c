"""Bidder API, baselines, the hindsight oracle and offline datasets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from auctionsim import ConfigError
from auctionsim.config import Mechanism
from auctionsim.envs import AuctionParallelEnv, FixedMultipliers, SingleBidderEnv, play_episode
from agents import BidderPolicy, CPAPacing, FunctionPolicy, MixedPopulation, OnlineLP, PIDPacing, TorchPolicy
from agents.datasets import OfflineDataset, collect_dataset
from agents.evaluation import play_focal
from agents.oracle import _knapsack_bounds, hindsight_oracle, lowest_seen_slot_costs


def test_pid_spends_close_to_its_budget_on_the_auctionnet_preset():
    env = AuctionParallelEnv("auctionnet")
    metrics = play_episode(env, PIDPacing(), seed=0).metrics
    assert metrics.budget_utilisation.mean() > 0.95
    assert np.median(metrics.budget_utilisation) > 0.97


def test_cpa_pacing_keeps_cpa_closer_to_target_than_pid():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=200_000)
    pid = play_episode(env, PIDPacing(), seed=1).metrics
    cpa = play_episode(env, CPAPacing(), seed=1).metrics
    assert np.mean(cpa.cpa_ratio <= 1.05) > np.mean(pid.cpa_ratio <= 1.05)
    assert cpa.total_score > pid.total_score


def test_online_lp_uses_the_prices_it_saw():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=100_000)
    record = play_episode(env, OnlineLP(), seed=0)
    # After the first tick the multipliers are solved from the pool, not the initial 0.8.
    assert not np.allclose(record.actions[5][record.live[5]], 0.8)
    assert ((record.actions[record.live[:-1]] >= 0.05) & (record.actions[record.live[:-1]] <= 1.0)).all()
    # A multiplier <= 1 under GSP never pays more than expected value on average.
    metrics = record.metrics
    spenders = metrics.spend > 0
    assert (metrics.spend[spenders] <= metrics.value_won[spenders] * 1.0001).all()


@pytest.mark.parametrize("mechanism", ["gsp", "fpa", "vcg"])
def test_hindsight_oracle_is_never_beaten_by_a_baseline(mechanism):
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=60_000, mechanism=mechanism)
    ids = env.market.population.ids
    mixed = MixedPopulation([(ids[0::4], PIDPacing()), (ids[1::4], CPAPacing()), (ids[2::4], OnlineLP())], default=FixedMultipliers(1.2))
    record = play_episode(env, mixed, seed=3)
    results = hindsight_oracle(env.market, record.ticks)
    for result in results:
        assert result.upper_bound >= result.realised - 1e-9, result
        assert result.upper_bound >= result.achievable - 1e-9
        assert result.achievable <= result.budget * 1e6  # finite


def test_knapsack_bounds_bracket_the_brute_force_optimum():
    generator = np.random.default_rng(0)
    for _ in range(30):
        value = generator.uniform(0.1, 2.0, 8)
        cost = generator.uniform(0.1, 2.0, 8)
        budget = generator.uniform(0.5, 6.0)
        best = max(
            sum(value[list(items)]) for r in range(9) for items in itertools.combinations(range(8), r) if sum(cost[list(items)]) <= budget
        )
        upper, achievable = _knapsack_bounds(value, cost, budget)
        assert achievable <= best + 1e-12 <= upper + 2e-12


def test_lowest_seen_slot_costs_by_mechanism():
    others = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.0], [0.5, 0.0, 0.0]])
    seen = np.array([3, 3, 1])
    exposure = (1.0, 0.8, 0.6)
    gsp = lowest_seen_slot_costs(others, seen, Mechanism.GSP, exposure, 0.01)
    np.testing.assert_allclose(gsp, [0.2, 0.01, 0.5])  # slot 3 behind 2 others; slot 2 (one behind: only 2 bid); slot 1
    fpa = lowest_seen_slot_costs(others, seen, Mechanism.FPA, exposure, 0.01)
    np.testing.assert_allclose(fpa, gsp)
    vcg = lowest_seen_slot_costs(others, seen, Mechanism.VCG, exposure, 0.01)
    # Row 0: slot 2 (0-based), externality 0.6 x 0.2 / 0.6 = 0.2; row 2: slot 0, sum over slots below.
    assert vcg[0] == pytest.approx(0.2)
    assert vcg[2] == pytest.approx((0.2 * 0.5 + 0.2 * 0.01 + 0.6 * 0.01) / 1.0)
    assert np.isinf(lowest_seen_slot_costs(others, np.array([0, 0, 0]), Mechanism.GSP, exposure, 0.01)).all()


class ConstantBidder:
    """A plug-in bidder: bids its constant, and counts what it observed."""

    def __init__(self, multiplier: float = 0.9) -> None:
        self.multiplier = multiplier
        self.observed = 0

    def reset(self, spec) -> None:
        self.spec = spec

    def act(self, observation: np.ndarray) -> float:
        return self.multiplier

    def observe(self, feedback) -> None:
        self.observed += 1
        assert feedback.spend >= 0 and feedback.budget_left <= self.spec.budget


def test_adapters_agree_with_fixed_multipliers():
    # 0.875 is exact in float32 too, so the torch adapter bids exactly what the others do.
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=20_000)
    reference = play_episode(env, FixedMultipliers(0.875), seed=4).metrics
    bidders = []

    def make(spec):
        bidders.append(ConstantBidder(0.875))
        return bidders[-1]

    for policy in (BidderPolicy(make), FunctionPolicy(lambda obs: np.full(len(obs), 0.875)), TorchPolicy(ConstantModule(0.875))):
        metrics = play_episode(env, policy, seed=4).metrics
        np.testing.assert_array_equal(metrics.spend, reference.spend)
    assert len(bidders) == 48 and all(b.observed == 48 for b in bidders)


class ConstantModule(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.value.expand(observations.shape[0], 1)


def test_mixed_population_routes_advertisers_to_their_policies():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=20_000)
    ids = env.market.population.ids
    mixed = MixedPopulation([(ids[:10], FixedMultipliers(0.0)), (ids[10:20], FixedMultipliers(2.0))], default=FixedMultipliers(1.0))
    record = play_episode(env, mixed, seed=0)
    first = record.actions[0]
    assert (first[:10] == 0).all() and (first[10:20] == 2).all() and (first[20:] == 1).all()
    with pytest.raises(ConfigError, match="in two groups"):
        play_episode(env, MixedPopulation([(ids[:2], PIDPacing()), (ids[1:3], PIDPacing())]), seed=0)


def test_custom_bidder_in_the_single_bidder_env():
    env = SingleBidderEnv("auctionnet", population=BidderPolicy(lambda spec: ConstantBidder(1.0)), focal=int(7), impressions_per_episode=20_000)
    observation, info = env.reset(seed=0)
    assert info["advertiser_id"] == 7
    total = 0.0
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(np.array([0.8], dtype=np.float32))
        total += reward
        done = terminated or truncated
    assert total > 0


def test_dataset_round_trip_and_schema(tmp_path):
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=20_000, n_ticks=8)
    dataset = collect_dataset(env, CPAPacing(), episodes=3, seed=10, action_noise=0.2, progress=False)
    path = dataset.save(tmp_path / "logs.npz")
    loaded = OfflineDataset.load(path)
    assert loaded.observations.shape == (3, 9, 48, 24) and loaded.actions.shape == (3, 8, 48)
    assert loaded.metadata["policy"] == "CPAPacing" and loaded.metadata["action_noise"] == 0.2
    np.testing.assert_array_equal(loaded.spend, dataset.spend)
    np.testing.assert_array_equal(loaded.seeds, [10, 11, 12])
    transitions = loaded.transitions()
    assert transitions.observations.shape[1] == 24
    assert transitions.dones.sum() == (loaded.terminated | loaded.truncated).sum()
    # The reward of a transition is the logged reward; next observation follows.
    e, t, i = transitions.episode[5], transitions.tick[5], transitions.advertiser[5]
    assert transitions.rewards[5] == loaded.rewards[e, t, i]
    np.testing.assert_array_equal(transitions.next_observations[5], loaded.observations[e, t + 1, i])
    # Exploration noise: actions vary around the policy's.
    assert loaded.actions[0, 0].std() > 0


def test_dataset_is_reproducible():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=20_000, n_ticks=4)
    first = collect_dataset(env, PIDPacing(), episodes=2, seed=1, action_noise=0.1, progress=False)
    second = collect_dataset(env, PIDPacing(), episodes=2, seed=1, action_noise=0.1, progress=False)
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.observations, second.observations)


def test_baseline_parameter_errors():
    with pytest.raises(ConfigError, match="multiplier bounds"):
        PIDPacing(min_multiplier=0.0)
    with pytest.raises(ConfigError, match="pool_size"):
        OnlineLP(pool_size=0)
    with pytest.raises(ConfigError, match="target_ratio"):
        CPAPacing(target_ratio=0.0)
    with pytest.raises(ConfigError, match="callable"):
        FunctionPolicy(3)


class ImpressionBidder:
    """A one-advertiser bidder that bids per impression: 0.9 x its value on each, reading its
    per-impression outcomes after every tick."""

    def reset(self, spec):
        self.cpa, self.seen = spec.cpa_target, []

    def act(self, observation):
        return 0.0  # ignored: it bids per impression

    def bid_impressions(self, pvalues, sigmas):
        return 0.9 * self.cpa * pvalues

    def observe(self, feedback):
        self.seen.append(feedback)


def test_per_impression_bidders_are_first_class_in_bidder_and_mixed_populations():
    env = AuctionParallelEnv("auctionnet", impressions_per_episode=12_000, n_ticks=5)
    native = play_episode(env, FixedMultipliers(0.9), seed=4)
    bidders = []

    def make(spec):
        bidders.append(ImpressionBidder())
        return bidders[-1]

    per_impression = play_episode(env, BidderPolicy(make), seed=4)
    np.testing.assert_array_equal(per_impression.metrics.spend, native.metrics.spend)
    np.testing.assert_array_equal(per_impression.observations, native.observations)
    # Its feedback carries the per-impression record, consistent with the aggregates.
    feedback = bidders[7].seen[2]
    assert feedback.impressions is not None and feedback.impressions.pvalues.shape == (feedback.opportunities,)
    assert int(feedback.impressions.won.sum()) == feedback.wins and int(feedback.impressions.converted.sum()) == feedback.conversions
    assert float(feedback.impressions.cost.sum()) == pytest.approx(feedback.spend, rel=1e-9)
    # In a mixed population, next to multiplier groups.
    ids = env.market.population.ids
    mixed = MixedPopulation([(ids[:16], BidderPolicy(ImpressionBidder)), (ids[16:32], PIDPacing())], default=FixedMultipliers(0.9))
    reference = MixedPopulation([(ids[:16], FixedMultipliers(0.9)), (ids[16:32], PIDPacing())], default=FixedMultipliers(0.9))
    np.testing.assert_array_equal(play_episode(env, mixed, seed=5).metrics.value_won, play_episode(env, reference, seed=5).metrics.value_won)
    assert mixed.bids_per_impression and not reference.bids_per_impression  # a BidderPolicy knows after its reset
    # As the focal bidder of the evaluation engine (it learns that it bids per impression at reset).
    envs = [SingleBidderEnv(AuctionParallelEnv("auctionnet", impressions_per_episode=12_000, n_ticks=5).market, population=FixedMultipliers(0.5), focal=9) for _ in range(2)]
    focal = [play_focal(bidder, [env], [3]) for bidder, env in zip((BidderPolicy(ImpressionBidder), FixedMultipliers(0.9)), envs)]
    np.testing.assert_array_equal(focal[0].value_won, focal[1].value_won)
    assert focal[0].value_won.sum() > 0
