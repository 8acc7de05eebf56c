"""PE-MORL experiment (Mou et al., arXiv 2506.17919): model generalisation and policy quality,
with paired 95% intervals over training seeds x evaluation seeds.

For each training seed ``t`` (logs, models and learners all re-drawn):

(a) Model generalisation: a permutation-equivariant (PE) Gaussian ensemble and a fixed-size MLP
    ensemble are trained on logs of the training market; their prediction error (standardised
    MSE of the next state and of the reward, 1.0 = predicting the training mean) is measured per
    held-out episode of the training market and of shifted markets: other budgets and more
    advertisers than in training (the MLP sees a larger market in chunks of its training size).
(b) Policy quality: PE-MORL against the offline-RL baselines (BC, IQL, CQL, decision transformer)
    trained on the same logs and the heuristic baselines (PID and CPA pacing), each hosted as the
    focal bidder of the single-bidder env against the logging population (``mixed``: fixed, PID,
    CPA pacing and OnlineLP bidders; logged with exploration noise, evaluated without), on the
    training market and on the shifted markets: AuctionNet's score, conversions and the CPA ratio
    of every (evaluation seed, focal advertiser) episode.
(c) Validation and ablation: PE-MORL's penalty ``lambda`` and rollout horizon are chosen per
    training seed on *validation* episodes of the training market (market seeds disjoint from the
    logs and from the reported evaluation episodes); the ablation is PE-MORL with ``lambda = 0``
    at the chosen horizon.

Reported (``summary.json``, printed tables): every metric as mean [95% interval] over the
(training seed x evaluation seed x focal advertiser) grid (``auctionsim.stats``: crossed-design t
interval, focal advertisers averaged first), every comparison as a paired difference with its
interval and a Holm-adjusted verdict per table; the gates of issue 15 (the actor's mean multiplier
on logged states against the data's range; PE-MORL vs IQL on the training market; PE-MORL vs the
best baseline on each shifted market; PE-MORL vs its lambda = 0 ablation).

Seeds (all disjoint): logs of training seed ``t``: market seeds ``10,000 t + e``; model test
episodes ``1,000,000 + 10,000 t + e``; validation episodes ``2,000,000 + 1,000 seed + j``;
evaluation episodes ``3,000,000 + 1,000 seed + j`` (the same for every method and training seed).

Differences from the paper: our markets and bidders are the simulator's, not the platform's; the
paper's layer sizes and Q-learning details are not public (we fill them in, see
:mod:`agents.pemorl.learner` and :mod:`agents.pemorl.model`).

Run: ``python -m experiments.pemorl [--quick] [--device cuda]``; each training seed's raw results
go to ``<output-dir>/seeds/seed-<t>.json`` as it finishes (``--resume`` continues a killed run and
extends it with more training seeds), trained bidders to ``bidders/seed-<t>/``, TensorBoard
scalars to ``tensorboard/``, and ``summary.json``, ``models.png``, ``policies.png`` and
``validation.png`` (redrawn from ``summary.json`` by :func:`plot`) beside ``manifest.json``.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from agents.baselines import CPAPacing, PIDPacing
from agents.datasets import OfflineDataset, collect_dataset
from agents.evaluation import play_focal
from agents.offline import ActorBidder, BCConfig, CQLConfig, DTConfig, IQLConfig, OfflineData, train_bc, train_cql, train_dt, train_iql
from agents.offline.training import resolve_device
from agents.pemorl import POLICY_IMPROVEMENTS, GlobalTransitions, ModelConfig, ModelTrainingConfig, PEMORLConfig, prediction_error, train_ensemble, train_pemorl
from agents.populations import check_population, named_population
from auctionsim import Market, runs, stats
from auctionsim.config import Population
from auctionsim.envs import AuctionParallelEnv, PopulationPolicy, SingleBidderEnv
from auctionsim.errors import ConfigError
from auctionsim.presets import get, large_population
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.validation import check_choice, check_int
from experiments import args as arguments

LOG_SEEDS, MODEL_TEST_SEEDS, VALIDATION_SEEDS, EVALUATION_SEEDS = 0, 1_000_000, 2_000_000, 3_000_000
TRAINED = ("BC", "IQL", "CQL", "DT")
PACING = ("PID pacing", "CPA pacing")
PEMORL, ABLATION = "PE-MORL", "PE-MORL lambda=0"
METHODS = (PEMORL, ABLATION, *TRAINED, *PACING)
TRAINING_MARKET = "training"


@dataclass
class Args(arguments.ProtocolArgs):
    """PE-MORL: model generalisation and policy quality with paired intervals."""

    output_dir: str = "results/pemorl"
    """where raw results, bidders, TensorBoard scalars, the summary and plots are written"""
    validation_seeds: int = 3
    """validation episodes (training market) per focal advertiser, for choosing lambda and the horizon"""
    impressions_per_episode: int = 500_000
    """impressions per episode (AuctionNet: 500,000); budgets are scaled accordingly"""
    n_ticks: int = 48
    """ticks per episode"""
    train_episodes: int = 40
    """logged episodes of the training market (per training seed)"""
    test_episodes: int = 4
    """logged episodes of each test market (held-out and shifted) for the model errors"""
    population: str = "mixed"
    """logging and evaluation population (agents.populations: "mixed" deals fixed, PID, CPA
    pacing and OnlineLP round-robin; or your own as module:Name)"""
    action_noise: float = 0.3
    """exploration noise of the logging population (log-normal sigma on its multipliers)"""
    shifted_budget_scales: tuple[float, ...] = (0.5, 2.0)
    """budget multipliers of the shifted-budget markets (48 advertisers)"""
    shifted_advertisers: int = 72
    """advertisers of the larger shifted market (the training market has 48)"""
    model_members: int = 5
    """ensemble size of both environment models"""
    model_hidden: int = 64
    """width of both models"""
    model_steps: int = 1_500
    """gradient steps of each model ensemble"""
    model_batch: int = 16
    """logged ticks (whole markets) per ensemble member and step"""
    policy_steps: int = 6_000
    """gradient steps of BC, IQL, CQL and PE-MORL (the same budget for each)"""
    batch_size: int = 0
    """transitions per step of every learner; 0: 256 on the CPU, 2,048 on a GPU (fills it at no extra time per step)"""
    hidden_dim: int = 256
    """width of actors and critics"""
    cql_sampled_actions: int = 4
    """actions CQL samples per source for its log-sum-exp (the CQL paper: 10; its cost grows with them: 117 ms a step on one core at 10)"""
    dt_steps: int = 2_000
    """gradient steps of the decision transformer (190 ms a step on one core at batch 64 x 30 tokens)"""
    policy_improvement: str = "awr"
    """PE-MORL's policy improvement: awr (IQL on real + model data) or td3+bc (agents.pemorl.learner)"""
    penalty_grid: tuple[float, ...] = (0.1, 1.0)
    """PE-MORL penalty coefficients lambda tried on the validation episodes"""
    horizon_grid: tuple[int, ...] = (1, 5)
    """PE-MORL rollout horizons (ticks) tried on the validation episodes"""
    rollouts_per_refresh: int = 256
    """PE-MORL model rollouts per refresh (every 250 steps; the buffer keeps the last 5 refreshes)"""
    focal_advertisers: tuple[int, ...] = (3, 15, 27, 39)
    """advertisers (ids) the evaluated bidder bids for, one at a time"""
    device: str = "auto"
    """torch device of every learner: auto (cuda when available), cpu, cuda, cuda:N"""
    torch_threads: int = 1
    """CPU threads for torch (small networks run faster on one thread on a busy machine)"""

    def __post_init__(self) -> None:
        check_population(self.population)
        positive = ("training_seeds", "eval_seeds", "validation_seeds", "impressions_per_episode", "n_ticks", "train_episodes", "test_episodes",
                    "model_members", "model_hidden", "model_steps", "model_batch", "policy_steps", "hidden_dim", "cql_sampled_actions", "dt_steps",
                    "rollouts_per_refresh", "torch_threads", "shifted_advertisers")  # fmt: skip
        for name in positive:
            check_int(name, getattr(self, name), low=1)
        check_int("batch_size (0: automatic)", self.batch_size, low=0)
        if self.model_members < 2:
            raise ConfigError(f"model_members must be >= 2 (the penalty needs an ensemble), got {self.model_members}")
        if not self.penalty_grid or any(not np.isfinite(p) or p < 0 for p in self.penalty_grid):
            raise ConfigError(f"penalty_grid must hold finite values >= 0, got {self.penalty_grid}")
        check_choice("policy_improvement", self.policy_improvement, POLICY_IMPROVEMENTS)
        if not self.horizon_grid or any(h < 1 for h in self.horizon_grid):
            raise ConfigError(f"horizon_grid must hold integers >= 1, got {self.horizon_grid}")
        if not self.focal_advertisers:
            raise ConfigError("focal_advertisers must name at least one advertiser")
        resolve_device(self.device)


