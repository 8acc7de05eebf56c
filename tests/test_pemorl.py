"""PE-MORL: the permutation-equivariant environment model, the uncertainty penalty, branched
rollouts and the end-to-end bidder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.evaluation import play_focal_episode
from agents.offline import IQLConfig, OfflineData, load_bidder
from agents.offline.bc import BCConfig, train_bc
from agents.pemorl import (
    GlobalTransitions,
    ModelConfig,
    ModelEnsemble,
    ModelTrainingConfig,
    PEMORLConfig,
    branched_rollouts,
    prediction_error,
    train_ensemble,
    train_pemorl,
    uncertainty_penalty,
)
from agents.pemorl.data import DYNAMIC_FEATURES
from auctionsim.envs import SingleBidderEnv
from auctionsim.errors import ConfigError
from tests.offline_helpers import behaviour_mix, tiny_logs, tiny_market_env

torch.set_num_threads(1)  # see tests/test_offline.py

DIMENSION = 24
TINY_MODEL = dict(observation_dim=DIMENSION, hidden_dim=16, layers=2, heads=2)


@pytest.fixture(scope="module")
def logs():
    return tiny_logs(episodes=2)


@pytest.fixture(scope="module")
def transitions(logs):
    return GlobalTransitions(logs, device="cpu")


@pytest.fixture(scope="module")
def ensemble(transitions):
    config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=32, layers=1, heads=2)
    return train_ensemble(transitions, config, ModelTrainingConfig(steps=40, batch_size=8, members=3))


def _random_inputs(size: int, seed: int, batch: int = 2):
    generator = torch.Generator().manual_seed(seed)
    states = torch.rand(batch, size, DIMENSION, generator=generator)
    actions = 2 * torch.rand(batch, size, generator=generator) - 1
    live = torch.rand(batch, size, generator=generator) < 0.8
    return states, actions * live, live


# ----------------------------------------------------------------------------- the model


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000))
def test_pe_model_is_permutation_equivariant_at_any_set_size(size, seed):
    torch.manual_seed(seed % 7)
    model = ModelEnsemble(ModelConfig(kind="pe", **TINY_MODEL), members=2).eval()
    states, actions, live = _random_inputs(size, seed)
    permutation = torch.randperm(size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        mean, log_variance = model(states, actions, live)
        permuted_mean, permuted_log_variance = model(states[:, permutation], actions[:, permutation], live[:, permutation])
    assert mean.shape == (2, 2, size, DYNAMIC_FEATURES + 1)
    torch.testing.assert_close(permuted_mean, mean[:, :, permutation], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted_log_variance, log_variance[:, :, permutation], atol=1e-5, rtol=1e-5)


def test_dead_advertisers_do_not_influence_the_live_ones():
    torch.manual_seed(0)
    model = ModelEnsemble(ModelConfig(kind="pe", **TINY_MODEL), members=2).eval()
    states, actions, live = _random_inputs(10, seed=3)
    live[:, :3] = False
    changed = states.clone()
    changed[:, :3] = torch.rand(2, 3, DIMENSION)
    with torch.no_grad():
        torch.testing.assert_close(model(changed, actions, live)[0][:, live], model(states, actions, live)[0][:, live])


@pytest.mark.parametrize("kind", ["pe", "mlp"])
def test_batched_ensemble_members_are_independent_models(kind):
    """One batched forward pass equals each member run on its own (a member's weights alone
    determine its output) and members differ (independent initialisation)."""
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, n_advertisers=6, **TINY_MODEL)
    ensemble = ModelEnsemble(config, members=3).eval()
    states, actions, live = _random_inputs(6, seed=4)
    with torch.no_grad():
        together = ensemble(states, actions, live)[0]
        for member in range(3):
            alone = ModelEnsemble(config, members=1).eval()
            alone.load_state_dict({name: tensor[member : member + 1] if tensor.ndim and name.startswith("network") else tensor for name, tensor in ensemble.state_dict().items()})
            torch.testing.assert_close(alone(states, actions, live)[0][0], together[member], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_mlp_model_is_not_equivariant_and_takes_larger_sets_in_chunks():
    """The comparison model depends on the order (so the equivariance test above can fail)."""
    torch.manual_seed(0)
    model = ModelEnsemble(ModelConfig(kind="mlp", n_advertisers=6, **TINY_MODEL), members=1).eval()
    states, actions, live = _random_inputs(6, seed=1)
    live[:] = True
    permutation = torch.tensor([1, 0, 2, 3, 4, 5])
    with torch.no_grad():
        mean = model(states, actions, live)[0]
        permuted = model(states[:, permutation], actions[:, permutation], live[:, permutation])[0]
        assert not torch.allclose(permuted, mean[:, :, permutation], atol=1e-3)
        larger = model(*_random_inputs(14, seed=2))[0]
    assert larger.shape == (1, 2, 14, DYNAMIC_FEATURES + 1)


def test_trained_model_predicts_better_than_the_mean(transitions, ensemble):
    """Standardised MSE 1.0 is predicting the training mean; the ensemble mean does better."""
    error = prediction_error(ensemble, transitions.all_ticks())
    assert error["mse"] < 0.95 and np.isfinite(error["nll"])


# ----------------------------------------------------------------------------- uncertainty


@given(st.integers(2, 6), st.integers(1, 20), st.floats(0.01, 100.0), st.integers(0, 1000))
def test_penalty_is_zero_when_members_agree_and_grows_with_disagreement(members, features, scale, seed):
    generator = torch.Generator().manual_seed(seed)
    centre = torch.randn(1, 5, features, generator=generator, dtype=torch.float64)
    assert torch.equal(uncertainty_penalty(centre.expand(members, 5, features)), torch.zeros(5, dtype=torch.float64))
    spread = torch.randn(members, 5, features, generator=generator, dtype=torch.float64)
    base = uncertainty_penalty(centre + spread)
    torch.testing.assert_close(uncertainty_penalty(centre + scale * spread), scale * base)
    assert (uncertainty_penalty(centre + (1 + scale) * spread) >= base).all()


def test_rollout_penalty_is_zero_on_an_ensemble_of_identical_members(transitions, ensemble, logs):
    clone = ModelEnsemble(ensemble.config, 3)
    clone.load_state_dict({name: tensor[:1].expand_as(tensor).clone() if name.startswith("network") else tensor for name, tensor in ensemble.state_dict().items()})
    behaviour = train_bc(OfflineData(logs, device="cpu"), BCConfig(steps=5, batch_size=16, hidden_dim=16, stochastic=True)).actor
    policy = lambda observations: torch.zeros(len(observations), 1)  # noqa: E731
    agreeing = branched_rollouts(clone.eval(), transitions, policy, behaviour, 16, 3, 5.0, torch.Generator().manual_seed(0))
    assert torch.equal(agreeing.penalties, torch.zeros_like(agreeing.penalties))
    disagreeing = branched_rollouts(ensemble, transitions, policy, behaviour, 16, 3, 5.0, torch.Generator().manual_seed(0))
    assert (disagreeing.penalties > 0).all()
    torch.testing.assert_close(disagreeing.transitions.rewards, disagreeing.raw_rewards - disagreeing.penalties)
    assert len(disagreeing.raw_rewards) <= 16 * 3
    # The advertiser's own constants (budget, CPA target, category) are carried over unchanged.
    observed = disagreeing.transitions
    torch.testing.assert_close(observed.next_observations[:, DYNAMIC_FEATURES:], observed.observations[:, DYNAMIC_FEATURES:])


# ----------------------------------------------------------------------------- end to end


TINY_POLICY = dict(steps=40, batch_size=32, hidden_dim=32, rollouts_per_refresh=16, rollout_every=20, warm_start_steps=20, critic_warmup_fraction=0.25)


def test_tiny_end_to_end_run_and_weights_only_checkpoint(logs, transitions, ensemble, tmp_path):
    """Logs -> model -> penalised actor-critic -> a bidder in the single-bidder env; its weights-only
    checkpoint reproduces its episode exactly."""
    result = train_pemorl(OfflineData(logs, device="cpu"), transitions, ensemble, PEMORLConfig(**TINY_POLICY))
    assert [row["step"] for row in result.history] == [0, 20]
    assert all(np.isfinite(row["q_loss"]) and row["penalty"] > 0 and row["weight_p95"] > row["weight_p05"] for row in result.history)
    td3 = train_pemorl(OfflineData(logs, device="cpu"), transitions, ensemble, PEMORLConfig(**TINY_POLICY, policy_improvement="td3+bc"))
    assert "actor_loss" in td3.history[1] and "actor_loss" not in td3.history[0]  # critic warm-up
    env = SingleBidderEnv(tiny_market_env().market, population=behaviour_mix(tiny_market_env()), focal=5, reward="score")
    played = play_focal_episode(env, result.bidder, seed=1)
    assert played.spend <= played.budget + 1e-9 and played.mean_multiplier > 0
    path = result.bidder.save(tmp_path / "pemorl.pt")
    assert torch.load(path, weights_only=True)["config"]["algorithm"] == "pe-morl"
    assert play_focal_episode(env, load_bidder(path, device="cpu"), seed=1) == played


@pytest.mark.parametrize("improvement", ["td3+bc", "awr"])
def test_the_penalty_reaches_the_policy_only_through_model_data(logs, transitions, ensemble, improvement):
    """lambda changes the trained actor when batches hold model transitions (the old AWR actor,
    regressed onto its own rollout actions, did not move with lambda); with real data only
    (``real_fraction=1``) lambda has no effect at all, so the check can fail."""
    data = OfflineData(logs, device="cpu")
    observations = data.flat_observations()[:200]

    def actions(**overrides) -> torch.Tensor:
        rates = dict(actor_learning_rate=1e-3, critic_learning_rate=1e-3, iql=IQLConfig(learning_rate=1e-3))
        config = PEMORLConfig(**{**TINY_POLICY, "steps": 100, **rates, "policy_improvement": improvement, **overrides})
        actor = train_pemorl(data, transitions, ensemble, config).learner.actor
        with torch.no_grad():
            return actor(observations)

    # Training is deterministic (same seed): without model data the actors are identical, so any
    # clear difference with model data is the penalty's doing (measured: 0.13 TD3+BC, 0.01 AWR).
    assert (actions(penalty_coefficient=0.0) - actions(penalty_coefficient=50.0)).abs().mean() > 3e-3
    torch.testing.assert_close(actions(penalty_coefficient=0.0, real_fraction=1.0), actions(penalty_coefficient=50.0, real_fraction=1.0))


def test_rollout_focal_actions_are_the_policy_with_exploration(transitions, ensemble, logs):
    """The focal advertiser's model actions scatter around the actor's own action by the
    exploration noise (they are not its deterministic outputs), and the FIFO buffer keeps only
    the last refreshes."""
    data = OfflineData(logs, device="cpu")
    config = PEMORLConfig(**{**TINY_POLICY, "exploration_noise": 0.2, "retain_refreshes": 1})
    learner = train_pemorl(data, transitions, ensemble, config).learner
    generator = torch.Generator().manual_seed(5)
    behaviour = learner.actor  # any actor serves for the other advertisers here

    def explore(observations):
        return learner.noisy_actions(observations, config.exploration_noise, float("inf"), generator)

    imaginary = branched_rollouts(ensemble, transitions, explore, _AsStochastic(behaviour), 64, 2, 1.0, generator).transitions
    with torch.no_grad():
        offsets = (imaginary.actions - learner.actor(imaginary.observations))[:, 0]
    unclipped = imaginary.actions[:, 0].abs() < 0.99
    assert offsets[unclipped].std().item() == pytest.approx(0.2, rel=0.25)
    assert config.buffer_size == 16 * 3 * 1


class _AsStochastic:
    def __init__(self, actor):
        self.actor = actor

    def sample(self, observations, generator=None):
        return self.actor(observations)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: ModelConfig(kind="gnn"), "kind"),
        (lambda: ModelConfig(hidden_dim=30, heads=4), "heads"),
        (lambda: ModelConfig(layers=0), "layers"),
        (lambda: ModelTrainingConfig(members=0), "members"),
        (lambda: PEMORLConfig(penalty_coefficient=-1.0), "penalty_coefficient"),
        (lambda: PEMORLConfig(penalty_coefficient=float("nan")), "penalty_coefficient"),
        (lambda: PEMORLConfig(bc_weight=0.0), "bc_weight"),
        (lambda: PEMORLConfig(policy_improvement="sac"), "policy_improvement"),
        (lambda: PEMORLConfig(iql=IQLConfig(context_length=3)), "context_length"),
        (lambda: PEMORLConfig(exploration_noise=-0.1), "exploration_noise"),
        (lambda: PEMORLConfig(real_fraction=1.5), "real_fraction"),
        (lambda: PEMORLConfig(horizon=0), "horizon"),
    ],
)
def test_configs_name_the_bad_field(build, field):
    with pytest.raises(ConfigError, match=field):
        build()


def test_models_and_data_reject_bad_input(transitions, logs):
    model = ModelEnsemble(ModelConfig(kind="pe", **TINY_MODEL), members=2)
    states, actions, live = _random_inputs(4, seed=0)
    with pytest.raises(ConfigError, match="states"):
        model(states[..., :5], actions, live)
    with pytest.raises(ConfigError, match="actions and live"):
        model(states, actions[:, :3], live)
    with pytest.raises(ConfigError, match="MLP model needs data of 10"):
        train_ensemble(transitions, ModelConfig(kind="mlp", observation_dim=DIMENSION, n_advertisers=10), ModelTrainingConfig(steps=1))
    with pytest.raises(ConfigError, match="OfflineDataset"):
        GlobalTransitions([])
    with pytest.raises(ConfigError, match="holdout_fraction"):
        transitions.split(1.0)
    with pytest.raises(ConfigError, match=">= 2 members"):
        uncertainty_penalty(torch.zeros(1, 3, 4))


TINY_EXPERIMENT = ["--quick", "--penalty-grid", "1.0", "--impressions-per-episode", "20000", "--n-ticks", "6", "--train-episodes", "2", "--test-episodes", "2", "--model-steps", "3",
                   "--policy-steps", "10", "--dt-steps", "10", "--eval-seeds", "2", "--validation-seeds", "1", "--focal-advertisers", "3",
                   "--shifted-budget-scales", "0.5", "--rollouts-per-refresh", "8", "--no-tensorboard"]  # fmt: skip


def test_experiment_runs_resumes_extends_and_redraws_plots(tmp_path, capsys):
    """One training seed, then ``--resume`` with two: the first seed's saved results are reused,
    the summary holds intervals and verdicts over both, every result has its manifest, the plots
    are redrawn from ``summary.json``; a resume with another config is refused."""
    from auctionsim.runs import RunError, read_manifest
    from experiments import pemorl

    args = pemorl.parse_args([*TINY_EXPERIMENT, "--output-dir", str(tmp_path), "--training-seeds", "1"])
    assert args.model_members == 3 and args.penalty_grid == (1.0,) and args.training_seeds == 1  # quick fills only what is not given
    pemorl.run(args)
    first = (tmp_path / "seeds" / "seed-0.json").read_text()
    summary = pemorl.run(pemorl.parse_args([*TINY_EXPERIMENT, "--output-dir", str(tmp_path), "--training-seeds", "2", "--resume"]))
    assert "training seed 0: done in the run being resumed" in capsys.readouterr().out
    assert (tmp_path / "seeds" / "seed-0.json").read_text() == first and (tmp_path / "seeds" / "seed-1.json").exists()
    score = summary["markets"]["training"]["score"]
    assert set(score["metrics"]) == set(pemorl.METHODS)
    assert all(m["n_training_seeds"] == 2 and m["n_eval_seeds"] == 2 and m["low"] <= m["mean"] <= m["high"] for m in score["metrics"].values())
    assert {(c["a"], c["b"]) for c in score["comparisons"]} >= {("PE-MORL", "PE-MORL lambda=0"), ("PE-MORL", "IQL")}
    assert set(summary["markets"]) == {"training", "budget x0.5", "72 advertisers"}
    assert set(summary["model_errors"]) == {"held-out", "budget x0.5", "72 advertisers"}
    assert {"actor_multiplier_in_data_range", "not_worse_than_iql_on_training_market", "shifted_vs_best_baseline", "lambda_ablation"} <= set(summary["gates"])
    manifest = read_manifest(tmp_path)
    assert manifest["status"] == "complete" and manifest["extended"] == {"training_seeds": [1, 2]} and "summary.json" in manifest["files"]
    loaded = load_bidder(tmp_path / "bidders" / "seed-1" / "PE-MORL.pt", device="cpu")
    assert loaded.algorithm == "pe-morl"
    for name in ("models.png", "policies.png", "validation.png"):
        (tmp_path / name).unlink()
    assert all(path.stat().st_size > 0 for path in pemorl.plot(tmp_path))
    with pytest.raises(RunError, match="policy_steps"):
        pemorl.run(pemorl.parse_args([*TINY_EXPERIMENT, "--output-dir", str(tmp_path), "--training-seeds", "2", "--policy-steps", "11", "--resume"]))


def test_batched_evaluation_equals_one_episode_at_a_time(logs):
    """``play_cases`` plays every (seed, focal advertiser) episode in lockstep; each equals the
    same episode played alone through ``play_focal_episode`` (a pacing bidder with per-row state,
    an MLP actor and the decision transformer, which keeps a context per row)."""
    from agents.baselines import PIDPacing
    from agents.offline import DTConfig, train_dt
    from experiments import pemorl

    args = pemorl.parse_args([*TINY_EXPERIMENT, "--focal-advertisers", "3", "15", "--no-tensorboard"])
    market = pemorl.make_market(args)
    data = OfflineData(logs, device="cpu")
    bidders = {
        "pid": PIDPacing(),
        "bc": train_bc(data, BCConfig(steps=3, batch_size=16, hidden_dim=16)),
        "dt": train_dt(data, DTConfig(steps=3, batch_size=8, hidden_dim=16, layers=1, heads=2, context_length=3)),
    }
    seeds = [11, 12]
    for name, bidder in bidders.items():
        # A float32 network's output for a batch of rows and for one row can differ in the last
        # bits (the CPU's matmul kernels block by shape; seen on an AMD EPYC: spend off by 2e-8
        # relative), and the bids inherit it. An auction won or lost moves spend by a whole price,
        # far more than 1e-6 of these short episodes' spend.
        rel = 1e-9 if name == "pid" else 1e-6
        batched = pemorl.play_cases(args, bidder, market, seeds)
        for row, seed in enumerate(seeds):
            for column, focal in enumerate((3, 15)):
                env = SingleBidderEnv(market, population=pemorl.logging_population(args, market), focal=focal, reward="score")
                alone = play_focal_episode(env, bidder, seed=seed)
                assert batched["score"][row, column] == pytest.approx(alone.score, rel=rel, abs=1e-12), name
                assert batched["spend"][row, column] == pytest.approx(alone.spend, rel=rel, abs=1e-12), name
                assert batched["mean_multiplier"][row, column] == pytest.approx(alone.mean_multiplier, rel=1e-6), name


@pytest.mark.parametrize(
    "flags, field",
    [(["--population", "bots"], "population"), (["--model-members", "1"], "model_members"), (["--n-ticks", "0"], "n_ticks"), (["--horizon-grid", "0"], "horizon_grid"),
     (["--device", "tpu"], "device"), (["--batch-size", "-1"], "batch_size")],
)  # fmt: skip
def test_experiment_arguments_are_validated(flags, field):
    from experiments import pemorl

    with pytest.raises(ConfigError, match=field):
        pemorl.parse_args(flags)


# ----------------------------------------------------------------------------- devices


def _train_everything_briefly(logs, device: str) -> dict:
    """A few steps of every learner (and the model) on ``device``; their final losses."""
    from agents.offline import CQLConfig, DTConfig, IQLConfig, train_cql, train_dt, train_iql

    data = OfflineData(logs, device=device)
    transitions = GlobalTransitions(logs, device=device)
    config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=16, layers=1, heads=2)
    ensemble = train_ensemble(transitions, config, ModelTrainingConfig(steps=3, batch_size=4, members=2))
    fast = dict(steps=3, batch_size=16, hidden_dim=16)
    bidders = {
        "bc": train_bc(data, BCConfig(**fast)),
        "iql": train_iql(data, IQLConfig(**fast)).bidder,
        "cql": train_cql(data, CQLConfig(**fast, n_actions=2)),
        "dt": train_dt(data, DTConfig(steps=3, batch_size=8, hidden_dim=16, layers=1, heads=2, context_length=3)),
        "pemorl": train_pemorl(data, transitions, ensemble, PEMORLConfig(**{**TINY_POLICY, "steps": 4, "hidden_dim": 16})).bidder,
    }
    env = SingleBidderEnv(tiny_market_env().market, population=behaviour_mix(tiny_market_env()), focal=5, reward="score")
    return {name: play_focal_episode(env, bidder, seed=0).mean_multiplier for name, bidder in bidders.items()}


def test_learners_run_under_bf16_autocast(logs):
    """The bf16 path (autocast on CUDA) exercised on the CPU: every learner trains and acts with
    its matrix products in bfloat16 (losses cast to float32 where they are reduced)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        multipliers = _train_everything_briefly(logs, "cpu")
    assert all(np.isfinite(value) and value > 0 for value in multipliers.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_learners_run_on_cuda(logs):
    multipliers = _train_everything_briefly(logs, "cuda")
    assert all(np.isfinite(value) and value > 0 for value in multipliers.values())
