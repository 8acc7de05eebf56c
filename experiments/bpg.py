"""BPG experiments: the paper's Table 1 (100 advertisers), Table 3 (10 advertisers), training
curves and the Q3 ablation (Figure 4), on our AuctionNet-like market.

    python -m experiments.bpg --quick          # 10 advertisers, 8 iterations, 2 seeds
    python -m experiments.bpg                  # the full experiment (wall time in results/bpg/run.json)
    python -m experiments.bpg --plot-only      # redraw the figures from saved results
    python -m experiments.bpg --resume         # continue after an interruption (last checkpoints)

Wall time. ``--quick`` took 1,169 s (19.5 min) on the shared 2-core development machine under
heavy load from other jobs (the driver itself used 5.3 CPU-minutes), so it should fit in 15
minutes on 2 idle cores; this is not measured. The full mode has not been run: from
``benchmarks/bpg.py`` (about 40 s per BPG iteration at 100 advertisers, loaded machine) its 30
runs of 40 iterations, with their evaluations, need on the order of 20 hours on 2 cores;
``run.json`` records the actual wall time of a run.

Where our set-up differs from the paper's: the market is our AuctionNet-like simulator
(``G_i`` = value won = expected conversions x CPA target; second price; budgets scaled to
``impressions_per_advertiser``, 5x smaller than AuctionNet's for speed), not the authors'
system; the SAB, fully cooperative and BPG_zero populations are trained with the same BPG
loop and PPO (parameter shared), and MAAB, DCMAB and the ES algorithm of the paper's Table 1
are replaced by heuristic populations; Max Exploitability is a bracket (grid best response below, hindsight oracle above)
rather than one policy-gradient estimate; quick mode uses 2 seeds, not 10.

What runs (every trained population on the same market, seeds and evaluation):

1. Table 1: BPG for every ``epsilons`` value and the baselines trained the same way (SAB:
   parameter-shared PPO where each advertiser maximises its own return; fully cooperative:
   social welfare), plus heuristic populations (value bidding, PID pacing, CPA pacing, online
   LP), each over ``seeds``. Every population is scored by the equilibrium tooling: social
   welfare, revenue and Max Exploitability (BPG Eq. 15) bracketed between the best
   lower-bound best response found (grid search) and the hindsight oracle's upper bound;
   Compliance Rate = share of seeds whose Max Exploitability is <= epsilon (bracketed too).
2. Table 3: on a 10-advertiser market, the return of BPG's unified solution x* for each
   advertiser against that advertiser's own best response (grid, plus PPO in full mode).
3. Curves: social welfare and Max Exploitability over training iterations, from the saved
   training histories (``auctionsim.training_history/v1``); between evaluations the history
   holds the unified solution's gain (a cheap lower bound) as ``unified``.
4. Q3 ablation: BPG against BPG_zero (gradient (7) with the unified-optimizer term dropped)
   across epsilon, with the fully cooperative population as reference (Figure 4).

Outputs under ``output_dir``: ``histories/*.json``, ``reports/*.json``, ``table1.{json,csv,md}``,
``table3.{json,csv,md}``, ``run.json`` (arguments, wall time), ``checkpoints/`` and the figures.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Args:
    quick: bool = False
    """Small, fast version: 10 advertisers, 8 iterations, 2 seeds (see the wall time above)."""
    plot_only: bool = False
    """Only redraw the figures from the results already saved in output_dir."""
    output_dir: str = "results/bpg"
    """Where results, checkpoints and figures go."""
    n_advertisers: int = 100
    """Advertisers of the Table 1 market (the paper: 100)."""
    table3_advertisers: int = 10
    """Advertisers of the Table 3 market (the paper: 10)."""
    impressions_per_advertiser: int = 2_000
    """Impressions per episode per advertiser (AuctionNet: ~10,400); budgets scale with it."""
    n_ticks: int = 48
    """Decision ticks per episode (AuctionNet: 48)."""
    epsilons: tuple[float, ...] = (0.16, 0.12, 0.08, 0.04, 0.0)
    """Constraint levels of Table 1, normalised by social welfare."""
    ablation_epsilons: tuple[float, ...] = (0.08, 0.04, 0.0)
    """Constraint levels of the Q3 ablation (BPG_zero is trained at each)."""
    table3_epsilon: float = 0.0
    """Constraint level of the BPG run whose unified solution Table 3 examines."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (mean +- std over them; Compliance Rate is a share of them)."""
    iterations: int = 40
    """BPG iterations (Algorithm 1) per run."""
    eval_every: int = 10
    """Score the population with the equilibrium tooling every this many iterations (and last)."""
    checkpoint_every: int = 10
    """Save an RLlib checkpoint every this many iterations."""
    resume: bool = False
    """Continue runs from their last checkpoint (and skip finished runs)."""
    episodes_per_kind: int = 4
    """Primal episodes of each kind per iteration."""
    xstar_updates: int = 2
    """Unified-solution updates per iteration (Algorithm 1, line 2)."""
    dual_advertisers: int = 25
    """Advertisers whose constraint (Eq. 13) is re-measured per iteration (round robin)."""
    eval_seeds: tuple[int, ...] = (1000, 1001, 1002)
    """Market seeds that score every population and deviation."""
    fit_seeds: tuple[int, ...] = (2000, 2001)
    """Market seeds on which best responses are searched."""
    max_advertisers: int = 20
    """Advertisers whose best response is searched per evaluation (uniform sample)."""
    ppo_best_response: bool = True
    """Table 3: also search each advertiser's best response with PPO (else grid only)."""
    num_cpus: int = 2
    """CPUs of the local Ray instance (ignored with RAY_ADDRESS set: then the cluster's)."""
    exploitability_backend: str = "ray"
    """How best responses are searched: "ray" (parallel tasks) or "serial" (in this process)."""
    num_env_runners: int = 0
    """RLlib EnvRunner actors (0: sample in the driver, best on 2 cores)."""
    num_learners: int = 0
    """RLlib Learner actors (0: learn in the driver)."""
    num_gpus_per_learner: float = 0.0
    """GPUs per Learner (CUDA when available)."""
    heuristics: tuple[str, ...] = ("value", "pid", "cpa", "online_lp")
    """Heuristic populations evaluated next to the trained ones."""

    def __post_init__(self) -> None:
        from auctionsim.validation import check_int  # imported here: `bpg --help` stays fast

        if self.quick:
            self.n_advertisers = 10
            self.table3_advertisers = 10
            self.impressions_per_advertiser = 1_000
            self.n_ticks = 24
            self.seeds = (0, 1)
            self.iterations = 8
            self.eval_every = 4
            self.checkpoint_every = 4
            self.ablation_epsilons = (0.04, 0.0)
            self.eval_seeds = (1000, 1001)
            self.fit_seeds = (2000,)
            self.max_advertisers = 5
            self.dual_advertisers = 10
            self.ppo_best_response = False
            self.heuristics = ("value", "pid")
        for name in ("iterations", "eval_every", "checkpoint_every", "n_advertisers", "table3_advertisers", "n_ticks", "impressions_per_advertiser"):
            check_int(name, getattr(self, name), low=2 if name.endswith("advertisers") else 1)
        for name in ("epsilons", "ablation_epsilons"):
            if not all(math.isfinite(eps) and eps >= 0 for eps in getattr(self, name)):
                raise ValueError(f"{name} must be finite numbers >= 0, got {getattr(self, name)!r}")
        if not self.seeds or not self.eval_seeds or not self.fit_seeds:
            raise ValueError(f"seeds, eval_seeds and fit_seeds must not be empty, got {self.seeds!r}, {self.eval_seeds!r}, {self.fit_seeds!r}")