QUICK = dict(
    output_dir="results/pemorl-quick", training_seeds=2, eval_seeds=3, validation_seeds=2, impressions_per_episode=200_000, n_ticks=24,
    train_episodes=10, test_episodes=2, model_members=3, model_hidden=32, model_steps=300, policy_steps=1_500, hidden_dim=128,
    cql_sampled_actions=3, dt_steps=400, penalty_grid=(0.1, 1.0), horizon_grid=(3,), rollouts_per_refresh=256,
)  # fmt: skip


# ----------------------------------------------------------------------------- markets and logs


def make_market(args: Args, budget_scale: float = 1.0, n_advertisers: int = 48) -> Market:
    """AuctionNet's market with ``args``' size; AuctionNet's 48 advertisers (budgets scaled to the
    impressions) or ``n_advertisers`` drawn from AuctionNet's ranges in its 6 categories."""
    scenario = get("auctionnet", scale_budgets=True, impressions_per_episode=args.impressions_per_episode, n_ticks=args.n_ticks)
    base = scenario.population if n_advertisers == 48 else large_population(n_advertisers, 6, args.impressions_per_episode)
    population = Population(base.ids, base.budgets * budget_scale, base.cpa_targets, base.categories, 6)
    return Market(scenario.market, population)


def logging_population(args: Args, market: Market) -> PopulationPolicy:
    """The logging (and evaluation) population of ``market`` (a fresh one per env)."""
    return named_population(args.population, market.population.ids)


