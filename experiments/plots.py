"""Equilibrium figures, drawn from saved results (never by re-running anything).

Python API (each function writes ``<output>.png`` and ``<output>.svg`` and returns their paths):

* :func:`plot_exploitability_curves`: Max Exploitability (BPG Eq. 15) over training iterations,
  with confidence bands, and social welfare below, from training-history JSON files
  (``agents.equilibrium.TrainingHistory``, schema ``auctionsim.training_history/v1``);
* :func:`plot_exploitability_vs_epsilon`: achieved Max Exploitability against the epsilon a run
  was trained for (histories whose ``run.epsilon`` is set, or summaries with ``epsilon_setting``);
* :func:`plot_compliance_vs_epsilon`: share of evaluation episodes meeting the epsilon-NE
  constraint as epsilon varies, between its certain (upper bound) and possible (lower bound) values;
* :func:`plot_welfare_frontier`: social welfare against Max Exploitability, one panel per market;
* :func:`plot_exploitability_vs_size`: the bracket of Max Exploitability and exploitability
  (NashConv / N) against the number of advertisers;
* :func:`plot_gain_distribution`: per-advertiser unilateral gains (share of social welfare) by
  estimator, from exploitability-report JSON files.

Command line: ``auctionsim plot ...`` (:func:`add_plot_command` registers it on a CLI's
sub-commands) or ``python -m experiments.plots ...``::

    python -m experiments.plots curve    results/bpg/history-*.json   -o results/bpg/curve
    python -m experiments.plots epsilon  results/bpg/history-*.json   -o results/bpg/exploitability-vs-epsilon
    python -m experiments.plots frontier results/equilibrium/summary.json -o frontier
    python -m experiments.plots compliance results/equilibrium/summary.json -o compliance
    python -m experiments.plots size     results/equilibrium/summary.json -o size
    python -m experiments.plots gains    results/equilibrium/reports/*-N48.json -o gains-N48

Inputs of ``frontier``/``compliance``/``size``/``epsilon`` may be summary lists (``summary.json``),
single summaries, exploitability reports or training histories; they are converted as needed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any, Iterable, Sequence

import numpy as np

from agents.equilibrium import LOWER, UPPER, ExploitabilityReport, TrainingHistory
from agents.equilibrium.history import HISTORY_SCHEMA
from agents.equilibrium.report import SCHEMA as REPORT_SCHEMA
from auctionsim.errors import AuctionSimError, ConfigError

__all__ = [
    "load_summaries",
    "load_histories",
    "save_figure",
    "plot_exploitability_curves",
    "plot_exploitability_vs_epsilon",
    "plot_compliance_vs_epsilon",
    "plot_welfare_frontier",
    "plot_exploitability_vs_size",
    "plot_gain_distribution",
    "add_plot_command",
    "build_parser",
    "run",
    "main",
]

_STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3}
_BOUND_COLOURS = {LOWER: "tab:blue", UPPER: "tab:red"}
_BOUND_LABELS = {LOWER: "lower bound (grid / PPO)", UPPER: "upper bound (hindsight oracle)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def save_figure(figure, output: str | pathlib.Path) -> list[pathlib.Path]:
    """Write ``<output>.png`` (150 dpi) and ``<output>.svg``; close the figure."""
    stem = pathlib.Path(output)
    stem = stem.with_suffix("") if stem.suffix in (".png", ".svg") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    figure.tight_layout()
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1])
    _pyplot().close(figure)
    return paths


# ---------------------------------------------------------------------------------------- inputs
def _read(item: Any) -> Any:
    if isinstance(item, (str, pathlib.Path)):
        return json.loads(pathlib.Path(item).read_text())
    return item


def load_summaries(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Summaries (as :meth:`ExploitabilityReport.summary` returns them) from summary lists,
    single summaries, reports (objects or JSON) and training histories (their last record)."""
    summaries: list[dict[str, Any]] = []
    for item in items:
        data = _read(item)
        if isinstance(data, ExploitabilityReport):
            summaries.append(data.summary())
        elif isinstance(data, TrainingHistory):
            summaries.append(_history_summary(data))
        elif isinstance(data, list):
            summaries.extend(load_summaries(data))
        elif isinstance(data, dict) and data.get("schema") == REPORT_SCHEMA:
            summaries.append(ExploitabilityReport.from_dict(data).summary())
        elif isinstance(data, dict) and data.get("schema") == HISTORY_SCHEMA:
            summaries.append(_history_summary(TrainingHistory.from_dict(data)))
        elif isinstance(data, dict) and "estimators" in data:
            summaries.append(data)
        else:
            raise ValueError(f"not a summary, report or training history: {str(item)[:80]}")
    return summaries


