"""BPG speed benchmark: seconds per BPG iteration at 10, 100 and 1,000 advertisers, split into
its phases, on a local Ray instance with 2 CPUs.

The BPG paper's claim is an optimiser whose cost does not grow with the number of advertisers N:
two policies (theta, nu-bar) and one unified solution x*, whatever N is. Ours: the population is
one RLlib agent with N rows (one RLlib step per tick), the dual step measures a fixed number of
deviators (``dual_deviators``, in parallel Ray tasks with ``--dual-workers``), and the learner
updates theta on at most ``learner_rows`` sampled rows per tick. What remains is the market: an
episode with N times the traffic costs N times as much to simulate. So two traffic regimes:

* ``fixed``: the same traffic for every N (``--impressions`` per episode, each impression
  contested by up to 64 retrieved candidates): what the paper's claim is about. Target: the
  N = 1,000 iteration <= 3 x the N = 10 iteration, same machine, same run.
* ``per-advertiser``: traffic grows with N (``--impressions-per-advertiser``, the experiments'
  scaling): the engine's share grows linearly, as it must.

Columns: ``s/iteration`` (best of ``--iterations`` after one warm-up iteration), its x*, dual and
primal phases (from BPG's own timings), and the raw engine's seconds per population episode
(the batched torch policy through the env's array API, no RLlib), the floor of any sampler.

Usage: ``python benchmarks/bpg.py [--sizes 10,100,1000] [--regimes fixed,per-advertiser]
[--iterations 2] [--output results/benchmarks/bpg.json]``. Prints a table and one ``JSON {...}``
line (with ``--output``: also written atomically with a manifest beside it). Measured figures
are in the README (BPG section) with the machine's load stated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CANDIDATES = 64


def market_for(n_advertisers: int, regime: str, impressions: int, impressions_per_advertiser: int, ticks: int):
    from agents.bpg import market_spec

    total = impressions if regime == "fixed" else impressions_per_advertiser * n_advertisers
    # The large-1k preset's market config (AuctionNet's, with retrieval of 64 candidates).
    return market_spec(n_advertisers, preset="large-1k", impressions_per_episode=total, n_ticks=ticks, candidates_per_impression=min(CANDIDATES, n_advertisers))


def engine_seconds(market, episodes: int = 2) -> float:
    """Seconds per population episode of the raw engine with a batched torch policy."""
    import torch

    from agents.base import TorchPolicy
    from agents.bpg.module import RowActor
    from auctionsim.envs import AuctionParallelEnv, play_episode

    env = AuctionParallelEnv(market.build())
    policy = TorchPolicy(RowActor(env.observations.dimension, [64, 64], (-3.0, float(np.log(5.0)))))
    torch.set_num_threads(1)
    play_episode(env, policy, seed=0)  # warm-up
    started = time.perf_counter()
    for seed in range(episodes):
        play_episode(env, policy, seed=seed + 1)
    return (time.perf_counter() - started) / episodes


def iteration_seconds(market, iterations: int, dual_workers: int) -> dict:
    """Best iteration (after one warm-up) of BPG with the experiment's default settings, epsilon 0
    (the constraint binds, so every episode kind is sampled), and its phases."""
    from agents.bpg import BPGConfig
    from experiments.bpg import Args

    defaults = Args()
    config = BPGConfig().bpg(
        market=market, epsilon=0.0, seed=0, episodes_per_kind=defaults.episodes_per_kind, group_size=defaults.group_size,
        xstar_episodes=defaults.xstar_episodes, xstar_updates=defaults.xstar_updates, xstar_pretrain_updates=0,
        dual_deviators=defaults.dual_deviators, dual_episodes=defaults.dual_episodes, dual_workers=dual_workers,
    )  # fmt: skip
    algo = config.build_algo()
    try:
        algo.train()  # warm-up (JIT, first build)
        records = []
        for _ in range(iterations):
            started = time.perf_counter()
            algo.train()
            record = dict(algo.history[-1])
            record["wall"] = time.perf_counter() - started
            records.append(record)
        best = min(records, key=lambda r: r["wall"])
        return {
            "iteration_seconds": best["wall"],
            "xstar_seconds": best["xstar_seconds"],
            "dual_seconds": best["dual_seconds"],
            "primal_seconds": best["primal_seconds"],
            "lambda_active": bool(any(r["lambda_active"] for r in records)),
        }
    finally:
        algo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of advertisers, comma separated")
    parser.add_argument("--regimes", default="fixed,per-advertiser", help="traffic regimes: fixed, per-advertiser")
    parser.add_argument("--impressions", type=int, default=100_000, help="impressions per episode in the fixed regime")
    parser.add_argument("--impressions-per-advertiser", type=int, default=1_000, help="impressions per advertiser in the per-advertiser regime")
    parser.add_argument("--ticks", type=int, default=24, help="ticks per episode")
    parser.add_argument("--iterations", type=int, default=2, help="timed BPG iterations (after one warm-up)")
    parser.add_argument("--dual-workers", type=int, default=2, help="parallel Ray tasks of the dual step (0: in the driver)")
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    regimes = args.regimes.split(",")
    unknown = sorted(set(regimes) - {"fixed", "per-advertiser"})
    if unknown or any(n < 2 for n in sizes) or args.iterations < 1:
        parser.error(f"regimes must be fixed/per-advertiser, sizes >= 2 and iterations >= 1, got {args.regimes!r}, {args.sizes!r}, {args.iterations}")

    from auctionsim.cluster import ray_session
    from auctionsim import runs

    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    rows = []
    with ray_session(num_cpus=2):  # a local 2-CPU instance, shut down and removed afterwards
        for regime in regimes:
            for size in sizes:
                market = market_for(size, regime, args.impressions, args.impressions_per_advertiser, args.ticks)
                row = {"regime": regime, "n_advertisers": size, "engine_episode_seconds": engine_seconds(market)}
                row.update(iteration_seconds(market, args.iterations, args.dual_workers))
                rows.append(row)
                print(f"done {regime} N={size}", file=sys.stderr, flush=True)

    header = f"{'regime':>15} {'N':>6} {'s/iteration':>12} {'x*':>8} {'dual':>8} {'primal':>8} {'engine s/episode':>17} {'vs N=' + str(sizes[0]):>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        base = next(r for r in rows if r["regime"] == row["regime"] and r["n_advertisers"] == sizes[0])
        print(
            f"{row['regime']:>15} {row['n_advertisers']:>6} {row['iteration_seconds']:>12.2f} {row['xstar_seconds']:>8.2f} {row['dual_seconds']:>8.2f} "
            f"{row['primal_seconds']:>8.2f} {row['engine_episode_seconds']:>17.3f} {row['iteration_seconds'] / base['iteration_seconds']:>8.2f}x"
        )
    payload = {
        "benchmark": "bpg",
        "ticks": args.ticks,
        "impressions_fixed": args.impressions,
        "impressions_per_advertiser": args.impressions_per_advertiser,
        "dual_workers": args.dual_workers,
        "load_average": os.getloadavg(),
        "results": rows,
    }
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")


if __name__ == "__main__":
    main()
