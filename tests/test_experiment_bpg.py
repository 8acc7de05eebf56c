"""experiments.bpg and BPG crash safety: flags, the Table 1 aggregation and gates on known values,
signed checkpoints (a crafted pickle is refused), weights-only exports, a tiny end-to-end run that
resumes, extends and refuses a changed config, and kill-and-resume at several points (SIGKILL,
including in the middle of a checkpoint save) giving the results of an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from agents.bpg import BPGConfig, market_spec
from agents.bpg.checkpoints import KEY_ENVIRONMENT_VARIABLE, CheckpointError, CheckpointStore, export_policy, load_policy
from auctionsim import runs
from auctionsim.errors import ConfigError
from experiments import bpg as experiment
from tests.ray_helpers import local_ray

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_ARGS = [
    "--sizes", "2", "--training-seeds", "1", "--eval-seeds", "2", "--iterations", "2", "--epsilons", "0",
    "--zero-epsilons", "0", "--heuristics", "value", "--impressions-per-advertiser", "300", "--n-ticks", "4",
    "--max-advertisers", "2", "--validation-seeds", "1", "--no-ppo-best-response", "--scheduler", "serial",
    "--dual-deviators", "2", "--episodes-per-kind", "2", "--group-size", "2", "--xstar-pretrain-updates", "1",
    "--xstar-episodes", "2", "--checkpoint-every", "1", "--num-cpus", "1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def checkpoint_key(monkeypatch):
    """A signing key of the test's own (the user's key file is never touched)."""
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, "ab" * 32)


@pytest.fixture(scope="module")
def ray_instance():
    """Ray started once for the module (or the caller's, when one is running), shut down after."""
    yield from local_ray("ray-bpg-experiment-tests-")


# ---------------------------------------------------------------------- flags
def test_explicit_flags_win_over_quick():
    quick = experiment.parse_args(["--quick"])
    assert quick.sizes == (10,) and quick.iterations == experiment.QUICK["iterations"] and quick.output_dir == "results/bpg-quick"
    # Given flags win, even when equal to the full run's default.
    given = experiment.parse_args(["--quick", "--iterations", "40", "--training-seeds", "3", "--sizes", "100", "10"])
    assert given.iterations == 40 and given.training_seeds == 3 and given.sizes == (100, 10) and given.eval_seeds == experiment.QUICK["eval_seeds"]
    full = experiment.parse_args(["--lr", "3e-3", "--xi", "5", "--kappa-mix", "0", "--episodes-per-kind", "6", "--epsilon-mode", "welfare"])
    assert (full.lr, full.xi, full.kappa_mix, full.episodes_per_kind, full.epsilon_mode) == (3e-3, 5.0, 0.0, 6, "welfare")


def test_dual_options_reach_the_algorithm_and_leave_older_trial_keys_alone(tmp_path):
    default = experiment.trial_config(experiment.parse_args([]), tmp_path, "bpg", 10, seed=0, epsilon=0.5, epsilon_share=0.01)
    assert "dual_step" not in default["training"] and "lambda_max" not in default["training"]  # earlier trials stay reusable
    ascent = experiment.trial_config(experiment.parse_args(["--dual-step", "0.5", "--lambda-max", "4"]), tmp_path, "bpg", 10, seed=0, epsilon=0.5, epsilon_share=0.01)
    assert (ascent["training"]["dual_step"], ascent["training"]["lambda_max"]) == (0.5, 4.0)
    config = experiment.algorithm_config(ascent["training"])
    assert (config.dual_step, config.lambda_max) == (0.5, 4.0)
    assert experiment.algorithm_config(default["training"]).dual_step is None
    # The baselines have no dual: their trials (and keys) are the same under any dual option.
    cooperative = experiment.trial_config(experiment.parse_args(["--dual-step", "0.5"]), tmp_path, "cooperative", 10, seed=0)
    assert cooperative["training"] == experiment.trial_config(experiment.parse_args([]), tmp_path, "cooperative", 10, seed=0)["training"]


@pytest.mark.parametrize(
    "field, value",
    [("iterations", 0), ("sizes", (1,)), ("epsilons", (0.1, float("nan"))), ("zero_epsilons", (-0.1,)), ("epsilon_mode", "share"),
     ("heuristics", ("pid",)), ("scheduler", "slurm"), ("table3_epsilon", 0.3), ("kappa_mix", 1.5), ("training_seeds", 0),
     ("dual_step", -1.0), ("lambda_max", float("inf")), ("scale_seeds", 0), ("heuristics", ("value", "shade"))],
)  # fmt: skip
def test_bad_arguments_raise_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        experiment.parse_args([f"--{field.replace('_', '-')}", *(map(str, value) if isinstance(value, tuple) else [str(value)])])


# ---------------------------------------------------------------------- aggregation on known values
def _fake_results(args, welfare: dict, exploitability: dict, active: dict) -> dict:
    """Result dicts as trials write them, with chosen per-episode scores."""
    results = {}
    eval_count = args.eval_seeds
    for (objective, epsilon), level in welfare.items():
        seeds = experiment.training_seeds(args) if objective in experiment.TRAINED else [None]
        for index, seed in enumerate(seeds):
            noise = np.array([0.5, -0.5, 0.25, -0.25, 0.0])[:eval_count] + 0.1 * index
            me = exploitability[(objective, epsilon)]
            history = [{"iteration": 1, "max_gain_normalised": me, "lambda_sum": 1.0 if active.get((objective, epsilon)) else 0.0, "welfare": level}]
            training = None if seed is None else {"epsilon_share": 0.0 if epsilon is None else epsilon * 0.1, "seed": seed, "n_advertisers": 10}
            results[experiment.run_name(objective, epsilon, seed, 10)] = {
                "config": {"training": training, "name": experiment.run_name(objective, epsilon, seed, 10)},
                "history": history,
                "welfare": (level + noise).tolist(),
                "revenue": (level / 2 + noise).tolist(),
                "max_exploitability_lower": (me + 0.001 * noise).tolist(),
                "max_exploitability_upper": (2 * me + 0.001 * noise).tolist(),
                "max_exploitability_x_star": (me / 2 + 0.001 * noise).tolist(),
                "max_exploitability_lower_overall": me,
                "max_exploitability_upper_overall": 2 * me,
            }
    return results


def test_table1_rows_comparisons_and_gates_on_known_values():
    args = experiment.Args(sizes=(10,), training_seeds=3, eval_seeds=5, epsilons=(0.5, 0.25, 0.0), zero_epsilons=(0.0,), heuristics=("value", "pid"))
    welfare = {("cooperative", None): 110.0, ("selfish", None): 90.0, ("value", None): 100.0, ("pid", None): 80.0,
               ("bpg", 0.5): 108.0, ("bpg", 0.25): 105.0, ("bpg", 0.0): 95.0, ("bpg_zero", 0.0): 93.0}  # fmt: skip
    exploitability = {("cooperative", None): 0.05, ("selfish", None): 0.01, ("value", None): 0.02, ("pid", None): 0.03,
                      ("bpg", 0.5): 0.04, ("bpg", 0.25): 0.03, ("bpg", 0.0): 0.02, ("bpg_zero", 0.0): 0.025}  # fmt: skip
    active = {("bpg", 0.25): True, ("bpg", 0.0): True, ("bpg_zero", 0.0): True}  # eps=0.5 never binds
    summary = experiment.summarise(args, _fake_results(args, welfare, exploitability, active), {10: 0.1})
    block = summary["by_size"]["10"]
    assert summary["n_advertisers"] == 10 and summary["epsilon_mode"] == "relative" and summary["training_seeds"] == [0, 1, 2]
    rows = {row["label"]: row for row in block["rows"]}
    for key in ("welfare", "max_exploitability"):
        assert set(rows["cooperative"][key]) >= {"mean", "low", "high", "n_training_seeds", "n_eval_seeds"}
    assert math.isclose(rows["cooperative"]["welfare"]["mean"], 110.1)  # + 0.1 x mean seed index
    assert rows["value"]["welfare"]["n_training_seeds"] == 1 and rows["pid"]["stand_in"] == experiment.STAND_IN_NOTE
    never = rows["bpg eps=0.5"]
    assert never["constraint_active"] is False and never["note"] == experiment.NEVER_ACTIVE and never["lambda_active_fraction"] == 0.0
    assert rows["bpg eps=0"]["constraint_active"] and rows["bpg eps=0"]["lambda_active_fraction"] == 1.0
    # Compliance: ME lower 0.02 <= share 0.0 fails; 0.03 <= 0.025 fails; cooperative has none.
    assert rows["bpg eps=0"]["compliance_rate"] == 0.0 and rows["cooperative"]["compliance_rate"] is None
    assert math.isclose(rows["cooperative"]["welfare_vs_value_bidding"]["mean"], 10.1)
    gates = block["gates"]
    assert gates["cooperative_beats_value_bidding"] and gates["active_epsilons"] == [0.25, 0.0]
    assert gates["exploitability_decreases_as_epsilon_falls"] and gates["welfare_does_not_increase_as_epsilon_falls"]
    assert gates["some_adjacent_pair_distinguishable"]
    assert gates["largest_active_bpg_vs_selfish_welfare"]["verdict"] == "bpg eps=0.25 > selfish"
    table = experiment.table1_markdown(block)
    assert experiment.NEVER_ACTIVE in table and "mean" not in table.splitlines()[0].split(":")[0]


def test_more_training_seeds_do_not_move_the_relative_epsilon_scale():
    """The scale is the mean over the first ``scale_seeds`` cooperative runs (last
    ``scale_window`` iterations each), so extending a run with seeds keeps every BPG trial's key."""
    cooperative = [{"history": [{"max_gain_normalised": gain} for gain in (9.0, level, level)]} for level in (0.02, 0.04, 0.5, 0.9)]
    three = experiment.Args(training_seeds=3, scale_window=2, scale_seeds=2)
    six = experiment.Args(training_seeds=6, scale_window=2, scale_seeds=2)
    assert experiment.epsilon_scale(three, cooperative[:3]) == experiment.epsilon_scale(six, cooperative) == pytest.approx(0.03)
    assert experiment.epsilon_scale(experiment.Args(scale_window=2, scale_seeds=4), cooperative) == pytest.approx((0.02 + 0.04 + 0.5 + 0.9) / 4)


def test_resume_of_a_run_from_before_the_display_only_flags_is_accepted():
    """A run started before --finished-only existed resumes: flags that change no result are
    ignored by --resume (the reference run was refused once for this)."""
    from auctionsim import runs

    args = experiment.Args(sizes=(10,), finished_only=False)
    previous = {k: v for k, v in runs.config_dict(args).items() if k not in ("finished_only", "plot_only")}
    assert runs.check_resume(previous, args, ignored=runs.DEFAULT_IGNORED) == {}
    with pytest.raises(runs.RunError, match="lr"):
        runs.check_resume({**previous, "lr": 0.5}, args, ignored=runs.DEFAULT_IGNORED)


def test_finished_only_summarises_what_finished_and_names_the_rest(tmp_path):
    """An interrupted run: stage 1 finished, no BPG trial did. --finished-only writes the rows
    and comparisons it can, lists the missing methods, and marks the summary partial."""
    args = experiment.Args(sizes=(10,), training_seeds=3, eval_seeds=5, epsilons=(0.5, 0.0), zero_epsilons=(0.0,), heuristics=("value", "pid"),
                           output_dir=str(tmp_path), finished_only=True)  # fmt: skip
    welfare = {("cooperative", None): 110.0, ("selfish", None): 90.0, ("value", None): 100.0, ("pid", None): 80.0}
    exploitability = {key: 0.01 for key in welfare}
    results = _fake_results(args, welfare, exploitability, {})
    results.pop(experiment.run_name("pid", None, None, 10))
    for name, result in results.items():
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(result))
    summary = experiment.summarise_finished(args, tmp_path)
    block = summary["by_size"]["10"]
    assert summary["partial"] and block["not_run"] == ["pid", "bpg eps=0.5", "bpg eps=0", "bpg_zero eps=0"]
    assert [row["label"] for row in block["rows"]] == ["cooperative", "selfish", "value"]
    assert {(c["a"], c["b"]) for c in block["comparisons"]["welfare"]} == {("cooperative", "value"), ("selfish", "value"), ("cooperative", "selfish")}
    assert block["gates"]["active_epsilons"] == [] and "Not run" in (tmp_path / "table1-N10.md").read_text()
    assert (tmp_path / "summary.json.manifest.json").is_file()