def _history_summary(history: TrainingHistory) -> dict[str, Any]:
    """A summary-like dict from a history's last record that has Max Exploitability."""
    records = [r for r in history.records if "max_exploitability" in r]
    if not records:
        raise ValueError(f"training history {history.run.get('label')!r} has no Max Exploitability record")
    last = records[-1]
    return {
        "label": history.run.get("label"),
        "epsilon_setting": history.run.get("epsilon"),
        "social_welfare": last.get("social_welfare"),
        "revenue": last.get("revenue"),
        "estimators": {name: {"max_exploitability": value, "nash_conv": last.get("nash_conv", {}).get(name)} for name, value in last["max_exploitability"].items()},
    }


def load_histories(items: Iterable[Any]) -> list[TrainingHistory]:
    """Training histories from objects or JSON paths."""
    return [item if isinstance(item, TrainingHistory) else TrainingHistory.from_dict(_read(item)) for item in items]


def _label(summary: dict[str, Any]) -> str:
    return str(summary.get("label") or summary.get("population") or "run")


def _bracket_names(entries: dict[str, Any]) -> list[str]:
    names = [name for name in (LOWER, UPPER) if name in entries]
    return names or list(entries)


# ---------------------------------------------------------------------------------------- figures
def plot_exploitability_curves(
    histories: Sequence[Any], output: str | pathlib.Path, names: Sequence[str] | None = None, x: str = "iteration"
) -> list[pathlib.Path]:
    """Max Exploitability over training (top; bands: confidence intervals) and social welfare
    (bottom) for each training history. ``names``: estimators to draw (default: the
    lower/upper brackets when recorded, else every estimator). ``x``: ``"iteration"``,
    ``"env_steps"`` or ``"wall_seconds"``."""
    plt = _pyplot()
    histories = load_histories(histories)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True)
    line_styles = ["-", "--", ":", "-."]
    for index, history in enumerate(histories):
        run = history.run.get("label") or history.run.get("algorithm") or f"run {index}"
        xs_by_iteration = {r["iteration"]: r.get(x, r["iteration"]) for r in history.records}
        for name_index, name in enumerate(names or _bracket_names({n: 1 for n in history.estimator_names()})):
            iterations, estimate, low, high = history.series("max_exploitability", name)
            if iterations.size == 0:
                continue
            xs = np.array([xs_by_iteration[int(i)] for i in iterations], dtype=np.float64)
            colour = _BOUND_COLOURS.get(name) if len(histories) == 1 else f"C{index}"
            style = line_styles[name_index % len(line_styles)]
            top.plot(xs, estimate, style, color=colour, marker="o", markersize=3, label=f"{run}: {_BOUND_LABELS.get(name, name)}")
            top.fill_between(xs, low, high, color=colour, alpha=0.2, linewidth=0)
        iterations, estimate, low, high = history.series("social_welfare")
        if iterations.size:
            xs = np.array([xs_by_iteration[int(i)] for i in iterations], dtype=np.float64)
            bottom.plot(xs, estimate, color=f"C{index}", marker="o", markersize=3, label=run)
            bottom.fill_between(xs, low, high, color=f"C{index}", alpha=0.2, linewidth=0)
        epsilon = history.run.get("epsilon")
        if epsilon is not None:
            top.axhline(float(epsilon), color=f"C{index}", linestyle=":", linewidth=1, label=f"{run}: epsilon = {epsilon:g}")
    top.set_ylabel("Max Exploitability\n(share of social welfare, Eq. 15)")
    top.set_title("Exploitability over training")
    top.legend(loc="best")
    bottom.set_ylabel("social welfare (currency)")
    bottom.set_xlabel({"iteration": "training iteration", "env_steps": "environment steps", "wall_seconds": "wall time (s)"}.get(x, x))
    if x == "iteration":
        from matplotlib.ticker import MaxNLocator

        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="best")
    return save_figure(figure, output)


