"""BPG (agents.bpg): the dual/primal arithmetic, the RLlib env and learner pieces, and real RLlib
runs on tiny markets (one Ray instance for the module)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from agents.bpg import BPG, BPGConfig, BPGMarketEnv, dual_update, is_constrained, market_spec, primal_weights, resolve_epsilon
from agents.bpg.env import NU_BAR, POPULATION, ROLE, X_STAR
from agents.bpg.learner import group_baselines, returns_to_go, row_gae, sample_rows
from agents.bpg.module import RowPolicyModule, row_log_probs
from auctionsim.envs import AuctionParallelEnv
from auctionsim.errors import ConfigError
from tests.ray_helpers import local_ray

TINY = dict(impressions_per_episode=2_000, n_ticks=6)


def tiny_config(n_advertisers: int = 3, **bpg) -> BPGConfig:
    settings = dict(seed=3, episodes_per_kind=2, xstar_episodes=2, xstar_updates=1, xstar_pretrain_updates=1, nu_minibatch_size=16)
    settings.update(bpg)
    return BPGConfig().bpg(market=market_spec(n_advertisers, **TINY), **settings).training(num_epochs=2, minibatch_size=16)


@pytest.fixture(scope="module")
def ray_instance():
    """Ray for this module's RLlib runs, shut down after it (other modules expect no Ray)."""
    yield from local_ray("ray-bpg-tests-")


def module_weights(algo: BPG, module_id: str) -> dict[str, np.ndarray]:
    return {name: np.array(value) for name, value in algo.learner_group.get_weights(module_ids=[module_id])[module_id].items()}


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- dual / primal arithmetic
@given(
    st.lists(st.floats(1.0, 100.0), min_size=2, max_size=12),
    st.data(),
    st.floats(0.0, 0.3),
    st.floats(0.0, 1.0),
)
def test_dual_update_is_eq13_in_mean_advertiser_units(returns, data, epsilon, mix):
    returns = np.array(returns)
    gains = np.array(data.draw(st.lists(st.floats(-50.0, 50.0), min_size=len(returns), max_size=len(returns))))
    duals = dual_update(returns, gains, epsilon, mix)
    welfare = returns.sum()
    expected = np.maximum(gains - epsilon * welfare, 0.0) / (welfare / len(returns))
    np.testing.assert_allclose(duals.lambdas, expected)
    assert np.all((duals.lambdas > 0) == (duals.violation > 0))
    assert math.isclose(duals.kappa.sum(), 1.0) and math.isclose(duals.sampling.sum(), 1.0)
    if duals.lambda_sum > 0:
        np.testing.assert_allclose(duals.kappa, duals.lambdas / duals.lambda_sum)
    else:
        np.testing.assert_allclose(duals.kappa, 1.0 / len(returns))
    np.testing.assert_allclose(duals.sampling, (1 - mix) * duals.kappa + mix / len(returns))


@given(
    st.lists(st.floats(1.0, 100.0), min_size=2, max_size=12),
    st.data(),
    st.floats(0.0, 0.3),
    st.floats(0.01, 2.0),
    st.one_of(st.none(), st.floats(0.1, 5.0)),
)
def test_ascent_dual_accumulates_the_violation_and_respects_the_cap(returns, data, epsilon, step, cap):
    returns = np.array(returns)
    n = len(returns)
    gains = np.array(data.draw(st.lists(st.floats(-50.0, 50.0), min_size=n, max_size=n)))
    previous = np.array(data.draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n)))
    duals = dual_update(returns, gains, epsilon, previous_lambdas=previous, dual_step=step, lambda_max=cap)
    violation = (gains - epsilon * returns.sum()) / (returns.sum() / n)
    expected = np.maximum(previous + step * violation, 0.0)
    np.testing.assert_allclose(duals.lambdas, expected if cap is None else np.minimum(expected, cap))
    # Memory: a violated constraint raises lambda above its last value (up to the cap); a slack
    # one lowers it, never below 0 -- unlike Eq. 13, which forgets the last value.
    raised = violation > 0
    assert np.all(duals.lambdas[raised] >= np.minimum(previous[raised], cap if cap is not None else np.inf) - 1e-12)
    assert np.all(duals.lambdas[~raised] <= previous[~raised] + 1e-12) and np.all(duals.lambdas >= 0)
    # The cap alone applies to Eq. 13 too.
    closed = dual_update(returns, gains, epsilon, lambda_max=cap)
    np.testing.assert_allclose(closed.lambdas, np.maximum(violation, 0.0) if cap is None else np.minimum(np.maximum(violation, 0.0), cap))


