"""Offline-RL core: data handling, expectile regression, BC/IQL/CQL/DT learning, checkpoints."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from agents.baselines import PIDPacing
from agents.evaluation import play_focal_episode
from agents.offline import (
    ActionScale,
    ActorBidder,
    BCConfig,
    CausalTransformer,
    CQLConfig,
    DTConfig,
    IQLConfig,
    OfflineData,
    expectile_loss,
    load_bidder,
    load_critic,
    save_critic,
    scaled_rewards,
    train_bc,
    train_cql,
    train_dt,
    train_iql,
)
from auctionsim.envs import SingleBidderEnv
from auctionsim.errors import ConfigError
from tests.offline_helpers import BANDIT_OFFSET, bandit_dataset, bandit_log_error, behaviour_mix, tiny_logs, tiny_market_env

SMALL_NET = dict(hidden_dim=64, hidden_layers=2)

# Small networks train several times faster on one thread than on two on a loaded machine
# (OpenMP threads spin-waiting for each other); the determinism tests do not depend on it.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bandit():
    dataset = bandit_dataset()
    return dataset, OfflineData(dataset, reward="value", device="cpu")


@pytest.fixture(scope="module")
def logs():
    return tiny_logs()


# ----------------------------------------------------------------------------- data


def _expectile_by_bisection(samples: np.ndarray, expectile: float) -> float:
    """The tau-expectile e solves tau E[(x - e)+] = (1 - tau) E[(e - x)+] (monotone in e)."""
    low, high = samples.min(), samples.max()
    for _ in range(200):
        middle = 0.5 * (low + high)
        balance = expectile * np.maximum(samples - middle, 0).mean() - (1 - expectile) * np.maximum(middle - samples, 0).mean()
        low, high = (middle, high) if balance > 0 else (low, middle)
    return 0.5 * (low + high)


@given(st.floats(0.1, 0.95), st.integers(0, 1000))
def test_expectile_loss_minimiser_matches_closed_form(expectile, seed):
    samples = np.random.default_rng(seed).exponential(1.0, 400)
    x = torch.as_tensor(samples)
    value = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([value], max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        optimizer.zero_grad()
        loss = expectile_loss(x - value, expectile)
        loss.backward()
        return loss

    optimizer.step(closure)
    assert value.item() == pytest.approx(_expectile_by_bisection(samples, expectile), abs=1e-6)


def test_expectile_half_is_half_the_squared_error():
    difference = torch.randn(100)
    assert expectile_loss(difference, 0.5).item() == pytest.approx(0.5 * difference.pow(2).mean().item())


@given(st.lists(st.floats(1e-3, 100.0), min_size=1, max_size=20))
def test_action_scale_round_trip(multipliers):
    scale = ActionScale(0.05, 5.0)
    tensor = torch.tensor(multipliers, dtype=torch.float64)
    unit = scale.to_unit(tensor)
    assert unit.min() >= -1 and unit.max() <= 1
    np.testing.assert_allclose(scale.to_multiplier(unit).numpy(), tensor.clamp(0.05, 5.0).numpy(), rtol=1e-9)


def test_rewards_recomputed_from_aggregates_match_the_env(logs):
    """The logs were written with reward "score"; recomputing it from spend and conversions
    through the env's own tracker gives the logged rewards exactly (after unscaling)."""
    recomputed = scaled_rewards(logs, "score") * (logs.budgets / logs.cpa_targets)
    np.testing.assert_allclose(recomputed, logs.rewards, rtol=1e-5, atol=1e-5)


def test_offline_data_layout_and_returns(logs):
    data = OfflineData(logs, device="cpu")
    episodes, ticks, advertisers = logs.actions.shape
    assert data.n_trajectories == episodes * advertisers and data.n_ticks == ticks
    assert data.n_transitions == int(logs.live[:, :-1].sum())
    trajectory = 3 * advertisers + 5  # episode 3, advertiser 5
    np.testing.assert_array_equal(data.observations[trajectory].numpy(), logs.observations[3, :, 5])
    rewards = scaled_rewards(logs, "score")[3, :, 5] * logs.live[3, :-1, 5]
    np.testing.assert_allclose(data.returns_to_go[trajectory].numpy(), np.cumsum(rewards[::-1])[::-1], rtol=1e-5, atol=1e-6)


