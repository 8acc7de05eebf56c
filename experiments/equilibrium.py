"""How exploitable are the baseline bidders? Bracketed exploitability from 10 to 10,000 advertisers.

For each market size N and each baseline population (``agents.populations``: everyone bids
multiplier 1, PID pacing, CPA pacing or online LP, or a ``mixed`` deal of the four), estimate each evaluated advertiser's
best unilateral deviation with the grid (constant and piecewise-constant multipliers) and, for
small N, PPO (lower bounds), and with the hindsight oracle (upper bound); report social welfare,
revenue and the BPG paper's Max Exploitability (Eq. 15), NashConv and exploitability, each
bracketed between the bounds (definitions: ``agents/equilibrium/report.py``). Best responses of
different advertisers run as parallel Ray tasks; above ``max_advertisers`` advertisers a uniform
sample is evaluated, and the outputs say so.

A second part records an example training curve: iterated grid best responses (best-response
dynamics over constant multipliers) on the N = 10 market, its exploitability measured after
every round and saved as a training history (``agents.equilibrium.TrainingHistory``), the same
file format a BPG run writes.

Markets: N = 48 is the AuctionNet preset (500,000 impressions); other sizes draw advertisers from
AuctionNet's budget and CPA ranges (``auctionsim.presets.large_population``) with about
AuctionNet's impressions per advertiser (capped at 1,000,000), everyone bidding on every
impression up to N = 100 and K = 64 retrieved candidates per impression above. ``--quick``
shrinks markets to 500 impressions per advertiser (within [20,000, 100,000]); at N = 48 that is
AuctionNet's 48 advertisers with their budgets scaled by the same factor (24,000 / 500,000), so
that budgets bind about as often as in the full preset. Quick mode also uses fewer seeds,
advertisers, grid values and PPO iterations, and runs online LP only up to N = 48 (it is the
slowest baseline to replay).

    python -m experiments.equilibrium --quick          # ~12 minutes on 2 cores
    python -m experiments.equilibrium                  # full mode (wall time below)
    python -m experiments.equilibrium --sizes 48 --populations pid cpa --max-advertisers 48

Seeds (issue 13's protocol): the lower-bound estimators are refitted once per training seed
(``--training-seeds``; each with its own fit episodes and PPO seed, the first also running the
oracle), all scored on the same ``--eval-seeds`` evaluation episodes; full mode 3 x 5, quick
1 x 2. Each summary row's ``protocol`` block gives the per-episode Max Exploitability (lower
and upper), welfare and revenue as ``mean``/``low``/``high`` with the seed counts;
``comparisons.json`` compares the populations of each N pairwise (Holm verdicts).

Outputs in ``results/equilibrium[-quick]/``: ``reports/<population>-N<n>[-t<i>].json`` (every
per-seed and per-advertiser number, one file per training seed), ``summary.json`` and
``summary.csv`` (one row per run), ``comparisons.json``, ``manifest.json``, ``tensorboard/``,
``history-brd-N10.json``, and the figures (PNG and SVG, redrawn from those files by
``experiments.plots``): ``frontier``, ``exploitability-vs-size``, ``compliance-vs-epsilon``,
``gains-N<n>``, ``curve-brd-N10``.

Wall time on the shared 2-core development machine: ``--quick`` 11.3 minutes; full mode not run
here, estimated at several hours (dominated by N = 10,000: each deviation replays a
1,000,000-impression day); run it on a Ray cluster (``RAY_ADDRESS``) to spread the
per-advertiser tasks.

Measured on the full AuctionNet preset (4 of 48 advertisers sampled, 2 evaluation seeds, 1 fit
seed, 6-value grid with 2 periods; 2.8 minutes)::

    python -m experiments.equilibrium --sizes 48 --populations fixed pid cpa --eval-seeds 2 \
        --fit-seeds 1 --max-advertisers 4 --grid 0.5 0.8 1 1.25 1.6 2.5 --grid-periods 2 \
        --ppo-max-size 0 --curve-rounds 0 --output-dir results/equilibrium-auctionnet

    population      social welfare   revenue   Max Exploitability (Eq. 15) [lower, upper]
    fixed (m = 1)          140,776   115,735   [0.005, 0.020]
    PID pacing             106,482   156,289   [0.024, 0.033]
    CPA pacing             121,391   105,034   [0.031, 0.048]
    online LP              154,194   106,553   [0.006, 0.020]
    mixed (the four)       125,925   122,411   [0.016, 0.023]

(online LP and mixed: the same command with ``--populations onlinelp mixed``, 9.5 minutes.)

The quick run's scaled AuctionNet (N = 48) gives nearly the same brackets ([0.005, 0.020],
[0.021, 0.033], [0.027, 0.040]). PID pacing pays more than the value it wins (revenue above
social welfare). The best grid deviations (``details`` in the reports): against multiplier 1
for everyone, constant 1 is itself best and gains come only from changing the multiplier during
the day; against PID pacing, a constant 1.25-1.6; against CPA pacing and online LP, bidding the
value (m = 1). Max Exploitability falls with N largely because Eq. 15 divides one advertiser's
gain by the whole market's welfare (and, above the sample size, the maximum is over the sample
only); NashConv / N relative to the mean advertiser's welfare does not fall
(``exploitability-vs-size``). At N = 10, PPO with quick mode's 6 iterations does not beat the
grid (its Max Exploitability is 0.03-0.06 against the grid's 0.03-0.07).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import pathlib
import shutil
import time
from dataclasses import dataclass

import numpy as np

from agents.equilibrium import (
    DEFAULT_GRID,
    LOWER,
    UPPER,
    ExploitabilityConfig,
    ExploitabilityReport,
    GridBestResponse,
    MarketSpec,
    PPOBestResponse,
    TrainingHistory,
    evaluate_exploitability,
    grid_best_response_dynamics,
)
from agents.populations import check_population, named_population, population_slug
from auctionsim import Market, MarketConfig, presets, runs, stats
from auctionsim.cluster import ray_session
from auctionsim.validation import check_int, check_number
from auctionsim.errors import ConfigError
from auctionsim.envs import FixedMultipliers
from experiments import args as arguments


@dataclass
class Args(arguments.ProtocolArgs):
    """Exploitability of baseline populations from 10 to 10,000 advertisers."""

    training_seeds: int = 3
    """independent fits of the lower-bound estimators (fit episodes and PPO seed); the first also runs the hindsight oracle"""
    eval_seeds: int = 5
    """evaluation episodes per run (the same markets for every population and training seed)"""
    tensorboard: bool = True
    """TensorBoard scalars of the PPO best responses under <output-dir>/tensorboard"""
    sizes: tuple[int, ...] = (10, 48, 100, 1000, 10000)
    """market sizes N (48 is the AuctionNet preset)"""
    populations: tuple[str, ...] = ("fixed", "pid", "cpa", "onlinelp")
    """populations (agents.populations): fixed (multiplier 1), pid, cpa, onlinelp, mixed, or your own as module:Name"""
    online_lp_max_size: int = 1000
    """run populations with online LP bidders (onlinelp, mixed) for N up to this: they need every advertiser's per-impression values"""
    fit_seeds: int = 2
    """episodes on which lower-bound estimators choose their deviation, per training seed (disjoint from each other and from the evaluation ones)"""
    max_advertisers: int = 12
    """advertisers evaluated per run; a uniform sample above this (the same sample for every training seed)"""
    grid: tuple[float, ...] = ()
    """multipliers searched by the grid best response (empty: agents.equilibrium.DEFAULT_GRID, 11 values; quick: 6 values)"""
    grid_periods: int = 3
    """periods of the piecewise-constant grid deviations"""
    grid_rounds: int = 2
    """coordinate-ascent rounds of the piecewise-constant grid search"""
    ppo_max_size: int = 100
    """run the PPO estimator for N up to this"""
    ppo_iterations: int = 20
    """PPO iterations per advertiser (8 episodes each)"""
    curve_rounds: int = 5
    """rounds of best-response dynamics recorded as the example training curve (0: skip)"""
    epsilons: tuple[float, ...] = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
    """epsilon-NE thresholds checked (normalised by social welfare, as in the BPG paper)"""
    backend: str = "ray"
    """ray (parallel tasks; a cluster when RAY_ADDRESS is set) or serial"""
    num_cpus: int = 2
    """CPUs of the local Ray instance"""
    gpus_per_task: float = 0.0
    """GPUs each best-response task reserves (e.g. 0.25: four PPO best responses share a GPU); 0: CPU only"""
    output_dir: str = "results/equilibrium"
    """where results go"""

    def __post_init__(self) -> None:
        if not self.grid:
            self.grid = QUICK_GRID if self.quick else DEFAULT_GRID
        for name in ("training_seeds", "eval_seeds", "fit_seeds", "max_advertisers", "grid_periods", "grid_rounds", "ppo_iterations", "num_cpus"):
            check_int(name, getattr(self, name), low=1)
        for name in ("seed", "curve_rounds", "ppo_max_size", "online_lp_max_size"):
            check_int(name, getattr(self, name), low=0)
        check_number("gpus_per_task", self.gpus_per_task, low=0.0, high=1.0)
        if any(size < 2 for size in self.sizes):
            raise ConfigError(f"sizes must be >= 2 advertisers, got {list(self.sizes)}")
        for population in self.populations:
            check_population(population)