def plot_exploitability_vs_epsilon(items: Sequence[Any], output: str | pathlib.Path) -> list[pathlib.Path]:
    """Achieved Max Exploitability (lower and upper bounds, with intervals) against the epsilon
    each run was trained for; the diagonal marks the epsilon-NE constraint."""
    plt = _pyplot()
    summaries = [s for s in load_summaries(items) if s.get("epsilon_setting") is not None]
    if not summaries:
        raise ValueError("no run with an epsilon setting (training histories need run.epsilon)")
    figure, axis = plt.subplots(figsize=(6.5, 5))
    epsilons = np.array([float(s["epsilon_setting"]) for s in summaries])
    for offset, name in ((-0.15, LOWER), (0.15, UPPER)):
        values = [s["estimators"].get(name, {}).get("max_exploitability") for s in summaries]
        keep = [v is not None for v in values]
        if not any(keep):
            continue
        estimate = np.array([v["estimate"] for v in values if v is not None])
        low = np.array([v["low"] for v in values if v is not None])
        high = np.array([v["high"] for v in values if v is not None])
        spacing = (np.ptp(epsilons) or 1.0) * 0.02
        axis.errorbar(epsilons[keep] + offset * spacing, estimate, yerr=[estimate - low, high - estimate], fmt="o", capsize=3, color=_BOUND_COLOURS[name], label=_BOUND_LABELS[name])
    line = np.linspace(0, epsilons.max() * 1.05, 2)
    axis.plot(line, line, "k:", linewidth=1, label="exploitability = epsilon")
    axis.set_xlabel("epsilon setting (share of social welfare)")
    axis.set_ylabel("Max Exploitability (Eq. 15)")
    axis.set_title("Exploitability achieved vs epsilon")
    axis.legend(loc="best")
    return save_figure(figure, output)


def plot_compliance_vs_epsilon(items: Sequence[Any], output: str | pathlib.Path, epsilons: Sequence[float] | None = None) -> list[pathlib.Path]:
    """Share of evaluation episodes whose Max Exploitability is <= epsilon, for each run (one
    panel per market size when the summaries have ``n_advertisers``): the band runs from certain
    compliance (the upper bound meets epsilon, dashed) to possible compliance (the lower bound
    does, solid)."""
    plt = _pyplot()
    summaries = load_summaries(items)
    figure, panels = _panels(plt, _group(summaries, "n_advertisers"), width=5.0, height=4.0)
    colours: dict[str, str] = {}
    for axis, (group, members) in panels:
        per_seed = {
            _series_name(s): {name: np.array(entry.get("per_seed_max_exploitability", []), dtype=np.float64) for name, entry in s["estimators"].items()}
            for s in members
        }
        finite = np.concatenate([v[v < np.inf] for runs in per_seed.values() for v in runs.values()] + [np.zeros(1)])
        grid = np.asarray(epsilons if epsilons is not None else np.linspace(0.0, max(finite.max() * 1.1, 1e-3), 200))
        for label, runs in per_seed.items():
            if LOWER not in runs or UPPER not in runs or runs[LOWER].size == 0:
                continue
            colour = colours.setdefault(label, f"C{len(colours) % 10}")
            possible = (runs[LOWER][None, :] <= grid[:, None]).mean(axis=1)
            certain = (runs[UPPER][None, :] <= grid[:, None]).mean(axis=1)
            axis.fill_between(grid, certain, possible, color=colour, alpha=0.2, step="post", linewidth=0)
            axis.step(grid, possible, where="post", color=colour, label=label)
            axis.step(grid, certain, where="post", color=colour, linestyle="--")
        axis.set_title(_panel_title(group))
        axis.set_xlabel("epsilon (share of social welfare)")
        axis.set_ylabel("compliance rate (share of episodes)")
        axis.set_ylim(-0.02, 1.02)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="lower right")
    figure.suptitle("epsilon-NE compliance over evaluation episodes (solid: lower bound meets epsilon; dashed: upper bound does)", fontsize=11)
    return save_figure(figure, output)


