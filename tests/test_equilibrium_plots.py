"""Equilibrium figures and the experiment script: files are written from saved results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auctionsim.errors import ConfigError

from agents.equilibrium import EstimatorValues, ExploitabilityReport, TrainingHistory
from experiments import plots


def synthetic_report(label: str, scale: float, sampled: bool = False) -> ExploitabilityReport:
    """A report built from arrays (3 seeds, 5 advertisers): no simulation needed."""
    generator = np.random.default_rng(int(scale * 100))
    base = generator.uniform(50, 100, (3, 5))
    lower = base + scale * generator.uniform(0, 10, (3, 5))
    return ExploitabilityReport(
        advertiser_ids=np.arange(5),
        n_advertisers=50 if sampled else 5,
        sampled=sampled,
        objective="value",
        eval_seeds=np.array([1, 2, 3]),
        fit_seeds=np.array([7]),
        population_returns=base,
        social_welfare=base.sum(axis=1) * (10 if sampled else 1),
        revenue=base.sum(axis=1) * 0.8,
        value_welfare=base.sum(axis=1),
        estimators={
            "grid-constant": EstimatorValues("grid-constant", "lower", lower, lower.mean(axis=0)),
            "oracle": EstimatorValues("oracle", "upper", lower + 20, np.full(5, np.nan)),
        },
        metadata={"label": label},
    )


def test_every_figure_is_written_as_png_and_svg(tmp_path):
    reports = [synthetic_report("a N=5", 1.0), synthetic_report("b N=50", 2.0, sampled=True)]
    rows = []
    for report, population, size in zip(reports, ("a", "b"), (5, 50)):
        row = report.summary(epsilons=(0.05,))
        row.update(population=population, n_advertisers=size, epsilon_setting=0.05 * size / 5)
        rows.append(row)
    histories = []
    for epsilon in (0.05, 0.1):
        history = TrainingHistory(run={"label": f"eps {epsilon}", "epsilon": epsilon})
        for iteration, report in enumerate(reports):
            history.add_report(iteration * 10, report, env_steps=iteration * 1000)
        histories.append(history.save(tmp_path / f"history-{epsilon}.json"))
    report_paths = [r.save(tmp_path / f"report-{i}.json") for i, r in enumerate(reports)]
    (tmp_path / "summary.json").write_text(json.dumps(rows))

    written = []
    written += plots.plot_exploitability_curves(histories, tmp_path / "curve")
    written += plots.plot_exploitability_curves(histories[:1], tmp_path / "curve-steps", x="env_steps")
    written += plots.plot_exploitability_vs_epsilon(histories, tmp_path / "epsilon")
    written += plots.plot_compliance_vs_epsilon([tmp_path / "summary.json"], tmp_path / "compliance")
    written += plots.plot_welfare_frontier(rows, tmp_path / "frontier")
    written += plots.plot_exploitability_vs_size(rows, tmp_path / "size")
    written += plots.plot_gain_distribution(report_paths, tmp_path / "gains")
    assert sorted(p.suffix for p in written) == [".png"] * 7 + [".svg"] * 7  # seven figures, each as PNG and SVG
    for path in written:
        assert path.exists() and path.stat().st_size > 1000, path


def test_plot_command_line(tmp_path, capsys):
    report = synthetic_report("cli", 1.0).save(tmp_path / "report.json")
    paths = plots.main(["gains", str(report), "-o", str(tmp_path / "gains")])
    assert [p.name for p in paths] == ["gains.png", "gains.svg"]
    assert "gains.png" in capsys.readouterr().out
    plots.main(["frontier", str(report), "-o", str(tmp_path / "frontier")])
    (tmp_path / "bad.json").write_text(json.dumps({"hello": 1}))
    folder = tmp_path / "figures"
    folder.mkdir()
    for argv, message in (
        (["epsilon", str(report), "-o", str(tmp_path / "epsilon")], "epsilon setting"),
        (["frontier", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x")], "not a summary"),
        (["gains", str(tmp_path), "-o", str(tmp_path / "x")], "Is a directory"),
        (["size", str(report), "-o", str(tmp_path / "x")], "at least two market sizes"),
        (["gains", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x")], "No such file"),
    ):
        with pytest.raises(SystemExit) as stop:
            plots.main(argv)
        error = capsys.readouterr().err
        assert stop.value.code == 2 and message in error and error.count("\n") == 1, (argv, error)
    with pytest.raises(SystemExit):
        plots.main(["nonsense", str(report), "-o", str(tmp_path / "x")])
    # -o naming a folder (existing, or ending in '/') writes <figure>.png and .svg inside it
    assert [p.name for p in plots.main(["gains", str(report), "-o", str(folder)])] == ["gains.png", "gains.svg"]
    assert (folder / "gains.png").exists()
    assert plots.main(["frontier", str(report), "-o", f"{tmp_path}/new/"])[0] == tmp_path / "new" / "frontier.png"


def test_gains_plot_has_a_legend_of_estimators(tmp_path, monkeypatch):
    import matplotlib.figure

    legends = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (legends.extend(ax.get_legend() for ax in self.axes), original(self, *a, **k))[1])
    plots.plot_gain_distribution([synthetic_report("legend", 1.0)], tmp_path / "gains")
    texts = {text.get_text() for legend in legends if legend is not None for text in legend.get_texts()}
    assert {"lower", "upper"} <= texts


def test_plot_command_registers_on_a_cli(tmp_path):
    import argparse

    report = synthetic_report("cli", 1.0).save(tmp_path / "report.json")
    parser = argparse.ArgumentParser(prog="auctionsim")
    plots.add_plot_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["plot", "gains", str(report), "-o", str(tmp_path / "gains")])
    assert [p.name for p in args.handler(args)] == ["gains.png", "gains.svg"]


def test_equilibrium_experiment_writes_results_and_figures(tmp_path):
    from auctionsim import runs
    from experiments import equilibrium

    output = tmp_path / "eq-quick"
    flags = ["--quick", "--sizes", "10", "--populations", "fixed", "pid", "--max-advertisers", "2", "--backend", "serial", "--ppo-max-size", "0", "--curve-rounds", "1", "--output-dir", str(output)]
    rows = equilibrium.main([*flags, "--training-seeds", "2"])
    assert len(rows) == 2 and rows[0]["n_advertisers"] == 10 and rows[0]["sampled"]
    for name in ("summary.json", "summary.csv", "comparisons.json", "history-brd-N10.json", "reports/fixed-N10.json", "reports/fixed-N10-t1.json", "frontier.png", "frontier.svg", "curve-brd-N10.png", "gains-N10.svg"):
        assert (output / name).exists(), name
    report = ExploitabilityReport.load(output / "reports" / "fixed-N10.json")
    assert set(report.names) == {"grid-constant", "grid-piecewise", "oracle", "lower", "upper"}
    assert report.max_exploitability("lower").estimate <= report.max_exploitability("upper").estimate
    refit = ExploitabilityReport.load(output / "reports" / "fixed-N10-t1.json")
    assert "oracle" not in refit.names and list(refit.eval_seeds) == list(report.eval_seeds)
    lower = rows[0]["protocol"]["max_exploitability_lower_per_episode"]
    assert (lower["n_training_seeds"], lower["n_eval_seeds"]) == (2, 2) and lower["low"] <= lower["mean"] <= lower["high"]
    table = json.loads((output / "comparisons.json").read_text())["N=10"]["social_welfare"]
    assert table["comparisons"][0]["verdict"] in ("fixed > pid", "fixed < pid", "not distinguishable")
    manifest = runs.verify_manifest(output)
    assert manifest["status"] == "complete" and manifest["seeds"]["fit"] == {"0": [500], "1": [501]}
    with pytest.raises(runs.RunError, match="max_advertisers: 2 -> 3"):
        equilibrium.main([*flags, "--training-seeds", "2", "--max-advertisers", "3", "--resume"])
    before = (output / "reports" / "fixed-N10.json").read_text()
    equilibrium.main([*flags, "--training-seeds", "3", "--resume", "--curve-rounds", "1"])  # extends: one more refit per population
    assert (output / "reports" / "fixed-N10-t2.json").exists() and (output / "reports" / "fixed-N10.json").read_text() == before
    assert runs.read_manifest(output)["extended"] == {"training_seeds": [2, 3]}


def test_quick_auctionnet_market_scales_budgets_with_impressions():
    from agents.equilibrium import MarketSpec
    from experiments import equilibrium

    full = MarketSpec("auctionnet").build()
    quick = equilibrium.market_spec(48, quick=True).build()
    scale = quick.config.impressions_per_episode / full.config.impressions_per_episode
    assert quick.config.impressions_per_episode == 24_000
    np.testing.assert_allclose(quick.population.budgets, full.population.budgets * scale)
    np.testing.assert_array_equal(quick.population.cpa_targets, full.population.cpa_targets)
    assert equilibrium.market_spec(48, quick=False).preset == "auctionnet"


def test_experiment_arguments_are_checked():
    from experiments import equilibrium
    from experiments.args import parse

    with pytest.raises(ConfigError, match="unknown population"):
        equilibrium.Args(populations=("fixed", "greedy"))
    with pytest.raises(ConfigError, match="sizes"):
        equilibrium.Args(sizes=(1,))
    quick = parse(equilibrium.Args, ["--quick", "--eval-seeds", "5", "--training-seeds", "3"], quick=equilibrium.QUICK)
    assert (quick.eval_seeds, quick.training_seeds, quick.fit_seeds) == (5, 3, equilibrium.QUICK["fit_seeds"])
    assert quick.output_dir.endswith("-quick") and quick.grid == equilibrium.QUICK_GRID
    full = parse(equilibrium.Args, [], quick=equilibrium.QUICK)
    assert full.training_seeds >= 3 and full.eval_seeds >= 5 and full.output_dir == "results/equilibrium"