def test_primal_weights_follow_gradient_11_and_c21():
    returns, n = np.full(4, 10.0), 4
    slack = dual_update(returns, np.array([1.0, -2.0, 0.0, 3.0]), epsilon=0.1)  # every gain <= 4 = eps x SW
    assert slack.lambda_sum == 0.0
    for objective in ("bpg", "bpg_zero"):
        weights = primal_weights(slack, objective, xi=5.0)
        # Appendix C.2.1: Delta theta = -L1 (cooperative episodes, weights 1), Delta nu-bar = 0.
        assert weights.episode_kinds == ("cooperative",)
        np.testing.assert_array_equal(weights.team_weights, np.ones(n))
        assert not weights.deviation.any() and not weights.weighted.any() and not weights.nu_bar.any()
    tight = dual_update(returns, np.array([30.0, 0.0, 10.0, 0.0]), epsilon=0.0, kappa_uniform_mix=0.5)
    lambda_sum, kappa, q = tight.lambda_sum, tight.kappa, tight.sampling  # lambda = [3, 0, 1, 0]
    np.testing.assert_allclose(tight.lambdas, [3.0, 0.0, 1.0, 0.0])
    bpg = primal_weights(tight, "bpg", xi=10.0)
    np.testing.assert_allclose(bpg.team_weights, 1 + tight.lambdas)
    np.testing.assert_allclose(bpg.deviation, (10.0 - lambda_sum) * kappa / q)  # (xi - lambda_bar) E_kappa
    np.testing.assert_allclose(bpg.weighted, -10.0 * kappa / q)  # -xi L*_w
    np.testing.assert_allclose(bpg.nu_bar, (1 - lambda_sum / 10.0) * kappa / q)
    # Importance weights make the q-sampled terms unbiased for the kappa-weighted expectations.
    assert math.isclose(float((q * bpg.weighted).sum()), -10.0)
    zero = primal_weights(tight, "bpg_zero", xi=10.0)
    assert zero.episode_kinds == ("cooperative", "weighted")
    np.testing.assert_allclose(zero.weighted, -lambda_sum * kappa / q)
    assert primal_weights(tight, "cooperative", xi=1.0).episode_kinds == ("cooperative",)
    np.testing.assert_array_equal(primal_weights(tight, "cooperative", xi=1.0).team_weights, np.ones(n))
    assert primal_weights(tight, "selfish", xi=1.0).episode_kinds == ("selfish",)


@pytest.mark.parametrize(
    "call",
    [
        lambda: dual_update([1.0, 2.0], [0.0], 0.1),
        lambda: dual_update([1.0, np.nan], [0.0, 0.0], 0.1),
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], -0.1),
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], 0.1, kappa_uniform_mix=1.5),
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], 0.1, dual_step=0.5),  # ascent needs the last lambdas
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], 0.1, previous_lambdas=[0.0, -1.0], dual_step=0.5),
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], 0.1, previous_lambdas=[0.0, 0.0], dual_step=0.0),
        lambda: dual_update([1.0, 2.0], [0.0, 0.0], 0.1, lambda_max=-1.0),
        lambda: BPGConfig().bpg(dual_step=float("inf")).validate(),
        lambda: BPGConfig().bpg(lambda_max=0.0).validate(),
        lambda: primal_weights(dual_update([1.0, 2.0], [0.0, 0.0], 0.1), "altruistic", 1.0),
        lambda: primal_weights(dual_update([1.0, 2.0], [0.0, 0.0], 0.1), "bpg", float("inf")),
        lambda: BPGConfig().bpg(objective="nash").validate(),
        lambda: BPGConfig().bpg(epsilon=float("nan")).validate(),
        lambda: BPGConfig().bpg(episodes_per_kind=0).validate(),
        lambda: BPGConfig().bpg(objective="bpg", track_exploitability=False).validate(),
        lambda: market_spec(1),
        lambda: BPGMarketEnv({"market": market_spec(3, **TINY), "log_multiplier_low": 5.0}),
        lambda: BPGMarketEnv({"market": market_spec(3, **TINY)}).set_phase("mixed"),
        lambda: BPGMarketEnv({"market": market_spec(3, **TINY)}).set_phase("deviation", sampling=[1.0, -1.0, 1.0]),
        lambda: BPGMarketEnv({"market": market_spec(3, **TINY)}).set_phase("cooperative", reward_scale=0.0),
    ],
)
def test_bad_input_raises_config_error(call):
    with pytest.raises(ConfigError):
        call()