def collect(args: Args, market: Market, episodes: int, seed: int, description: str) -> OfflineDataset:
    env = AuctionParallelEnv(market, reward="score")
    return collect_dataset(env, logging_population(args, market), episodes, seed=seed, action_noise=args.action_noise, description=description)


def test_markets(args: Args) -> dict[str, Market]:
    markets = {TRAINING_MARKET: make_market(args)}
    for scale in args.shifted_budget_scales:
        markets[f"budget x{scale:g}"] = make_market(args, budget_scale=scale)
    markets[f"{args.shifted_advertisers} advertisers"] = make_market(args, n_advertisers=args.shifted_advertisers)
    return markets


def focal_ids(args: Args, market: Market) -> tuple[int, ...]:
    present = set(market.population.ids.tolist())
    return tuple(i for i in args.focal_advertisers if i in present)


# ----------------------------------------------------------------------------- evaluation


def play_cases(args: Args, bidder: PopulationPolicy, market: Market, seeds: list[int], description: str = "") -> dict[str, np.ndarray]:
    """``bidder`` as the focal bidder of every (seed, focal advertiser) episode of ``market``, all
    in lockstep (one :func:`~agents.evaluation.play_focal` call: the bidder acts once per tick for
    every episode): ``(len(seeds), focal advertisers)`` arrays of score, conversions, spend,
    target cost (the conversions valued at the CPA target) and mean multiplier."""
    ids = focal_ids(args, market)
    cases = list(itertools.product(seeds, ids))
    envs = [
        SingleBidderEnv(Market(market.config, market.population, record_history=False), population=logging_population(args, market), focal=focal, reward="score")
        for _, focal in cases
    ]
    episodes = play_focal(bidder, envs, [seed for seed, _ in cases], progress=False, description=description or "evaluating")
    conversions, spend = episodes.total(episodes.conversions), episodes.total(episodes.spend)
    acted = np.maximum(episodes.acted.sum(axis=1), 1)
    values = {
        "score": episodes.score(2.0),
        "conversions": conversions,
        "spend": spend,
        "target_cost": conversions * episodes.cpa_target,
        "mean_multiplier": np.where(episodes.acted, episodes.multipliers, 0.0).sum(axis=1) / acted,
    }
    return {name: value.reshape(len(seeds), len(ids)) for name, value in values.items()}