def test_compare_with_pairs_same_named_trials_of_two_runs(tmp_path):
    args = experiment.Args(sizes=(10,), training_seeds=3, eval_seeds=5, epsilons=(0.5,), zero_epsilons=(0.0,), table3_epsilon=0.5, heuristics=("value",))
    exploitability = {("cooperative", None): 0.01, ("value", None): 0.01, ("bpg", 0.5): 0.01}
    ours = _fake_results(args, {("cooperative", None): 110.0, ("value", None): 100.0, ("bpg", 0.5): 105.0}, exploitability, {})
    theirs = _fake_results(args, {("cooperative", None): 110.0, ("value", None): 100.0, ("bpg", 0.5): 101.0}, exploitability, {})
    for result in ours.values():
        result["config"]["evaluation"] = {"eval_seeds": [1000, 1001]}
        if result["config"]["training"] and result["config"]["name"].startswith("bpg"):
            result["config"]["training"]["dual_step"] = 0.25  # a different dual rule, same trial names
    for result in theirs.values():
        result["config"]["evaluation"] = {"eval_seeds": [1000, 1001]}
    for folder, results in (("ours", ours), ("theirs", theirs)):
        for name, result in results.items():
            runs.atomic_write_json(tmp_path / folder / "runs" / name / "result.json", result)
            runs.write_manifest(tmp_path / folder / "runs" / name / "result.json", config=result["config"])
    comparison = experiment.main(["--output-dir", str(tmp_path / "ours"), "--compare-with", str(tmp_path / "theirs")])
    # Only the BPG population differs (the cooperative trials are the same population in both).
    (row,) = comparison["welfare"]
    assert (row["a"], row["b"]) == ("bpg-eps0.5-N10 (ours)", "bpg-eps0.5-N10 (theirs)")
    assert math.isclose(row["difference"]["mean"], 4.0) and row["difference"]["n_training_seeds"] == 3
    assert json.loads((tmp_path / "ours" / "comparison.json").read_text())["comparisons"] == comparison
    assert (tmp_path / "ours" / "comparison.json.manifest.json").is_file()
    theirs_result = tmp_path / "theirs" / "runs" / "bpg-eps0.5-N10-seed0" / "result.json"
    changed = dict(theirs["bpg-eps0.5-N10-seed0"], config={**theirs["bpg-eps0.5-N10-seed0"]["config"], "evaluation": {"eval_seeds": [7]}})
    runs.atomic_write_json(theirs_result, changed)
    runs.write_manifest(theirs_result, config=changed["config"])
    with pytest.raises(ConfigError, match="evaluated differently"):
        experiment.compare_runs(tmp_path / "ours", tmp_path / "theirs")