@given(st.integers(1, 6), st.integers(0, 11), st.integers(0, 47))
def test_windows_match_numpy_slicing(context_length, last_tick, advertiser):
    data = OfflineData(_LOGS, device="cpu")
    trajectory = torch.tensor([advertiser])  # episode 0
    window = data.windows_at(trajectory, torch.tensor([last_tick]), context_length)
    for position in range(context_length):
        tick = last_tick - context_length + 1 + position
        if tick < 0:
            assert not window.mask[0, position]
            continue
        assert window.mask[0, position] == bool(_LOGS.live[0, tick, advertiser])
        np.testing.assert_array_equal(window.observations[0, position].numpy(), _LOGS.observations[0, tick, advertiser])
        assert window.timesteps[0, position] == tick
        expected_previous = data.actions[advertiser, tick - 1].item() if tick >= 1 else 0.0
        assert window.previous_actions[0, position].item() == pytest.approx(expected_previous)


_LOGS = tiny_logs(episodes=1)


def test_offline_data_rejects_bad_input(logs):
    with pytest.raises(ConfigError, match="OfflineDataset"):
        OfflineData([])
    with pytest.raises(ConfigError, match="reward"):
        OfflineData(logs, reward="profit")
    with pytest.raises(ConfigError, match="ticks per episode"):
        OfflineData([logs, tiny_logs(episodes=1, n_ticks=6)])
    with pytest.raises(ConfigError, match="low < high"):
        ActionScale(1.0, 0.5)
    with pytest.raises(ConfigError, match="context_length"):
        OfflineData(logs, device="cpu").sample_windows(4, 0)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: IQLConfig(expectile=1.5), "expectile"),
        (lambda: IQLConfig(steps=0), "steps"),
        (lambda: IQLConfig(learning_rate=float("nan")), "learning_rate"),
        (lambda: CQLConfig(conservative_weight=-1.0), "conservative_weight"),
        (lambda: DTConfig(context_length=0), "context_length"),
        (lambda: BCConfig(batch_size=-3), "batch_size"),
    ],
)
def test_configs_name_the_bad_field(build, field):
    with pytest.raises(ConfigError, match=field):
        build()


# ----------------------------------------------------------------------------- networks


def test_causal_transformer_is_causal_and_ignores_left_padding():
    torch.manual_seed(0)
    model = CausalTransformer(16, layers=2, heads=2, dropout=0.0).eval()
    tokens = torch.randn(1, 6, 16)
    changed = tokens.clone()
    changed[:, 4:] = torch.randn(1, 2, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[:, :4], model(changed)[:, :4])
        padded = torch.cat([torch.randn(1, 3, 16), tokens], dim=1)
        mask = torch.tensor([[True] * 3 + [False] * 6])
        out = model(padded, padding_mask=mask)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out[:, 3:], model(tokens), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- learning


def test_bc_recovers_the_behaviour_policy(bandit):
    dataset, data = bandit
    bidder = train_bc(data, BCConfig(steps=800, batch_size=128, learning_rate=3e-3, **SMALL_NET))
    observations = dataset.observations[:, 0].reshape(-1, dataset.observations.shape[-1])
    from tests.offline_helpers import optimal_log_multiplier

    offset = np.log(bidder.act(observations)) - optimal_log_multiplier(observations)
    assert np.mean(offset) == pytest.approx(BANDIT_OFFSET, abs=0.15)
    assert bandit_log_error(bidder, dataset) > 0.4