def evaluation_seeds(args: Args) -> list[int]:
    return [EVALUATION_SEEDS + 1_000 * args.seed + j for j in range(args.eval_seeds)]


def validation_seeds(args: Args) -> list[int]:
    return [VALIDATION_SEEDS + 1_000 * args.seed + j for j in range(args.validation_seeds)]


# ----------------------------------------------------------------------------- one training seed


def _to_lists(values: dict[str, np.ndarray]) -> dict[str, list]:
    return {name: array.tolist() for name, array in values.items()}


def model_generalisation(args: Args, train_logs: OfflineDataset, test_logs: dict[str, list[OfflineDataset]], seed: int, device: str, log_dir: pathlib.Path | None) -> tuple[dict, object]:
    """Per test set and model kind, the prediction errors of every test episode; returns them
    and the PE ensemble."""
    transitions = GlobalTransitions(train_logs, device=device)
    training = ModelTrainingConfig(steps=args.model_steps, batch_size=args.model_batch, members=args.model_members, seed=seed)
    errors, ensembles = {}, {}
    for kind in ("pe", "mlp"):
        config = ModelConfig(kind=kind, observation_dim=transitions.observation_dim, hidden_dim=args.model_hidden, layers=2, heads=4, n_advertisers=48)
        start = time.perf_counter()
        with ScalarLogger(log_dir / f"model-{kind}" if log_dir else None) as writer:
            ensembles[kind] = train_ensemble(transitions, config, training, progress=True, writer=writer)
        errors[kind] = {"train_seconds": time.perf_counter() - start}
        for name, episodes in test_logs.items():
            per_episode = [prediction_error(ensembles[kind], GlobalTransitions(logs, device=device).all_ticks()) for logs in episodes]
            errors[kind][name] = {metric: [row[metric] for row in per_episode] for metric in per_episode[0]}
        print(f"  {kind.upper()} model: " + ", ".join(f"{name} mse {np.mean(v['mse']):.3f}" for name, v in errors[kind].items() if isinstance(v, dict)))
    return errors, ensembles["pe"]


def batch_size(args: Args, device: str) -> int:
    return args.batch_size or (2_048 if torch.device(device).type == "cuda" else 256)