# ---------------------------------------------------------------------- checkpoints
def _tiny_algo(**settings):
    config = BPGConfig().bpg(market=market_spec(2, impressions_per_episode=300, n_ticks=4), seed=1, episodes_per_kind=2,
                             xstar_episodes=2, xstar_updates=1, xstar_pretrain_updates=0, nu_minibatch_size=16, **settings)  # fmt: skip
    return config.training(num_epochs=1, minibatch_size=16).build_algo()


class _Marker:
    """Unpickling this creates a file: what a crafted checkpoint would run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_checkpoints_are_atomic_signed_and_refuse_crafted_pickles(ray_instance, tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    algo = _tiny_algo()
    try:
        for _ in range(3):
            algo.train()
            store.save(algo, {"name": "tiny"})
        weights = algo.learner_group.get_weights(module_ids=["population"])["population"]
    finally:
        algo.stop()
    assert [iteration for iteration, _ in store.checkpoints()] == [2, 3]  # keep=2: the oldest went
    folder, metadata = store.latest()
    assert metadata == {"name": "tiny", "iteration": 3}
    # A save killed half-way leaves a temporary folder: ignored, then removed by the next save.
    (store.root / ".tmp-000004-x" / "algorithm").mkdir(parents=True)
    assert store.latest()[0] == folder
    restored = store.restore()
    try:
        assert restored.bpg_state.iteration == 3
        np.testing.assert_array_equal(restored.learner_group.get_weights(module_ids=["population"])["population"]["log_std"], weights["log_std"])
    finally:
        restored.stop()

    marker = tmp_path / "pwned"
    target = folder / "algorithm" / "algorithm_state.pkl"
    original = target.read_bytes()
    target.write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError, match="algorithm_state.pkl differs"):
        store.restore()
    assert not marker.exists()
    target.write_bytes(original)
    (folder / "algorithm" / "extra.pkl").write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError, match="not listed"):
        store.latest()
    (folder / "algorithm" / "extra.pkl").unlink()
    store.latest()  # intact again
    # A manifest signed with another key (a checkpoint from elsewhere, or re-signed by whoever
    # planted a file) is refused before anything is read.
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, "cd" * 32)
    with pytest.raises(CheckpointError, match="not signed with this machine's checkpoint key"):
        store.restore()
    assert not marker.exists()


def test_exported_policies_are_weights_only(tmp_path):
    from agents.bpg.module import RowActor

    actor = RowActor(7, [8, 8], (-3.0, 1.6))
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.add_(torch.randn_like(parameter))
    export_policy(actor, tmp_path / "theta", {"name": "test"})
    loaded, metadata = load_policy(tmp_path / "theta")
    features = torch.randn(5, 7)
    torch.testing.assert_close(loaded(features), actor(features))
    assert metadata == {"name": "test"} and sorted(p.name for p in tmp_path.iterdir()) == ["theta.json", "theta.safetensors"]
    (tmp_path / "theta.safetensors").write_bytes(pickle.dumps(_Marker(str(tmp_path / "pwned"))))
    with pytest.raises(CheckpointError, match="cannot load the policy weights"):
        load_policy(tmp_path / "theta")
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------- end to end, resume, kill
def _comparable(result: dict) -> dict:
    """A trial's result without what legitimately differs between runs (wall-clock timings)."""
    result = json.loads(json.dumps(result))
    result["config"].pop("output")
    for record in result.get("history", []):
        for key in [k for k in record if k.endswith(("_s", "_seconds"))]:
            del record[key]
    return result


