"""Bandit bidders speed benchmark: learner updates for 10,000 bidders, and a market full of them.

Prints a human table and one JSON line (prefixed ``JSON``). Best of ``--repeats``; variants are
interleaved in one process. Times are CPU seconds of this process (``time.process_time``; every
kernel is single-threaded), which other jobs on a shared 2-core machine disturb far less than
wall-clock time.

1. Learners alone, ``C = 10,000`` items x 14 bids: one round = ``act()`` (draw every item's bid)
   + ``learn()`` (its rewards). EXP3 and EXP3-IX recompute the policy every round; Batch EXP3
   (``B = 8, D = 2``) only once per batch. "item updates/s" = items x rounds / s.
2. A market of 10,000 advertisers (K = 64 candidates per impression, 8 ticks, 1,000,000
   impressions), every advertiser a Batch EXP3 bandit bidder (:class:`~agents.bandits.BanditBidders`:
   draws, profit, normalisation, update) versus everyone at a fixed multiplier: ticks/s and the
   CPU time spent in the policy's ``act`` and ``observe`` per tick.

Usage: ``python benchmarks/bandits.py [--repeats 3] [--rounds 200]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import auctionsim
from agents.bandits import BanditBidders, BatchExp3, Exp3, Exp3IX, UniformGridBids
from agents.datasets import collect_dataset
from auctionsim import Market, MarketConfig, runs
from auctionsim.envs import DEFAULT_BID_GRID, AuctionParallelEnv, FixedMultipliers, PolicyContext, PopulationPolicy, TickFeedback, play_episode
from auctionsim.envs.wrappers import ProfitNormalizer
from auctionsim.presets import large_population

N_BIDDERS = 10_000
K = len(DEFAULT_BID_GRID)


def learner_rounds_per_second(make, rounds: int, repeats: int) -> float:
    rewards = np.random.default_rng(0).uniform(size=(rounds, N_BIDDERS))
    best = np.inf
    for _ in range(repeats):
        learner = make()
        learner.act()  # compile / warm caches outside the timing
        learner.learn(rewards[0])
        start = time.process_time()
        for t in range(rounds):
            learner.act()
            learner.learn(rewards[t])
        best = min(best, time.process_time() - start)
    return rounds / best


class TimedPolicy(PopulationPolicy):
    """Delegates to ``policy`` and adds up the CPU time of its ``act`` and ``observe`` calls."""

    def __init__(self, policy: PopulationPolicy) -> None:
        self.policy = policy
        self.needs_impression_values = policy.needs_impression_values
        self.seconds = 0.0

    def reset(self, context: PolicyContext) -> None:
        self.policy.reset(context)

    def act(self, observations: np.ndarray) -> np.ndarray:
        start = time.process_time()
        multipliers = self.policy.act(observations)
        self.seconds += time.process_time() - start
        return multipliers

    def observe(self, feedback: TickFeedback) -> None:
        start = time.process_time()
        self.policy.observe(feedback)
        self.seconds += time.process_time() - start


def market_benchmark(repeats: int) -> dict:
    impressions = 1_000_000
    population = large_population(N_BIDDERS, 50, impressions)
    market = Market(MarketConfig(n_ticks=8, impressions_per_episode=impressions, candidates_per_impression=64), population, record_history=False)
    env = AuctionParallelEnv(market)
    log = collect_dataset(env, UniformGridBids(), episodes=1, seed=99, progress=False)
    normalizer = ProfitNormalizer.from_log(log)
    learner = BatchExp3(K, N_BIDDERS, horizon=8 * 100, batch_size=8, delay=2, item_ids=population.ids)
    policies = {"fixed multiplier": FixedMultipliers(1.0), "Batch EXP3 bidders": BanditBidders(learner, normalizer)}
    seconds = {name: np.inf for name in policies}
    policy_seconds = {name: np.inf for name in policies}
    for repeat in range(repeats):
        for name, policy in policies.items():  # interleaved
            timed = TimedPolicy(policy)
            start = time.process_time()
            play_episode(env, timed, seed=repeat)
            seconds[name] = min(seconds[name], time.process_time() - start)
            policy_seconds[name] = min(policy_seconds[name], timed.seconds)
    return {
        "advertisers": N_BIDDERS,
        "impressions": impressions,
        "ticks": 8,
        "episode_seconds": seconds,
        "ticks_per_second": {name: 8 / s for name, s in seconds.items()},
        "policy_seconds_per_tick": {name: s / 8 for name, s in policy_seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per variant (best is reported)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per learner timing")
    args = parser.parse_args()
    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    auctionsim.warm_up()
    learners = {
        "EXP3": lambda: Exp3(K, N_BIDDERS, horizon=10_000),
        "EXP3-IX": lambda: Exp3IX(K, N_BIDDERS, horizon=10_000),
        "Batch EXP3 (B=8, D=2)": lambda: BatchExp3(K, N_BIDDERS, horizon=10_000, batch_size=8, delay=2),
    }
    rows = []
    for name, make in learners.items():
        rounds_per_second = learner_rounds_per_second(make, args.rounds, args.repeats)
        rows.append({"learner": name, "items": N_BIDDERS, "arms": K, "rounds_per_second": rounds_per_second, "item_updates_per_second": rounds_per_second * N_BIDDERS})
    market = market_benchmark(args.repeats)

    header = f"{'learner':<24} {'items':>7} {'rounds/s':>9} {'M item updates/s':>17}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['learner']:<24} {row['items']:>7,} {row['rounds_per_second']:>9.0f} {row['item_updates_per_second'] / 1e6:>17.2f}")
    print()
    print(f"market: {N_BIDDERS:,} advertisers, K=64, {market['impressions']:,} impressions, 8 ticks")
    for name, seconds in market["episode_seconds"].items():
        print(f"  {name:<20} {seconds:6.3f} s/episode  {market['ticks_per_second'][name]:6.1f} ticks/s")
    for name, seconds in market["policy_seconds_per_tick"].items():
        print(f"  {name:<20} policy (act + observe): {seconds * 1e3:6.2f} ms per tick for {N_BIDDERS:,} advertisers")
    payload = {"benchmark": "bandits", "learners": rows, "market": market}
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")


if __name__ == "__main__":
    main()
