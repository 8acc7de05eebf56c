"""BPG experiments: the paper's Table 1 (headline at 100 advertisers, also 10), Table 3 (10
advertisers), Figure 4 (the Q3 ablation) and training curves, on our AuctionNet-like market,
with paired 95% intervals over training seeds x evaluation seeds.

    python -m experiments.bpg --quick          # 10 advertisers, 6 min (see below)
    python -m experiments.bpg                  # the full experiment (N = 100 and N = 10)
    python -m experiments.bpg --resume         # continue an interrupted run (or extend it)
    python -m experiments.bpg --plot-only      # redraw the figures from saved results

What runs, per population size N (``--sizes``):

1. Stage 1 (a Ray Tune sweep, or in this process with ``--scheduler serial``): the fully
   cooperative population (social welfare, ``L1`` with lambda = 0) and SAB (parameter-shared PPO,
   each advertiser its own return), one trial per training seed, trained by BPG's own loop; the
   heuristic populations (value bidding = multiplier 1, PID pacing, CPA pacing, online LP), which
   stand in for the paper's MAAB, DCMAB and ES baselines: **they are not those algorithms**; and
   ``uniform``, everyone on the one multiplier with the highest welfare on the validation markets
   (:func:`agents.equilibrium.best_uniform_multiplier`): how much shading together gives without
   a learned policy, the yardstick of the cooperative gate.
2. The relative epsilon scale: the cooperative population's Max Exploitability at that N as
   the constraint measures it (the unified solution x*'s largest unilateral gain / social
   welfare, mean of the last ``scale_window`` iterations over the first ``scale_seeds`` training
   seeds, so that more training seeds extend a run without moving its epsilons). With
   ``--epsilon-mode relative`` (the default) every epsilon is a fraction of it; ``welfare`` uses
   the paper's scale (a share of welfare) directly. Why: at N = 100 one advertiser's best gain
   is a small share of the welfare of all 100 (0.3-0.5% here), so the paper's 0.08-0.16 never
   bind on our market; see :func:`agents.bpg.duals.resolve_epsilon`.
3. Stage 2: BPG and BPG_zero (Section 6.3's ablation, gradient (7) without the unified optimizer)
   at each epsilon, one trial per training seed.
4. Every trial ends with its evaluation on the evaluation markets (disjoint from training and
   from the validation markets on which best responses are searched): social welfare, revenue,
   and Max Exploitability (Eq. 15) bracketed per evaluation episode between the best grid
   response of ``max_advertisers`` sampled advertisers (the same sample for every method:
   paired) and the hindsight oracle's upper bound. The BPG trial at ``table3_epsilon`` on the
   smallest N also computes Table 3: for every advertiser, the unified solution's return R(x*)
   against R* = the best of (grid, PPO best response, x*) chosen on the validation markets,
   and R(x*) over the oracle's upper bound.
5. Tables (``table1-N<n>.md``, ``summary.json``), figures, and the gates: cooperative beats
   value bidding; over the epsilons where the constraint was active, Max Exploitability falls and
   welfare does not rise as epsilon falls; BPG at the largest active epsilon vs SAB.

Statistics: every metric is ``mean [low, high]``, a 95% t interval over the (training seed x
evaluation seed) grid (:func:`auctionsim.stats.grid_mean`); comparisons are paired on the same
cells with Holm-adjusted verdicts over the table (:func:`auctionsim.stats.compare`). Heuristics
have no training seed: their row is over evaluation seeds only, and in comparisons their scores
are repeated for every training seed. Max Exploitability per episode is a maximum over the
sampled advertisers of that episode's gains over that episode's welfare. Compliance Rate is the
share of training seeds whose Max Exploitability (lower bound, mean gains over mean welfare) is
<= epsilon; ``compliance_rate_upper`` uses the oracle bound. A run whose lambda stayed 0 in every
iteration of every seed is labelled "constraint never active (= cooperative)".

Wall time. ``--quick`` (N = 10, 1 training x 3 evaluation seeds, 12 iterations, serial) took
1 min 50 s (106 s of CPU time) on one core of the 2-core development machine, the other one
idle; lambda > 0 at both of its epsilons. The reference runs (``experiments/reference/bpg/``)
took 153 min at N = 100 (6 x 5 seeds, 4 + 4 epsilons, 40 iterations, a Tune sweep two trials
at a time; two invocations) and about 2 h at N = 10 (10 x 10 seeds, serial, one core). Tune or not: a trial's worker
needs ~30 s to start here (6 tiny trials: 207 s with Tune, 17 s serially, identical results),
which is why ``--quick`` runs its short trials serially and the full run uses Tune.

Learning. Everyone shading together keeps the ranking and lowers prices, so budgets last
longer: on the calibrated market the best uniform multiplier (the ``uniform`` row) gains +35%
welfare over value bidding at N = 100 and +2.5% at N = 10. Until 2026-12-07 BPG trained with
RLlib's default action normalisation, which mapped the module's actions from [-1, 1] onto
[log 0.05, log 5] in the env runners only: training bid exp(-0.69 + 2.3 a) while evaluation bid
exp(a), so the population that was scored was not the one that was trained (fixed in
:class:`agents.bpg.BPGConfig`; a regression test checks that training plays the sampled actions
and evaluation their mean). Every learning probe and reference result before that date was
affected: at N = 10 the cooperative population then ended below value bidding (-34 [-54, -14]),
which earlier versions of this docstring blamed on the exploration noise. With the fix and the
same defaults (``experiments/reference/bpg/``): cooperative - value bidding = +15.2 [0.6, 29.8] at
N = 10 (10 x 10 seeds) and +4,933 [3,813, 6,053] at N = 100 (6 x 5 seeds, about 54% of the
uniform row's gain).

Crash safety: each trial writes signed checkpoints (:mod:`agents.bpg.checkpoints`) every
``checkpoint_every`` iterations and its results atomically with a manifest beside them;
``--resume`` reruns the sweep and each trial continues from its newest verified checkpoint (or
reuses its finished result), so the result equals an uninterrupted run's. A changed config is
refused; more iterations or seeds, added epsilons or heuristics, and PPO best responses turned on, extend the run. We do not use ``Tuner.restore``: it unpickles
Tune's own experiment state from the output folder, which this program could not verify.

TensorBoard: ``tensorboard --logdir <output-dir>/tensorboard`` (per trial: welfare, x*'s gains,
lambda statistics, losses, phase timings; the evaluation's metrics at the end). Tune's own
per-trial ``progress.csv``/``result.json`` are under ``<output-dir>/tune``.

Where our set-up differs from the paper's: the market is our AuctionNet-like simulator
(``G_i`` = value won; second price; 1,000 impressions per advertiser, 10x fewer than AuctionNet,
and 24 ticks, for speed), not the authors' system; SAB, cooperative and BPG_zero are trained with
BPG's loop and PPO (parameter shared); the paper's MAAB, DCMAB and ES are replaced by heuristic
stand-ins; Max Exploitability is a bracket over a sample of advertisers rather than one
policy-gradient estimate over all; epsilon is relative by default (above).
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from auctionsim.errors import ConfigError
from auctionsim.validation import check_int, check_number
from experiments import args as arguments

HEURISTICS = ("value", "pid", "cpa", "online_lp", "uniform")
STAND_IN_NOTE = "heuristic stand-in (not the paper's MAAB/DCMAB/ES)"
UNIFORM_NOTE = "everyone bids one multiplier, the welfare-best on the validation markets ({multiplier:g}): what shading together gives without a learned policy"
TRAINED = ("cooperative", "selfish", "bpg", "bpg_zero")
NEVER_ACTIVE = "constraint never active (= cooperative)"
RESULT_SCHEMA = "auctionsim.bpg_trial/v1"


@dataclass
class Args(arguments.ProtocolArgs):
    """BPG: Tables 1 and 3, Figure 4 and training curves with paired intervals."""

    output_dir: str = "results/bpg"
    """where results, checkpoints, TensorBoard logs and figures go"""
    plot_only: bool = False
    """only redraw the figures from the results already saved in output-dir"""
    compare_with: str = ""
    """train nothing: pair every finished trial of output-dir with the same-named trial of this
    other run folder (same training seeds, same evaluation markets; e.g. two dual rules) and write
    the paired differences of welfare and Max Exploitability to output-dir/comparison.json"""
    finished_only: bool = False
    """train nothing: summarise the trials already finished in output-dir (a method with a
    missing trial is listed under 'not_run' instead of its row), e.g. for an interrupted run"""
    sizes: tuple[int, ...] = (100, 10)
    """numbers of advertisers (the paper's Table 1: 100; Table 3 runs at the smallest)"""
    impressions_per_advertiser: int = 1_000
    """impressions per episode per advertiser (AuctionNet: ~10,400); budgets scale with it"""
    n_ticks: int = 24
    """decision ticks per episode (AuctionNet: 48)"""
    epsilon_mode: str = "relative"
    """'relative': epsilons are fractions of the cooperative population's Max Exploitability at the same N; 'welfare': shares of social welfare (the paper's scale)"""
    epsilons: tuple[float, ...] = (0.75, 0.5, 0.25, 0.0)
    """constraint levels of BPG (in epsilon-mode units)"""
    zero_epsilons: tuple[float, ...] = (0.75, 0.5, 0.25, 0.0)
    """constraint levels of BPG_zero, the Q3 ablation (in epsilon-mode units)"""
    table3_epsilon: float = 0.0
    """constraint level (epsilon-mode units) of the BPG run whose unified solution Table 3 examines"""
    iterations: int = 40
    """BPG iterations (Algorithm 1) per trial"""
    lr: float = 1e-3
    """learning rate of theta and nu-bar (Adam)"""
    xstar_lr: float = 0.0
    """learning rate of the unified solution x* (0: lr)"""
    xi: float = 0.0
    """penalty weight of gradient (11) in mean-advertiser units (0: N)"""
    kappa_mix: float = 0.2
    """uniform share of the deviator sampling (0: the paper's kappa)"""
    dual_step: float = 0.0
    """0: Eq. 13's closed-form dual (the paper); > 0: projected gradient ascent on lambda with
    this step, a dual with memory (our option; see agents.bpg.duals.dual_update)"""
    lambda_max: float = 0.0
    """cap on each lambda_i in mean-advertiser units (0: no cap); at epsilon 0 every violator's lambda ends at the cap, so the cap sets how hard that end pushes"""
    log_std_init: float = -0.7
    """initial log standard deviation of the policies' exploration (log multiplier units)"""
    episodes_per_kind: int = 8
    """primal episodes of each kind per iteration"""
    group_size: int = 4
    """episodes replaying one market seed and deviator (common random numbers)"""
    xstar_episodes: int = 4
    """weighted-POMDP episodes per x* update"""
    xstar_updates: int = 1
    """x* updates per iteration (Algorithm 1, line 2)"""
    xstar_pretrain_updates: int = 6
    """x* updates before the first dual step"""
    dual_deviators: int = 16
    """advertisers whose x* deviation the dual step measures per iteration"""
    dual_episodes: int = 2
    """market episodes of each dual measurement"""
    scale_window: int = 5
    """last iterations of the cooperative runs averaged for the relative epsilon scale"""
    scale_seeds: int = 3
    """cooperative runs (the first training seeds) whose mean sets the relative epsilon scale: fixed, so that adding training seeds extends a run instead of moving every epsilon"""
    validation_seeds: int = 2
    """validation markets on which best responses are chosen (disjoint from evaluation)"""
    max_advertisers: int = 10
    """advertisers whose best response is searched per evaluation (one uniform sample for all methods)"""
    grid_periods: int = 1
    """periods of the grid best response (1: constant multipliers)"""
    ppo_best_response: bool = True
    """Table 3: also search each advertiser's best response with PPO (may be turned on with --resume: only the Table 3 trial is evaluated again)"""
    heuristics: tuple[str, ...] = HEURISTICS
    """heuristic populations (pid, cpa, online_lp: stand-ins for the paper's MAAB/DCMAB/ES; uniform: the welfare-best multiplier for everyone); more may be added on --resume"""
    checkpoint_every: int = 5
    """iterations between signed checkpoints (and at the end)"""
    scheduler: str = "tune"
    """'tune': trials as a Ray Tune sweep (over a cluster with RAY_ADDRESS); 'serial': in this process"""
    num_cpus: int = 2
    """CPUs of the local Ray instance (ignored with RAY_ADDRESS set: then the cluster's)"""
    num_env_runners: int = 0
    """remote RLlib EnvRunners per trial (0: sample in the trial's process); the episodes sampled do not depend on it"""
    num_learners: int = 0
    """remote RLlib Learners per trial (0: learn in the trial's process; 2+: data-parallel, each on whole episode groups)"""
    num_gpus_per_learner: float = 0.0
    """GPUs per Learner (with --num-learners 0: the trial process's learner); the trial's PPO best responses use a GPU it holds"""
    dual_workers: int = 0
    """parallel Ray tasks of each dual step's deviation measurements (0: in the trial's process)"""

    def __post_init__(self) -> None:
        positive = ("impressions_per_advertiser", "n_ticks", "iterations", "episodes_per_kind", "group_size", "xstar_episodes",
                    "dual_deviators", "dual_episodes", "scale_window", "scale_seeds", "validation_seeds", "max_advertisers", "grid_periods",
                    "checkpoint_every", "num_cpus", "training_seeds", "eval_seeds")  # fmt: skip
        for name in positive:
            check_int(name, getattr(self, name), low=1)
        for name in ("xstar_updates", "xstar_pretrain_updates", "seed", "num_env_runners", "num_learners", "dual_workers"):
            check_int(name, getattr(self, name), low=0)
        for index, size in enumerate(self.sizes):
            check_int(f"sizes[{index}]", size, low=2)
        if not self.sizes or len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f"sizes must be distinct integers >= 2, got {self.sizes!r}")
        if self.epsilon_mode not in ("relative", "welfare"):
            raise ConfigError(f"epsilon_mode must be 'relative' or 'welfare', got {self.epsilon_mode!r}")
        for name in ("epsilons", "zero_epsilons"):
            values = getattr(self, name)
            if not all(math.isfinite(eps) and eps >= 0 for eps in values) or len(set(values)) != len(values):
                raise ConfigError(f"{name} must be distinct finite numbers >= 0, got {values!r}")
        if not self.epsilons:
            raise ConfigError("epsilons must not be empty")
        if not math.isfinite(self.log_std_init):
            raise ConfigError(f"log_std_init must be a finite number, got {self.log_std_init!r}")
        for name in ("table3_epsilon", "lr", "xstar_lr", "xi", "kappa_mix", "dual_step", "lambda_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0 or self.kappa_mix > 1:
            raise ConfigError(f"lr must be > 0 and kappa_mix in [0, 1], got lr={self.lr!r}, kappa_mix={self.kappa_mix!r}")
        if self.table3_epsilon not in self.epsilons:
            raise ConfigError(f"table3_epsilon must be one of epsilons {self.epsilons!r}, got {self.table3_epsilon!r}")
        unknown = sorted(set(self.heuristics) - set(HEURISTICS))
        if unknown or "value" not in self.heuristics:
            raise ConfigError(f"heuristics must include 'value' (the gates compare with it) and come from {', '.join(HEURISTICS)}, got {self.heuristics!r}")
        if self.scheduler not in ("tune", "serial"):
            raise ConfigError(f"scheduler must be 'tune' or 'serial', got {self.scheduler!r}")
        check_number("num_gpus_per_learner", self.num_gpus_per_learner, low=0.0)
        if self.num_learners > 1 and min(self.episodes_per_kind, self.xstar_episodes) < self.num_learners * self.group_size:
            raise ConfigError(f"num_learners = {self.num_learners} needs episodes_per_kind and xstar_episodes >= num_learners x group_size = {self.num_learners * self.group_size} (one episode group per learner), got {self.episodes_per_kind} and {self.xstar_episodes}")


QUICK = dict(
    output_dir="results/bpg-quick",
    sizes=(10,),
    training_seeds=1,
    eval_seeds=3,
    epsilons=(0.5, 0.0),
    zero_epsilons=(0.0,),
    iterations=12,
    episodes_per_kind=8,
    xstar_pretrain_updates=4,
    validation_seeds=1,
    max_advertisers=5,
    ppo_best_response=False,
    heuristics=("value", "pid"),
    checkpoint_every=4,
    scheduler="serial",  # Tune starts a worker per trial: ~30 s each here, too much for short trials
)


def parse_args(argv: list[str] | None = None) -> Args:
    """Command-line flags (the shared protocol parser: explicit flags always win over --quick)."""
    return arguments.parse(Args, argv, quick=QUICK)


# ---------------------------------------------------------------------- seeds and trials
def training_seeds(args: Args) -> list[int]:
    return [args.seed + index for index in range(args.training_seeds)]


def evaluation_seeds(args: Args) -> list[int]:
    """Evaluation markets: small integers, disjoint from the validation markets (BPG's own
    training markets are 32-bit SeedSequence hashes: a clash has probability ~1e-9)."""
    return [10_000 + args.seed * 1_000 + index for index in range(args.eval_seeds)]


def validation_seeds(args: Args) -> list[int]:
    return [20_000 + args.seed * 1_000 + index for index in range(args.validation_seeds)]


def run_name(objective: str, epsilon: float | None, seed: int | None, n_advertisers: int) -> str:
    eps = "" if epsilon is None else f"-eps{epsilon:g}"
    return f"{objective}{eps}-N{n_advertisers}" + ("" if seed is None else f"-seed{seed}")


def trial_config(args: Args, output: pathlib.Path, objective: str, n_advertisers: int, seed: int | None = None,
                 epsilon: float | None = None, epsilon_share: float | None = None, table3: bool = False) -> dict:  # fmt: skip
    """Everything one trial needs (JSON-ready, so it travels to Tune's workers and into manifests).

    ``training`` holds what determines the trained population (a resumed trial must match it,
    except ``iterations``, which may grow); ``evaluation`` what its scores depend on."""
    training = None
    if objective in TRAINED:
        training = {
            "objective": objective, "seed": seed, "epsilon_share": epsilon_share if epsilon_share is not None else 0.0,
            "n_advertisers": n_advertisers, "impressions_per_advertiser": args.impressions_per_advertiser, "n_ticks": args.n_ticks,
            "iterations": args.iterations, "lr": args.lr, "xstar_lr": args.xstar_lr or None, "xi": args.xi or None,
            "kappa_mix": args.kappa_mix, "episodes_per_kind": args.episodes_per_kind, "group_size": args.group_size,
            "xstar_episodes": args.xstar_episodes, "xstar_updates": args.xstar_updates,
            "xstar_pretrain_updates": args.xstar_pretrain_updates, "dual_deviators": args.dual_deviators,
            "dual_episodes": args.dual_episodes, "log_std_init": args.log_std_init,
        }  # fmt: skip
        # The dual options enter the key only when set and only where a dual acts (BPG,
        # BPG_zero), so trials run before they existed, and the baselines, stay reusable.
        from agents.bpg.duals import is_constrained

        if is_constrained(objective):
            training.update({name: value for name in ("dual_step", "lambda_max") if (value := getattr(args, name))})
    evaluation = {
        "n_advertisers": n_advertisers, "impressions_per_advertiser": args.impressions_per_advertiser, "n_ticks": args.n_ticks,
        "eval_seeds": evaluation_seeds(args), "validation_seeds": validation_seeds(args), "max_advertisers": args.max_advertisers,
        "grid_periods": args.grid_periods, "sample_seed": args.seed, "table3": table3, "ppo_best_response": args.ppo_best_response and table3,
    }  # fmt: skip
    return {
        "name": run_name(objective, epsilon, seed, n_advertisers),
        "output": str(output),
        "objective": objective,
        "epsilon": epsilon,
        "epsilon_mode": args.epsilon_mode,
        "training": training,
        "evaluation": evaluation,
        "checkpoint_every": args.checkpoint_every,
        "tensorboard": args.tensorboard,
        "resources": resources(args),
    }


def resources(args: Args) -> dict:
    """Where a trial's work runs (not part of what it computes: a resumed trial may change it)."""
    return {"num_env_runners": args.num_env_runners, "num_learners": args.num_learners, "num_gpus_per_learner": args.num_gpus_per_learner, "dual_workers": args.dual_workers}


def market(n_advertisers: int, impressions_per_advertiser: int, n_ticks: int):
    from agents.bpg import market_spec

    return market_spec(n_advertisers, impressions_per_episode=impressions_per_advertiser * n_advertisers, n_ticks=n_ticks)


def heuristic_population(name: str, evaluation: dict) -> tuple[object, dict]:
    """A heuristic population and what it chose: ``uniform`` searches the grid multiplier with
    the highest welfare on the validation markets (``{"uniform_multiplier", "uniform_validation_welfare"}``)."""
    from agents.base import FixedMultipliers
    from agents.baselines import CPAPacing, OnlineLP, PIDPacing
    from agents.equilibrium import best_uniform_multiplier

    if name == "uniform":
        spec = market(evaluation["n_advertisers"], evaluation["impressions_per_advertiser"], evaluation["n_ticks"])
        search = best_uniform_multiplier(spec, evaluation["validation_seeds"])
        details = {"uniform_multiplier": search.multiplier, "uniform_validation_welfare": {f"{m:g}": w for m, w in search.welfare.items()}}
        return FixedMultipliers(search.multiplier), details
    return {"value": lambda: FixedMultipliers(1.0), "pid": PIDPacing, "cpa": CPAPacing, "online_lp": OnlineLP}[name](), {}


# ---------------------------------------------------------------------- one trial
def algorithm_config(training: dict, resources: dict | None = None):
    """The :class:`~agents.bpg.BPGConfig` of a trial (``resources``: see :func:`resources`)."""
    from agents.bpg import BPGConfig

    spec = market(training["n_advertisers"], training["impressions_per_advertiser"], training["n_ticks"])
    resources = resources or {}
    return (
        BPGConfig()
        .bpg(
            market=spec, objective=training["objective"], epsilon=training["epsilon_share"], seed=training["seed"],
            xi=training["xi"], kappa_uniform_mix=training["kappa_mix"],
            dual_step=training.get("dual_step"), lambda_max=training.get("lambda_max"), episodes_per_kind=training["episodes_per_kind"],
            group_size=training["group_size"], xstar_episodes=training["xstar_episodes"], xstar_updates=training["xstar_updates"],
            xstar_pretrain_updates=training["xstar_pretrain_updates"], xstar_lr=training["xstar_lr"],
            dual_deviators=training["dual_deviators"], dual_episodes=training["dual_episodes"],
            model={"log_std_init": training["log_std_init"]}, dual_workers=resources.get("dual_workers", 0),
        )  # fmt: skip
        .training(lr=training["lr"])
        .env_runners(num_env_runners=resources.get("num_env_runners", 0))
        .learners(num_learners=resources.get("num_learners", 0), num_gpus_per_learner=resources.get("num_gpus_per_learner", 0))
    )


def build_algorithm(training: dict, resources: dict | None = None):
    return algorithm_config(training, resources).build_algo()


def _same_training(a: dict | None, b: dict | None) -> bool:
    strip = lambda config: {k: v for k, v in (config or {}).items() if k != "iterations"}  # noqa: E731
    return strip(a) == strip(b)


def _read_result(path: pathlib.Path) -> dict | None:
    """A trial's result if it exists and its manifest's hashes match (else None: redo it)."""
    from auctionsim import runs

    if not path.is_file():
        return None
    try:
        runs.verify_manifest(path)
        return json.loads(path.read_text())
    except (runs.RunError, ValueError):
        return None


def run_trial(config: dict, report: Callable[[dict], None] | None = None) -> dict:
    """Train (unless a heuristic), evaluate and save one trial; returns its result dict.

    Resumable: a finished trial with the same config is read back; one with the same training
    config and fewer iterations continues from its final checkpoint; an interrupted one continues
    from its newest verified checkpoint. ``report(metrics)`` is called after every iteration and
    at the end (Tune's ``tune.report`` in a sweep)."""
    from agents.bpg.checkpoints import CheckpointError, CheckpointStore
    from auctionsim import runs
    from auctionsim.tracking import ScalarLogger

    clock = runs.RunClock()
    output = pathlib.Path(config["output"])
    folder = output / "runs" / config["name"]
    result_path = folder / "result.json"
    previous = _read_result(result_path)
    if previous is not None and previous["config"]["training"] == config["training"] and previous["config"]["evaluation"] == config["evaluation"]:
        if report is not None:
            report(_final_metrics(previous))
        return previous
    tensorboard = ScalarLogger(output / "tensorboard" / config["name"] if config["tensorboard"] else None)
    try:
        training = config["training"]
        history: list[dict] = []
        algo = None
        if training is not None:
            store = CheckpointStore(folder / "checkpoints")
            latest = store.latest()
            if latest is not None:
                if not _same_training(latest[1].get("training"), training):
                    raise CheckpointError(f"{latest[0]} was trained with another config; refusing to resume {config['name']} from it (remove the folder or use another --output-dir)")
                algo = store.restore(latest[0])
            else:
                algo = build_algorithm(training, config.get("resources"))
            try:
                from tqdm.auto import tqdm

                with tqdm(total=training["iterations"], initial=min(algo.bpg_state.iteration, training["iterations"]), desc=config["name"], leave=False, disable=report is not None) as bar:
                    while algo.bpg_state.iteration < training["iterations"]:
                        result = algo.train()
                        record = algo.history[-1]
                        iteration = record["iteration"]
                        scalars = _iteration_scalars(record, result)
                        tensorboard.log(iteration, scalars)
                        if report is not None:
                            report({"iteration": iteration, **scalars})
                        if iteration % config["checkpoint_every"] == 0 or iteration == training["iterations"]:
                            store.save(algo, {"training": training, "name": config["name"]})
                        bar.set_postfix(welfare=f"{record['welfare']:.0f}", gain=f"{record['max_gain_normalised']:.4f}", lam=f"{record['lambda_sum']:.2f}")
                        bar.update(1)
                history = [dict(record) for record in algo.history[: training["iterations"]]]
                evaluation = evaluate_trial(config, algo.population_policy(), algo.unified_solution_deviation())
                exports = folder / "policies"
                from agents.bpg.checkpoints import export_policy

                export_policy(algo.actor("population"), exports / "theta", {"name": config["name"], "role": "population policy theta"})
                export_policy(algo.actor("x_star"), exports / "x_star", {"name": config["name"], "role": "unified solution x*"})
            finally:
                algo.stop()
        else:
            population, chosen = heuristic_population(config["objective"], config["evaluation"])
            evaluation = {**evaluate_trial(config, population, None), **chosen}
        result = {"schema": RESULT_SCHEMA, "config": config, "history": history, **evaluation}
        final = _final_metrics(result)
        tensorboard.log(len(history), {f"eval/{key}": value for key, value in final.items() if isinstance(value, (int, float))})
        runs.write_json_result(result_path, result, config, seeds={"eval": config["evaluation"]["eval_seeds"], "validation": config["evaluation"]["validation_seeds"]}, clock=clock)
        if report is not None:
            report(final)
        return result
    finally:
        tensorboard.close()


def _iteration_scalars(record: dict, result: dict) -> dict[str, float]:
    """TensorBoard/Tune scalars of one iteration: BPG's record and the learners' losses."""
    scalars = {f"bpg/{key}": float(value) for key, value in record.items() if key not in ("objective", "iteration")}
    for module, values in (result.get("learners") or {}).items():
        if isinstance(values, dict):
            for key in ("policy_loss", "vf_loss", "entropy", "log_std"):
                if key in values:
                    scalars[f"learners/{module}/{key}"] = float(np.mean(values[key]))
    return scalars


def _final_metrics(result: dict) -> dict[str, float]:
    welfare = np.asarray(result["welfare"])
    return {
        "done": 1,
        "eval_welfare_mean": float(welfare.mean()),
        "eval_revenue_mean": float(np.mean(result["revenue"])),
        "eval_max_exploitability_lower_mean": float(np.mean(result["max_exploitability_lower"])),
        "eval_max_exploitability_upper_mean": float(np.mean(result["max_exploitability_upper"])),
    }


def evaluate_trial(config: dict, population, unified) -> dict:
    """Welfare, revenue and Max Exploitability of a population on the evaluation markets (and
    Table 3's returns when the trial is the Table 3 one); see the module doc."""
    from agents.equilibrium import DeviationEvaluator, ExploitabilityConfig, GridBestResponse, PPOBestResponse, evaluate_exploitability
    from agents.equilibrium.evaluate import choose_advertisers

    settings = config["evaluation"]
    spec = market(settings["n_advertisers"], settings["impressions_per_advertiser"], settings["n_ticks"])
    eval_seeds, fit_seeds = settings["eval_seeds"], settings["validation_seeds"]
    all_ids = spec.build().population.ids
    sampled, _ = choose_advertisers(all_ids, None, settings["max_advertisers"], settings["sample_seed"])
    table3 = settings["table3"]
    ids = np.sort(all_ids) if table3 else sampled
    estimators = (GridBestResponse(periods=settings["grid_periods"]),)
    if settings["ppo_best_response"]:
        estimators += (PPOBestResponse(warm_start_from="grid-constant"),)
    exploitability = ExploitabilityConfig(eval_seeds=eval_seeds, fit_seeds=fit_seeds, estimators=estimators, oracle=True, max_advertisers=None, backend="serial", progress=False)
    report = evaluate_exploitability(population, spec, advertiser_ids=ids, config=exploitability, label=config["name"])
    columns = np.searchsorted(ids, sampled)
    welfare = report.social_welfare
    population_returns = report.population_returns[:, columns]

    def per_episode(returns: np.ndarray) -> list[float]:
        gains = np.maximum(returns[:, columns] - population_returns, 0.0).max(axis=1)
        return (gains / welfare).tolist()

    lower, upper = report.deviation_returns("lower"), report.deviation_returns("upper")
    result = {
        "welfare": welfare.tolist(),
        "revenue": report.revenue.tolist(),
        "sampled_advertisers": sampled.tolist(),
        "max_exploitability_lower": per_episode(lower),
        "max_exploitability_upper": per_episode(upper),
        # Eq. 15 with expectations first: max_i mean_s gain / mean_s welfare (compliance uses it).
        "max_exploitability_lower_overall": float(max(0.0, (lower[:, columns] - population_returns).mean(axis=0).max()) / welfare.mean()),
        "max_exploitability_upper_overall": float(max(0.0, (upper[:, columns] - population_returns).mean(axis=0).max()) / welfare.mean()),
    }
    if unified is not None:
        x_star = np.stack([DeviationEvaluator(spec, population, int(i)).returns(unified, eval_seeds) for i in sampled], axis=1)
        result["max_exploitability_x_star"] = per_episode(_expand(x_star, columns, lower.shape))
    if table3:
        result["table3"] = table3_rows(report, spec, population, unified, fit_seeds, eval_seeds)
    return result


def _expand(values: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(S, k)`` values of the sampled columns placed in a ``shape`` array (others 0)."""
    full = np.zeros(shape)
    full[:, columns] = values
    return full


def table3_rows(report, spec, population, unified, fit_seeds, eval_seeds) -> list[dict]:
    """Table 3: per advertiser, R(x*), the best response found by each estimator, R* (the best
    of grid, PPO and x*, chosen on the validation markets) and the oracle's upper bound."""
    from agents.equilibrium import DeviationEvaluator

    rows = []
    for column, advertiser in enumerate(report.advertiser_ids):
        evaluator = DeviationEvaluator(spec, population, int(advertiser))
        candidates = {"x_star": (float(evaluator.returns(unified, fit_seeds).mean()), float(evaluator.returns(unified, eval_seeds).mean()))}
        for name, values in report.estimators.items():
            if values.bound == "lower":
                candidates[name] = (float(values.fit_returns[column]), float(values.returns[:, column].mean()))
        best = max(candidates, key=lambda name: candidates[name][0])
        upper = float(report.estimators["oracle"].returns[:, column].mean())
        r_star = candidates[best][1]
        x_star = candidates["x_star"][1]
        rows.append({
            "advertiser": int(advertiser),
            "unified_return": x_star,
            "best_response_return": r_star,
            "best_response_estimator": best,
            "ratio_percent": 100.0 * x_star / r_star if r_star > 0 else float("nan"),
            "oracle_upper_bound": upper,
            "ratio_to_oracle_percent": 100.0 * x_star / upper if upper > 0 else float("nan"),
            "population_return": float(report.population_returns[:, column].mean()),
            **{f"{name}_return": value[1] for name, value in candidates.items()},
        })  # fmt: skip
    return rows


# ---------------------------------------------------------------------- sweeps
def _tune_trial(config: dict) -> None:
    """Ray Tune's function trainable: one trial, reporting through ``tune.report``."""
    from ray import tune

    run_trial(config["trial"], report=tune.report)


def run_trials(args: Args, output: pathlib.Path, configs: list[dict], stage: str) -> list[dict]:
    """Run the trials as a Ray Tune sweep (``--scheduler tune``) or one after another in this
    process (``serial``); returns their results in the order given. The trials are independent
    and deterministic, so both give the same results."""
    if not configs:
        return []
    if args.scheduler == "serial":
        return [run_trial(config) for config in configs]
    import os

    from ray import tune

    local = not os.environ.get("RAY_ADDRESS")
    tuner = tune.Tuner(
        tune.with_resources(_tune_trial, lambda space: trial_resources(space["trial"])),
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=args.num_cpus if local else None,
            trial_name_creator=lambda trial: trial.config["trial"]["name"],
            trial_dirname_creator=lambda trial: trial.config["trial"]["name"],
        ),
        run_config=tune.RunConfig(name=f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(output / "tune"), verbose=0),
    )
    grid = tuner.fit()
    failed = [result for result in grid if result.error is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(configs)} {stage} trials failed; first: {failed[0].error}")
    return [json.loads((output / "runs" / config["name"] / "result.json").read_text()) for config in configs]


def trial_resources(config: dict):
    """What a trial reserves on the cluster (a Tune placement group): one CPU for a heuristic;
    for a trained population, BPG's own request (the trial's process, with a GPU when its local
    learner has one; one CPU per EnvRunner; each Learner's CPU or GPUs) plus one CPU per dual
    worker. BPG's actors and tasks start inside the trial's placement group."""
    from ray import tune

    from agents.bpg import BPG

    if config["training"] is None:
        return tune.PlacementGroupFactory([{"CPU": 1}])
    request = BPG.default_resource_request(algorithm_config(config["training"], config.get("resources")))
    workers = [{"CPU": 1}] * (config.get("resources") or {}).get("dual_workers", 0)
    return tune.PlacementGroupFactory(request.bundles + workers, strategy=request.strategy)


def epsilon_scale(args: Args, results: list[dict]) -> float:
    """The cooperative population's Max Exploitability at this N as the constraint measures it:
    x*'s largest gain / welfare, mean of the last ``scale_window`` iterations, mean over the first
    ``scale_seeds`` training seeds (``results`` in training-seed order)."""
    values = [np.mean([record["max_gain_normalised"] for record in result["history"][-args.scale_window :]]) for result in results[: args.scale_seeds]]
    return float(np.mean(values))


def run_experiment(args: Args, output: pathlib.Path) -> dict:
    """Both stages for every size, then the tables, summary and gates."""
    from agents.bpg import resolve_epsilon

    seeds = training_seeds(args)
    smallest = min(args.sizes)
    stage1 = []
    for n in args.sizes:
        stage1 += [trial_config(args, output, objective, n, seed) for objective in ("cooperative", "selfish") for seed in seeds]
        stage1 += [trial_config(args, output, heuristic, n) for heuristic in args.heuristics]
    results = {config["name"]: result for config, result in zip(stage1, run_trials(args, output, stage1, "stage1"))}
    scales = {}
    stage2 = []
    for n in args.sizes:
        cooperative = [results[run_name("cooperative", None, seed, n)] for seed in seeds]
        scales[n] = epsilon_scale(args, cooperative)
        for objective, epsilons in (("bpg", args.epsilons), ("bpg_zero", args.zero_epsilons)):
            for epsilon in epsilons:
                share = resolve_epsilon(epsilon, args.epsilon_mode, scales[n] if args.epsilon_mode == "relative" else None)
                for seed in seeds:
                    table3 = objective == "bpg" and n == smallest and epsilon == args.table3_epsilon and seed == seeds[0]
                    stage2.append(trial_config(args, output, objective, n, seed, epsilon, share, table3))
    results.update({config["name"]: result for config, result in zip(stage2, run_trials(args, output, stage2, "stage2"))})
    return summarise(args, results, scales)


# ---------------------------------------------------------------------- tables and gates
def _grid(args: Args, results: dict, objective: str, epsilon: float | None, n: int, key: str) -> np.ndarray:
    """``(training seeds, eval seeds)`` scores of one method (heuristics: one row)."""
    if objective in TRAINED:
        return np.array([results[run_name(objective, epsilon, seed, n)][key] for seed in training_seeds(args)], dtype=np.float64)
    return np.array([results[run_name(objective, None, None, n)][key]], dtype=np.float64)


def _paired(grid: np.ndarray, rows: int) -> np.ndarray:
    return np.repeat(grid, rows, axis=0) if grid.shape[0] == 1 else grid


def methods(args: Args) -> list[tuple[str, float | None]]:
    """Table 1's rows in order: (objective, epsilon)."""
    rows = [("cooperative", None), ("selfish", None)] + [(heuristic, None) for heuristic in args.heuristics]
    rows += [("bpg", eps) for eps in sorted(args.epsilons, reverse=True)] + [("bpg_zero", eps) for eps in sorted(args.zero_epsilons, reverse=True)]
    return rows


def summarise(args: Args, results: dict, scales: dict[int, float]) -> dict:
    """Table 1 per size (with paired comparisons and gates) and Table 3, in the schema of
    ``summary.json`` (headline: the largest size; every size under ``by_size``)."""
    from agents.bpg.duals import is_constrained
    from auctionsim import stats

    seeds = training_seeds(args)
    blocks = {}
    for n in args.sizes:
        rows, scores = [], {"welfare": {}, "max_exploitability": {}, "revenue": {}}
        not_run = []
        for objective, epsilon in methods(args):
            label = objective if epsilon is None else f"{objective} eps={epsilon:g}"
            names = [run_name(objective, epsilon, seed, n) for seed in seeds] if objective in TRAINED else [run_name(objective, None, None, n)]
            if any(name not in results for name in names):
                not_run.append(label)
                continue
            grids = {metric: _grid(args, results, objective, epsilon, n, key) for metric, key in (("welfare", "welfare"), ("max_exploitability", "max_exploitability_lower"), ("revenue", "revenue"))}
            upper = _grid(args, results, objective, epsilon, n, "max_exploitability_upper")
            for metric, grid in grids.items():
                scores[metric][label] = _paired(grid, len(seeds))
            row = {
                "method": objective,
                "label": label,
                "epsilon": epsilon,
                "stand_in": STAND_IN_NOTE if objective in HEURISTICS and objective not in ("value", "uniform") else None,
                **{metric: stats.grid_mean(grid).to_dict() for metric, grid in grids.items()},
                "max_exploitability_upper": stats.grid_mean(upper).to_dict(),
                "compliance_rate": None, "compliance_rate_upper": None, "lambda_active_fraction": None, "constraint_active": None,
            }  # fmt: skip
            if objective == "uniform":
                row["multiplier"] = results[names[0]]["uniform_multiplier"]
                row["note"] = UNIFORM_NOTE.format(multiplier=row["multiplier"])
                searched = [float(m) for m in results[names[0]]["uniform_validation_welfare"]]
                if row["multiplier"] in (min(searched), max(searched)):
                    row["note"] += "; at the edge of the grid, so shading further may gain more"
            if objective in TRAINED:
                trials = [results[run_name(objective, epsilon, seed, n)] for seed in seeds]
                row["x_star_gain"] = stats.grid_mean(np.array([t["max_exploitability_x_star"] for t in trials])).to_dict()
                row["final_train_x_star_gain"] = float(np.mean([t["history"][-1]["max_gain_normalised"] for t in trials]))
                if is_constrained(objective):
                    share = trials[0]["config"]["training"]["epsilon_share"]
                    row["epsilon_share_of_welfare"] = share
                    row["compliance_rate"] = float(np.mean([t["max_exploitability_lower_overall"] <= share for t in trials]))
                    row["compliance_rate_upper"] = float(np.mean([t["max_exploitability_upper_overall"] <= share for t in trials]))
                    active = [np.mean([record["lambda_sum"] > 0 for record in t["history"]]) for t in trials]
                    row["lambda_active_fraction"] = float(np.mean(active))
                    row["constraint_active"] = bool(max(active) > 0)
                    if not row["constraint_active"]:
                        row["note"] = NEVER_ACTIVE
            rows.append(row)
        value = scores["welfare"].get("value")
        for row in rows:  # every trained population against value bidding (a non-learning run shows)
            if row["method"] in TRAINED and value is not None:
                difference = stats.paired_difference(scores["welfare"][row["label"]], value)
                row["welfare_vs_value_bidding"] = difference.to_dict()
        comparisons = table1_comparisons(args, scores, rows)
        gates = gate_verdicts(args, rows, comparisons)
        blocks[n] = {
            "n_advertisers": n,
            "training_seeds": seeds,
            "eval_seeds": evaluation_seeds(args),
            "validation_seeds": validation_seeds(args),
            "epsilon_mode": args.epsilon_mode,
            "epsilon_scale": scales.get(n) if args.epsilon_mode == "relative" else None,
            "max_exploitability_sample": args.max_advertisers,
            "rows": rows,
            "comparisons": comparisons,
            "gates": gates,
            "table3": [],
            "not_run": not_run,
        }
    smallest = min(args.sizes)
    table3_trial = results.get(run_name("bpg", args.table3_epsilon, training_seeds(args)[0], smallest), {})
    blocks[smallest]["table3"] = table3_trial.get("table3", [])
    headline = blocks[max(args.sizes)]
    return {**headline, "table3": blocks[smallest]["table3"], "table3_n_advertisers": smallest, "by_size": {str(n): block for n, block in blocks.items()}}


def table1_comparisons(args: Args, scores: dict, rows: list[dict]) -> dict:
    """Paired comparisons of one size, Holm over each metric's table: cooperative and SAB vs
    value bidding, each BPG vs SAB, adjacent epsilons of BPG, and BPG vs BPG_zero."""
    from auctionsim import stats

    bpg = [row["label"] for row in rows if row["method"] == "bpg"]
    pairs = [("cooperative", "value"), ("selfish", "value"), ("cooperative", "selfish"), ("uniform", "value"), ("cooperative", "uniform")]
    pairs += [(label, "selfish") for label in bpg] + list(zip(bpg, bpg[1:]))
    pairs += [(f"bpg eps={eps:g}", f"bpg_zero eps={eps:g}") for eps in args.zero_epsilons if eps in args.epsilons]
    pairs = [(a, b) for a, b in pairs if a in scores["welfare"] and b in scores["welfare"]]  # rows not run are left out
    return {metric: [c.to_dict() for c in stats.compare(scores[metric], pairs)] for metric in ("welfare", "max_exploitability")}


def gate_verdicts(args: Args, rows: list[dict], comparisons: dict) -> dict:
    """The issue's gates at one size, from the comparisons (see module doc)."""
    def find(metric: str, a: str, b: str) -> dict | None:
        return next((c for c in comparisons[metric] if c["a"] == a and c["b"] == b), None)

    cooperative = find("welfare", "cooperative", "value")
    active = [row for row in rows if row["method"] == "bpg" and row["constraint_active"]]
    adjacent = []
    for higher, lower in zip(active, active[1:]):  # epsilons falling
        welfare, exploitability = find("welfare", higher["label"], lower["label"]), find("max_exploitability", higher["label"], lower["label"])
        adjacent.append({"pair": [higher["label"], lower["label"]], "welfare": welfare, "max_exploitability": exploitability})
    largest = active[0]["label"] if active else None
    return {
        "cooperative_beats_value_bidding": bool(cooperative and cooperative["difference"]["low"] > 0),
        "active_epsilons": [row["epsilon"] for row in active],
        "adjacent_pairs": adjacent,
        "exploitability_decreases_as_epsilon_falls": all(p["max_exploitability"] and p["max_exploitability"]["difference"]["mean"] >= 0 for p in adjacent) if adjacent else None,
        "welfare_does_not_increase_as_epsilon_falls": all(p["welfare"] and p["welfare"]["verdict"] != f"{p['pair'][0]} < {p['pair'][1]}" for p in adjacent) if adjacent else None,
        "some_adjacent_pair_distinguishable": any(p[m] and p[m]["verdict"] != "not distinguishable" for p in adjacent for m in ("welfare", "max_exploitability")) if adjacent else None,
        "largest_active_bpg_vs_selfish_welfare": find("welfare", largest, "selfish") if largest else None,
    }


def _format(estimate: dict | None, digits: int = 1) -> str:
    if estimate is None:
        return "/"
    return f"{estimate['mean']:.{digits}f} [{estimate['low']:.{digits}f}, {estimate['high']:.{digits}f}]"


def table1_markdown(block: dict) -> str:
    lines = [
        f"Table 1, N = {block['n_advertisers']}: mean [95% CI] over {len(block['training_seeds'])} training x {len(block['eval_seeds'])} evaluation seeds; "
        f"Max Exploitability (Eq. 15) per episode over {block['max_exploitability_sample']} sampled advertisers (grid lower bound; oracle upper bound); "
        f"epsilon mode {block['epsilon_mode']}" + (f" (scale {block['epsilon_scale']:.4f} of welfare)" if block["epsilon_scale"] else ""),
        "",
        "| Method | epsilon | Social welfare | Max Exploitability (lower) | upper | Compliance | lambda active | Revenue | welfare - value bidding | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in block["rows"]:
        epsilon = "/" if row["epsilon"] is None else f"{row['epsilon']:g} (= {row['epsilon_share_of_welfare']:.4f})"
        compliance = "/" if row["compliance_rate"] is None else f"{100 * row['compliance_rate']:.0f}% (upper {100 * row['compliance_rate_upper']:.0f}%)"
        active = "/" if row["lambda_active_fraction"] is None else f"{100 * row['lambda_active_fraction']:.0f}%"
        note = row.get("note") or row.get("stand_in") or ""
        lines.append(
            f"| {row['method']} | {epsilon} | {_format(row['welfare'])} | {_format(row['max_exploitability'], 4)} | {_format(row['max_exploitability_upper'], 4)} "
            f"| {compliance} | {active} | {_format(row['revenue'])} | {_format(row.get('welfare_vs_value_bidding'))} | {note} |"
        )
    if block.get("not_run"):
        lines += ["", f"Not run (trials missing; summarised with --finished-only): {', '.join(block['not_run'])}"]
    lines += ["", "Paired comparisons (Holm over each metric's table):", ""]
    for metric, comparisons in block["comparisons"].items():
        for c in comparisons:
            digits = 4 if metric == "max_exploitability" else 1
            lines.append(f"- {metric}: {c['a']} - {c['b']} = {_format(c['difference'], digits)}: {c['verdict']} (Holm p = {c['p_holm']:.3g})")
    return "\n".join(lines) + "\n"


def table3_markdown(rows: list[dict], n: int) -> str:
    lines = [f"Table 3, N = {n}: unified solution x* vs each advertiser's best response (evaluation markets)", "",
             "| Advertiser | R(x*) | R* | R* from | R(x*)/R* % | oracle upper bound | R(x*)/oracle % |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['advertiser']} | {row['unified_return']:.1f} | {row['best_response_return']:.1f} | {row['best_response_estimator']} | {row['ratio_percent']:.1f} | {row['oracle_upper_bound']:.1f} | {row['ratio_to_oracle_percent']:.1f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- figures (from saved results)
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(output: pathlib.Path, results: list[dict], n: int) -> pathlib.Path | None:
    """Per iteration (first training seed): welfare on the dual step's markets, x*'s largest gain
    / welfare and lambda_bar, one line per trained method."""
    trials = [r for r in results if r["config"]["training"] and r["config"]["training"]["n_advertisers"] == n]
    if not trials:
        return None
    first = min(r["config"]["training"]["seed"] for r in trials)
    plt = _pyplot()
    figure, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for result in sorted((r for r in trials if r["config"]["training"]["seed"] == first), key=lambda r: r["config"]["name"]):
        label = result["config"]["name"].rsplit("-N", 1)[0]
        iterations = [record["iteration"] for record in result["history"]]
        for axis, key in zip(axes, ("welfare", "max_gain_normalised", "lambda_sum")):
            axis.plot(iterations, [record[key] for record in result["history"]], label=label)
    axes[0].set_ylabel("welfare (dual-step markets)")
    axes[1].set_ylabel("x* max gain / welfare")
    axes[2].set_ylabel("lambda_bar")
    axes[2].set_xlabel("BPG iteration")
    axes[0].legend(fontsize=6, ncol=2)
    axes[0].set_title(f"N = {n}, training seed {first}", fontsize=9)
    figure.tight_layout()
    path = output / f"curves-N{n}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_figure4(output: pathlib.Path, block: dict) -> pathlib.Path:
    """Figure 4: welfare and Max Exploitability against epsilon, BPG vs BPG_zero, with 95%
    intervals; cooperative as reference; hollow markers: constraint never active."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method, marker in (("bpg", "o"), ("bpg_zero", "s")):
        group = sorted((r for r in block["rows"] if r["method"] == method), key=lambda r: r["epsilon"])
        if not group:
            continue
        eps = np.array([r["epsilon"] for r in group])
        for axis, key in ((left, "welfare"), (right, "max_exploitability")):
            mean = np.array([r[key]["mean"] for r in group])
            error = [mean - np.array([r[key]["low"] for r in group]), np.array([r[key]["high"] for r in group]) - mean]
            line = axis.errorbar(eps, mean, yerr=error, marker=marker, capsize=3, label=method)
            inactive = [i for i, r in enumerate(group) if not r["constraint_active"]]
            if inactive:
                axis.scatter(eps[inactive], mean[inactive], s=120, facecolors="none", edgecolors=line[0].get_color(), label=f"{method}: {NEVER_ACTIVE}")
    for row in block["rows"]:
        if row["method"] in ("cooperative", "value"):
            for axis, key in ((left, "welfare"), (right, "max_exploitability")):
                axis.axhline(row[key]["mean"], color="grey", linestyle=":" if row["method"] == "cooperative" else "--", label=row["method"])
    unit = "fraction of the cooperative Max Exploitability" if block["epsilon_mode"] == "relative" else "share of welfare"
    for axis, name in ((left, "social welfare"), (right, "Max Exploitability (grid lower bound)")):
        axis.set_xlabel(f"epsilon ({unit})")
        axis.set_ylabel(name)
        axis.legend(fontsize=6)
    figure.suptitle(f"N = {block['n_advertisers']}", fontsize=9)
    figure.tight_layout()
    path = output / f"figure4-N{block['n_advertisers']}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_table3(output: pathlib.Path, rows: list[dict], n: int) -> pathlib.Path | None:
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(rows))
    axis.bar(x - 0.2, [r["unified_return"] for r in rows], 0.4, label="unified solution x*")
    axis.bar(x + 0.2, [r["best_response_return"] for r in rows], 0.4, label="R*: best of grid, PPO, x*")
    axis.scatter(x, [r["oracle_upper_bound"] for r in rows], marker="_", s=200, color="k", label="oracle upper bound")
    axis.set_xticks(x, [str(r["advertiser"]) for r in rows])
    axis.set_xlabel("advertiser")
    axis.set_ylabel("return (value won)")
    axis.set_title(f"Table 3, N = {n}", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = output / f"table3-N{n}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def load_results(output: pathlib.Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((output / "runs").glob("*/result.json"))]


def write_outputs(output: pathlib.Path, summary: dict) -> None:
    """Tables, summary and figures (atomically; figures are redrawn by ``--plot-only``)."""
    from auctionsim import runs

    runs.atomic_write_json(output / "summary.json", summary)
    for n, block in summary["by_size"].items():
        runs.atomic_write_text(output / f"table1-N{n}.md", table1_markdown(block))
    if summary["table3"]:
        runs.atomic_write_text(output / f"table3-N{summary['table3_n_advertisers']}.md", table3_markdown(summary["table3"], summary["table3_n_advertisers"]))
    plot_all(output)


def plot_all(output: pathlib.Path) -> list[pathlib.Path]:
    path = output / "summary.json"
    if not path.is_file():
        raise ConfigError(f"--plot-only: {path} does not exist; run the experiment first")
    summary = json.loads(path.read_text())
    results = load_results(output)
    written = []
    for n, block in summary["by_size"].items():
        written += [plot_curves(output, results, int(n)), plot_figure4(output, block)]
    written.append(plot_table3(output, summary["table3"], summary["table3_n_advertisers"]))
    return [p for p in written if p is not None]


def summarise_finished(args: Args, output: pathlib.Path) -> dict:
    """``--finished-only``: the tables, gates and figures of the trials finished so far, marked
    ``"partial": true`` when a method has a missing trial; trains nothing."""
    from auctionsim import runs

    results = {result["config"]["name"]: result for result in load_results(output)}
    if not results:
        raise ConfigError(f"--finished-only: no finished trials under {output / 'runs'}")
    scales = {}
    for n in args.sizes:
        cooperative = [results.get(run_name("cooperative", None, seed, n)) for seed in training_seeds(args)[: args.scale_seeds]]
        if all(cooperative):
            scales[n] = epsilon_scale(args, cooperative)
    summary = summarise(args, results, scales)
    summary["partial"] = any(block["not_run"] for block in summary["by_size"].values())
    write_outputs(output, summary)
    runs.write_manifest(output / "summary.json", args, seeds={"training": training_seeds(args), "eval": evaluation_seeds(args), "validation": validation_seeds(args)},
                        extra={"finished_trials": sorted(results)})  # fmt: skip
    for n in summary["by_size"]:
        print((output / f"table1-N{n}.md").read_text())
    return summary


def compare_runs(output: pathlib.Path, other: pathlib.Path) -> dict:
    """Paired differences ``output - other`` of every trained population both folders hold and
    trained differently (matched by name: objective, epsilon, N; rows are training seeds, columns
    evaluation markets, which must be the same in both), Holm-adjusted per metric; each
    population is labelled with its folder's name. Written atomically to
    ``output/comparison.json`` with a manifest."""
    from auctionsim import runs, stats

    def populations(folder: pathlib.Path) -> dict[str, dict[int, dict]]:
        found: dict[str, dict[int, dict]] = {}
        for path in sorted((folder / "runs").glob("*/result.json")):
            result = _read_result(path)
            training = result and result["config"]["training"]
            if training is not None:
                found.setdefault(path.parent.name.rsplit("-seed", 1)[0], {})[training["seed"]] = result
        return found

    mine, theirs = populations(output), populations(other)
    tags = (output.name, other.name) if output.name != other.name else (str(output), str(other))
    scores: dict[str, dict[str, np.ndarray]] = {"welfare": {}, "max_exploitability": {}}
    pairs = []
    for name in sorted(set(mine) & set(theirs)):
        seeds = sorted(set(mine[name]) & set(theirs[name]))
        if not seeds or all(mine[name][s]["config"]["training"] == theirs[name][s]["config"]["training"] for s in seeds):
            continue  # none, or the same trained populations (e.g. shared baselines): nothing to compare
        for seed in seeds:
            if mine[name][seed]["config"]["evaluation"] != theirs[name][seed]["config"]["evaluation"]:
                raise ConfigError(f"{name} seed {seed}: the two runs were evaluated differently; a paired comparison needs the same evaluation config")
        for metric, key in (("welfare", "welfare"), ("max_exploitability", "max_exploitability_lower")):
            for label, runs_of in ((f"{name} ({tags[0]})", mine[name]), (f"{name} ({tags[1]})", theirs[name])):
                scores[metric][label] = np.array([runs_of[seed][key] for seed in seeds], dtype=float)
        pairs.append((f"{name} ({tags[0]})", f"{name} ({tags[1]})"))
    if not pairs:
        raise ConfigError(f"{output} and {other} share no finished trained population to compare")
    comparison = {metric: [c.to_dict() for c in stats.compare(scores[metric], pairs)] for metric in scores}
    runs.atomic_write_json(output / "comparison.json", {"output": str(output), "other": str(other), "comparisons": comparison})
    runs.write_manifest(output / "comparison.json", config={"output_dir": str(output), "compare_with": str(other)})
    for metric, rows in comparison.items():
        for row in rows:
            d = row["difference"]
            print(f"{metric}: {row['a']} - {row['b']} = {d['mean']:.4g} [{d['low']:.4g}, {d['high']:.4g}]: {row['verdict']}")
    return comparison


# ---------------------------------------------------------------------- the experiment
def main(argv: list[str] | None = None) -> dict | None:
    from auctionsim.cluster import ray_session
    from auctionsim import runs

    args = parse_args(argv)
    if args.plot_only:
        plot_all(pathlib.Path(args.output_dir))
        return None
    if args.compare_with:
        return compare_runs(pathlib.Path(args.output_dir), pathlib.Path(args.compare_with))
    if args.finished_only:
        return summarise_finished(args, pathlib.Path(args.output_dir))
    output = runs.check_output_dir(args.output_dir).resolve()  # RLlib checkpoints need absolute paths
    if not args.resume and (output / "runs").is_dir() and any((output / "runs").iterdir()):
        raise runs.RunError(f"{output} holds results of an earlier run; add --resume to continue or extend it, or choose another --output-dir")
    started = time.perf_counter()
    placement = ("num_cpus", "scheduler", "num_env_runners", "num_learners", "num_gpus_per_learner", "dual_workers")  # where work runs, not what it computes
    with runs.run_folder(output, args, resume=args.resume, extendable={"iterations", "training_seeds", "eval_seeds", "epsilons", "zero_epsilons", "heuristics", "ppo_best_response"}, ignored=(*runs.DEFAULT_IGNORED, *placement), seeds={"training": training_seeds(args), "eval": evaluation_seeds(args), "validation": validation_seeds(args)}) as run:
        with ray_session(args.num_cpus):  # local by default, RAY_ADDRESS for a cluster; shut down after
            summary = run_experiment(args, output)
        summary["wall_seconds"] = time.perf_counter() - started
        write_outputs(output, summary)
        run.extra["wall_seconds"] = summary["wall_seconds"]
    for n in summary["by_size"]:
        print((output / f"table1-N{n}.md").read_text())
    if summary["table3"]:
        print((output / f"table3-N{summary['table3_n_advertisers']}.md").read_text())
    for n, block in summary["by_size"].items():
        print(f"gates N={n}: {json.dumps({k: v for k, v in block['gates'].items() if k != 'adjacent_pairs'})}")
    print(f"wall time {summary['wall_seconds']:.0f} s; results in {output}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
