"""Memory soak: does a long run grow the process? A guard against leaks in the engine and the envs.

Plays AuctionNet-preset episodes (48 advertisers, 48 ticks, 500,000 impressions) through four
entry points, one after the other in one process, as a user would:

* ``market``: :meth:`Market.run_episode` on ``Market.from_preset("auctionnet")`` (history on);
* ``parallel-dict``: the PettingZoo dict API of :class:`AuctionParallelEnv`, every live agent
  acting each tick until none is left;
* ``parallel-array``: its array API (``reset_arrays``/``step_arrays``);
* ``single-bidder``: :class:`SingleBidderEnv` (the focal advertiser drawn every episode).

Multipliers are drawn per episode from a seeded generator (uniform in [0.5, 1.5]), so every
episode plays different auctions. At the start of each episode, right after its reset, the script
runs ``gc.collect()`` and records the resident set size (RSS), the number of open file
descriptors and the number of Python objects the garbage collector tracks (a leak of Python
objects shows there exactly, where RSS only shows it through the allocator's noise).

Growth is the least-squares slope of RSS against episode number over the episodes after the
first 20% (warm-up: allocator arenas, Numba dispatch and NumPy caches fill once), with its 95%
interval (Student t). Verdict: **no growth** when the slope's upper 95% bound is below
``--threshold-kib`` (default 1 KiB per episode, i.e. under 1 MiB per 1,000 episodes; one leaked
tick result of the preset is about 5 KiB, so a leak of anything per tick is caught), the
Python-object count's slope is below 0.5 objects per episode (upper 95% bound; a per-episode leak
of any container is at least 1) and the descriptor count at the end is not above the one after
warm-up. The exit status is 1 when a target fails. ``--quick`` judges by objects and descriptors
only and reports the RSS slope: over 15 episodes the allocator has not settled (in a fresh
process the single-bidder env's RSS rose by about 1 MiB over its first 200 episodes of a
20,000-impression market, then stayed flat).

Prints a table and one ``JSON`` line. Usage::

    python benchmarks/soak.py            # 1,000 market episodes, 200 through each env (~20 min)
    python benchmarks/soak.py --quick    # 60 and 15: a smoke run (~1.5 min), RSS not judged
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from typing import Callable

import numpy as np
import psutil
from scipy import stats

import auctionsim
from auctionsim import Market
from auctionsim.envs import AuctionParallelEnv, SingleBidderEnv

WARM_UP_SHARE = 0.2
OBJECTS_THRESHOLD = 0.5  # Python objects per episode (upper 95% bound): a per-episode leak of any container is >= 1
MIB = 2**20


# Each target is a pair (start, finish): ``start(i)`` resets for episode ``i``, ``finish(i)`` plays
# it to its end. Measurements are taken between the two, on a fresh reset: the previous episode's
# tick results (which the market keeps until the next reset) are gone, so episodes of different
# lengths leave the same state and only what accumulates across episodes shows.
Episode = tuple[Callable[[int], object], Callable[[int], None]]


def _multipliers(index: int, size: int) -> np.ndarray:
    return np.random.default_rng(index).uniform(0.5, 1.5, size)


def _market(market: Market) -> Episode:
    def finish(index: int) -> None:
        multipliers = _multipliers(index, market.n_advertisers)
        while not market.done:
            market.step(multipliers)

    return lambda index: market.reset(seed=index), finish


def _parallel_dict(env: AuctionParallelEnv) -> Episode:
    def finish(index: int) -> None:
        multipliers = _multipliers(index, env.max_num_agents).astype(np.float32)
        actions = {agent: multipliers[row : row + 1] for row, agent in enumerate(env.possible_agents)}
        while env.agents:
            env.step({agent: actions[agent] for agent in env.agents})

    return lambda index: env.reset(seed=index), finish


def _parallel_arrays(env: AuctionParallelEnv) -> Episode:
    def finish(index: int) -> None:
        multipliers = _multipliers(index, env.max_num_agents)
        while not env.market.done:
            env.step_arrays(multipliers)

    return lambda index: env.reset_arrays(seed=index), finish


def _single(env: SingleBidderEnv) -> Episode:
    def finish(index: int) -> None:
        action = _multipliers(index, 1).astype(np.float32)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated

    return lambda index: env.reset(seed=index), finish


TARGETS: dict[str, Callable[[], Episode]] = {
    "market": lambda: _market(Market.from_preset("auctionnet")),
    "parallel-dict": lambda: _parallel_dict(AuctionParallelEnv("auctionnet")),
    "parallel-array": lambda: _parallel_arrays(AuctionParallelEnv("auctionnet")),
    "single-bidder": lambda: _single(SingleBidderEnv("auctionnet")),
}


def _slope(values: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of ``values`` against their index, with its 95% interval (Student t)."""
    if values.size < 3 or np.ptp(values) == 0:  # too short to fit, or flat to the unit
        return 0.0, 0.0, 0.0
    fit = stats.linregress(np.arange(values.size), values)
    half_width = stats.t.ppf(0.975, values.size - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half_width), float(fit.slope + half_width)