# ---------------------------------------------------------------------- env and learner pieces
def test_env_signals_match_a_replay_of_the_pettingzoo_env():
    spec = market_spec(4, **TINY)
    env = BPGMarketEnv({"market": spec})
    n, d = env.n, env.n_features
    team = np.array([1.0, 2.0, 1.5, 1.0])
    replay = AuctionParallelEnv(spec.build(), reward="value")
    for kind in ("cooperative", "selfish", "deviation", "weighted"):
        env.set_phase(kind, team_weights=team, sampling=[0.0, 0.0, 1.0, 0.0], reward_scale=2.0, seed=11)
        observations, infos = env.reset()
        deviator = env.deviator
        assert (deviator == 2) == (kind in ("deviation", "weighted")) and (deviator == -1) != (deviator == 2)
        deviating_agent = {"deviation": NU_BAR, "weighted": X_STAR}.get(kind)
        assert set(observations) == {POPULATION} | ({deviating_agent} if deviating_agent else set())
        replay_observations = replay.reset_arrays(infos[POPULATION]["market_seed"])
        np.testing.assert_array_equal(observations[POPULATION][:, :d], replay_observations)
        generator = np.random.default_rng(0)
        done = False
        while not done:
            actions = {POPULATION: generator.uniform(-1, 1, n).astype(np.float32)}
            multipliers = np.exp(actions[POPULATION].astype(np.float64))
            if deviating_agent:
                actions[deviating_agent] = np.array([0.8], dtype=np.float32)
                multipliers[deviator] = np.exp(np.float64(np.float32(0.8)))
            observations, rewards, terminateds, truncateds, _ = env.step(actions)
            step = replay.step_arrays(np.where(replay.live, multipliers, 0.0))
            signal = observations[POPULATION][:, d + 2]
            expected = {
                "cooperative": np.full(n, team @ step.rewards),
                "selfish": step.rewards,
            }.get(kind, np.full(n, step.rewards[deviator] if deviator >= 0 else 0.0))
            np.testing.assert_allclose(signal, expected / 2.0, rtol=1e-5)
            np.testing.assert_array_equal(observations[POPULATION][:, :d], step.observations)
            roles = observations[POPULATION][:, d]
            np.testing.assert_array_equal(roles[~step.live & (np.arange(n) != deviator)], 0)
            done = terminateds["__all__"] or truncateds["__all__"]
            if deviating_agent and done and not replay.market.done:
                assert not step.live[deviator]  # the episode ends with the deviator
        assert done