def parse_args(argv: list[str] | None = None) -> Args:
    """Command line flags from the fields of :class:`Args` (the shared :mod:`experiments.args`
    parser: ``--name value``; booleans are flags; tuples take several values)."""
    from experiments.args import parse

    return parse(Args, argv, description=__doc__.splitlines()[0])


# ---------------------------------------------------------------------- markets and populations
def market(args: Args, n_advertisers: int):
    from agents.bpg import market_spec

    return market_spec(n_advertisers, impressions_per_episode=args.impressions_per_advertiser * n_advertisers, n_ticks=args.n_ticks)


def heuristic_population(name: str):
    from agents.base import FixedMultipliers
    from agents.baselines import CPAPacing, OnlineLP, PIDPacing

    return {"value": lambda: FixedMultipliers(1.0), "pid": PIDPacing, "cpa": CPAPacing, "online_lp": OnlineLP}[name]()


def exploitability_config(args: Args, seed: int):
    from agents.equilibrium import ExploitabilityConfig, GridBestResponse

    return ExploitabilityConfig(
        eval_seeds=args.eval_seeds,
        fit_seeds=args.fit_seeds,
        estimators=(GridBestResponse(),),
        oracle=True,
        max_advertisers=args.max_advertisers,
        sample_seed=seed,
        backend=args.exploitability_backend,
        num_cpus=args.num_cpus,
        progress=False,
    )