QUICK = dict(
    training_seeds=1, eval_seeds=2, fit_seeds=1, max_advertisers=4, grid_periods=2, grid_rounds=1, ppo_max_size=10, ppo_iterations=6, curve_rounds=3,
    online_lp_max_size=48, output_dir="results/equilibrium-quick",
)
QUICK_GRID = (0.5, 0.8, 1.0, 1.25, 1.6, 2.5)
#: Fields a ``--resume`` may grow: more training seeds add reports; the rest must match.
EXTENDABLE = ("training_seeds",)


def sized_market(n_advertisers: int, impressions: int, candidates: int | None, n_categories: int) -> Market:
    """A market of ``n_advertisers`` drawn from AuctionNet's ranges (module-level, so Ray
    workers can rebuild it from a pickled ``functools.partial``)."""
    population = presets.large_population(n_advertisers, n_categories, impressions)
    config = MarketConfig(impressions_per_episode=impressions, candidates_per_impression=candidates)
    return Market(config, population, record_history=False)


def scaled_auctionnet(impressions: int) -> Market:
    """AuctionNet's market and advertisers with ``impressions`` per day and the budgets scaled
    by ``impressions / 500,000``, so that they bind about as often as in the full preset."""
    scenario = presets.get("auctionnet", impressions_per_episode=impressions, scale_budgets=True)
    return Market(scenario.market, scenario.population, record_history=False)


