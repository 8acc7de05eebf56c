"""Run the confirmatory command's BPG trials of seeds 12-35 before its other trials.

The trials are independent and deterministic, so the order they run in changes no result. The
confirmatory test needs only the BPG trials; ``python -m experiments.bpg`` runs every
cooperative and selfish trial (stage 1) before any BPG trial (stage 2). This driver builds the
same stage-2 trial configs with ``experiments.bpg.trial_config`` (same flags, same epsilon scale
from cooperative seeds 0-2) for BPG only and runs them as the same Tune sweep; the full command
with ``--resume`` afterwards reads them back instead of retraining them.

    python experiments/reference/bpg/confirmatory-N100/run_bpg_first.py

It needs ``results/bpg-n100-confirm`` prepared as that folder's README says (cooperative seeds 0-2
finished there). Nothing is analysed here.
"""

import pathlib

from agents.bpg import resolve_epsilon
from auctionsim.cluster import ray_session
from experiments import bpg

COMMAND = ("--output-dir results/bpg-n100-confirm --sizes 100 --epsilons 0.75 0.5 0.25 0.0 --zero-epsilons 0.75 "
           "--heuristics value pid cpa uniform --no-ppo-best-response --dual-step 0.25 --lambda-max 1 "
           "--training-seeds 36 --resume").split()  # fmt: skip
CONFIRMATORY_SEEDS = range(12, 36)


def main() -> None:
    args = bpg.parse_args(COMMAND)
    output = pathlib.Path(args.output_dir).resolve()
    n = args.sizes[0]
    cooperative = [bpg._read_result(output / "runs" / bpg.run_name("cooperative", None, seed, n) / "result.json") for seed in bpg.training_seeds(args)[: args.scale_seeds]]
    if not all(cooperative):
        raise SystemExit(f"cooperative seeds 0-{args.scale_seeds - 1} must be finished under {output / 'runs'} (they fix the epsilon scale)")
    scale = bpg.epsilon_scale(args, cooperative)
    configs = [
        bpg.trial_config(args, output, "bpg", n, seed, epsilon, resolve_epsilon(epsilon, args.epsilon_mode, scale))
        for seed in CONFIRMATORY_SEEDS
        for epsilon in args.epsilons
    ]
    with ray_session(args.num_cpus):
        bpg.run_trials(args, output, configs, "stage2-bpg-first")
    print(f"{len(configs)} BPG trials finished under {output / 'runs'} (epsilon scale {scale:.6f})")


if __name__ == "__main__":
    main()
