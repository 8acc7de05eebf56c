"""The bandit experiment (``python -m experiments.bandits``) end to end on a tiny setting: raw
results saved as JSON, NPZ and CSV, plots redrawn from them, and the delay visible in the saved
policies."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from agents.bandits import regret_bound
from auctionsim import ConfigError, runs
from experiments import bandits

DAYS, TICKS, SEEDS = 4, 8, 2
TRAINING, EVAL = 2, 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("bandits")
    args = bandits.Args(
        training_seeds=TRAINING,
        eval_seeds=EVAL,
        tensorboard=False,
        days=DAYS,
        snowball_days=DAYS,
        snowball_seeds=SEEDS,
        warmup_days=2,
        impressions_per_day=3_000,
        snowball_impressions_per_day=2_000,
        output_dir=str(output_dir),
    )
    report = bandits.execute(args)
    return args, output_dir, report


def test_raw_results_plots_and_csvs_are_saved(tiny_run):
    _, output_dir, _ = tiny_run
    for name in ("results.json", "results.npz", "summary.json", "regret.csv", "snowball.csv", "snowball_bids.csv", "profit_regret.png", "heatmaps.png", "snowball.png"):
        assert (output_dir / name).stat().st_size > 0, name
    with (output_dir / "regret.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * DAYS  # EXP3, Batch EXP3, Batch EXP3-IX, Batch EXP3 at 10x per day
    with (output_dir / "snowball_bids.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == bandits.K


def test_saved_results_have_the_documented_shapes_and_bounds(tiny_run):
    _, output_dir, _ = tiny_run
    results = bandits.load_results(output_dir)
    products = len(bandits.PRODUCTS)
    assert results["fixed_profit"].shape == (EVAL, products, bandits.K, DAYS)
    for run in results["regret"].values():
        assert run["arms"].shape == (TRAINING, EVAL, DAYS * TICKS, products)
        assert ((run["arms"] >= 0) & (run["arms"] < bandits.K)).all()
        assert run["policy"].shape == (TRAINING, EVAL, DAYS, products, bandits.K)
        np.testing.assert_allclose(run["policy"].sum(axis=-1), 1.0)
        assert ((run["reward"] >= 0) & (run["reward"] <= 1)).all()
        expected_bound = regret_bound(DAYS * TICKS, bandits.K, run["batch_size"], run["delay"], run["learning_rate"], products)
        assert run["bound"] == pytest.approx(expected_bound)
    for variant in results["snowball"]["variants"].values():
        assert variant["policy"].shape == (TRAINING, DAYS, SEEDS, bandits.K)
    # training seeds change the learners' draws; evaluation seeds change the markets
    arms = results["regret"]["EXP3"]["arms"]
    assert not np.array_equal(arms[0, 0], arms[1, 0]) and not np.array_equal(results["fixed_profit"][0], results["fixed_profit"][1])


def test_delay_is_visible_in_the_saved_policies(tiny_run):
    """EXP3 updates every round; Batch EXP3 (B = one day, D = 2) plays the uniform policy for
    the first D + 1 days: its first update is at the end of day D + 1 (saved policy index D)."""
    args, output_dir, _ = tiny_run
    results = bandits.load_results(output_dir)
    uniform = np.full(bandits.K, 1.0 / bandits.K)
    assert not np.allclose(results["regret"]["EXP3"]["policy"][0, 0, 0], uniform)
    for name in ("Batch EXP3", "Batch EXP3-IX", "Batch EXP3, 10x rate"):
        policy = results["regret"][name]["policy"][0, 0]
        np.testing.assert_allclose(policy[: args.delay], np.broadcast_to(uniform, policy[: args.delay].shape))
        assert not np.allclose(policy[args.delay], uniform)


def test_regret_grid_matches_raw_rewards_and_summary_has_intervals_and_verdicts(tiny_run):
    _, output_dir, report = tiny_run
    results = bandits.load_results(output_dir)
    fixed = results["fixed_reward"].sum(axis=3)  # (E, C, k)
    table = report["tables"]["regret_normalised"]
    for name, run in results["regret"].items():
        regret = fixed.max(axis=2).sum(axis=1)[None, :] - run["reward"].sum(axis=(2, 3))  # (T, E)
        entry = table["metrics"][name]
        assert entry["mean"] == pytest.approx(regret.mean())
        assert entry["low"] <= entry["mean"] <= entry["high"]
        assert (entry["n_training_seeds"], entry["n_eval_seeds"]) == (TRAINING, EVAL)
    assert len(table["comparisons"]) == 6 and table["multiple_comparisons"] == "holm"
    for comparison in table["comparisons"]:
        assert comparison["verdict"] in (f"{comparison['a']} > {comparison['b']}", f"{comparison['a']} < {comparison['b']}", "not distinguishable")
    snowball = report["tables"]["snowball_days_mostly_on_unprofitable_bids"]
    assert len(snowball["comparisons"]) == 3 and next(iter(snowball["metrics"].values()))["n_eval_seeds"] == SEEDS


def test_manifest_lists_every_result_and_resume_reuses_units(tiny_run, capsys):
    args, output_dir, report = tiny_run
    manifest = runs.verify_manifest(output_dir)
    assert manifest["status"] == "complete" and manifest["seeds"]["training"] == [0, 1]
    assert {"results.json", "results.npz", "summary.json", "heatmaps.png"} <= set(manifest["files"])
    units = sorted(p.name for p in (output_dir / "units").iterdir())
    assert len([u for u in units if u.startswith("regret-")]) == TRAINING * EVAL
    with pytest.raises(runs.RunError, match="days: 4 -> 5"):
        bandits.execute(dataclasses.replace(args, days=5, resume=True))


def test_units_of_a_killed_or_smaller_run_are_reused_exactly(tmp_path):
    small = dict(training_seeds=1, eval_seeds=2, tensorboard=False, days=2, snowball_days=2, snowball_seeds=1, warmup_days=1, impressions_per_day=2_000, snowball_impressions_per_day=1_000)
    reference = bandits.run(bandits.Args(**small), tmp_path / "reference")
    # A run killed after its first evaluation seed's units (or run with one seed): they are on
    # disk; the run with two seeds loads them and computes only the rest.
    bandits.run(bandits.Args(**dict(small, eval_seeds=1)), tmp_path / "killed")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "killed" / "units").iterdir()}
    resumed = bandits.run(bandits.Args(**small), tmp_path / "killed")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "killed" / "units").iterdir()}
    assert all(after[name] == mtime for name, mtime in before.items()) and len(after) > len(before)
    resumed["seconds"] = reference["seconds"]
    assert json.dumps(bandits.summary(resumed), sort_keys=True) == json.dumps(bandits.summary(reference), sort_keys=True)


def test_plot_only_redraws_from_saved_results(tiny_run):
    args, output_dir, report = tiny_run
    (output_dir / "heatmaps.png").unlink()
    again = bandits.execute(bandits.Args(plot_only=True, output_dir=args.output_dir))
    assert (output_dir / "heatmaps.png").exists()
    assert json.dumps(again, sort_keys=True) == json.dumps(report, sort_keys=True)


def test_plot_only_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no saved results in"):
        bandits.execute(bandits.Args(plot_only=True, output_dir=str(tmp_path / "none")))


def test_explicit_seed_flags_win_over_quick():
    args = bandits.arguments.parse(bandits.Args, ["--quick", "--training-seeds", "3", "--eval-seeds", "5"], quick=bandits.QUICK)
    assert (args.training_seeds, args.eval_seeds, args.days) == (3, 5, 45)
    full = bandits.arguments.parse(bandits.Args, [], quick=bandits.QUICK)
    assert full.training_seeds >= 3 and full.eval_seeds >= 5


@pytest.mark.parametrize(
    "overrides, message",
    [({"days": 0}, "days"), ({"delay": -1}, "delay"), ({"value": "gain"}, "value"), ({"snowball_learning_rate": 0.0}, "snowball_learning_rate")],
)
def test_invalid_arguments_raise(overrides, message):
    with pytest.raises(ConfigError, match=message):
        bandits.Args(**overrides)
