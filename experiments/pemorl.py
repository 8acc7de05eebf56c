"""PE-MORL experiment (Mou et al., arXiv 2506.17919): model generalisation and policy quality.

(a) Model generalisation: a permutation-equivariant (PE) Gaussian ensemble and a fixed-size MLP
    ensemble are trained on logs of the training market; their prediction error (standardised
    MSE of the next state and reward, 1.0 = predicting the training mean) is measured on held-out
    episodes of the training market and on shifted markets: other budgets and more advertisers
    than in training (the MLP sees a larger market in chunks of its training size).
(b) Policy quality: PE-MORL against the offline-RL baselines (BC, IQL, CQL, decision transformer)
    trained on the same logs and the heuristic baselines (PID and CPA pacing), each hosted as the
    focal bidder of the single-bidder env against the logging population (``mixed``: fixed, PID,
    CPA pacing and OnlineLP bidders; logged with exploration noise, evaluated without), on the
    training market and on the shifted markets: conversions, CPA ratio and score, mean +- std over
    evaluation seeds (each the mean over the focal advertisers).
(c) Pessimism ablation: PE-MORL with penalty coefficient 0 against the tuned one (the value of
    ``penalty_grid`` with the best score on the training market: an online selection, as the
    paper's tuning presumably was; the quick grid has one value).

Differences from the paper: our markets and bidders are the simulator's, not the platform's; the
paper's exact layer sizes and Q-learning variant are not public (we use IQL, see
:mod:`agents.pemorl.learner`); ``--quick`` uses 24-tick episodes of 200,000 impressions and few gradient steps.

Measured with ``--quick`` (seed 0, 2 shared cores, 11.6 min): the PE model's next-state error is
below the MLP's on every test set (standardised MSE 0.39 vs 0.46 held-out, 0.45 vs 0.51 and
0.39 vs 0.44 at half and double budgets, 0.36 vs 0.52 with 72 advertisers: the gap widens
out of distribution, the paper's claim); rewards are scaled by the advertiser's budget, so at
half budgets both models' reward errors are large (3.6). The quick PE-MORL policy is too
cautious on the training market (score 1.8 vs 5.8-8.1 for IQL/BC/CQL/DT, CPA ratio 0.84) and
best at half budgets (8.9 vs <= 7.1); penalty 0 vs 1 differs little at quick sizes. Quick
training is far too short to rank the policies: run the full settings for that.

Run: ``python -m experiments.pemorl [--quick]``; results (``results.json``, ``policies.csv``)
and plots (``models.png``, ``policies.png``) go to ``results/pemorl/``. GPU used when present.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from agents.baselines import CPAPacing, PIDPacing
from agents.datasets import OfflineDataset, collect_dataset
from agents.populations import check_population, named_population
from agents.evaluation import play_focal_episode
from agents.offline import BCConfig, CQLConfig, DTConfig, IQLConfig, OfflineData, train_bc, train_cql, train_dt, train_iql
from agents.offline.training import seed_everything
from agents.pemorl import GlobalTransitions, ModelConfig, ModelTrainingConfig, PEMORLConfig, prediction_error, train_ensemble, train_pemorl
from auctionsim import Market
from auctionsim.config import Population
from auctionsim.errors import ConfigError
from auctionsim.envs import AuctionParallelEnv, PopulationPolicy, SingleBidderEnv
from auctionsim.presets import auctionnet_population, get, large_population
from auctionsim.validation import check_int
from experiments import args as arguments

AUCTIONNET_IMPRESSIONS = 500_000  # the preset's impressions per episode, for which its budgets are set


@dataclass
class Args:
    output_dir: str = "results/pemorl"
    """where raw results and plots are written"""
    seed: int = 0
    """seeds data collection (market seeds seed, seed + 1, ...), training and evaluation"""
    impressions_per_episode: int = 500_000
    """impressions per episode (AuctionNet: 500,000); budgets are scaled accordingly"""
    n_ticks: int = 48
    """ticks per episode"""
    train_episodes: int = 40
    """logged episodes of the training market"""
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
    model_steps: int = 3_000
    """gradient steps of each model ensemble"""
    policy_steps: int = 20_000
    """gradient steps of every offline-RL learner"""
    hidden_dim: int = 256
    """width of actors and critics"""
    cql_sampled_actions: int = 10
    """actions CQL samples per source for its log-sum-exp (its cost grows with them)"""
    dt_steps: int = 20_000
    """gradient steps of the decision transformer (slower per step than the MLP learners)"""
    penalty_grid: tuple[float, ...] = (0.5, 1.0, 2.0)
    """PE-MORL penalty coefficients tried; the best on the training market is 'tuned'"""
    horizon: int = 3
    """ticks per branched model rollout"""
    focal_advertisers: tuple[int, ...] = (3, 11, 19, 27, 35, 43)
    """advertisers (ids) the evaluated bidder bids for, one at a time"""
    eval_seeds: int = 5
    """evaluation episodes per focal advertiser and market"""
    torch_threads: int = 1
    """CPU threads for torch (small networks run faster on one thread on a busy machine)"""
    quick: bool = False
    """a small version that finishes in under 15 minutes on 2 cores"""

    def __post_init__(self) -> None:
        check_population(self.population)
        for name in ("impressions_per_episode", "n_ticks", "train_episodes", "test_episodes", "model_members", "model_hidden", "model_steps",
                     "policy_steps", "hidden_dim", "cql_sampled_actions", "dt_steps", "horizon", "eval_seeds", "torch_threads", "shifted_advertisers"):  # fmt: skip
            check_int(name, getattr(self, name), low=1)
        if self.model_members < 2:
            raise ConfigError(f"model_members must be >= 2 (the penalty needs an ensemble), got {self.model_members}")
        if not self.penalty_grid or any(not np.isfinite(p) or p < 0 for p in self.penalty_grid):
            raise ConfigError(f"penalty_grid must hold finite values >= 0, got {self.penalty_grid}")


QUICK = dict(
    impressions_per_episode=200_000, n_ticks=24, train_episodes=10, test_episodes=2, model_members=3, model_hidden=32, model_steps=300,
    policy_steps=1_500, hidden_dim=128, cql_sampled_actions=3, dt_steps=400, penalty_grid=(1.0,), focal_advertisers=(3, 15, 27, 39), eval_seeds=3,
)  # fmt: skip


# ----------------------------------------------------------------------------- markets and logs


def make_market(args: Args, budget_scale: float = 1.0, n_advertisers: int = 48) -> Market:
    """AuctionNet's market with ``args``' size; AuctionNet's 48 advertisers (budgets scaled to the
    impressions) or ``n_advertisers`` drawn from AuctionNet's ranges in its 6 categories."""
    scenario = get("auctionnet", impressions_per_episode=args.impressions_per_episode, n_ticks=args.n_ticks)
    if n_advertisers == 48:
        base = auctionnet_population()
        base = dataclasses.replace(base, budgets=base.budgets * args.impressions_per_episode / AUCTIONNET_IMPRESSIONS)
    else:
        base = large_population(n_advertisers, 6, args.impressions_per_episode)
    population = Population(base.ids, base.budgets * budget_scale, base.cpa_targets, base.categories, 6)
    return Market(scenario.market, population)


