"""Scaling benchmark: the exploitability run and a BPG iteration on a simulated Ray cluster of
1, 2 and 4 nodes, with wall time, speed-up and efficiency per node count.

The cluster is ``ray.cluster_utils.Cluster`` on this machine: every node is a real Ray node (its
own raylet, object store and worker processes) with one logical CPU per unit of work (``CPUS_PER_NODE``), and the
driver joins it through :func:`auctionsim.cluster.init_ray`, as on a real cluster. What it cannot
simulate is hardware: nodes on one machine share its cores, so once the nodes' CPUs exceed the
machine's cores (more than two one-CPU nodes on the 2-core development machine, or more
than one BPG node of two CPUs) the figures measure Ray's
scheduling and the work's divisibility, not more compute. The table says how many cores the
machine has; read the efficiency of larger node counts against it.

Workloads (the same work at every node count, so the times compare):

* ``exploitability``: :func:`agents.equilibrium.evaluate_exploitability` of PID pacing at
  N = ``--exploitability-n`` (10,000) advertisers, ``--advertisers`` sampled advertisers, each one
  Ray task (a grid best response, spread over the nodes by :func:`auctionsim.cluster.map_tasks`).
  ``task_seconds`` (on one node: (wall - population seconds) / tasks, one task at a time) is the
  cost of one best response on one CPU, the per-node figure of the cluster guide's plan.
* ``bpg``: one BPG iteration (after a warm-up iteration) at N = ``--bpg-n`` (1,000), with one
  remote EnvRunner per node (the episodes, seeded per episode, are the same at every node count)
  and the dual step's deviation measurements as ``dual_workers`` tasks, one per node.

Efficiency = T(1 node) / (nodes x T(nodes)): 1.0 is linear scaling.

Cost: a best-response task plays ``len(grid) x`` fit days plus its evaluation days; at
N = 10,000 (20,000 impressions, 12 ticks) one day took ~20-25 CPU seconds on the development
machine, so the defaults take tens of minutes per node count there (``--grid 1.0`` for a
shorter run).

Usage: ``python benchmarks/cluster.py [--nodes 1,2,4] [--workloads exploitability,bpg]
[--output results/benchmarks/cluster.json]``; ``--quick`` (tiny markets, 1 and 2 nodes: the
test's smoke run). Prints a table and one ``JSON {...}`` line (with ``--output``: also written
atomically with a manifest beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Logical CPUs per simulated node: one per best-response task; for BPG one for the node's
#: EnvRunner (an actor holds its CPU) and one for a dual-step task.
CPUS_PER_NODE = {"exploitability": 1, "bpg": 2}
QUICK = dict(nodes="1,2", exploitability_n=50, advertisers=4, bpg_n=6, impressions=2_000, ticks=6, episodes=4)


@contextlib.contextmanager
def simulated_cluster(nodes: int, cpus_per_node: int):
    """A local Ray cluster of ``nodes`` nodes, the driver joined to it; removed afterwards.

    The nodes run this checkout (``PYTHONPATH``) rather than a shipped copy, so they share its
    compiled Numba kernels; token authentication is off (a private cluster on this machine)."""
    import ray
    from ray.cluster_utils import Cluster

    from auctionsim.cluster import init_ray, project_root

    if ray.is_initialized():
        raise RuntimeError("Ray is already running in this process: the benchmark starts its own clusters")
    temp_dir = tempfile.mkdtemp(prefix="ray-bench-")  # short: Ray's socket paths have a length limit
    (pathlib.Path(temp_dir) / "ray").mkdir()
    saved = {name: os.environ.get(name) for name in ("RAY_TMPDIR", "RAY_AUTH_MODE", "PYTHONPATH")}
    os.environ.update(RAY_TMPDIR=temp_dir, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(project_root()), saved["PYTHONPATH"]) if p)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node, "temp_dir": temp_dir, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node)
        cluster.wait_for_nodes()
        init_ray(address=cluster.address, ship_code=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def exploitability_seconds(args: argparse.Namespace) -> dict:
    """Wall seconds of the exploitability run and its mean seconds per best-response task."""
    from agents.baselines import PIDPacing
    from agents.bpg import market_spec
    from agents.equilibrium import ExploitabilityConfig, GridBestResponse, evaluate_exploitability

    spec = market_spec(args.exploitability_n, impressions_per_episode=args.impressions, n_ticks=args.ticks)
    config = ExploitabilityConfig(
        eval_seeds=(1,), fit_seeds=(0,), estimators=(GridBestResponse(tuple(args.grid), periods=1),),
        max_advertisers=args.advertisers, backend="ray", progress=False,
    )  # fmt: skip
    started = time.perf_counter()
    report = evaluate_exploitability(PIDPacing(), spec, config=config)
    wall = time.perf_counter() - started
    tasks_wall = wall - report.metadata["population_and_oracle_seconds"]
    return {"seconds": wall, "tasks": args.advertisers, "task_seconds": tasks_wall * len(report.metadata["task_nodes"]) / args.advertisers, "task_nodes": len(report.metadata["task_nodes"]), "population_seconds": report.metadata["population_and_oracle_seconds"]}


def bpg_seconds(args: argparse.Namespace, nodes: int) -> dict:
    """Seconds of one BPG iteration (after a warm-up) with one remote EnvRunner and one dual
    worker per node, and its phases."""
    from agents.bpg import BPGConfig, market_spec

    spec = market_spec(args.bpg_n, impressions_per_episode=args.impressions, n_ticks=args.ticks)
    config = (
        BPGConfig()
        .bpg(market=spec, epsilon=0.0, seed=0, episodes_per_kind=args.episodes, group_size=2, xstar_episodes=args.episodes, xstar_updates=1,
             xstar_pretrain_updates=0, dual_deviators=min(4, args.bpg_n), dual_episodes=1, dual_workers=nodes)
        .env_runners(num_env_runners=nodes)
    )  # fmt: skip
    algo = config.build_algo()
    try:
        algo.train()  # warm-up: JIT, first build, runner start-up
        started = time.perf_counter()
        algo.train()
        wall = time.perf_counter() - started
        record = algo.history[-1]
        return {"seconds": wall, "xstar_seconds": record["xstar_seconds"], "dual_seconds": record["dual_seconds"], "primal_seconds": record["primal_seconds"]}
    finally:
        algo.stop()


def table(payload: dict) -> str:
    """The printed table of a run's payload; adds each row's speed-up and efficiency against the
    smallest node count of its workload."""
    rows, cores = payload["results"], payload["cores"] or 1
    for row in rows:
        base = min((r for r in rows if r["workload"] == row["workload"]), key=lambda r: r["nodes"])
        row["speedup"] = base["seconds"] / row["seconds"]
        row["efficiency"] = row["speedup"] * base["nodes"] / row["nodes"]
    header = f"{'workload':>15} {'size':>8} {'nodes':>6} {'CPUs/node':>10} {'seconds':>9} {'speed-up':>9} {'efficiency':>11}"
    lines = [f"simulated cluster on one machine with {cores} cores; load average {payload['load_average'][0]:.1f}", header, "-" * len(header)]
    for row in rows:
        size = payload["exploitability_n"] if row["workload"] == "exploitability" else payload["bpg_n"]
        shared = " (nodes share cores)" if row["nodes"] * row["cpus_per_node"] > cores else ""
        lines.append(f"{row['workload']:>15} {size:>8} {row['nodes']:>6} {row['cpus_per_node']:>10} {row['seconds']:>9.2f} {row['speedup']:>8.2f}x {row['efficiency']:>11.2f}{shared}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2,4", help="node counts, comma separated")
    parser.add_argument("--workloads", default="exploitability,bpg", help="exploitability, bpg")
    parser.add_argument("--exploitability-n", type=int, default=10_000, help="advertisers in the exploitability market")
    parser.add_argument("--advertisers", type=int, default=8, help="sampled advertisers (= best-response tasks)")
    parser.add_argument("--grid", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.25], help="constant multipliers of each best-response task's grid")
    parser.add_argument("--bpg-n", type=int, default=1_000, help="advertisers in the BPG market")
    parser.add_argument("--impressions", type=int, default=20_000, help="impressions per episode (both markets)")
    parser.add_argument("--ticks", type=int, default=12, help="ticks per episode")
    parser.add_argument("--episodes", type=int, default=8, help="BPG episodes per kind and x* episodes per update")
    parser.add_argument("--quick", action="store_true", help="tiny markets on 1 and 2 nodes (a smoke run)")
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    args.node_counts = [int(n) for n in args.nodes.split(",")]
    args.workload_names = args.workloads.split(",")
    unknown = sorted(set(args.workload_names) - {"exploitability", "bpg"})
    if unknown or min(args.node_counts) < 1 or args.advertisers < 1 or args.episodes < 2:
        parser.error(f"workloads must be exploitability/bpg, nodes/advertisers >= 1 and episodes >= 2, got {args.workloads!r}, {args.nodes!r}, {args.advertisers}, {args.episodes}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from auctionsim import runs

    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    rows = []
    for workload in args.workload_names:
        for nodes in args.node_counts:
            cpus = CPUS_PER_NODE[workload]
            with simulated_cluster(nodes, cpus):
                row = {"workload": workload, "nodes": nodes, "cpus_per_node": cpus}
                row.update(exploitability_seconds(args) if workload == "exploitability" else bpg_seconds(args, nodes))
            rows.append(row)
            print(f"done {workload} on {nodes} node(s): {row['seconds']:.1f} s", file=sys.stderr, flush=True)

    payload = {
        "benchmark": "cluster",
        "cores": os.cpu_count(),
        "exploitability_n": args.exploitability_n,
        "advertisers": args.advertisers,
        "bpg_n": args.bpg_n,
        "impressions": args.impressions,
        "ticks": args.ticks,
        "episodes": args.episodes,
        "load_average": os.getloadavg(),
        "results": rows,
    }
    print(table(payload))
    print("JSON " + json.dumps(payload))
    if args.output:
        config = {key: value for key, value in vars(args).items() if key not in ("node_counts", "workload_names")}
        print(f"saved {runs.write_json_result(args.output, payload, config, clock=clock)}")
    return payload


if __name__ == "__main__":
    main()
