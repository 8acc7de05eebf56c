"""`make demo`: a day of the AuctionNet market with four kinds of baseline bidders.

1. Plays one AuctionNet-preset episode (48 advertisers, 500,000 impressions, GSP) where the
   advertisers are dealt round-robin to fixed-multiplier, PID-pacing, CPA-pacing and OnlineLP
   bidders (``agents.populations``: the ``mixed`` population).
2. Equilibrium flavour: with the others' bids replayed, the hindsight oracle bounds what each
   advertiser could have won by best-responding (``agents.oracle``); the gap between that bound
   and what it won is an upper bound on its unilateral gain.
3. Prints the market metrics and the per-advertiser table; writes raw results (JSON, CSV) and
   a plot of spend and conversions over the day (PNG) under ``results/demo/``, each written
   atomically, and ``manifest.json`` beside them (config, seed, versions, machine, times, and
   every file's SHA-256).

Run: ``python -m experiments.demo [--output-dir results/demo] [--seed 0]``.
"""

from __future__ import annotations

import csv
import json
import pathlib
import time
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import auctionsim  # noqa: E402
from agents.oracle import hindsight_oracle  # noqa: E402
from agents.populations import MIXED_GROUPS, mixed_groups, named_population  # noqa: E402
from auctionsim import Market, presets, runs  # noqa: E402
from auctionsim.envs import AuctionParallelEnv, play_episode  # noqa: E402
from auctionsim.metrics import format_table  # noqa: E402
from experiments import args as arguments  # noqa: E402


@dataclass
class DemoArgs:
    output_dir: str = "results/demo"
    """where results and plots are written"""
    seed: int = 0
    """market seed of the episode"""
    preset: str = "auctionnet"
    """market preset"""
    impressions_per_episode: int = 0
    """impressions in the day (0: the preset's own); budgets scale with it"""


def run_demo(args: DemoArgs) -> dict:
    """Play the episode, evaluate the hindsight oracle, save raw results; return the summary."""
    jit_seconds = auctionsim.warm_up()
    scenario = presets.get(args.preset, scale_budgets=True, **({"impressions_per_episode": args.impressions_per_episode} if args.impressions_per_episode else {}))
    env = AuctionParallelEnv(Market(scenario.market, scenario.population))
    population = env.market.population
    policy = named_population("mixed", population.ids)
    start = time.perf_counter()
    record = play_episode(env, policy, seed=args.seed)
    play_seconds = time.perf_counter() - start
    start = time.perf_counter()
    oracle = {result.advertiser_id: result for result in hindsight_oracle(env.market, record.ticks)}
    oracle_seconds = time.perf_counter() - start
    metrics = record.metrics

    group_of = {int(i): group for group, ids in mixed_groups(population.ids).items() for i in ids}
    advertisers = []
    for row, advertiser_id in enumerate(population.ids):
        bound = oracle[int(advertiser_id)]
        advertisers.append(
            {
                "id": int(advertiser_id),
                "bidder": group_of[int(advertiser_id)],
                "budget": float(population.budgets[row]),
                "cpa_target": float(population.cpa_targets[row]),
                "spend": float(metrics.spend[row]),
                "conversions": float(metrics.conversions[row]),
                "cpa_ratio": float(metrics.cpa_ratio[row]),
                "score": float(metrics.score[row]),
                "value_won": float(metrics.value_won[row]),
                "hindsight_value_upper_bound": bound.upper_bound,
                "unilateral_gain_upper_bound": bound.upper_bound - bound.realised,
            }
        )
    ticks = {
        "spend": np.stack([tick.spend for tick in record.ticks]),
        "conversions": np.stack([tick.conversions for tick in record.ticks]),
        "impressions": np.array([tick.market.n_impressions for tick in record.ticks]),
    }
    summary = {
        "preset": args.preset,
        "seed": args.seed,
        "jit_seconds": jit_seconds,
        "episode_seconds": play_seconds,
        "oracle_seconds": oracle_seconds,
        **metrics.market_summary(),
        "max_unilateral_gain_upper_bound_over_welfare": max(a["unilateral_gain_upper_bound"] for a in advertisers) / metrics.social_welfare,
    }
    output = pathlib.Path(args.output_dir)
    runs.atomic_write_json(output / "summary.json", {"args": asdict(args), "summary": summary, "advertisers": advertisers})

    def write_csv(path: pathlib.Path) -> None:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(advertisers[0]))
            writer.writeheader()
            writer.writerows(advertisers)

    runs.atomic_write(output / "advertisers.csv", write_csv)
    bidders = np.array([group_of[int(i)] for i in population.ids])
    runs.atomic_write(output / "ticks.npz", lambda path: np.savez_compressed(path, advertiser_ids=population.ids, bidder=bidders, budgets=population.budgets, **ticks))
    print(f"{args.preset}, seed {args.seed}: episode {play_seconds:.2f} s, hindsight oracle {oracle_seconds:.2f} s (JIT/cache load {jit_seconds:.1f} s)")
    for key in ("social_welfare", "revenue", "total_conversions", "total_score", "mean_budget_utilisation", "share_within_cpa_target", "max_unilateral_gain_upper_bound_over_welfare"):
        print(f"  {key:<46} {summary[key]:,.3f}")
    print(format_table(metrics, max_rows=48))
    return summary


def plot(output_dir: str) -> pathlib.Path:
    """Spend and conversions over the day by bidder type, and the hindsight gaps, from saved results."""
    output = pathlib.Path(output_dir)
    ticks = np.load(output / "ticks.npz", allow_pickle=False)
    advertisers = json.loads((output / "summary.json").read_text())["advertisers"]
    hours = np.arange(1, ticks["spend"].shape[0] + 1) * 24 / ticks["spend"].shape[0]
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for group in MIXED_GROUPS:
        columns = ticks["bidder"] == group
        spent = np.cumsum(ticks["spend"][:, columns].sum(axis=1)) / ticks["budgets"][columns].sum()
        axes[0].plot(hours, spent, label=group, linewidth=2)
        axes[1].plot(hours, np.cumsum(ticks["conversions"][:, columns].sum(axis=1)), label=group, linewidth=2)
    traffic = np.cumsum(ticks["impressions"]) / ticks["impressions"].sum()
    axes[0].plot(hours, traffic, "k--", linewidth=1, label="traffic so far")
    axes[0].set(title="Budget spent over the day", xlabel="hour of day", ylabel="share of the group's budget")
    axes[1].set(title="Conversions over the day", xlabel="hour of day", ylabel="cumulative conversions")
    for k, group in enumerate(MIXED_GROUPS):
        rows = [a for a in advertisers if a["bidder"] == group]
        axes[2].scatter([a["value_won"] for a in rows], [a["hindsight_value_upper_bound"] for a in rows], label=group, s=25)
    limit = max(a["hindsight_value_upper_bound"] for a in advertisers) * 1.05
    axes[2].plot([0, limit], [0, limit], "k:", linewidth=1)
    axes[2].set(title="Value won vs hindsight best response", xlabel="value won", ylabel="hindsight upper bound (others replayed)")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = runs.atomic_write(output / "day.png", lambda temporary: figure.savefig(temporary, dpi=120, format="png"))
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    args = arguments.parse(DemoArgs, argv, description=__doc__.splitlines()[0], prog="python -m experiments.demo")
    with runs.run_folder(args.output_dir, args) as run:
        run.seeds = {"episode": [args.seed]}
        run_demo(args)
        print(f"saved {plot(args.output_dir)}")
    print(f"saved {runs.manifest_path(run.path)} (config, seed, versions, machine, times, every file's SHA-256)")


if __name__ == "__main__":
    main()