def run_name(objective: str, epsilon: float | None, seed: int, n_advertisers: int) -> str:
    eps = "" if epsilon is None else f"-eps{epsilon:g}"
    return f"{objective}{eps}-N{n_advertisers}-seed{seed}"


# ---------------------------------------------------------------------- training one population
def train_population(args: Args, objective: str, epsilon: float, seed: int, n_advertisers: int, output: pathlib.Path) -> dict:
    """Train one population with BPG's loop (objective ``bpg``, ``bpg_zero``, ``cooperative`` or
    ``selfish``), scoring it every ``eval_every`` iterations; returns the final summary."""
    from tqdm.auto import tqdm

    from agents.bpg import BPG, BPGConfig
    from agents.equilibrium import TrainingHistory, evaluate_exploitability

    name = run_name(objective, epsilon if objective in ("bpg", "bpg_zero") else None, seed, n_advertisers)
    history_path = output / "histories" / f"{name}.json"
    report_path = output / "reports" / f"{name}.json"
    summary_path = output / "summaries" / f"{name}.json"
    spec = market(args, n_advertisers)
    checkpoint = output / "checkpoints" / name
    if args.resume and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["_unified"] = lambda: trained_policies(checkpoint)
        return summary
    config = (
        BPGConfig()
        .bpg(
            market=spec,
            objective=objective,
            epsilon=epsilon,
            seed=seed,
            episodes_per_kind=args.episodes_per_kind,
            xstar_updates=args.xstar_updates,
            dual_advertisers=min(args.dual_advertisers, n_advertisers),
        )
        .env_runners(num_env_runners=args.num_env_runners)
        .learners(num_learners=args.num_learners, num_gpus_per_learner=args.num_gpus_per_learner)
    )
    history = TrainingHistory(run={"algorithm": objective, "label": name, "seed": seed, "epsilon": epsilon if objective in ("bpg", "bpg_zero") else None, "market": spec.describe()})
    if args.resume and (checkpoint / "rllib_checkpoint.json").exists():
        algo = BPG.from_checkpoint(str(checkpoint))
        if history_path.exists():
            saved = TrainingHistory.load(history_path)
            history.records = [r for r in saved.records if r["iteration"] <= algo.bpg_state.iteration]
    else:
        algo = config.build_algo()
    started = time.perf_counter() - (history.records[-1].get("wall_seconds", 0.0) if history.records else 0.0)
    report = None
    try:
        with tqdm(total=args.iterations, initial=algo.bpg_state.iteration, desc=name, leave=False) as bar:
            while algo.bpg_state.iteration < args.iterations:
                algo.train()
                record = algo.history[-1]
                iteration = record["iteration"]
                scalars = {key: record[key] for key in ("lambda_sum", "lambda_max", "lambda_mean", "max_violation", "n_violating", "max_gain_normalised")}
                scalars["train_welfare"] = record["welfare"]  # on the dual step's market seeds
                common = dict(wall_seconds=time.perf_counter() - started, scalars=scalars)
                if iteration % args.eval_every == 0 or iteration == args.iterations:
                    report = evaluate_exploitability(algo.population_policy(), spec, config=exploitability_config(args, seed), label=name)
                    history.add_report(iteration, report, **common)
                else:
                    history.add(iteration, social_welfare=record["welfare"], revenue=record["revenue"], max_exploitability={"unified": record["max_gain_normalised"]}, **common)
                history.save(history_path)
                if iteration % args.checkpoint_every == 0 or iteration == args.iterations:
                    algo.save_to_path(str(checkpoint))
                bar.set_postfix(welfare=f"{record['welfare']:.0f}", gain=f"{record['max_gain_normalised']:.3f}", lam=f"{record['lambda_sum']:.2f}", viol=record["n_violating"])
                bar.update(1)
        if report is None:
            report = evaluate_exploitability(algo.population_policy(), spec, config=exploitability_config(args, seed), label=name)
        unified = {"population": algo.population_policy(), "x_star": algo.unified_solution_deviation()}
    finally:
        algo.stop()
    report.save(report_path)
    summary = summarise(report, name, objective, epsilon if objective in ("bpg", "bpg_zero") else None, seed, n_advertisers)
    summary["train_seconds"] = time.perf_counter() - started
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=1))
    summary["_unified"] = lambda: unified
    return summary