def _results(output: pathlib.Path) -> dict[str, dict]:
    return {path.parent.name: _comparable(json.loads(path.read_text())) for path in sorted((output / "runs").glob("*/result.json"))}


def test_tiny_experiment_end_to_end_resume_extend_and_refuse(ray_instance, tmp_path):
    output = tmp_path / "bpg"
    argv = ["--output-dir", str(output), *TINY_ARGS]
    summary = experiment.main(argv)
    block = summary["by_size"]["2"]
    assert [row["label"] for row in block["rows"]] == ["cooperative", "selfish", "value", "bpg eps=0", "bpg_zero eps=0"]
    for row in block["rows"]:
        assert row["welfare"]["mean"] > 0 and row["welfare"]["n_eval_seeds"] == 2
        assert 0 <= row["max_exploitability"]["mean"] <= row["max_exploitability_upper"]["mean"] + 1e-9
    assert summary["table3"] and all(math.isclose(r["ratio_percent"], 100 * r["unified_return"] / r["best_response_return"]) for r in summary["table3"])
    assert {"curves-N2.png", "figure4-N2.png", "table3-N2.png", "table1-N2.md", "summary.json", "manifest.json"} <= {p.name for p in output.iterdir()}
    assert runs.read_manifest(output)["status"] == "complete"
    for name in ("cooperative-N2-seed0", "value-N2"):
        runs.verify_manifest(output / "runs" / name / "result.json")
    assert list((output / "tensorboard" / "bpg-eps0-N2-seed0").glob("events.out.tfevents.*"))
    assert (output / "runs" / "bpg-eps0-N2-seed0" / "policies" / "theta.safetensors").is_file()
    first = _results(output)

    with pytest.raises(runs.RunError, match="earlier run"):  # no silent overwrite
        experiment.main(argv)
    with pytest.raises(runs.RunError, match="lr"):  # a changed config is refused
        experiment.main(argv + ["--resume", "--lr", "0.01"])
    checkpoint = output / "runs" / "bpg-eps0-N2-seed0" / "checkpoints" / "iteration-000002" / "MANIFEST.json"
    stamp = checkpoint.stat().st_mtime_ns
    experiment.main(argv + ["--resume"])  # finished trials are read back, not retrained
    assert checkpoint.stat().st_mtime_ns == stamp and _results(output) == first

    experiment.main(argv + ["--resume", "--iterations", "3"])  # more iterations extend every trial
    extended = _results(output)
    history = extended["bpg-eps0-N2-seed0"]["history"]
    assert [record["iteration"] for record in history] == [1, 2, 3]
    assert history[:2] == first["bpg-eps0-N2-seed0"]["history"]
    assert extended["value-N2"] == first["value-N2"]  # nothing to extend

    summary = experiment.main(argv + ["--resume", "--iterations", "3", "--heuristics", "value", "uniform"])  # a heuristic row extends the run
    with_uniform = _results(output)
    assert {name: with_uniform[name] for name in extended} == extended
    uniform = with_uniform["uniform-N2"]
    welfare = {float(m): w for m, w in uniform["uniform_validation_welfare"].items()}
    assert uniform["uniform_multiplier"] == max(welfare, key=welfare.get)
    row = next(row for row in summary["by_size"]["2"]["rows"] if row["method"] == "uniform")
    assert row["multiplier"] == uniform["uniform_multiplier"] and row["stand_in"] is None and "validation markets" in row["note"]
    assert ("edge of the grid" in row["note"]) == (row["multiplier"] in (min(welfare), max(welfare)))
    assert {("uniform", "value"), ("cooperative", "uniform")} <= {(c["a"], c["b"]) for c in summary["by_size"]["2"]["comparisons"]["welfare"]}

    # Turning PPO best responses on re-evaluates only the Table 3 trial, from its final checkpoint.
    with_ppo = [arg for arg in argv if arg != "--no-ppo-best-response"] + ["--resume", "--iterations", "3", "--heuristics", "value", "uniform"]
    summary = experiment.main(with_ppo)
    assert summary["table3"] and all("ppo_return" in row for row in summary["table3"])
    rerun = _results(output)
    assert {name: rerun[name] for name in rerun if name != "bpg-eps0-N2-seed0"} == {name: with_uniform[name] for name in with_uniform if name != "bpg-eps0-N2-seed0"}
    assert rerun["bpg-eps0-N2-seed0"]["history"] == with_uniform["bpg-eps0-N2-seed0"]["history"]