def soak(name: str, episodes: int, threshold_kib: float | None, progress: bool = True) -> dict:
    """Play ``episodes`` episodes through target ``name``; RSS, descriptors and Python objects
    at the start of each (after its reset). ``threshold_kib=None`` leaves RSS out of the verdict."""
    process = psutil.Process()
    start, finish = TARGETS[name]()
    gc.collect()
    rss_start, fds_start = process.memory_info().rss, process.num_fds()
    rss = np.empty(episodes)
    fds = np.empty(episodes, dtype=np.int64)
    objects = np.empty(episodes, dtype=np.int64)
    started = time.perf_counter()
    for index in range(episodes):
        start(index)
        gc.collect()
        rss[index], fds[index], objects[index] = process.memory_info().rss, process.num_fds(), len(gc.get_objects())
        finish(index)
        if progress and (index + 1) % max(1, episodes // 10) == 0:
            print(f"  {name}: {index + 1}/{episodes} episodes, RSS {rss[index] / MIB:.1f} MiB", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    first = int(episodes * WARM_UP_SHARE)
    slope, low, high = _slope(rss[first:] / 1024)
    objects_slope, _, objects_high = _slope(objects[first:])
    passed = (threshold_kib is None or high < threshold_kib) and objects_high < OBJECTS_THRESHOLD and fds[-1] <= fds[first]
    return {
        "target": name,
        "episodes": episodes,
        "seconds": seconds,
        "rss_start_mib": rss_start / MIB,
        "rss_after_warm_up_mib": float(rss[first]) / MIB,
        "rss_end_mib": float(rss[-1]) / MIB,
        "rss_max_mib": float(rss.max()) / MIB,
        "slope_kib_per_episode": float(slope),
        "slope_95_low": float(low),
        "slope_95_high": float(high),
        "fds_start": fds_start,
        "fds_after_warm_up": int(fds[first]),
        "fds_end": int(fds[-1]),
        "python_objects_after_warm_up": int(objects[first]),
        "python_objects_end": int(objects[-1]),
        "python_objects_slope_per_episode": float(objects_slope),
        "python_objects_slope_95_high": float(objects_high),
        "passed": bool(passed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 market episodes and 15 through each env")
    parser.add_argument("--market-episodes", type=int, default=None, help="episodes through Market (default 1,000; quick: 60)")
    parser.add_argument("--env-episodes", type=int, default=None, help="episodes through each env (default 200; quick: 15)")
    parser.add_argument("--threshold-kib", type=float, default=1.0, help="largest accepted RSS growth, KiB per episode (upper 95%% bound)")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    args = parser.parse_args(argv)
    market_episodes = args.market_episodes if args.market_episodes is not None else (60 if args.quick else 1_000)
    env_episodes = args.env_episodes if args.env_episodes is not None else (15 if args.quick else 200)
    if market_episodes < 1 or env_episodes < 1 or not args.threshold_kib > 0:
        parser.error("episode counts must be >= 1 and --threshold-kib > 0")
    jit_seconds = auctionsim.warm_up()
    threshold = None if args.quick else args.threshold_kib
    rows = [soak(name, market_episodes if name == "market" else env_episodes, threshold) for name in args.targets]
    print(
        f"{'target':<15} {'episodes':>8} {'s/ep':>6} {'RSS start':>10} {'warm':>8} {'end':>8} {'slope KiB/ep [95%]':>26} "
        f"{'fds':>8} {'py objects':>15} {'verdict':>9}"
    )
    for row in rows:
        interval = f"{row['slope_kib_per_episode']:+.3f} [{row['slope_95_low']:+.3f}, {row['slope_95_high']:+.3f}]"
        print(
            f"{row['target']:<15} {row['episodes']:>8} {row['seconds'] / row['episodes']:>6.2f} {row['rss_start_mib']:>9.1f}M "
            f"{row['rss_after_warm_up_mib']:>7.1f}M {row['rss_end_mib']:>7.1f}M {interval:>26} "
            f"{row['fds_start']:>3}->{row['fds_end']:<4} {row['python_objects_after_warm_up']:>7}->{row['python_objects_end']:<7} "
            f"{'no growth' if row['passed'] else 'GROWTH':>9}"
        )
    rss_rule = "RSS not judged (--quick)" if threshold is None else f"RSS slope's upper 95% bound < {threshold} KiB/episode"
    print(
        f"verdict: {rss_rule} and Python objects' < {OBJECTS_THRESHOLD}/episode after the first {WARM_UP_SHARE:.0%} of "
        "episodes; descriptors not above their count then"
    )
    summary = {
        "benchmark": "soak",
        "threshold_kib_per_episode": threshold,
        "warm_up_share": WARM_UP_SHARE,
        "jit_seconds": jit_seconds,
        "passed": all(row["passed"] for row in rows),
        "results": rows,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "version": auctionsim.__version__,
    }
    print("JSON " + json.dumps(summary))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
