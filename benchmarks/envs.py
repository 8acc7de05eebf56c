"""Environment speed benchmark: env steps/s and agent-steps/s, and overhead over the raw engine.

Scenarios: the parallel env at 48 (AuctionNet preset), 1,000 and 10,000 agents (K = 64
candidates per impression), through the array API (``step_arrays``) and, up to 1,000 agents,
the PettingZoo dict API; the single-bidder Gymnasium env. Every advertiser bids multiplier 0.8.
Overhead = env time per tick / raw ``Market.step`` time per tick - 1 (target < 20% at 1,000
agents for the array API); the dict API's episode ends early once every agent has run out of
budget, hence per-tick times. Prints a table and one ``JSON`` line.

Usage: ``python benchmarks/envs.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import auctionsim
from auctionsim import Market, MarketConfig, presets, runs
from auctionsim.envs import AuctionParallelEnv, SingleBidderEnv

SCENARIOS = {
    "48 agents (auctionnet)": lambda: presets.get("auctionnet"),
    "1,000 agents (K=64)": lambda: presets.get("large-1k"),
    "10,000 agents (K=64)": lambda: presets.Scenario(
        "large-10k", MarketConfig(impressions_per_episode=1_000_000, candidates_per_impression=64),
        presets.large_population(10_000, 50, 1_000_000), "10,000 advertisers",
    ),
}


def _best_per_tick(function, repeats: int) -> float:
    """Best over repeats of (seconds / ticks played); ``function(seed)`` returns ticks played."""
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        ticks = function(repeat)
        times.append((time.perf_counter() - start) / ticks)
    return min(times)


def measure(name: str, repeats: int) -> dict:
    scenario = SCENARIOS[name]()
    market = Market(scenario.market, scenario.population, record_history=False)
    n = market.n_advertisers
    multipliers = np.full(n, 0.8)

    def raw(seed):
        market.reset(seed)
        while not market.done:
            market.step(multipliers)
        return market.n_ticks

    env = AuctionParallelEnv(Market(scenario.market, scenario.population, record_history=False))

    def arrays(seed):
        env.reset_arrays(seed)
        while not env.market.done:
            env.step_arrays(multipliers)
        return env.market.n_ticks

    def dicts(seed):
        env.reset(seed=seed)
        actions = {agent: np.full(1, 0.8, dtype=np.float32) for agent in env.possible_agents}
        ticks = 0
        while env.agents:
            env.step({agent: actions[agent] for agent in env.agents})
            ticks += 1
        return ticks

    raw_seconds = _best_per_tick(raw, repeats)
    array_seconds = _best_per_tick(arrays, repeats)
    row = {
        "scenario": name,
        "agents": n,
        "raw_tick_seconds": raw_seconds,
        "array_tick_seconds": array_seconds,
        "array_env_steps_per_second": 1 / array_seconds,
        "array_agent_steps_per_second": n / array_seconds,
        "array_overhead": array_seconds / raw_seconds - 1,
    }
    if n <= 1000:
        dict_seconds = _best_per_tick(dicts, repeats)
        row.update(dict_tick_seconds=dict_seconds, dict_agent_steps_per_second=n / dict_seconds, dict_overhead=dict_seconds / raw_seconds - 1)
    return row


def measure_single(repeats: int) -> dict:
    env = SingleBidderEnv("auctionnet", focal=0)
    action = np.full(1, 0.8, dtype=np.float32)

    def episode(seed):
        env.reset(seed=seed)
        done, ticks = False, 0
        while not done:
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            ticks += 1
        return ticks

    seconds = _best_per_tick(episode, repeats)
    return {"scenario": "single-bidder env (auctionnet)", "agents": 1, "tick_seconds": seconds, "env_steps_per_second": 1 / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    auctionsim.warm_up()
    rows = [measure(name, args.repeats) for name in SCENARIOS]
    single = measure_single(args.repeats)
    print(f"{'scenario':<24} {'agents':>7} {'raw ms/tick':>11} {'array ms':>9} {'overhead':>8} {'agent-steps/s':>14} {'dict ms':>8} {'dict ovh':>8}")
    for row in rows:
        dict_part = f"{row['dict_tick_seconds'] * 1e3:>8.2f} {row['dict_overhead']:>8.1%}" if "dict_tick_seconds" in row else f"{'-':>8} {'-':>8}"
        print(
            f"{row['scenario']:<24} {row['agents']:>7} {row['raw_tick_seconds'] * 1e3:>11.2f} {row['array_tick_seconds'] * 1e3:>9.2f} "
            f"{row['array_overhead']:>8.1%} {row['array_agent_steps_per_second']:>14,.0f} {dict_part}"
        )
    print(f"{single['scenario']}: {single['tick_seconds'] * 1e3:.2f} ms a step, {single['env_steps_per_second']:.0f} env steps/s")
    payload = {"benchmark": "envs", "results": rows + [single]}
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")


if __name__ == "__main__":
    main()
