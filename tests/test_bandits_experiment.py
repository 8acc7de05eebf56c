"""The bandit experiment (``python -m experiments.bandits``) end to end on a tiny setting: raw
results saved as JSON, NPZ and CSV, plots redrawn from them, and the delay visible in the saved
policies."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from agents.bandits import regret_bound
from auctionsim import ConfigError
from experiments import bandits

DAYS, TICKS, SEEDS = 4, 8, 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("bandits")
    args = bandits.Args(
        days=DAYS,
        snowball_days=DAYS,
        snowball_seeds=SEEDS,
        warmup_days=2,
        impressions_per_day=3_000,
        snowball_impressions_per_day=2_000,
        output_dir=str(output_dir),
    )
    report = bandits.main(args)
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
    assert results["fixed_profit"].shape == (products, bandits.K, DAYS)
    for run in results["regret"].values():
        assert run["arms"].shape == (DAYS * TICKS, products)
        assert ((run["arms"] >= 0) & (run["arms"] < bandits.K)).all()
        assert run["policy"].shape == (DAYS, products, bandits.K)
        np.testing.assert_allclose(run["policy"].sum(axis=2), 1.0)
        assert ((run["reward"] >= 0) & (run["reward"] <= 1)).all()
        expected_bound = regret_bound(DAYS * TICKS, bandits.K, run["batch_size"], run["delay"], run["learning_rate"], products)
        assert run["bound"] == pytest.approx(expected_bound)
    for variant in results["snowball"]["variants"].values():
        assert variant["policy"].shape == (DAYS, SEEDS, bandits.K)


def test_delay_is_visible_in_the_saved_policies(tiny_run):
    """EXP3 updates every round; Batch EXP3 (B = one day, D = 2) plays the uniform policy for
    the first D + 1 days: its first update is at the end of day D + 1 (saved policy index D)."""
    args, output_dir, _ = tiny_run
    results = bandits.load_results(output_dir)
    uniform = np.full(bandits.K, 1.0 / bandits.K)
    assert not np.allclose(results["regret"]["EXP3"]["policy"][0], uniform)
    for name in ("Batch EXP3", "Batch EXP3-IX", "Batch EXP3, 10x rate"):
        policy = results["regret"][name]["policy"]
        np.testing.assert_allclose(policy[: args.delay], np.broadcast_to(uniform, policy[: args.delay].shape))
        assert not np.allclose(policy[args.delay], uniform)


def test_regret_curve_matches_raw_rewards(tiny_run):
    _, output_dir, report = tiny_run
    results = bandits.load_results(output_dir)
    fixed = results["fixed_reward"].sum(axis=2)  # (C, k)
    for name, run in results["regret"].items():
        regret = fixed.max(axis=1).sum() - run["reward"].sum()
        assert report["regret"][name]["regret_normalised"] == pytest.approx(regret)


def test_plot_only_redraws_from_saved_results(tiny_run):
    args, output_dir, report = tiny_run
    (output_dir / "heatmaps.png").unlink()
    again = bandits.main(bandits.Args(plot_only=True, output_dir=args.output_dir))
    assert (output_dir / "heatmaps.png").exists()
    assert json.dumps(again, sort_keys=True) == json.dumps(report, sort_keys=True)


@pytest.mark.parametrize(
    "overrides, message",
    [({"days": 0}, "days"), ({"delay": -1}, "delay"), ({"value": "gain"}, "value"), ({"snowball_learning_rate": 0.0}, "snowball_learning_rate")],
)
def test_invalid_arguments_raise(overrides, message):
    with pytest.raises(ConfigError, match=message):
        bandits.Args(**overrides)