def test_module_init_and_exploration_do_not_depend_on_global_rng_or_call_order():
    # RLlib builds and queries the modules in an order that depends on string hashing; with
    # init_seed and set_exploration_seed, neither the global generator nor the order matters.
    env = BPGMarketEnv({"market": market_spec(3, **TINY)})
    observations = {"obs": torch.rand(4, *env.observation_spaces[POPULATION].shape)}

    def build_and_sample(order, global_seed):
        torch.manual_seed(global_seed)
        modules = {}
        for name in order:
            torch.rand(7)  # other code drawing from the global generator in between
            modules[name] = RowPolicyModule(
                observation_space=env.observation_spaces[POPULATION], action_space=env.action_spaces[POPULATION],
                model_config={"hidden": [8], "critic_hidden": [8], "init_seed": 5},
            )
            modules[name].set_exploration_seed({"a": 1, "b": 2}[name])
        actions = {}
        for name in order:
            torch.rand(3)
            with torch.no_grad():
                output = modules[name].forward_exploration(observations)
            actions[name] = output[Columns.ACTIONS].numpy()
            expected_logp = row_log_probs(output[Columns.ACTION_DIST_INPUTS], output[Columns.ACTIONS]).sum(-1)
            np.testing.assert_allclose(output[Columns.ACTION_LOGP].numpy(), expected_logp.numpy(), rtol=1e-5)
        return actions, {name: [p.detach().clone() for p in module.parameters()] for name, module in modules.items()}

    actions, parameters = build_and_sample(["a", "b"], 0)
    swapped_actions, swapped_parameters = build_and_sample(["b", "a"], 1)
    for name in ("a", "b"):
        np.testing.assert_array_equal(actions[name], swapped_actions[name])
        assert all(torch.equal(p, q) for p, q in zip(parameters[name], swapped_parameters[name]))
    assert not np.array_equal(actions["a"], actions["b"])  # distinct seeds, distinct noise


@given(st.integers(1, 4), st.integers(2, 7), st.floats(0.5, 1.0), st.floats(0.0, 1.0))
def test_row_gae_matches_rllib_column_by_column(rows, length, gamma, lambda_):
    generator = np.random.default_rng(rows * 100 + length)
    # Two episodes (one terminated, one truncated), each followed by RLlib's bootstrap step.
    terminateds = np.array([0] * (length - 1) + [1, 0] + [0] * (length - 1) + [0, 0], dtype=bool)
    truncateds = np.array([0] * (length - 1) + [0, 0] + [0] * (length - 1) + [1, 0], dtype=bool)
    values = generator.normal(size=(2 * length + 2, rows))
    rewards = generator.normal(size=(2 * length + 2, rows))
    advantages = row_gae(values, rewards, terminateds, truncateds, gamma, lambda_)
    for column in range(rows):
        targets = compute_value_targets(values[:, column], rewards[:, column], terminateds.astype(float), truncateds.astype(float), gamma, lambda_)
        mask = np.ones(2 * length + 2, dtype=bool)
        mask[[length, 2 * length + 1]] = False  # the bootstrap steps are masked out of the loss
        np.testing.assert_allclose((advantages[:, column] + values[:, column])[mask], targets[mask], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- real RLlib runs
def test_tiny_bpg_run_end_to_end(ray_instance):
    algo = tiny_config(epsilon=0.0, kappa_uniform_mix=0.5).build_algo()
    try:
        before = {module: module_weights(algo, module) for module in (POPULATION, NU_BAR, X_STAR)}
        result = algo.train()
        algo.train()
        history = algo.history
        assert [record["iteration"] for record in history] == [1, 2]
        for record in history:
            assert all(math.isfinite(record[key]) for key in ("welfare", "revenue", "lambda_sum", "max_gain_normalised"))
            assert record["lambda_sum"] >= 0 and record["welfare"] > 0
        assert result["bpg"]["welfare"] == history[0]["welfare"]
        after = {module: module_weights(algo, module) for module in (POPULATION, NU_BAR, X_STAR)}
        assert not weights_equal(before[POPULATION], after[POPULATION])
        assert not weights_equal(before[X_STAR], after[X_STAR])
        # nu-bar trains exactly when some lambda was positive (Appendix C.2.1 otherwise).
        assert weights_equal(before[NU_BAR], after[NU_BAR]) == all(record["lambda_sum"] == 0 for record in history)
        policy = algo.population_policy()
        assert policy.act(np.zeros((5, algo.market_env.n_features), dtype=np.float32)).shape == (5,)
    finally:
        algo.stop()


def test_training_plays_the_actions_the_module_sampled_and_evaluation_plays_its_mean(ray_instance, monkeypatch):
    # Regression: with RLlib's default normalize_actions=True the env runners mapped the
    # module's actions from [-1, 1] onto [low, high] (a = 0 bid 0.5, not 1), while evaluation
    # and the dual step play exp(mean): training and evaluation were different policies.
    applied = []
    step = BPGMarketEnv.step

    def recording_step(self, action_dict):
        applied.append({agent: np.asarray(action, dtype=np.float64).copy() for agent, action in action_dict.items()})
        return step(self, action_dict)

    monkeypatch.setattr(BPGMarketEnv, "step", recording_step)
    algo = tiny_config(epsilon=0.0).build_algo()
    try:
        algo.bpg_state.reward_scale = 1.0
        for kind in ("cooperative", "weighted"):
            applied.clear()
            (episode,) = algo._sample(kind, 1, 11)
            for agent, single in episode.agent_episodes.items():
                sampled = np.asarray(single.get_actions(), dtype=np.float64)
                played = np.array([step_actions[agent] for step_actions in applied if agent in step_actions])
                np.testing.assert_allclose(played, sampled, rtol=1e-6, atol=1e-6)
        # Without noise the population's training episode bids exactly what evaluation bids.
        module = algo.env_runner.module[POPULATION]
        with torch.no_grad():
            module.log_std.fill_(-30.0)
        applied.clear()
        (episode,) = algo._sample("cooperative", 1, 12)
        observations = np.asarray(episode.agent_episodes[POPULATION].get_observations(), dtype=np.float32)[:-1, :, : algo.market_env.n_features]
        expected = np.stack([algo.population_policy().act(rows) for rows in observations])
        np.testing.assert_allclose(np.exp([step_actions[POPULATION] for step_actions in applied]), expected, rtol=1e-5)
    finally:
        algo.stop()


def _population_loss(learner, episodes):
    """The learner's population loss on one batch (its current primal weights), with the batch."""
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}, metrics=learner.metrics)
    data = batch[POPULATION]
    module = learner.module[POPULATION].unwrapped()
    output = module.forward_train(data)
    return learner.compute_loss_for_module(module_id=POPULATION, config=learner.config.get_config_for_module(POPULATION), batch=data, fwd_out=output), data