def test_iql_beats_bc_where_the_logs_hold_a_known_better_action():
    """The bandit's behaviour bids ``exp(0.6)`` times the optimum with log-normal noise, so the
    logs hold better actions than the average one. Rewards are scaled to our market's size
    (advantages ~0.02, as with per-advertiser scaled returns): there raw-advantage IQL at
    ``beta = 3`` weights every transition within ~0.9-1.05 and is behaviour cloning; IQL with
    normalised advantages (the default) at its default ``beta`` moves most of the way to the
    optimum, as it does at reward scale 1."""
    dataset = bandit_dataset(reward_scale=0.05)
    data = OfflineData(dataset, reward="value", device="cpu")
    fast = dict(steps=800, batch_size=128, learning_rate=1e-3, **SMALL_NET)
    bc_error = bandit_log_error(train_bc(data, BCConfig(**fast)), dataset)
    result = train_iql(data, IQLConfig(**fast))
    iql_error = bandit_log_error(result.bidder, dataset)
    raw = train_iql(data, IQLConfig(**fast, normalise_advantages=False, temperature=3.0))
    assert bc_error == pytest.approx(BANDIT_OFFSET, abs=0.1)
    assert iql_error < 0.5 * bc_error
    assert bandit_log_error(raw.bidder, dataset) > 0.85 * bc_error
    # The AWR weights of the defaults spread over an order of magnitude; the raw ones do not.
    assert result.history[-1]["weight_p95"] / result.history[-1]["weight_p05"] > 5
    assert raw.history[-1]["weight_p95"] / raw.history[-1]["weight_p05"] < 1.3
    # V is the upper expectile of Q over logged actions: above the mean reward of the data.
    values = result.critic.v(data.flat_observations()).detach()
    assert values.mean().item() > data.rewards[data.valid].mean().item()


def test_cql_improves_on_the_behaviour_policy(bandit):
    """A moderate conservative weight: the bandit's returns are at most 1 (one tick), so
    ``alpha = 1`` already ties the policy to the behaviour's actions (offset ~0.37 of 0.6)."""
    dataset, data = bandit
    config = CQLConfig(steps=800, batch_size=128, n_actions=4, critic_learning_rate=1e-3, actor_learning_rate=1e-3, conservative_weight=0.3, **SMALL_NET)
    bidder = train_cql(data, config)
    assert bandit_log_error(bidder, dataset) < 0.6 * BANDIT_OFFSET


def test_decision_transformer_conditioned_on_high_return_acts_better(bandit):
    dataset, data = bandit
    config = DTConfig(context_length=1, hidden_dim=32, layers=1, heads=2, dropout=0.0, steps=800, batch_size=128, learning_rate=3e-3, warmup_fraction=50 / 800, target_return=1.0)
    bidder = train_dt(data, config)
    from agents.offline import DTBidder
    from auctionsim.config import Population
    from auctionsim.envs.policy import PolicyContext

    observations = dataset.observations[:, 0].reshape(-1, dataset.observations.shape[-1])
    population = Population(ids=np.arange(len(observations)), budgets=np.ones(len(observations)), cpa_targets=np.ones(len(observations)), categories=np.zeros(len(observations), dtype=int))
    context = PolicyContext(population=population, market=tiny_market_env().market.config, market_size=len(observations), feature_names=tuple(dataset.feature_names), seed=0)

    def error_at(target: float) -> float:
        conditioned = DTBidder(bidder.model, config, target_return=target, reward="value", device="cpu")
        conditioned.reset(context)
        return bandit_log_error(conditioned, dataset)

    assert error_at(1.0) < 0.6 * BANDIT_OFFSET
    assert error_at(1.0) < error_at(0.2)


# ----------------------------------------------------------------------------- bidders


def _trained_bidders(data):
    fast = dict(steps=30, batch_size=32)
    return {
        "bc": train_bc(data, BCConfig(**fast, **SMALL_NET)),
        "iql": train_iql(data, IQLConfig(**fast, **SMALL_NET)).bidder,
        "cql": train_cql(data, CQLConfig(**fast, n_actions=2, **SMALL_NET)),
        "dt": train_dt(data, DTConfig(**fast, context_length=4, hidden_dim=32, layers=1, heads=2)),
    }