def logging_population(args: Args, market: Market) -> PopulationPolicy:
    """The logging (and evaluation) population of ``market`` (a fresh one per env)."""
    return named_population(args.population, market.population.ids)


def collect(args: Args, market: Market, episodes: int, seed: int, description: str) -> OfflineDataset:
    env = AuctionParallelEnv(market, reward="score")
    return collect_dataset(env, logging_population(args, market), episodes, seed=seed, action_noise=args.action_noise, description=description)


def test_markets(args: Args) -> dict[str, Market]:
    markets = {"training": make_market(args)}
    for scale in args.shifted_budget_scales:
        markets[f"budget x{scale:g}"] = make_market(args, budget_scale=scale)
    markets[f"{args.shifted_advertisers} advertisers"] = make_market(args, n_advertisers=args.shifted_advertisers)
    return markets


# ----------------------------------------------------------------------------- (a) models


def model_generalisation(args: Args, train_logs: OfflineDataset, test_logs: dict[str, OfflineDataset]) -> tuple[dict, object]:
    """Prediction errors of both model kinds on every test set; returns them and the PE ensemble."""
    transitions = GlobalTransitions(train_logs)
    training = ModelTrainingConfig(steps=args.model_steps, batch_size=16, members=args.model_members, seed=args.seed)
    errors, ensembles = {}, {}
    for kind in ("pe", "mlp"):
        config = ModelConfig(kind=kind, observation_dim=transitions.observation_dim, hidden_dim=args.model_hidden, layers=2, heads=4, n_advertisers=48)
        start = time.perf_counter()
        ensembles[kind] = train_ensemble(transitions, config, training, progress=True)
        errors[kind] = {"train_seconds": time.perf_counter() - start}
        for name, logs in test_logs.items():
            errors[kind][name] = prediction_error(ensembles[kind], GlobalTransitions(logs, device=transitions.device).all_ticks())
        print(f"{kind.upper()} model: " + ", ".join(f"{name} mse {values['mse']:.3f}" for name, values in errors[kind].items() if isinstance(values, dict)))
    return errors, ensembles["pe"]