def market_spec(n_advertisers: int, quick: bool) -> MarketSpec:
    """AuctionNet's ~10,400 impressions per advertiser within [20k, 1M] (quick: 500 within
    [20k, 100k]); K = 64 candidates above 100 advertisers. N = 48: the AuctionNet preset
    (quick: scaled down, see :func:`scaled_auctionnet`)."""
    per_advertiser, cap = (500, 100_000) if quick else (10_417, 1_000_000)
    impressions = int(np.clip(n_advertisers * per_advertiser, 20_000, cap))
    label = f"N={n_advertisers}"
    if n_advertisers == 48 and not quick:
        return MarketSpec("auctionnet", label=f"auctionnet {label}")
    if n_advertisers == 48:
        factory = functools.partial(scaled_auctionnet, impressions)
        return MarketSpec(preset=None, factory=factory, label=f"auctionnet {label} scaled to {impressions:,} impressions")
    candidates = None if n_advertisers <= 100 else 64
    n_categories = int(np.clip(n_advertisers // 10, 2, 50))
    factory = functools.partial(sized_market, n_advertisers, impressions, candidates, n_categories)
    return MarketSpec(preset=None, factory=factory, label=f"{label}, {impressions:,} impressions, K={candidates}")


def episode_seeds(args: Args, training_seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(eval_seeds, fit_seeds)``: market seeds derived from ``args.seed``; the evaluation
    episodes are shared by every training seed, each training seed fits on its own episodes,
    and all are disjoint."""
    base = 1000 * args.seed
    fit_start = base + 500 + training_seed * args.fit_seeds
    return tuple(range(base + 100, base + 100 + args.eval_seeds)), tuple(range(fit_start, fit_start + args.fit_seeds))


def exploitability_config(args: Args, n_advertisers: int, training_seed: int = 0, log_dir: pathlib.Path | None = None) -> ExploitabilityConfig:
    """Training seed 0 runs every estimator and the oracle; later training seeds refit only the
    lower-bound estimators (the population's returns and the oracle do not depend on them)."""
    grid = GridBestResponse(args.grid, periods=args.grid_periods, rounds=args.grid_rounds)
    estimators: tuple = (grid,)
    if n_advertisers <= args.ppo_max_size:
        estimators += (PPOBestResponse(iterations=args.ppo_iterations, episodes_per_iteration=8, seed=args.seed + training_seed, log_dir=None if log_dir is None else str(log_dir)),)
    eval_seeds, fit_seeds = episode_seeds(args, training_seed)
    return ExploitabilityConfig(
        eval_seeds=eval_seeds,
        fit_seeds=fit_seeds,
        estimators=estimators,
        oracle=training_seed == 0,
        max_advertisers=args.max_advertisers,
        sample_seed=args.seed,
        backend=args.backend,
        num_cpus=args.num_cpus,
        gpus_per_task=args.gpus_per_task,
    )


def summary_row(report, population: str, n_advertisers: int, seconds: float, epsilons) -> dict:
    row = report.summary(epsilons)
    row.update(population=population, n_advertisers=n_advertisers, wall_seconds=seconds, market=report.metadata["market"]["name"])
    return row


def write_csv(rows: list[dict], path: pathlib.Path) -> None:
    """One line per run: welfare, revenue and the bracketed Max Exploitability and NashConv."""
    columns = ["population", "n_advertisers", "n_evaluated", "sampled", "social_welfare", "revenue", "wall_seconds"]
    names = sorted({name for row in rows for name in row["estimators"]})
    columns += [f"{metric}_{name}" for name in names for metric in ("max_exploitability", "nash_conv")]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            line = {key: row[key] for key in columns[:4]}
            line.update(social_welfare=row["social_welfare"]["estimate"], revenue=row["revenue"]["estimate"], wall_seconds=round(row["wall_seconds"], 1))
            for name, entry in row["estimators"].items():
                line[f"max_exploitability_{name}"] = entry["max_exploitability"]["estimate"]
                line[f"nash_conv_{name}"] = entry["nash_conv"]["estimate"]
            writer.writerow(line)


def best_response_dynamics_history(args: Args, output: pathlib.Path) -> TrainingHistory:
    """Example training run: rounds of Gauss-Seidel grid best responses on the N = 10 market,
    exploitability measured (grid + oracle) before the first round and after each round."""
    spec = market_spec(10, args.quick)
    eval_seeds, fit = episode_seeds(args)
    config = ExploitabilityConfig(
        eval_seeds=eval_seeds,
        fit_seeds=fit,
        estimators=(GridBestResponse(args.grid, periods=1),),
        max_advertisers=None,
        backend=args.backend,
        num_cpus=args.num_cpus,
        gpus_per_task=args.gpus_per_task,
        progress=False,
    )
    history = TrainingHistory(run={"algorithm": "grid best-response dynamics", "label": "BR dynamics N=10", "market": spec.describe(), "seed": args.seed})
    multipliers: dict[int, float] | float = 1.0
    start = time.perf_counter()
    for round_index in range(args.curve_rounds + 1):
        if round_index > 0:
            dynamics = grid_best_response_dynamics(spec, multipliers, args.grid, fit, max_rounds=1)
            multipliers = dynamics.multipliers
        report = evaluate_exploitability(FixedMultipliers(multipliers), spec, config=config, label=f"round {round_index}")
        history.add_report(round_index, report, wall_seconds=time.perf_counter() - start)
        lower, upper = report.max_exploitability("lower").estimate, report.max_exploitability("upper").estimate
        print(f"  BR dynamics round {round_index}: max exploitability [{lower:.4f}, {upper:.4f}], welfare {report.social_welfare.mean():.1f}")
        if round_index > 0 and dynamics.converged:
            history.run["converged_at_round"] = round_index
            break
    history.save(output)
    return history


def episode_grids(reports: list) -> dict[str, np.ndarray]:
    """One run's metrics as ``(training seeds, evaluation seeds)`` grids for :mod:`auctionsim.stats`:
    the per-episode Max Exploitability (BPG Eq. 15 on each evaluation episode) of the lower
    bound refitted with each training seed, of the upper bound (hindsight oracle, which does not
    depend on the training seed: one row), and the population's welfare and revenue (one row).
    Non-finite values (zero welfare) leave their metric out."""
    grids = {
        "max_exploitability_lower_per_episode": np.stack([report.per_seed_max_exploitability(LOWER) for report in reports]),
        "social_welfare": reports[0].social_welfare[None, :],
        "revenue": reports[0].revenue[None, :],
    }
    if UPPER in reports[0].names:
        grids["max_exploitability_upper_per_episode"] = reports[0].per_seed_max_exploitability(UPPER)[None, :]
    return {name: grid for name, grid in grids.items() if np.all(np.isfinite(grid))}


def _report_path(output: pathlib.Path, population: str, n_advertisers: int, training_index: int) -> pathlib.Path:
    suffix = "" if training_index == 0 else f"-t{training_index}"
    return output / "reports" / f"{population_slug(population)}-N{n_advertisers}{suffix}.json"


def main(argv: list[str] | None = None) -> list[dict]:
    args = arguments.parse(Args, argv, description=__doc__.splitlines()[0], quick=QUICK, prog="auctionsim equilibrium")
    ignored = (*runs.DEFAULT_IGNORED, "backend", "num_cpus", "gpus_per_task")
    with runs.run_folder(args.output_dir, args, resume=args.resume, extendable=EXTENDABLE, ignored=ignored) as run:
        output = run.path
        eval_seeds, _ = episode_seeds(args)
        run.seeds = {
            "eval": list(eval_seeds),
            "fit": {str(t): list(episode_seeds(args, t)[1]) for t in range(args.training_seeds)},
            "ppo": [args.seed + t for t in range(args.training_seeds)],
            "advertiser_sample": args.seed,
        }
        if not args.resume:
            shutil.rmtree(output / "reports", ignore_errors=True)
        (output / "reports").mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows: list[dict] = []
        tables: dict[str, dict] = {}
        # One Ray session for every run (starting Ray costs seconds); evaluate_exploitability reuses it.
        session = ray_session(args.num_cpus) if args.backend == "ray" else contextlib.nullcontext()
        with session:
            for n_advertisers in args.sizes:
                spec = market_spec(n_advertisers, args.quick)
                ids = spec.build().population.ids
                grids_by_population: dict[str, dict[str, np.ndarray]] = {}
                for population in args.populations:
                    policy = named_population(population, ids)
                    if policy.needs_impression_values and n_advertisers > args.online_lp_max_size:
                        print(f"skipping {population} at N={n_advertisers}: online LP needs every advertiser's per-impression values")
                        continue
                    run_start = time.perf_counter()
                    reports = []
                    for training_index in range(args.training_seeds):
                        path = _report_path(output, population, n_advertisers, training_index)
                        if path.is_file():  # a resumed run keeps what it measured
                            reports.append(ExploitabilityReport.load(path))
                            continue
                        label = f"{population} N={n_advertisers}" + (f" (training seed {training_index})" if training_index else "")
                        print(f"\n== {label}: {spec.name}")
                        log_dir = output / "tensorboard" / f"{population_slug(population)}-N{n_advertisers}" if args.tensorboard else None
                        config = exploitability_config(args, n_advertisers, training_index, log_dir)
                        report = evaluate_exploitability(policy, spec, config=config, label=label)
                        report.save(path)
                        reports.append(report)
                        print(report.summary_table())
                    seconds = time.perf_counter() - run_start
                    row = summary_row(reports[0], population, n_advertisers, seconds, args.epsilons)
                    grids = episode_grids(reports)
                    row["protocol"] = {metric: stats.grid_mean(grid).to_dict() for metric, grid in grids.items()}
                    rows.append(row)
                    grids_by_population[population] = grids
                    print(f"({seconds:.1f} s)")
                    # Save as we go: a long run interrupted keeps what it measured.
                    runs.atomic_write_json(output / "summary.json", rows)
                tables[f"N={n_advertisers}"] = population_tables(grids_by_population, n_advertisers)
                runs.atomic_write_json(output / "comparisons.json", tables)
            if args.curve_rounds > 0:
                print("\n== example training curve: grid best-response dynamics, N=10")
                best_response_dynamics_history(args, output / "history-brd-N10.json")
        total = time.perf_counter() - started
        runs.atomic_write(output / "summary.csv", lambda path: write_csv(rows, path))
        run.extra["timing"] = {"wall_seconds": total, "num_cpus": args.num_cpus, "backend": args.backend}
        draw_figures(output)
    print(f"\nall done in {total / 60:.1f} min; results and manifest.json in {output}/")
    return rows


def population_tables(grids_by_population: dict[str, dict[str, np.ndarray]], n_advertisers: int) -> dict:
    """Paired comparisons of the populations of one market size (same evaluation markets, same
    training seed indices), per metric, Holm over each table; printed as ``mean [low, high]``."""
    tables = {}
    metrics = sorted({metric for grids in grids_by_population.values() for metric in grids})
    for metric in metrics:
        scores = {population: grids[metric] for population, grids in grids_by_population.items() if metric in grids}
        shapes = {grid.shape for grid in scores.values()}
        if len(scores) < 1 or len(shapes) != 1:
            continue
        tables[metric] = stats.summary(scores)
        digits = 4 if "exploitability" in metric else 1
        print(stats.format_table(scores, digits=digits, title=f"\nN={n_advertisers}: {metric}"))
    return tables


def draw_figures(output: pathlib.Path) -> None:
    """Redraw every figure from the saved results (also ``python -m experiments.plots ...``)."""
    from experiments import plots

    rows = json.loads((output / "summary.json").read_text())
    plots.plot_welfare_frontier(rows, output / "frontier")
    if len({row["n_advertisers"] for row in rows}) > 1:
        plots.plot_exploitability_vs_size(rows, output / "exploitability-vs-size")
    plots.plot_compliance_vs_epsilon(rows, output / "compliance-vs-epsilon")
    for n_advertisers in sorted({row["n_advertisers"] for row in rows}):
        reports = sorted((output / "reports").glob(f"*-N{n_advertisers}.json"))
        plots.plot_gain_distribution(reports, output / f"gains-N{n_advertisers}")
    history = output / "history-brd-N10.json"
    if history.exists():
        plots.plot_exploitability_curves([history], output / "curve-brd-N10")


if __name__ == "__main__":
    main()