KILLER = """
import sys, time
import agents.bpg.checkpoints as checkpoints
stage, argv = sys.argv[1], sys.argv[2:]
if stage == "mid-save":
    # Hold the first save with the algorithm's files written but before its manifest and the
    # rename: the test kills the process here.
    original = checkpoints.sign_folder
    def slow(folder, metadata):
        print("IN-SAVE", flush=True)
        time.sleep(120)
        original(folder, metadata)
    checkpoints.sign_folder = slow
from experiments.bpg import main
main(argv)
"""


def _run_until(argv: list[str], stage: str, ready, timeout: float = 240.0) -> None:
    """Start the experiment in a subprocess and SIGKILL it once ``ready(output)`` holds."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", KILLER, stage, *argv], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + timeout
        if stage == "mid-save":
            while process.stdout.readline().strip() != "IN-SAVE":
                assert time.monotonic() < deadline and process.poll() is None, "never reached the checkpoint save"
        else:
            while not ready():
                assert time.monotonic() < deadline and process.poll() is None, f"never reached {stage}"
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_kill_at_several_points_and_resume_equals_an_uninterrupted_run(ray_instance, tmp_path):
    reference = tmp_path / "reference"
    experiment.main(["--output-dir", str(reference), *TINY_ARGS])
    expected = _results(reference)

    output = tmp_path / "killed"
    argv = ["--output-dir", str(output), *TINY_ARGS]
    runs_folder = output / "runs"
    # 1. in the middle of the first checkpoint save: files written, no manifest, not renamed
    _run_until(argv, "mid-save", None)
    assert not list(runs_folder.glob("*/checkpoints/iteration-*"))
    # 2. after a trial's first complete checkpoint, during training
    _run_until(argv + ["--resume"], "training", lambda: any(runs_folder.glob("*/checkpoints/iteration-000001/MANIFEST.json")))
    # 3. after some trials finished, with later ones under way
    _run_until(argv + ["--resume"], "later trials", lambda: len(list(runs_folder.glob("*/result.json.manifest.json"))) >= 2)
    experiment.main(argv + ["--resume"])
    assert not list(output.rglob(".tmp-*")) and not list(output.rglob(".*.tmp-*"))
    assert _results(output) == expected