def trained_policies(checkpoint: pathlib.Path) -> dict:
    """The population policy theta and the unified solution x* of a finished run, restored from
    its last checkpoint (for Table 3 when the run itself was skipped by ``--resume``)."""
    from agents.bpg import BPG

    algo = BPG.from_checkpoint(str(checkpoint))
    try:
        return {"population": algo.population_policy(), "x_star": algo.unified_solution_deviation()}
    finally:
        algo.stop()


def evaluate_heuristic(args: Args, heuristic: str, seed: int, n_advertisers: int, output: pathlib.Path) -> dict:
    from agents.equilibrium import evaluate_exploitability

    name = run_name(heuristic, None, seed, n_advertisers)
    spec = market(args, n_advertisers)
    report = evaluate_exploitability(heuristic_population(heuristic), spec, config=exploitability_config(args, seed), label=name)
    report.save(output / "reports" / f"{name}.json")
    return summarise(report, name, heuristic, None, seed, n_advertisers)


def summarise(report, name: str, algorithm: str, epsilon: float | None, seed: int, n_advertisers: int) -> dict:
    """The Table 1 quantities of one population (Max Exploitability normalised by welfare)."""
    return {
        "name": name,
        "algorithm": algorithm,
        "epsilon": epsilon,
        "seed": seed,
        "n_advertisers": n_advertisers,
        "social_welfare": float(np.mean(report.social_welfare)),
        "revenue": float(np.mean(report.revenue)),
        "max_exploitability_lower": report.max_exploitability("lower").estimate,
        "max_exploitability_upper": report.max_exploitability("upper").estimate,
    }


# ---------------------------------------------------------------------- tables
def table1(summaries: list[dict], epsilons: tuple[float, ...]) -> list[dict]:
    """Rows of Table 1: mean +- std over seeds; Compliance Rate bracketed by the bounds."""
    rows = []
    groups: dict[tuple, list[dict]] = {}
    for summary in summaries:
        groups.setdefault((summary["algorithm"], summary["epsilon"]), []).append(summary)
    for (algorithm, epsilon), group in groups.items():
        def stat(key):
            values = np.array([s[key] for s in group])
            return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

        row = {"algorithm": algorithm, "epsilon": epsilon, "n_seeds": len(group)}
        for key in ("social_welfare", "revenue", "max_exploitability_lower", "max_exploitability_upper"):
            row[key], row[key + "_std"] = stat(key)
        if epsilon is not None:
            # Certain compliance (upper bound <= eps) .. possible compliance (lower bound <= eps).
            row["compliance_certain"] = float(np.mean([s["max_exploitability_upper"] <= epsilon for s in group]))
            row["compliance_possible"] = float(np.mean([s["max_exploitability_lower"] <= epsilon for s in group]))
        rows.append(row)
    order = {name: index for index, name in enumerate(["selfish", "cooperative", "value", "pid", "cpa", "online_lp", "bpg", "bpg_zero"])}
    rows.sort(key=lambda r: (order.get(r["algorithm"], 99), -(r["epsilon"] if r["epsilon"] is not None else 1)))
    return rows


def table3(args: Args, unified, output: pathlib.Path) -> list[dict]:
    """Unified solution x* vs each advertiser's own best response (BPG Table 3)."""
    from agents.equilibrium import DeviationEvaluator, ExploitabilityConfig, GridBestResponse, PPOBestResponse, evaluate_exploitability

    spec = market(args, args.table3_advertisers)
    estimators = (GridBestResponse(),) + ((PPOBestResponse(warm_start_from="grid-constant"),) if args.ppo_best_response else ())
    config = ExploitabilityConfig(eval_seeds=args.eval_seeds, fit_seeds=args.fit_seeds, estimators=estimators, oracle=True, max_advertisers=None, backend=args.exploitability_backend, num_cpus=args.num_cpus, progress=False)
    # Others play the trained population theta; x* and the best responses deviate alone.
    report = evaluate_exploitability(unified["population"], spec, config=config, label="table3")
    report.save(output / "reports" / "table3.json")
    lower, upper = report.deviation_returns("lower"), report.deviation_returns("upper")
    rows = []
    for column, advertiser in enumerate(report.advertiser_ids):
        evaluator = DeviationEvaluator(spec, unified["population"], int(advertiser))
        x_star_return = float(evaluator.returns(unified["x_star"], args.eval_seeds).mean())
        best = float(lower[:, column].mean())
        rows.append(
            {
                "advertiser": int(advertiser),
                "unified_return": x_star_return,
                "best_response_return": best,
                "ratio_percent": 100.0 * x_star_return / best if best > 0 else float("nan"),
                "oracle_upper_bound": float(upper[:, column].mean()),
                "population_return": float(report.population_returns[:, column].mean()),
            }
        )
    return rows


