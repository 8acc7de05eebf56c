"""Focal-evaluation speed: a focal bidder against the population, as the equilibrium tools, the
offline-RL evaluation and the LBM evaluation use it.

Scenarios (AuctionNet preset cut to 50,000 impressions, the mixed population of baselines for
the others):

* ``grid search``: :class:`~agents.equilibrium.GridBestResponse` for one advertiser (constant
  and 4-period schedules over its default grid, 2 fit + 2 evaluation seeds): the inner loop
  of ``evaluate_exploitability``;
* ``deviation episodes``: :meth:`~agents.equilibrium.DeviationEvaluator.returns` of a constant
  schedule over 8 seeds;
* ``focal episodes``: :func:`agents.evaluation.play_focal_episode` with PID pacing as the
  focal bidder, 8 seeds;
* ``lockstep cases``: :func:`agents.lbm.evaluate_focal`, 8 cases (2 advertisers x 4 seeds)
  played in lockstep with one batched bidder call per tick.

Prints a table (best of ``--repeats``: wall seconds, process CPU seconds, focal episodes per wall
second) and one ``JSON`` line. On a shared machine compare CPU seconds, measured back to back.

Usage: ``python benchmarks/focal.py [--repeats 3] [--scenarios "grid search" ...]``
"""

from __future__ import annotations

import argparse
import json
import time

import auctionsim
from agents.baselines import PIDPacing
from agents.equilibrium import DeviationEvaluator, GridBestResponse, MarketSpec, ScheduleDeviation
from agents.evaluation import play_focal_episode
from agents.lbm.evaluate import FocalCase, evaluate_focal
from agents.populations import named_population
from auctionsim import Market, presets
from auctionsim.envs import SingleBidderEnv

IMPRESSIONS = 50_000
SEEDS = tuple(range(8))


def _market_spec() -> MarketSpec:
    return MarketSpec(preset="auctionnet", overrides={"impressions_per_episode": IMPRESSIONS})


def grid_search() -> int:
    spec = _market_spec()
    evaluator = DeviationEvaluator(spec, named_population("mixed", spec.build().population.ids), 5)
    GridBestResponse(periods=4).estimate(evaluator, (0, 1), (2, 3))
    return evaluator.episodes_played


def deviation_episodes() -> int:
    spec = _market_spec()
    evaluator = DeviationEvaluator(spec, named_population("mixed", spec.build().population.ids), 5)
    evaluator.returns(ScheduleDeviation((1.2,), evaluator.n_ticks), SEEDS)
    return len(SEEDS)


def focal_episodes() -> int:
    scenario = presets.get("auctionnet", impressions_per_episode=IMPRESSIONS)
    market = Market(scenario.market, scenario.population)
    env = SingleBidderEnv(market, population=named_population("mixed", market.population.ids), focal=5)
    for seed in SEEDS:
        play_focal_episode(env, PIDPacing(), seed=seed)
    return len(SEEDS)


def lockstep_cases() -> int:
    scenario = presets.get("auctionnet", impressions_per_episode=IMPRESSIONS)
    ids = scenario.population.ids
    cases = [FocalCase(int(a), seed) for a in ids[:2] for seed in SEEDS[:4]]
    evaluate_focal(PIDPacing(), scenario.market, scenario.population, lambda: named_population("mixed", ids), cases, progress=False)
    return len(cases)


SCENARIOS = {
    "grid search": grid_search,
    "deviation episodes": deviation_episodes,
    "focal episodes": focal_episodes,
    "lockstep cases": lockstep_cases,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per scenario (best is reported)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS), help="scenarios to run")
    args = parser.parse_args(argv)
    jit_seconds = auctionsim.warm_up()
    results = {}
    for name in args.scenarios:
        walls, cpus, episodes = [], [], 0
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            episodes = SCENARIOS[name]()
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        results[name] = {"seconds": min(walls), "cpu_seconds": min(cpus), "episodes": episodes, "episodes_per_second": episodes / min(walls)}
    print(f"{'scenario':<20} {'seconds':>9} {'cpu s':>9} {'episodes':>9} {'episodes/s':>11}")
    for name, row in results.items():
        print(f"{name:<20} {row['seconds']:>9.3f} {row['cpu_seconds']:>9.3f} {row['episodes']:>9d} {row['episodes_per_second']:>11.2f}")
    payload = {"benchmark": "focal", "impressions_per_episode": IMPRESSIONS, "jit_seconds": jit_seconds, "results": results}
    print("JSON " + json.dumps(payload))
    return payload


if __name__ == "__main__":
    main()