def _learner_loss_gradients(learner, episodes, coefficients):
    """Gradients of the learner's population loss and of the L1 reference on one batch."""
    learner.set_primal_weights(coefficients)
    module = learner.module[POPULATION].unwrapped()
    parameters = list(module.actor.parameters())
    loss, data = _population_loss(learner, episodes)
    gradients = torch.autograd.grad(loss, parameters)
    # Reference: the cooperative policy gradient, sum over acting rows of A x log pi, on the
    # cooperative timesteps only (at the sampling parameters PPO's surrogate has this gradient).
    observations = data[Columns.OBS]
    roles = observations[..., module.n_features + ROLE]
    cooperative = ~(roles >= 2).any(dim=-1) & data[Columns.LOSS_MASK].bool()
    acting = (roles == 1) & cooperative[:, None]
    log_probs = row_log_probs(module.forward_train(data)[Columns.ACTION_DIST_INPUTS], data[Columns.ACTIONS])
    reference = -(data[Postprocessing.ADVANTAGES] * log_probs * acting).sum() / (cooperative.sum() * roles.shape[-1])
    return gradients, torch.autograd.grad(reference, parameters)


def test_lambda_zero_primal_gradient_is_the_cooperative_gradient(ray_instance):
    algo = tiny_config(epsilon=0.0).build_algo()
    try:
        algo.train()  # sets the signal unit and trains a little, so advantages are not trivial
        n = algo.n_advertisers
        slack = dual_update(np.ones(n), np.zeros(n), epsilon=0.5)
        weights = primal_weights(slack, "bpg", algo.xi)
        assert weights.episode_kinds == ("cooperative",)
        episodes = []
        for kind in ("cooperative", "deviation", "weighted"):
            episodes += algo._sample(kind, 2, seed=5 + len(episodes), team_weights=weights.team_weights, sampling=slack.sampling)
        coefficients = {"deviation": weights.deviation, "weighted": weights.weighted, "nu_bar": weights.nu_bar}

        def gradients(learner):
            return [[g.numpy() for g in pair] for pair in _learner_loss_gradients(learner, episodes, coefficients)]

        (call,) = algo.learner_group.foreach_learner(gradients)
        loss_gradients, reference_gradients = call.result_or_error.get()
        assert any(np.abs(g).max() > 0 for g in reference_gradients)
        for got, expected in zip(loss_gradients, reference_gradients):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    finally:
        algo.stop()