def save_table(rows: list[dict], stem: pathlib.Path, columns: list[tuple[str, str]]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    keys = sorted({key for row in rows for key in row})
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(render(row, key) for _, key in columns) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def render(row: dict, key: str) -> str:
    if key == "compliance":
        if "compliance_certain" not in row:
            return "/"
        return f"{100 * row['compliance_certain']:.0f}%-{100 * row['compliance_possible']:.0f}%"
    if key == "bracket":
        return f"[{row['max_exploitability_lower']:.3f}, {row['max_exploitability_upper']:.3f}]"
    value = row.get(key)
    if value is None:
        return "/"
    if isinstance(value, float) and key + "_std" in row:
        return f"{value:.1f} ± {row[key + '_std']:.1f}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


TABLE1_COLUMNS = [("Algorithm", "algorithm"), ("Social welfare", "social_welfare"), ("Max Exploitability [lower, upper]", "bracket"), ("epsilon", "epsilon"), ("Compliance (certain-possible)", "compliance"), ("Revenue", "revenue"), ("seeds", "n_seeds")]
TABLE3_COLUMNS = [("Advertiser", "advertiser"), ("R(x*)", "unified_return"), ("R* (best response found)", "best_response_return"), ("R(x*)/R* %", "ratio_percent"), ("oracle upper bound", "oracle_upper_bound"), ("G_i(theta)", "population_return")]


# ---------------------------------------------------------------------- figures (from saved results)
def plot_curves(output: pathlib.Path) -> None:
    """Welfare and Max Exploitability over training iterations, one line per run of seed 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.equilibrium import TrainingHistory

    paths = sorted((output / "histories").glob("*-seed0.json"))
    if not paths:
        return
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for path in paths:
        history = TrainingHistory.load(path)
        label = history.run.get("label", path.stem).rsplit("-N", 1)[0]
        # Every iteration: welfare and x*'s gain on the dual step's market seeds (dotted).
        # Evaluation points: welfare and Max Exploitability on the evaluation seeds (markers).
        train = [(record["iteration"], record["scalars"].get("train_welfare", record["social_welfare"]["estimate"]), record["scalars"]["max_gain_normalised"])
                 for record in history.records if "train_welfare" in record["scalars"] or "lower" not in record.get("max_exploitability", {})]
        train_iterations, train_welfare, unified_gain = (np.array(column) for column in zip(*train)) if train else (np.zeros(0),) * 3
        line, = top.plot(train_iterations, train_welfare, ":", alpha=0.6)
        evaluated = [(record["iteration"], record["social_welfare"]["estimate"]) for record in history.records if "lower" in record.get("max_exploitability", {})]
        if evaluated:
            top.plot(*zip(*evaluated), "o-", color=line.get_color(), label=label)
        bottom.plot(train_iterations, unified_gain, ":", color=line.get_color(), alpha=0.6)
        for bound, style in (("lower", "o-"), ("upper", "s--")):
            x, estimate, low, high = history.series("max_exploitability", bound)
            if x.size:
                bottom.errorbar(x, estimate, yerr=[estimate - low, high - estimate], fmt=style, color=line.get_color(), capsize=2)
    top.set_ylabel("social welfare")
    top.set_title("o: evaluation seeds; dotted: the dual step's seeds (other days)", fontsize=8)
    top.legend(fontsize=7, ncol=2)
    bottom.set_ylabel("Max Exploitability (/ welfare)")
    bottom.set_xlabel("BPG iteration")
    bottom.set_title("o lower bound (grid), s upper bound (oracle), dotted: x* gain", fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "curves.png", dpi=120)
    plt.close(figure)


def plot_ablation(output: pathlib.Path) -> None:
    """Figure 4: welfare and Max Exploitability of BPG and BPG_zero against epsilon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = output / "table1.json"
    if not path.exists():
        return
    rows = json.loads(path.read_text())
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for algorithm, marker in (("bpg", "o"), ("bpg_zero", "s")):
        group = sorted((r for r in rows if r["algorithm"] == algorithm), key=lambda r: r["epsilon"])
        if not group:
            continue
        eps = [r["epsilon"] for r in group]
        left.errorbar(eps, [r["social_welfare"] for r in group], yerr=[r["social_welfare_std"] for r in group], marker=marker, capsize=3, label=algorithm)
        right.errorbar(eps, [r["max_exploitability_lower"] for r in group], yerr=[r["max_exploitability_lower_std"] for r in group], marker=marker, capsize=3, label=f"{algorithm} lower")
        right.plot(eps, [r["max_exploitability_upper"] for r in group], marker=marker, linestyle="--", label=f"{algorithm} upper")
    for row in rows:
        if row["algorithm"] == "cooperative":
            left.axhline(row["social_welfare"], color="grey", linestyle=":", label="fully cooperative")
            right.axhline(row["max_exploitability_lower"], color="grey", linestyle=":", label="fully cooperative (lower)")
    left.set_xlabel("epsilon (/ welfare)")
    left.set_ylabel("social welfare")
    right.set_xlabel("epsilon (/ welfare)")
    right.set_ylabel("Max Exploitability (/ welfare)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(output / "ablation_q3.png", dpi=120)
    plt.close(figure)


def plot_table3(output: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = output / "table3.json"
    if not path.exists():
        return
    rows = json.loads(path.read_text())
    figure, axis = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(rows))
    axis.bar(x - 0.2, [r["unified_return"] for r in rows], 0.4, label="unified solution x*")
    axis.bar(x + 0.2, [r["best_response_return"] for r in rows], 0.4, label="best response found")
    axis.scatter(x, [r["oracle_upper_bound"] for r in rows], marker="_", s=200, color="k", label="oracle upper bound")
    axis.set_xticks(x, [str(r["advertiser"]) for r in rows])
    axis.set_xlabel("advertiser")
    axis.set_ylabel("return (value won)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(output / "table3.png", dpi=120)
    plt.close(figure)


def plot_all(output: pathlib.Path) -> None:
    plot_curves(output)
    plot_ablation(output)
    plot_table3(output)


# ---------------------------------------------------------------------- the experiment
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    output = pathlib.Path(args.output_dir).resolve()  # RLlib checkpoints need absolute paths
    output.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        plot_all(output)
        return
    from agents.equilibrium import ray_session

    started = time.perf_counter()
    with ray_session(args.num_cpus):  # local by default, RAY_ADDRESS for a cluster; shut down after
        run_experiment(args, output)
    wall = time.perf_counter() - started
    (output / "run.json").write_text(json.dumps({"args": dataclasses.asdict(args), "wall_seconds": wall}, indent=1))
    plot_all(output)
    print((output / "table1.md").read_text())
    if (output / "table3.md").exists():
        print((output / "table3.md").read_text())
    print(f"wall time {wall:.0f} s; results in {output}")


def run_experiment(args: Args, output: pathlib.Path) -> None:
    """Train and score every population, then write Table 1 and Table 3."""
    started = time.perf_counter()
    n = args.n_advertisers
    summaries: list[dict] = []
    unified_for_table3 = None
    # 1. Table 1 (and the BPG runs of the ablation).
    for seed in args.seeds:
        for epsilon in args.epsilons:
            summary = train_population(args, "bpg", epsilon, seed, n, output)
            if seed == args.seeds[0] and epsilon == args.table3_epsilon and args.table3_advertisers == n:
                unified_for_table3 = summary["_unified"]
            summaries.append(summary)
        for objective in ("selfish", "cooperative"):
            summaries.append(train_population(args, objective, 0.0, seed, n, output))
        # 4. Q3 ablation: BPG_zero at each ablation epsilon.
        for epsilon in args.ablation_epsilons:
            summaries.append(train_population(args, "bpg_zero", epsilon, seed, n, output))
        for heuristic in args.heuristics:
            summaries.append(evaluate_heuristic(args, heuristic, seed, n, output))
        print(f"seed {seed} done after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = table1([{k: v for k, v in s.items() if not k.startswith("_")} for s in summaries], args.epsilons)
    save_table(rows, output / "table1", TABLE1_COLUMNS)
    # 2. Table 3 on the 10-advertiser market.
    if unified_for_table3 is None:
        unified_for_table3 = train_population(args, "bpg", args.table3_epsilon, args.seeds[0], args.table3_advertisers, output)["_unified"]
    save_table(table3(args, unified_for_table3(), output), output / "table3", TABLE3_COLUMNS)


if __name__ == "__main__":
    main()