def train_baselines(args: Args, data: OfflineData, seed: int, log_dir: pathlib.Path | None) -> dict[str, PopulationPolicy]:
    """BC, IQL, CQL and DT on the same logs, each with ``policy_steps`` (DT: ``dt_steps``) steps."""
    steps, hidden, batch = args.policy_steps, args.hidden_dim, batch_size(args, data.device)

    def logger(name: str) -> ScalarLogger:
        return ScalarLogger(log_dir / name if log_dir else None)

    with logger("bc") as writer:
        bc = train_bc(data, BCConfig(steps=steps, batch_size=batch, hidden_dim=hidden, seed=seed), progress=True, writer=writer)
    with logger("iql") as writer:
        iql = train_iql(data, IQLConfig(steps=steps, batch_size=batch, hidden_dim=hidden, seed=seed), progress=True, writer=writer).bidder
    with logger("cql") as writer:
        cql = train_cql(data, CQLConfig(steps=steps, batch_size=batch, hidden_dim=hidden, n_actions=args.cql_sampled_actions, seed=seed), progress=True, writer=writer)
    dt_config = DTConfig(steps=args.dt_steps, batch_size=max(64, batch // 4), hidden_dim=hidden // 2, context_length=min(10, args.n_ticks),
                         warmup_steps=min(1_000, args.dt_steps // 10), seed=seed)  # fmt: skip
    with logger("dt") as writer:
        dt = train_dt(data, dt_config, progress=True, writer=writer)
    return {"BC": bc, "IQL": iql, "CQL": cql, "DT": dt}


def pemorl_config(args: Args, seed: int, device: str, penalty: float, horizon: int) -> PEMORLConfig:
    return PEMORLConfig(policy_improvement=args.policy_improvement, steps=args.policy_steps, batch_size=batch_size(args, device), hidden_dim=args.hidden_dim,
                        penalty_coefficient=penalty, horizon=horizon, rollouts_per_refresh=args.rollouts_per_refresh, warm_start_steps=min(2_000, args.policy_steps),
                        seed=seed)  # fmt: skip


def train_pemorl_validated(
    args: Args, data: OfflineData, transitions: GlobalTransitions, ensemble, market: Market, seed: int, log_dir: pathlib.Path | None
) -> tuple[dict[str, PopulationPolicy], list[dict], dict]:
    """PE-MORL for every (lambda, horizon) of the grid, each scored on the validation episodes;
    the best mean validation score is ``PE-MORL``, and ``lambda = 0`` at its horizon the ablation."""
    seeds = validation_seeds(args)
    trained, table = {}, []
    for penalty, horizon in itertools.product(args.penalty_grid, args.horizon_grid):
        name = f"lambda={penalty:g} H={horizon}"
        with ScalarLogger(log_dir / f"pemorl {name}" if log_dir else None) as writer:
            result = train_pemorl(data, transitions, ensemble, pemorl_config(args, seed, data.device, penalty, horizon), progress=True, writer=writer)
        trained[(penalty, horizon)] = result
        validation = play_cases(args, result.bidder, market, seeds, f"validating {name}")
        table.append({"penalty": penalty, "horizon": horizon, "validation_score": float(validation["score"].mean()), "history": result.history})
        print(f"  PE-MORL {name}: validation score {table[-1]['validation_score']:.3f}")
    best = max(table, key=lambda row: row["validation_score"])
    chosen = (best["penalty"], best["horizon"])
    ablation = trained.get((0.0, chosen[1]))
    if ablation is None:
        with ScalarLogger(log_dir / f"pemorl lambda=0 H={chosen[1]}" if log_dir else None) as writer:
            ablation = train_pemorl(data, transitions, ensemble, pemorl_config(args, seed, data.device, 0.0, chosen[1]), progress=True, writer=writer)
    choice = {"penalty": chosen[0], "horizon": chosen[1], "ablation_history": ablation.history}
    return {PEMORL: trained[chosen].bidder, ABLATION: ablation.bidder}, table, choice


def run_training_seed(args: Args, run_path: pathlib.Path, markets: dict[str, Market], seed: int, device: str) -> dict:
    """Everything for training seed ``seed``: logs, models, learners and their evaluation."""
    start = time.perf_counter()
    seed_everything(seed)
    log_dir = run_path / "tensorboard" / f"seed-{seed}" if args.tensorboard else None
    print(f"training seed {seed}: logging {args.train_episodes} episodes")
    train_logs = collect(args, markets[TRAINING_MARKET], args.train_episodes, LOG_SEEDS + 10_000 * seed, "training logs")
    test_seed = MODEL_TEST_SEEDS + 10_000 * seed
    test_logs = {
        ("held-out" if name == TRAINING_MARKET else name): [collect(args, market, 1, test_seed + e, name) for e in range(args.test_episodes)]
        for name, market in markets.items()
    }
    model_errors, ensemble = model_generalisation(args, train_logs, test_logs, seed, device, log_dir)

    data = OfflineData(train_logs, reward="score", device=device)
    transitions = GlobalTransitions(train_logs, device=device)
    bidders = train_baselines(args, data, seed, log_dir)
    pemorl_bidders, validation, choice = train_pemorl_validated(args, data, transitions, ensemble, markets[TRAINING_MARKET], seed, log_dir)
    bidders.update(pemorl_bidders)
    for name, bidder in bidders.items():
        path = run_path / "bidders" / f"seed-{seed}" / f"{name.replace('=', '').replace(' ', '-')}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.atomic_write(path, bidder.save)

    logged = data.flat_observations().cpu().numpy()
    multipliers = data.multipliers[data.valid].cpu().numpy()
    # Stateless actors only (the decision transformer acts on its own context, not on a state).
    on_logged_states = {name: float(np.mean(bidder.act(logged))) for name, bidder in bidders.items() if isinstance(bidder, ActorBidder)}
    episodes = {}
    for market_name, market in markets.items():
        episodes[market_name] = {name: _to_lists(play_cases(args, bidder, market, evaluation_seeds(args), f"{market_name}: {name}")) for name, bidder in bidders.items()}
        print(f"  {market_name}: " + ", ".join(f"{name} {np.mean(values['score']):.2f}" for name, values in episodes[market_name].items()))
    return {
        "seed": seed,
        "model_errors": model_errors,
        "validation": validation,
        "chosen": choice,
        "logged_multipliers": {"mean": float(multipliers.mean()), **{f"p{q}": float(np.percentile(multipliers, q)) for q in (5, 25, 50, 75, 95)}},
        "mean_multiplier_on_logged_states": on_logged_states,
        "episodes": episodes,
        "seconds": time.perf_counter() - start,
    }


def run_pacing(args: Args, markets: dict[str, Market]) -> dict:
    """The heuristic baselines (no training: the same for every training seed)."""
    return {
        market_name: {name: _to_lists(play_cases(args, bidder, market, evaluation_seeds(args), f"{market_name}: {name}")) for name, bidder in zip(PACING, (PIDPacing(), CPAPacing()))}
        for market_name, market in markets.items()
    }


# ----------------------------------------------------------------------------- statistics


def summarise(args: Args, per_seed: list[dict], pacing: dict) -> dict:
    """Means with 95% intervals and paired, Holm-adjusted comparisons (``auctionsim.stats``) of
    every metric, per market, over the (training seed x evaluation seed x focal advertiser) grid;
    the model errors over (training seed x test episode); the gates."""
    markets = list(pacing)
    summary: dict = {"markets": {}, "model_errors": {}, "gates": {}}
    for market in markets:
        grids = {}
        for method in METHODS:
            rows = [pacing[market][method] if method in PACING else seed_result["episodes"][market][method] for seed_result in per_seed]
            grids[method] = {name: np.array([row[name] for row in rows]) for name in rows[0]}  # (T, E, F)
        baselines = [m for m in METHODS if m not in (PEMORL, ABLATION)]
        pairs = [(PEMORL, ABLATION)] + [(PEMORL, baseline) for baseline in baselines]
        scores = {method: grids[method]["score"] for method in METHODS}
        conversions = {method: grids[method]["conversions"] for method in METHODS}
        # The CPA ratio of a (training seed, evaluation seed) cell: its focal advertisers' spend over
        # the target cost of their conversions (a per-episode ratio is infinite without conversions).
        with np.errstate(divide="ignore", invalid="ignore"):
            cpa = {method: grids[method]["spend"].sum(-1) / grids[method]["target_cost"].sum(-1) for method in METHODS}
        defined = all(np.isfinite(grid).all() for grid in cpa.values())
        best = max(baselines, key=lambda method: scores[method].mean())
        summary["markets"][market] = {
            "score": stats.summary(scores, pairs),
            "conversions": stats.summary(conversions),
            "cpa_ratio": stats.summary(cpa) if defined else {"undefined": "a (training seed, evaluation seed) cell without conversions"},
            "mean_multiplier": stats.summary({method: grids[method]["mean_multiplier"] for method in METHODS}),
            "best_baseline": best,
        }
        print(stats.format_table(scores, pairs, digits=2, title=f"score, {market} market"))
    for kind in ("pe", "mlp"):
        summary["model_errors"][kind] = {}
    test_sets = [name for name in per_seed[0]["model_errors"]["pe"] if name != "train_seconds"]
    for name in test_sets:
        for metric in ("state_mse", "reward_mse"):
            grids = {kind: np.array([seed_result["model_errors"][kind][name][metric] for seed_result in per_seed]) for kind in ("pe", "mlp")}
            summary["model_errors"].setdefault(name, {})[metric] = stats.summary({"PE": grids["pe"], "MLP": grids["mlp"]}, [("PE", "MLP")])
    del summary["model_errors"]["pe"], summary["model_errors"]["mlp"]
    summary["gates"] = gates(summary, per_seed)
    summary["validation"] = [{"seed": r["seed"], "chosen": {k: r["chosen"][k] for k in ("penalty", "horizon")},
                              "grid": [{k: row[k] for k in ("penalty", "horizon", "validation_score")} for row in r["validation"]]} for r in per_seed]  # fmt: skip
    return summary


def _comparison(summary: dict, market: str, a: str, b: str) -> dict:
    return next(c for c in summary["markets"][market]["score"]["comparisons"] if c["a"] == a and c["b"] == b)


def gates(summary: dict, per_seed: list[dict]) -> dict:
    """Issue 15's done-when checks for PE-MORL, from the summary and the raw results."""
    multiplier = np.array([[r["mean_multiplier_on_logged_states"][PEMORL]] for r in per_seed])
    low = min(r["logged_multipliers"]["p5"] for r in per_seed)
    high = max(r["logged_multipliers"]["p95"] for r in per_seed)
    estimate = stats.grid_mean(multiplier).to_dict()
    versus_iql = _comparison(summary, TRAINING_MARKET, PEMORL, "IQL")
    shifted = {
        market: {"best_baseline": values["best_baseline"], **_comparison(summary, market, PEMORL, values["best_baseline"])}
        for market, values in summary["markets"].items()
        if market != TRAINING_MARKET
    }
    ablation = {market: _comparison(summary, market, PEMORL, ABLATION) for market in summary["markets"]}
    return {
        "actor_multiplier_in_data_range": {
            "passed": bool(low <= estimate["mean"] <= high),
            "mean_multiplier_on_logged_states": estimate,
            "logged_p5_p95": [low, high],
            "by_training_seed": multiplier[:, 0].tolist(),
        },
        "not_worse_than_iql_on_training_market": {"passed": bool(versus_iql["difference"]["high"] >= 0), **versus_iql},
        "shifted_vs_best_baseline": shifted,
        "lambda_ablation": {"changes_result": any(c["verdict"] != stats.NOT_DISTINGUISHABLE for c in ablation.values()), "by_market": ablation},
    }


# ----------------------------------------------------------------------------- plots


def plot(output_dir: pathlib.Path) -> list[pathlib.Path]:
    """Draw ``models.png``, ``policies.png`` and ``validation.png`` from ``summary.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = json.loads((output_dir / "summary.json").read_text())
    written = []

    def bars(axis, labels, groups, estimates, width):
        for index, group in enumerate(groups):
            values = [estimates[label][group] for label in labels]
            means = np.array([v["mean"] for v in values])
            errors = np.array([[v["mean"] - v["low"], v["high"] - v["mean"]] for v in values]).T
            axis.bar(np.arange(len(labels)) + (index - len(groups) / 2 + 0.5) * width, means, width, yerr=errors, capsize=2, label=group)
        axis.set_xticks(np.arange(len(labels)), labels, rotation=15)

    errors = summary["model_errors"]
    sets = list(errors)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric, title in ((axes[0], "state_mse", "next state"), (axes[1], "reward_mse", "reward")):
        bars(axis, sets, ["PE", "MLP"], {name: errors[name][metric]["metrics"] for name in sets}, 0.4)
        axis.set_ylabel("standardised MSE (1 = training mean), 95% CI")
        axis.set_title(f"Model error, {title}")
        axis.legend()
    figure.tight_layout()
    written.append(output_dir / "models.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    markets = list(summary["markets"])
    methods = list(summary["markets"][markets[0]]["score"]["metrics"])
    figure, axis = plt.subplots(figsize=(12, 4.5))
    bars(axis, markets, methods, {market: summary["markets"][market]["score"]["metrics"] for market in markets}, 0.8 / len(methods))
    axis.set_ylabel("focal score, mean and 95% CI")
    axis.set_title("Policy quality (training seeds x evaluation seeds x focal advertisers)")
    axis.legend(fontsize=7, ncol=4)
    figure.tight_layout()
    written.append(output_dir / "policies.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 4))
    for row in summary["validation"]:
        labels = [f"l={g['penalty']:g} H={g['horizon']}" for g in row["grid"]]
        axis.plot(labels, [g["validation_score"] for g in row["grid"]], marker="o", label=f"training seed {row['seed']}")
    axis.set_ylabel("mean validation score")
    axis.set_title("PE-MORL lambda and horizon (validation episodes)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    written.append(output_dir / "validation.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)
    return written


# ----------------------------------------------------------------------------- main


def run(args: Args) -> dict:
    device = resolve_device(args.device)
    torch.set_num_threads(args.torch_threads)
    with runs.run_folder(args.output_dir, args, resume=args.resume, extendable={"training_seeds"}) as run:
        training = [args.seed + i for i in range(args.training_seeds)]
        run.seeds = {"training": training, "validation": validation_seeds(args), "eval": evaluation_seeds(args)}
        markets = test_markets(args)
        folder = run.path / "seeds"
        pacing_path = folder / "pacing.json"
        pacing = json.loads(pacing_path.read_text()) if args.resume and pacing_path.exists() else None
        if pacing is None:
            pacing = run_pacing(args, markets)
            runs.atomic_write_json(pacing_path, pacing)
        per_seed = []
        for seed in training:
            path = folder / f"seed-{seed}.json"
            if args.resume and path.exists():
                print(f"training seed {seed}: done in the run being resumed")
                per_seed.append(json.loads(path.read_text()))
                continue
            per_seed.append(run_training_seed(args, run.path, markets, seed, device))
            runs.atomic_write_json(path, per_seed[-1])
        summary = summarise(args, per_seed, pacing)
        summary["device"] = device
        summary["wall_seconds_per_training_seed"] = [r["seconds"] for r in per_seed]
        runs.atomic_write_json(run.path / "summary.json", summary)
        plot(run.path)
        run.extra["device"] = device
        print(f"saved {run.path}/summary.json and the plots; gates: " + json.dumps({k: v.get("passed", v.get("changes_result")) for k, v in summary["gates"].items() if isinstance(v, dict) and ("passed" in v or "changes_result" in v)}))
    return summary


def parse_args(argv: list[str] | None = None) -> Args:
    """Flags from :class:`Args`; ``--quick`` changes the defaults of the flags not given."""
    return arguments.parse(Args, argv, quick=QUICK, description=__doc__.split("\n\n")[0], prog="auctionsim pemorl")


def main(argv: list[str] | None = None) -> dict:
    """``python -m experiments.pemorl [--quick] ...``."""
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