def test_primal_loss_is_gradient_11_divided_by_its_largest_coefficient(ray_instance):
    # A step size per update (see BPGTorchLearner.set_primal_weights): the direction of gradient
    # (11) is kept, its scale no longer jumps ~xi-fold when lambda turns positive (which left
    # Adam stepping ~N times too short after lambda returned to 0).
    algo = tiny_config(epsilon=0.0).build_algo()
    try:
        algo.train()
        n = algo.n_advertisers
        tight = dual_update(np.ones(n), np.full(n, 0.5), epsilon=0.0)
        weights = primal_weights(tight, "bpg", algo.xi)
        assert weights.episode_kinds == ("cooperative", "deviation", "weighted")
        episodes = []
        for kind in weights.episode_kinds:
            episodes += algo._sample(kind, 2, seed=5, team_weights=weights.team_weights, sampling=tight.sampling)
        coefficients = {"deviation": weights.deviation, "weighted": weights.weighted, "nu_bar": weights.nu_bar}
        scale = max(np.abs(weights.deviation).max(), np.abs(weights.weighted).max())
        assert scale > 1.5

        def gradients(learner):
            parameters = list(learner.module[POPULATION].unwrapped().actor.parameters())
            learner.set_primal_weights(coefficients)
            scaled = torch.autograd.grad(_population_loss(learner, episodes)[0], parameters)
            # Gradient (11) as written: the raw coefficients, the all-theta term's 1.
            learner._coefficients = {name: torch.as_tensor(array, dtype=torch.float32) for name, array in coefficients.items()}
            learner._population_scale = 1.0
            raw = torch.autograd.grad(_population_loss(learner, episodes)[0], parameters)
            return [g.numpy() for g in scaled], [g.numpy() for g in raw]

        (call,) = algo.learner_group.foreach_learner(gradients)
        scaled, raw = call.result_or_error.get()
        assert any(np.abs(g).max() > 0 for g in raw)
        for got, expected in zip(scaled, raw):
            np.testing.assert_allclose(got * scale, expected, rtol=1e-4, atol=1e-7)
    finally:
        algo.stop()


def _train(config: BPGConfig, iterations: int):
    algo = config.build_algo()
    try:
        for _ in range(iterations):
            algo.train()
        return algo.history, {module: module_weights(algo, module) for module in (POPULATION, NU_BAR, X_STAR)}
    finally:
        algo.stop()


def _strip_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if not k.endswith(("_s", "_seconds")) and k not in ("objective", "epsilon", "lambda_active", "max_violation", "n_violating")} for record in history]


def test_slack_constraint_is_exactly_cooperative_and_a_tight_one_binds(ray_instance):
    # Randomness is keyed by (seed, iteration, phase), not by epsilon or objective: with every
    # lambda 0 (Appendix C.2.1) BPG samples and updates exactly what cooperative training does,
    # so the two runs are identical bit for bit ("constraint never active (= cooperative)").
    iterations = 2
    cooperative_history, cooperative = _train(tiny_config(objective="cooperative"), iterations)
    loose_history, loose = _train(tiny_config(objective="bpg", epsilon=10.0), iterations)
    assert all(record["lambda_sum"] == 0 and not record["lambda_active"] for record in loose_history)
    assert _strip_times(loose_history) == _strip_times(cooperative_history)
    for module in (POPULATION, NU_BAR, X_STAR):
        assert weights_equal(loose[module], cooperative[module]), module
    tight_history, tight = _train(tiny_config(objective="bpg", epsilon=0.0), iterations)
    assert any(record["lambda_active"] for record in tight_history)
    assert not weights_equal(tight[POPULATION], cooperative[POPULATION])
    assert not weights_equal(tight[NU_BAR], cooperative[NU_BAR])  # nu-bar trains once lambda > 0


