"""experiments.bpg: argument parsing, the Table 1 aggregation, and a tiny end-to-end run (real
RLlib training, real exploitability scoring, real figures) that resumes from its saved results."""

from __future__ import annotations

import json
import math
import shutil
import tempfile

import numpy as np
import pytest

from agents.bpg import init_ray
from experiments import bpg as experiment


@pytest.fixture(scope="module")
def ray_instance():
    """Ray started once for the module (or the caller's, when one is running), shut down after."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    temp_dir = tempfile.mkdtemp(prefix="ray-bpg-experiment-tests-")
    init_ray(num_cpus=2, temp_dir=temp_dir)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_parse_args_reads_tuples_numbers_and_flags():
    args = experiment.parse_args(["--epsilons", "0.1", "0", "--seeds", "3", "4", "--iterations", "5", "--resume", "--n-advertisers", "7"])
    assert args.epsilons == (0.1, 0.0) and args.seeds == (3, 4)
    assert args.iterations == 5 and args.n_advertisers == 7 and args.resume and not args.quick
    assert experiment.parse_args(["--quick"]).n_advertisers == 10


@pytest.mark.parametrize(
    "field, value",
    [("iterations", 0), ("eval_every", 0), ("checkpoint_every", -1), ("n_advertisers", 1), ("n_ticks", 2.5), ("epsilons", (0.1, float("nan"))), ("ablation_epsilons", (-0.1,)), ("seeds", ())],
)
def test_bad_arguments_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        experiment.Args(**{field: value})


def test_table1_aggregates_seeds_and_brackets_compliance():
    def summary(algorithm, epsilon, seed, welfare, lower, upper):
        return dict(algorithm=algorithm, epsilon=epsilon, seed=seed, social_welfare=welfare, revenue=welfare / 2, max_exploitability_lower=lower, max_exploitability_upper=upper)

    summaries = [
        summary("bpg", 0.04, 0, 100.0, 0.01, 0.05),
        summary("bpg", 0.04, 1, 110.0, 0.03, 0.03),
        summary("bpg", 0.04, 2, 120.0, 0.06, 0.09),
        summary("cooperative", None, 0, 130.0, 0.2, 0.3),
    ]
    rows = experiment.table1(summaries, (0.04,))
    assert [row["algorithm"] for row in rows] == ["cooperative", "bpg"]
    bpg = rows[1]
    assert bpg["n_seeds"] == 3 and math.isclose(bpg["social_welfare"], 110.0) and math.isclose(bpg["social_welfare_std"], 10.0)
    # Upper bound <= epsilon on seed 1 only; lower bound <= epsilon on seeds 0 and 1.
    assert math.isclose(bpg["compliance_certain"], 1 / 3) and math.isclose(bpg["compliance_possible"], 2 / 3)
    assert "compliance_certain" not in rows[0] and rows[0]["social_welfare_std"] == 0.0


def test_tiny_experiment_end_to_end_and_resume(ray_instance, tmp_path):
    output = tmp_path / "bpg"
    argv = [
        "--output-dir", str(output), "--n-advertisers", "2", "--table3-advertisers", "2",
        "--impressions-per-advertiser", "400", "--n-ticks", "4", "--iterations", "2", "--eval-every", "2",
        "--checkpoint-every", "1", "--seeds", "0", "--epsilons", "0", "--ablation-epsilons", "0",
        "--heuristics", "value", "--eval-seeds", "1000", "--fit-seeds", "2000", "--max-advertisers", "2",
        "--episodes-per-kind", "1", "--xstar-updates", "1", "--exploitability-backend", "serial",
    ]  # fmt: skip
    experiment.main(argv)
    rows = json.loads((output / "table1.json").read_text())
    assert {row["algorithm"] for row in rows} == {"bpg", "bpg_zero", "selfish", "cooperative", "value"}
    for row in rows:
        assert row["social_welfare"] > 0 and row["revenue"] > 0
        # Max Exploitability is bracketed: the grid's best response never beats the oracle bound.
        assert 0 <= row["max_exploitability_lower"] <= row["max_exploitability_upper"] + 1e-9
    table3 = json.loads((output / "table3.json").read_text())
    assert [row["advertiser"] for row in table3] and all(
        math.isclose(row["ratio_percent"], 100 * row["unified_return"] / row["best_response_return"]) for row in table3
    )
    history = json.loads((output / "histories" / "bpg-eps0-N2-seed0.json").read_text())
    assert [record["iteration"] for record in history["records"]] == [1, 2]
    assert "lower" in history["records"][-1]["max_exploitability"]  # scored by the tooling at the end
    assert "unified" in history["records"][0]["max_exploitability"]  # x*'s gain in between
    assert json.loads((output / "run.json").read_text())["wall_seconds"] > 0
    figures = ("curves.png", "ablation_q3.png", "table3.png")
    assert all((output / name).stat().st_size > 1000 for name in figures)

    # Redraw from saved results only.
    for name in figures:
        (output / name).unlink()
    experiment.main(["--output-dir", str(output), "--plot-only"])
    assert all((output / name).exists() for name in figures)

    # Resume: finished runs are read back, not retrained, and give the same tables.
    checkpoint_state = output / "checkpoints" / "bpg-eps0-N2-seed0" / "rllib_checkpoint.json"
    stamp = checkpoint_state.stat().st_mtime_ns
    experiment.main(argv + ["--resume"])
    assert checkpoint_state.stat().st_mtime_ns == stamp
    resumed = json.loads((output / "table1.json").read_text())
    assert resumed == rows
    np.testing.assert_allclose(
        [row["unified_return"] for row in json.loads((output / "table3.json").read_text())], [row["unified_return"] for row in table3]
    )
