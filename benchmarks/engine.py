"""Engine speed benchmark: one episode per scenario, on one core, after warm-up.

Prints a human table and one JSON line (prefixed ``JSON``). Each scenario runs in its own
subprocess so that its peak memory (RSS) is its own; the JIT time (compile, or load from Numba's
cache) is measured separately by ``auctionsim.warm_up()`` and excluded from episode times.

Scenarios (issue 2):
  a) AuctionNet preset: 500,000 impressions x 48 advertisers (GSP, FPA, VCG)
  b) 5,000,000 impressions x 48 advertisers (GSP, FPA)
  c) 1,000 advertisers: every advertiser on every one of 500,000 impressions, and K = 64 of them
     on 1,000,000 impressions (the ``large-1k`` preset)
  d) 100,000 advertisers, K = 64, 5,000,000 impressions (the ``large-100k`` preset)
  p) plugged-in mechanisms on scenario a (:mod:`auctionsim.mechanisms`): the built-in GSP
     written as a plugged-in jitted function (``p-gsp``, same outcomes as ``a-gsp``), the
     quality-score GSP of ``examples/quality_gsp.py`` (``p-quality``), and the plugged-in GSP as
     plain Python on the slow path (``p-python``, 20,000 impressions). The JIT column includes
     the kernel's compile for a jitted one (never cached; a Python one runs in the cached kernel).

Everyone bids a fixed multiplier 1.0 (``bid = CPA target x pValue``), the heaviest budget load.
"bid evaluations" = impressions x bidders per impression (N, or K with candidate retrieval).
Episode times are wall-clock (best of ``--repeats``) and CPU seconds of the process (best):
compare CPU seconds when the machine is shared.

Usage: ``python benchmarks/engine.py [--repeats 3] [--only a,b]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]

# AuctionNet's own engine on this kind of machine (../shared/reference/auctionnet-facts.md):
# 31.8 s for an episode of 500,000 impressions x 48 advertisers, 0.75 M bid evaluations/s.
AUCTIONNET_EPISODE_SECONDS = 31.8
AUCTIONNET_BID_EVALUATIONS_PER_SECOND = 0.75e6

SCENARIOS = {
    "a-gsp": dict(preset="auctionnet", overrides=dict(mechanism="gsp")),
    "a-fpa": dict(preset="auctionnet", overrides=dict(mechanism="fpa")),
    "a-vcg": dict(preset="auctionnet", overrides=dict(mechanism="vcg")),
    "b-gsp": dict(preset="auctionnet", overrides=dict(impressions_per_episode=5_000_000)),
    "b-fpa": dict(preset="auctionnet", overrides=dict(impressions_per_episode=5_000_000, mechanism="fpa")),
    "c-full": dict(preset="large-1k", overrides=dict(impressions_per_episode=500_000, candidates_per_impression=None)),
    "c-k64": dict(preset="large-1k", overrides=dict()),
    "d-k64": dict(preset="large-100k", overrides=dict()),
    "p-gsp": dict(preset="auctionnet", overrides=dict(mechanism="auctionsim.mechanisms:gsp")),
    "p-quality": dict(preset="auctionnet", overrides=dict(mechanism="examples.quality_gsp:QUALITY_GSP")),
    "p-python": dict(
        preset="auctionnet", overrides=dict(mechanism="__main__:python_gsp", impressions_per_episode=20_000)
    ),
}


def python_gsp(auction, ranked_index, ranked_bids, prices):
    """The plugged-in GSP run as plain Python (the slow path): the same function, uncompiled."""
    from auctionsim import mechanisms

    return mechanisms.gsp.py_func(auction, ranked_index, ranked_bids, prices)


def run_scenario(name: str, repeats: int) -> dict:
    """Run one scenario in this process and return its figures."""
    import numpy as np

    import auctionsim
    from auctionsim import Market, presets

    jit_seconds = auctionsim.warm_up()
    baseline_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spec = SCENARIOS[name]
    sys.path.insert(0, str(PROJECT_ROOT))  # plugged-in scenarios import from examples/
    scenario = presets.get(spec["preset"], **spec["overrides"])
    market = Market(scenario.market, scenario.population, record_history=False)
    multipliers = np.ones(market.n_advertisers)
    if not isinstance(scenario.market.mechanism, auctionsim.Mechanism):
        start = time.perf_counter()  # compile the kernel for the plugged-in mechanism
        market.reset(seed=0)
        market.step(multipliers)
        jit_seconds += time.perf_counter() - start
    times, cpu_times, reset_times = [], [], []
    for repeat in range(repeats):
        start = time.perf_counter()
        market.reset(seed=repeat)
        reset_times.append(time.perf_counter() - start)
        start, cpu_start = time.perf_counter(), time.process_time()
        while not market.done:
            market.step(multipliers)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    metrics = market.episode_metrics()
    impressions = scenario.market.impressions_per_episode
    bidders = scenario.market.candidates_per_impression or len(scenario.population)
    best = min(times)
    return {
        "scenario": name,
        "mechanism": scenario.market.mechanism.value,
        "advertisers": len(scenario.population),
        "bidders_per_impression": bidders,
        "impressions": impressions,
        "episode_seconds_best": best,
        "episode_seconds_median": float(np.median(times)),
        "episode_cpu_seconds_best": min(cpu_times),
        "reset_seconds": float(np.median(reset_times)),
        "impressions_per_second": impressions / best,
        "bid_evaluations_per_second": impressions * bidders / best,
        "seconds_per_million_impressions": best / impressions * 1e6,
        "jit_seconds": jit_seconds,
        "baseline_rss_mb": baseline_rss_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "social_welfare": metrics.social_welfare,
        "revenue": metrics.revenue,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    parser.add_argument("--repeats", type=int, default=3, help="episodes per scenario (best is reported)")
    parser.add_argument("--only", default="", help="comma-separated scenario prefixes, e.g. a,d")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # internal: run one scenario
    args = parser.parse_args()
    from auctionsim import runs

    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.repeats)))
        return

    wanted = [s for s in SCENARIOS if not args.only or any(s.startswith(p) for p in args.only.split(","))]
    environment = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    rows = []
    for name in wanted:
        output = subprocess.run(
            [sys.executable, __file__, "--scenario", name, "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True, env=environment,
        ).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        row = rows[-1]
        if name.startswith("a-"):
            row["speedup_vs_auctionnet"] = AUCTIONNET_EPISODE_SECONDS / row["episode_seconds_best"]
        print(f"done {name}", file=sys.stderr)

    header = f"{'scenario':<9} {'mechanism':<11} {'N':>7} {'bidders':>7} {'impressions':>11} {'episode s':>9} {'median s':>8} {'CPU s':>7} {'M imp/s':>8} {'M bids/s':>8} {'peak MB':>8} {'JIT s':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['scenario']:<9} {row['mechanism'].split(':')[-1][:11]:<11} {row['advertisers']:>7} {row['bidders_per_impression']:>7} "
            f"{row['impressions']:>11,} {row['episode_seconds_best']:>9.3f} {row['episode_seconds_median']:>8.3f} {row['episode_cpu_seconds_best']:>7.3f} "
            f"{row['impressions_per_second'] / 1e6:>8.2f} {row['bid_evaluations_per_second'] / 1e6:>8.1f} "
            f"{row['peak_rss_mb']:>8.0f} {row['jit_seconds']:>6.1f}"
        )
    for row in rows:
        if "speedup_vs_auctionnet" in row:
            print(f"{row['scenario']}: {row['speedup_vs_auctionnet']:.0f}x AuctionNet's engine (31.8 s an episode on this machine kind)")
    payload = {"benchmark": "engine", "auctionnet_episode_seconds": AUCTIONNET_EPISODE_SECONDS, "results": rows}
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")


if __name__ == "__main__":
    main()