def test_modules_start_from_their_own_weights_and_x_star_is_pre_trained(ray_instance):
    algo = tiny_config(xstar_pretrain_updates=2, xstar_updates=0).build_algo()
    try:
        initial = {module: module_weights(algo, module) for module in (POPULATION, NU_BAR, X_STAR)}
        assert not weights_equal(initial[POPULATION], initial[X_STAR]) and not weights_equal(initial[POPULATION], initial[NU_BAR])
        algo.train()  # cooperative phase only moves theta; x* moved in pre-training only
        assert not weights_equal(module_weights(algo, X_STAR), initial[X_STAR])
    finally:
        algo.stop()


def test_deviation_and_weighted_episodes_are_paired(ray_instance):
    algo = tiny_config(n_advertisers=4, group_size=2).build_algo()
    try:
        algo.train()  # sets the reward scale
        sampling = np.full(4, 0.25)
        deviation = algo._sample("deviation", 4, seed=99, sampling=sampling)
        weighted = algo._sample("weighted", 4, seed=99, sampling=sampling)

        def keys(episodes):
            return [(e.agent_episodes[POPULATION].get_infos(0)["market_seed"], e.agent_episodes[POPULATION].get_infos(0)["deviator"]) for e in episodes]

        assert keys(deviation) == keys(weighted)  # same market seed and deviator, episode by episode
        assert keys(deviation)[0] == keys(deviation)[1] and keys(deviation)[2] == keys(deviation)[3]  # groups of 2
        assert keys(deviation)[0] != keys(deviation)[2]
        # theta's rows drew the same exploration noise in the paired episodes' first tick
        first = [e.agent_episodes[POPULATION].get_actions(0) for e in (deviation[0], weighted[0])]
        deviator = keys(deviation)[0][1]
        others = np.arange(4) != deviator
        np.testing.assert_array_equal(first[0][others], first[1][others])
    finally:
        algo.stop()


def test_group_baselines_are_leave_one_out_means():
    returns = np.array([[1.0], [2.0], [4.0], [10.0], [0.0]])
    keys = np.array([7, 7, 7, 8, 9])
    valid = np.array([True, True, True, True, False])
    baselines = group_baselines(returns, keys, valid)
    np.testing.assert_allclose(baselines[:3, 0], [3.0, 2.5, 1.5])
    assert np.isnan(baselines[3, 0]) and np.isnan(baselines[4, 0])  # alone in its group; masked
    rewards = np.array([[1.0], [2.0], [0.0], [3.0], [0.0]])
    mask = np.array([True, True, False, True, False])  # two episodes, each with a bootstrap step
    np.testing.assert_allclose(returns_to_go(rewards, mask, 1.0)[:, 0], [3.0, 2.0, 0.0, 3.0, 0.0])


def test_sampled_rows_estimate_the_mean_over_all_rows_without_bias():
    k, steps, count = 9, 4000, 3
    np.random.seed(0)
    roles = np.ones((steps, k), dtype=np.int64)
    roles[::2, 4] = 2  # every other tick has a deviator (row 4, which theta does not play)
    scores = np.arange(1.0, k + 1)
    observations = np.broadcast_to(scores[None, :, None], (steps, k, 2)).astype(np.float32).copy()
    batch = {
        Columns.OBS: torch.as_tensor(observations), Columns.ACTIONS: torch.zeros(steps, k),
        Columns.ACTION_DIST_INPUTS: torch.zeros(steps, 2 * k), Postprocessing.ADVANTAGES: torch.zeros(steps, k),
        Postprocessing.VALUE_TARGETS: torch.zeros(steps, k),
    }  # fmt: skip
    weights = sample_rows(batch, roles, count)
    sampled = batch[Columns.OBS][..., 0].numpy()
    assert sampled.shape == (steps, count + 1) and weights.shape == (steps, count + 1)
    assert np.all(sampled[::2, 0] == 5.0) and np.all(weights[::2, 0] == 0.0)  # the deviator first, weight 0
    acting = ~((sampled == 5.0) & (np.arange(steps) % 2 == 0)[:, None])
    estimates = (weights * acting * sampled).sum(axis=1)
    exact_with, exact_without = (scores.sum() - 5.0) / k, scores.sum() / k
    assert abs(estimates[::2].mean() - exact_with) < 0.05 and abs(estimates[1::2].mean() - exact_without) < 0.05