def _series_name(summary: dict[str, Any]) -> str:
    """A run's name within a panel: its population when known, else its label."""
    return str(summary.get("population") or _label(summary))


def _panel_title(group: Any) -> str:
    return f"N = {group}" if isinstance(group, (int, np.integer)) else str(group)


def _panels(plt, groups: dict[Any, list[dict[str, Any]]], width: float, height: float):
    """A figure with one panel per group (at most 3 a row; sizes in increasing order) and
    ``[(axis, (group, members)), ...]``; unused panels are hidden."""
    columns = max(1, min(3, len(groups)))
    rows = max(1, int(np.ceil(len(groups) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    ordered = sorted(groups.items(), key=lambda item: str(item[0]).zfill(8))
    for axis in list(axes.flat)[len(ordered):]:
        axis.set_visible(False)
    return figure, list(zip(axes.flat, ordered))


def _group(summaries: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for summary in summaries:
        groups.setdefault(summary.get(key, summary.get("market", "market")), []).append(summary)
    return groups


def plot_welfare_frontier(items: Sequence[Any], output: str | pathlib.Path) -> list[pathlib.Path]:
    """Social welfare (with interval) against Max Exploitability: a segment from the lower to
    the upper bound for each run, one panel per market size. Up and to the left is better."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    summaries = load_summaries(items)
    figure, panels = _panels(plt, _group(summaries, "n_advertisers"), width=5.0, height=4.2)
    colours: dict[str, str] = {}
    for axis, (group, members) in panels:
        for summary in members:
            name = _series_name(summary)
            colour = colours.setdefault(name, f"C{len(colours) % 10}")
            welfare = summary["social_welfare"]
            entries = summary["estimators"]
            lower = entries.get(LOWER, {}).get("max_exploitability")
            upper = entries.get(UPPER, {}).get("max_exploitability")
            ends = [v for v in (lower, upper) if v is not None and np.isfinite(v["estimate"])]
            if not ends:
                continue
            xs = [v["estimate"] for v in ends]
            axis.plot(xs, [welfare["estimate"]] * len(xs), "-", color=colour, linewidth=2, alpha=0.7)
            axis.errorbar(
                xs[0], welfare["estimate"], yerr=[[welfare["estimate"] - welfare["low"]], [welfare["high"] - welfare["estimate"]]],
                xerr=[[xs[0] - ends[0]["low"]], [ends[0]["high"] - xs[0]]], fmt="o", color=colour, capsize=3, label=name,
            )
            if len(ends) > 1:
                axis.plot(xs[1], welfare["estimate"], ">", color=colour, markersize=7)
        axis.set_title(_panel_title(group))
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.set_xlabel("Max Exploitability (o lower, > upper bound)")
        axis.set_ylabel("social welfare (currency)")
        axis.legend(loc="best")
    figure.suptitle("Welfare vs exploitability", fontsize=13)
    return save_figure(figure, output)


def plot_exploitability_vs_size(items: Sequence[Any], output: str | pathlib.Path) -> list[pathlib.Path]:
    """Max Exploitability (left) and exploitability = NashConv / N as a share of the mean
    advertiser's welfare (right) against the number of advertisers, per population: the band
    spans the lower to the upper bound; error bars are confidence intervals."""
    summaries = [s for s in load_summaries(items) if "n_advertisers" in s]
    all_sizes = sorted({s["n_advertisers"] for s in summaries})
    if len(all_sizes) < 2:
        raise ValueError(f"needs summaries of at least two market sizes N to draw a curve, got N = {all_sizes}")
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for index, (population, members) in enumerate(sorted(_group(summaries, "population").items(), key=lambda i: str(i[0]))):
        members = sorted(members, key=lambda s: s["n_advertisers"])
        sizes = np.array([s["n_advertisers"] for s in members], dtype=np.float64)
        colour = f"C{index % 10}"
        for axis, metric in ((left, "max_exploitability"), (right, "exploitability")):
            for name, style in ((LOWER, "o-"), (UPPER, "^--")):
                values = [s["estimators"].get(name, {}).get(metric) for s in members]
                if any(v is None for v in values):
                    continue
                scale = np.array([1.0 if metric == "max_exploitability" else s["n_advertisers"] / s["social_welfare"]["estimate"] for s in members])
                estimate = np.array([v["estimate"] for v in values]) * scale
                low = np.array([v["low"] for v in values]) * scale
                high = np.array([v["high"] for v in values]) * scale
                axis.errorbar(sizes, estimate, yerr=[estimate - low, high - estimate], fmt=style, color=colour, capsize=3, label=f"{population} ({name})")
            lows = [s["estimators"].get(LOWER, {}).get(metric) for s in members]
            highs = [s["estimators"].get(UPPER, {}).get(metric) for s in members]
            if all(v is not None for v in lows + highs):
                scale = np.array([1.0 if metric == "max_exploitability" else s["n_advertisers"] / s["social_welfare"]["estimate"] for s in members])
                axis.fill_between(sizes, np.array([v["estimate"] for v in lows]) * scale, np.array([v["estimate"] for v in highs]) * scale, color=colour, alpha=0.12, linewidth=0)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xticks(all_sizes)
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("advertisers N")
    left.set_ylabel("Max Exploitability (Eq. 15)")
    left.set_title("Largest unilateral gain / social welfare")
    right.set_ylabel("mean unilateral gain / mean welfare per advertiser")
    right.set_title("Exploitability (NashConv / N), relative")
    right.legend(loc="best", ncol=2, fontsize=8)
    note = sorted({f"N={s['n_advertisers']}: {s['n_evaluated']} sampled" for s in summaries if s.get("sampled")})
    if note:
        figure.text(0.01, 0.01, "advertisers sampled: " + ", ".join(note), fontsize=8)
    return save_figure(figure, output)


def plot_gain_distribution(reports: Sequence[Any], output: str | pathlib.Path, names: Sequence[str] | None = None) -> list[pathlib.Path]:
    """Per-advertiser mean unilateral gain as a share of social welfare, by estimator (one
    panel per report): a box of the advertisers with each one's confidence interval."""
    plt = _pyplot()
    loaded = [r if isinstance(r, ExploitabilityReport) else ExploitabilityReport.from_dict(_read(r)) for r in reports]
    if not loaded:
        raise ValueError("no report to plot")
    figure, axes = plt.subplots(1, len(loaded), figsize=(max(4.5 * len(loaded), 6), 4.8), squeeze=False)
    for axis, report in zip(axes[0], loaded):
        chosen = [n for n in (names or report.names) if n in report.names]
        welfare = report.social_welfare.mean()
        for position, name in enumerate(chosen):
            mean, low, high = (x / welfare for x in report.advertiser_gains(name))
            axis.boxplot([mean], positions=[position], widths=0.5, showfliers=False)
            jitter = (np.random.default_rng(position).uniform(-0.15, 0.15, mean.size)) + position
            colour = _BOUND_COLOURS.get(name, f"C{position + 2}")
            axis.errorbar(jitter, mean, yerr=[mean - low, high - mean], fmt="o", markersize=3, color=colour, alpha=0.7, capsize=2, elinewidth=0.8, label=name)
        axis.axhline(0.0, color="k", linewidth=0.8)
        axis.legend(title="estimator (one dot per advertiser, 95% interval)", fontsize=8, title_fontsize=8, loc="best")
        axis.set_xticks(range(len(chosen)))
        axis.set_xticklabels(chosen, rotation=30, ha="right")
        title = report.metadata.get("label") or report.metadata.get("population", "")
        sampled = f" ({report.advertiser_ids.size} of {report.n_advertisers} sampled)" if report.sampled else ""
        axis.set_title(f"{title}{sampled}", fontsize=10)
        axis.set_ylabel("unilateral gain / social welfare")
    figure.suptitle("Per-advertiser gains from deviating", fontsize=13)
    return save_figure(figure, output)


# ---------------------------------------------------------------------------------------- CLI
_COMMANDS = {
    "curve": (plot_exploitability_curves, "exploitability over training iterations (training-history JSON files)"),
    "epsilon": (plot_exploitability_vs_epsilon, "achieved exploitability vs epsilon setting (histories with run.epsilon)"),
    "compliance": (plot_compliance_vs_epsilon, "epsilon-NE compliance rate vs epsilon (summaries or reports)"),
    "frontier": (plot_welfare_frontier, "social welfare vs Max Exploitability (summaries or reports)"),
    "size": (plot_exploitability_vs_size, "exploitability vs number of advertisers (summaries)"),
    "gains": (plot_gain_distribution, "per-advertiser gain distributions (exploitability-report JSON files)"),
}


_DESCRIPTION = "Draw equilibrium figures (PNG and SVG) from saved results."


def _add_figures(parser: argparse.ArgumentParser) -> None:
    """One sub-command per figure: ``<figure> INPUTS... -o OUTPUT``."""
    figures = parser.add_subparsers(dest="figure", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        command = figures.add_parser(name, help=help_text, description=help_text)
        command.add_argument("inputs", nargs="+", help="JSON files")
        command.add_argument("-o", "--output", required=True, help=f"output path without extension (writes .png and .svg), or an existing folder / a path ending in '/' (writes {name}.png and {name}.svg there)")
        if name == "curve":
            command.add_argument("--x", default="iteration", choices=("iteration", "env_steps", "wall_seconds"), help="horizontal axis")


def build_parser() -> argparse.ArgumentParser:
    """The ``plot`` command's parser (standalone: ``python -m experiments.plots``)."""
    parser = argparse.ArgumentParser(prog="auctionsim plot", description=_DESCRIPTION)
    _add_figures(parser)
    return parser


def add_plot_command(commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Register ``plot`` on a CLI's sub-commands (``auctionsim plot ...``); its handler is
    :func:`run` (set as the ``handler`` default, called with the parsed arguments)."""
    parser = commands.add_parser("plot", help="draw equilibrium figures from saved results", description=_DESCRIPTION)
    _add_figures(parser)
    parser.set_defaults(handler=run)
    return parser


def _output_stem(output: str, figure: str) -> pathlib.Path:
    """``-o`` as given: a folder (existing, or ending in a separator) gets ``<figure>`` inside."""
    path = pathlib.Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return path / figure
    return path


def run(args: argparse.Namespace) -> list[pathlib.Path]:
    """Draw the figure named by parsed ``plot`` arguments; prints and returns the files written.
    Unreadable or unsuitable inputs raise a :class:`ConfigError` naming the figure (the CLI
    prints it as one line, exit status 2)."""
    function = _COMMANDS[args.figure][0]
    extra = {"x": args.x} if args.figure == "curve" else {}
    try:
        paths = function(args.inputs, _output_stem(args.output, args.figure), **extra)
    except (ValueError, KeyError, OSError) as error:  # JSONDecodeError is a ValueError
        raise ConfigError(f"plot {args.figure}: {error}") from None
    for path in paths:
        print(path)
    return paths


def main(argv: Sequence[str] | None = None) -> list[pathlib.Path]:
    """``auctionsim plot <figure> INPUTS... -o OUTPUT``; prints and returns the files written."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AuctionSimError as error:
        print(f"auctionsim plot: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
