"""BPG speed benchmark: wall time per BPG iteration and environment agent-steps/s at 10, 100 and
1,000 advertisers, on a local Ray instance with 2 CPUs.

The BPG paper claims a cost per iteration independent of the number of advertisers N. This
measures how ours grows, and where the time goes:

* ``raw``: the PettingZoo env's array API driven by the population policy's torch actor (one
  batched forward per tick): the floor, no RLlib.
* ``rllib roles``: RLlib sampling through :class:`agents.bpg.BPGMarketEnv` (what BPG trains on:
  the population is one RLlib agent with N rows), cooperative episodes.
* ``rllib per-advertiser``: RLlib sampling with one RLlib agent per advertiser
  (``ParallelPettingZooEnv`` over the same PettingZoo env, the textbook multi-agent set-up), to
  show what the role design saves; skipped above ``--per-agent-max`` advertisers.
* ``iteration``: one full BPG iteration (x* phase, dual step, primal step) with the default
  settings (best of ``--iterations``; the machine is shared, timings are noisy), and the dual
  step (measurement rollouts) alone.

"agent-steps" are advertiser-ticks (N per tick) in every row, so the columns compare.
Markets: ``market_spec(N)`` with 2,000 impressions per advertiser and 48 ticks; at N = 1,000
each impression is contested by K = 64 retrieved candidates (the ``large-1k`` preset's config).

Measured (best of 2, shared 2-core machine under heavy load: noisy, +-30% or worse;
``--sizes 10,100 --episodes 2 --iterations 2``):

    N    raw steps/s  RLlib roles  RLlib per-adv  s/iteration  dual step s
   10          4,375        1,111            633          9.8          3.1
  100          7,298        5,112          1,628         39.7         26.3 (32 advertisers)
 1000          8,659       12,499              -        323.0        170.7 (32 advertisers)

(N = 1000: ``--sizes 1000 --episodes 1 --iterations 1``, one timed iteration, run while the
test suite was running; its raw rate below the RLlib one is that noise.)

The cost per iteration is not independent of N here: each episode holds N x more impressions
(budgets scale per advertiser), and the dual step measures each re-measured advertiser's
deviation with its own rollouts (``dual_advertisers`` caps that part).

Usage: ``python benchmarks/bpg.py [--sizes 10,100,1000] [--episodes 4] [--iterations 2]``
Prints a human table and one ``JSON {...}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TICKS = 48
IMPRESSIONS_PER_ADVERTISER = 2_000


def market_for(n_advertisers: int):
    from agents.bpg import market_spec

    preset = "auctionnet" if n_advertisers <= 100 else "large-1k"  # large-1k: K = 64 candidates
    return market_spec(n_advertisers, preset=preset, impressions_per_episode=IMPRESSIONS_PER_ADVERTISER * n_advertisers, n_ticks=TICKS)


def raw_rate(market, episodes: int) -> float:
    """Advertiser-steps/s of the array API with a batched torch policy (no RLlib)."""
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
    return env.max_num_agents * TICKS * episodes / (time.perf_counter() - started)


def roles_rate(algo, episodes: int) -> float:
    """Advertiser-steps/s of RLlib sampling cooperative episodes through BPGMarketEnv."""
    algo._sample("cooperative", 1, seed=0)  # warm-up
    started = time.perf_counter()
    sampled = algo._sample("cooperative", episodes, seed=1)
    seconds = time.perf_counter() - started
    ticks = sum(len(episode.agent_episodes["population"]) for episode in sampled)
    return algo.n_advertisers * ticks / seconds


def per_advertiser_rate(market, episodes: int) -> float:
    """Advertiser-steps/s of RLlib with one agent per advertiser (ParallelPettingZooEnv)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    from auctionsim.envs import AuctionParallelEnv

    register_env("auctionsim-per-advertiser", lambda config: ParallelPettingZooEnv(AuctionParallelEnv(market.build())))
    config = (
        PPOConfig()
        .environment("auctionsim-per-advertiser", disable_env_checking=True)
        .env_runners(num_env_runners=0, batch_mode="complete_episodes")
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent, episode, **kw: "shared", count_steps_by="agent_steps")
    )
    algo = config.build_algo()
    try:
        runner = algo.env_runner
        runner.sample(num_episodes=1)  # warm-up
        started = time.perf_counter()
        sampled = runner.sample(num_episodes=episodes)
        seconds = time.perf_counter() - started
        return sum(episode.agent_steps() for episode in sampled) / seconds
    finally:
        algo.stop()
        shutil.rmtree(algo.logdir, ignore_errors=True)  # the (unused) trial folder in ~/ray_results


def iteration_times(algo, iterations: int) -> dict:
    """Seconds per BPG iteration (best of ``iterations``, after one warm-up iteration)."""
    algo.train()
    seconds = []
    for _ in range(iterations):
        started = time.perf_counter()
        algo.train()
        seconds.append(time.perf_counter() - started)
    return {"iteration_seconds": min(seconds)}


def run(size: int, episodes: int, iterations: int, per_agent_max: int) -> dict:
    from agents.bpg import BPGConfig

    market = market_for(size)
    row = {"n_advertisers": size, "raw_agent_steps_per_s": raw_rate(market, episodes)}
    dual_advertisers = min(size, 32)
    config = BPGConfig().bpg(market=market, epsilon=0.0, seed=0, dual_advertisers=dual_advertisers)
    algo = config.build_algo()
    try:
        row.update(iteration_times(algo, iterations))
        row["rllib_roles_agent_steps_per_s"] = roles_rate(algo, episodes)
        row["dual_advertisers_per_iteration"] = dual_advertisers
        started = time.perf_counter()
        algo._dual_step(algo.bpg_state.iteration)
        row["dual_step_seconds"] = time.perf_counter() - started
    finally:
        algo.stop()
    row["rllib_per_advertiser_agent_steps_per_s"] = per_advertiser_rate(market, max(1, episodes // 4)) if size <= per_agent_max else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of advertisers, comma separated")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per sampling measurement")
    parser.add_argument("--iterations", type=int, default=2, help="timed BPG iterations (after one warm-up)")
    parser.add_argument("--per-agent-max", type=int, default=100, help="largest N for the per-advertiser RLlib reference")
    args = parser.parse_args()
    from auctionsim import runs

    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()

    from agents.equilibrium import ray_session

    rows = []
    with ray_session(num_cpus=2):  # a local 2-CPU instance, shut down and removed afterwards
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(run(size, args.episodes, args.iterations, args.per_agent_max))
            print(f"done N={size}", file=sys.stderr, flush=True)

    header = f"{'N':>6} {'raw steps/s':>12} {'RLlib roles':>12} {'RLlib per-adv':>14} {'roles/raw':>9} {'s/iteration':>12} {'dual step s':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        per_agent = row["rllib_per_advertiser_agent_steps_per_s"]
        print(
            f"{row['n_advertisers']:>6} {row['raw_agent_steps_per_s']:>12,.0f} {row['rllib_roles_agent_steps_per_s']:>12,.0f} "
            f"{'-' if per_agent is None else f'{per_agent:,.0f}':>14} {row['rllib_roles_agent_steps_per_s'] / row['raw_agent_steps_per_s']:>9.2f} "
            f"{row['iteration_seconds']:>12.2f} {row['dual_step_seconds']:>12.2f}"
        )
    payload = {"benchmark": "bpg", "ticks": TICKS, "impressions_per_advertiser": IMPRESSIONS_PER_ADVERTISER, "results": rows}
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")


if __name__ == "__main__":
    main()