def test_theta_learns_from_sampled_rows_in_a_real_rllib_update(ray_instance):
    algo = tiny_config(n_advertisers=6, learner_rows=2, epsilon=0.0).build_algo()
    try:
        before = module_weights(algo, POPULATION)
        algo.train()
        algo.train()
        assert not weights_equal(before, module_weights(algo, POPULATION))
        assert all(math.isfinite(record["welfare"]) for record in algo.history)
    finally:
        algo.stop()


def test_dual_deviators_track_the_leaders_and_cover_everyone(ray_instance):
    algo = tiny_config(n_advertisers=6, dual_deviators=2).build_algo()
    try:
        measured_each = []
        for _ in range(4):
            before = algo.bpg_state.measured.copy()
            algo.train()
            measured_each.append(algo.bpg_state.measured & ~before)
        # one leader + one from the round robin per iteration: everyone measured within
        # ceil(N / (m / 2)) = 6 iterations; here after 4, at least 4 distinct advertisers
        assert algo.bpg_state.measured.sum() >= 4
        leader = int(np.argmax(np.where(algo.bpg_state.measured, algo.bpg_state.gains, -np.inf)))
        assert leader in algo._dual_deviators()
    finally:
        algo.stop()


def test_parallel_dual_step_equals_the_serial_one(ray_instance):
    histories = []
    for workers in (0, 2):
        history, _ = _train(tiny_config(dual_workers=workers), 1)
        histories.append(_strip_times(history))
    assert histories[0] == histories[1]


def test_resolve_epsilon_and_is_constrained():
    assert resolve_epsilon(0.04) == 0.04
    assert math.isclose(resolve_epsilon(0.5, "relative", 0.02), 0.01)
    for call in (lambda: resolve_epsilon(0.5, "relative"), lambda: resolve_epsilon(-1.0), lambda: resolve_epsilon(0.5, "share"), lambda: resolve_epsilon(0.5, "relative", 0.0)):
        with pytest.raises(ConfigError):
            call()
    assert [is_constrained(o) for o in ("bpg", "bpg_zero", "cooperative", "selfish")] == [True, True, False, False]
    with pytest.raises(ConfigError, match="objective"):
        is_constrained("nash")


@pytest.mark.parametrize("dual", [{}, {"dual_step": 0.5, "lambda_max": 3.0}], ids=["eq13", "ascent"])
def test_checkpoint_resume_reproduces_the_next_iteration(ray_instance, tmp_path, dual):
    """The ascent dual's memory (the last lambdas) travels in the checkpoint too."""
    config = tiny_config(epsilon=0.0, kappa_uniform_mix=0.5, **dual)
    algo = config.build_algo()
    try:
        algo.train()
        checkpoint = algo.save_to_path(str(tmp_path / "checkpoint"))
        algo.train()
        expected_history = copy.deepcopy(algo.history)
        expected = {module: module_weights(algo, module) for module in (POPULATION, NU_BAR, X_STAR)}
    finally:
        algo.stop()
    restored = BPG.from_checkpoint(checkpoint)
    try:
        assert len(restored.history) == 1
        restored.train()
        assert _strip_times(restored.history) == _strip_times(expected_history)
        for module in (POPULATION, NU_BAR, X_STAR):
            assert weights_equal(module_weights(restored, module), expected[module]), module
    finally:
        restored.stop()