def test_bidders_save_and_load_weights_only_and_act_identically(logs, tmp_path):
    data = OfflineData(logs, device="cpu")
    for name, bidder in _trained_bidders(data).items():
        path = bidder.save(tmp_path / f"{name}.pt")
        torch.load(path, weights_only=True)  # a plain weights file
        loaded = load_bidder(path, device="cpu")
        assert type(loaded) is type(bidder)
        env = SingleBidderEnv(tiny_market_env().market, population=behaviour_mix(tiny_market_env()), focal=7)
        first = play_focal_episode(env, bidder, seed=3)
        second = play_focal_episode(env, loaded, seed=3)
        assert first == second, name
        assert first.mean_multiplier > 0


def test_critic_save_and_load(logs, tmp_path):
    data = OfflineData(logs, device="cpu")
    result = train_iql(data, IQLConfig(steps=20, batch_size=16, context_length=3, attention_layers=1, attention_heads=2, attention_dim=16, **SMALL_NET))
    batch = data.sample_transitions(8, torch.Generator().manual_seed(0), context_length=3)
    loaded = load_critic(save_critic(result.critic, tmp_path / "critic.pt"), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded.q(batch.history, batch.actions), result.critic.q(batch.history, batch.actions), rtol=0, atol=0)
        torch.testing.assert_close(loaded.v(batch.history), result.critic.v(batch.history), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="WindowBatch"):
        result.critic.q(batch.observations, batch.actions)


def test_load_bidder_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="checkpoint"):
        load_bidder(path)


class _Exploit:
    """A pickle that would run code when unpickled (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("load", [load_bidder, load_critic])
def test_loading_refuses_a_crafted_pickle_without_running_it(load, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "crafted.pt"
    torch.save({"format": "auctionsim.offline.v1", "kind": "actor", "config": _Exploit(marker), "state_dict": {}}, path)
    with pytest.raises(ConfigError, match="refusing to unpickle"):
        load(path)
    assert not marker.exists()


def test_actor_bidder_checks_observation_shape(logs):
    bidder = train_bc(OfflineData(logs, device="cpu"), BCConfig(steps=1, batch_size=4, **SMALL_NET))
    assert isinstance(bidder, ActorBidder)
    with pytest.raises(ConfigError, match="observations"):
        bidder.act(np.zeros((3, 5), dtype=np.float32))


def test_play_focal_episode_matches_market_metrics():
    env = SingleBidderEnv(tiny_market_env().market, population=PIDPacing(), focal=11)
    result = play_focal_episode(env, PIDPacing(), seed=0)
    metrics = env.market.episode_metrics()
    row = env.focal_row
    assert result.advertiser_id == 11
    assert result.conversions == metrics.conversions[row] and result.spend == pytest.approx(metrics.spend[row])
    assert result.spend <= result.budget + 1e-9


def test_learner_benchmark_prints_its_table_and_json_line(tmp_path):
    """``benchmarks/learners.py`` as a user runs it (2 timed steps of two learners, and LBM's rows
    on the tiny backbone)."""
    import json
    import subprocess
    import sys

    output = tmp_path / "learners.json"
    command = [sys.executable, "benchmarks/learners.py", "--steps", "2", "--only", "BC", "PE model", "--lbm-steps", "1", "--lbm-backbones", "tiny", "--output", str(output)]
    lines = subprocess.run(command, check=True, capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[1]).stdout.splitlines()
    rows = json.loads(next(line for line in lines if line.startswith("JSON "))[5:])["results"]
    assert [(row["learner"], row["device"]) for row in rows] == [("BC", "cpu"), ("PE model", "cpu"), ("LBM-Act tiny", "cpu"), ("LBM-Think tiny CoTs", "cpu")]
    assert all(row["samples_per_second"] > 0 and row["samples_per_cpu_second"] > 0 for row in rows)
    assert any(line.startswith("learner") and "samples/s" in line for line in lines)
    assert json.loads(output.read_text())["results"] == rows and (tmp_path / "learners.json.manifest.json").exists()