# ----------------------------------------------------------------------------- (b, c) policies


def train_policies(args: Args, train_logs: OfflineDataset, ensemble) -> dict:
    """Every offline bidder, trained on the same logs."""
    data = OfflineData(train_logs, reward="score")
    steps, hidden = args.policy_steps, args.hidden_dim
    iql = IQLConfig(steps=steps, hidden_dim=hidden, seed=args.seed)
    bidders = {
        "BC": train_bc(data, BCConfig(steps=steps, hidden_dim=hidden, seed=args.seed), progress=True),
        "IQL": train_iql(data, iql, progress=True).bidder,
        "CQL": train_cql(data, CQLConfig(steps=steps, hidden_dim=hidden, n_actions=args.cql_sampled_actions, seed=args.seed), progress=True),
        "DT": train_dt(
            data,
            DTConfig(steps=args.dt_steps, hidden_dim=hidden // 2, context_length=min(10, args.n_ticks), warmup_steps=min(1_000, args.dt_steps // 10), seed=args.seed),
            progress=True,
        ),
    }
    transitions = GlobalTransitions(train_logs)
    for penalty in sorted({0.0, *args.penalty_grid}):
        config = PEMORLConfig(iql=iql, penalty_coefficient=penalty, horizon=args.horizon, behaviour_steps=min(2_000, steps))
        bidders[f"PE-MORL lambda={penalty:g}"] = train_pemorl(data, transitions, ensemble, config, progress=True).bidder
    return bidders


def evaluate(args: Args, bidder, market: Market, focal_ids: tuple[int, ...]) -> list[dict]:
    """One row per evaluation seed: over the focal advertisers, the mean conversions and score
    and the aggregate CPA ratio."""
    rows = []
    for seed in range(args.eval_seeds):
        results = []
        for focal in focal_ids:
            env = SingleBidderEnv(market, population=logging_population(args, market), focal=focal, reward="score")
            results.append(play_focal_episode(env, bidder, seed=10_000 + args.seed * 1_000 + seed))
        conversions = np.array([result.conversions for result in results])
        # Aggregate CPA ratio: spend over the target cost of the conversions (finite when any
        # focal advertiser converted; a per-advertiser ratio is infinite without conversions).
        target_cost = float(np.sum(conversions * np.array([result.cpa_target for result in results])))
        spend = float(np.sum([result.spend for result in results]))
        rows.append(
            {
                "conversions": float(conversions.mean()),
                "cpa_ratio": spend / target_cost if target_cost > 0 else float("nan"),
                "score": float(np.mean([result.score for result in results])),
            }
        )
    return rows


def policy_quality(args: Args, bidders: dict, markets: dict[str, Market]) -> list[dict]:
    table = []
    for market_name, market in markets.items():
        focal_ids = tuple(i for i in args.focal_advertisers if i in set(market.population.ids.tolist()))
        for name, bidder in bidders.items():
            rows = evaluate(args, bidder, market, focal_ids)
            summary = {"market": market_name, "bidder": name}
            for key in rows[0]:
                values = np.array([row[key] for row in rows])
                # An episode set without conversions has no CPA ratio (nan): left out of its stats.
                finite = values[np.isfinite(values)]
                summary[key], summary[f"{key}_std"] = (float(finite.mean()), float(finite.std())) if len(finite) else (float("nan"), float("nan"))
            table.append(summary)
            print(f"{market_name:>16} {name:>22}: score {summary['score']:7.2f} +- {summary['score_std']:5.2f}, conversions {summary['conversions']:7.2f}, CPA ratio {summary['cpa_ratio']:.3f}")
    return table


def tuned_penalty(args: Args, table: list[dict]) -> float:
    """The grid value with the best PE-MORL score on the training market."""
    scores = {row["bidder"]: row["score"] for row in table if row["market"] == "training"}
    return max(args.penalty_grid, key=lambda penalty: scores[f"PE-MORL lambda={penalty:g}"])


# ----------------------------------------------------------------------------- plots


def plot(output_dir: pathlib.Path) -> None:
    """Draw ``models.png`` and ``policies.png`` from the saved ``results.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((output_dir / "results.json").read_text())
    errors = results["model_errors"]
    sets = [name for name in errors["pe"] if name != "train_seconds"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric, title in ((axes[0], "state_mse", "next state"), (axes[1], "reward_mse", "reward")):
        positions = np.arange(len(sets))
        for offset, kind in ((-0.2, "pe"), (0.2, "mlp")):
            axis.bar(positions + offset, [errors[kind][name][metric] for name in sets], 0.4, label=f"{kind.upper()} model")
        axis.set_xticks(positions, sets, rotation=15)
        axis.set_ylabel("standardised MSE (1 = training mean)")
        axis.set_title(f"Model error, {title}")
        axis.legend()
    figure.tight_layout()
    figure.savefig(output_dir / "models.png", dpi=120)
    plt.close(figure)

    table = results["policies"]
    markets = list(dict.fromkeys(row["market"] for row in table))
    bidders = list(dict.fromkeys(row["bidder"] for row in table))
    figure, axis = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(bidders)
    for index, bidder in enumerate(bidders):
        rows = [next(row for row in table if row["market"] == market and row["bidder"] == bidder) for market in markets]
        axis.bar(np.arange(len(markets)) + (index - len(bidders) / 2 + 0.5) * width, [r["score"] for r in rows], width, yerr=[r["score_std"] for r in rows], label=bidder, capsize=2)
    axis.set_xticks(np.arange(len(markets)), markets)
    axis.set_ylabel("focal score (mean over focal advertisers)")
    axis.set_title(f"Policy quality (tuned PE-MORL lambda = {results['tuned_penalty']:g})")
    axis.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    figure.savefig(output_dir / "policies.png", dpi=120)
    plt.close(figure)


# ----------------------------------------------------------------------------- main


def run(args: Args) -> dict:
    torch.set_num_threads(args.torch_threads)
    seed_everything(args.seed)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    markets = test_markets(args)
    train_logs = collect(args, markets["training"], args.train_episodes, args.seed, "training logs")
    test_seed = args.seed + 100_000  # held-out episodes never overlap the training ones
    test_logs = {("held-out" if name == "training" else name): collect(args, market, args.test_episodes, test_seed, name) for name, market in markets.items()}

    model_errors, ensemble = model_generalisation(args, train_logs, test_logs)
    bidders = train_policies(args, train_logs, ensemble)
    bidders.update({"PID pacing": PIDPacing(), "CPA pacing": CPAPacing()})
    table = policy_quality(args, bidders, markets)
    tuned = tuned_penalty(args, table)

    results = {
        "args": dataclasses.asdict(args),
        "device": str(ensemble.members[0].target_std.device),
        "seconds": time.perf_counter() - start,
        "model_errors": model_errors,
        "policies": table,
        "tuned_penalty": tuned,
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=1))
    with open(output_dir / "policies.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    plot(output_dir)
    print(f"done in {results['seconds']:.0f} s; tuned lambda = {tuned:g}; saved {output_dir}/results.json, policies.csv, models.png, policies.png")
    return results


def parse_args(argv: list[str] | None = None) -> Args:
    """Flags from :class:`Args`; with ``--quick``, the fields left at their defaults take the
    :data:`QUICK` sizes."""
    return arguments.parse_with_quick(Args, QUICK, argv, description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> dict:
    """``python -m experiments.pemorl [--quick] ...``."""
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
