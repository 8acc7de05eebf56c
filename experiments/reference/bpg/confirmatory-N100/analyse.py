"""The confirmatory test specified in ``../README.md`` before its data existed, computed once.

Hypotheses (N = 100, relative epsilon, fresh training seeds 12-35 x evaluation seeds 10000-10004):
  1. Max Exploitability (lower bracket) BPG eps=0.75 - BPG eps=0.5 > 0;
  2. welfare BPG eps=0.25 - BPG eps=0 > 0.
Each is a paired difference over the (training seed, evaluation seed) grid with
``auctionsim.stats``' interval and p-value, Holm-adjusted over these two; a hypothesis is
confirmed when its Holm p < 0.05 and its difference has the predicted sign.

Also printed, as secondary (not part of the test): every seed's table (0-35, where finished),
the adjacent-epsilon comparisons over all those seeds (Holm over their 6), and whether Max
Exploitability falls at every step.

    python experiments/reference/bpg/confirmatory-N100/analyse.py [--runs results/bpg-n100-confirm/runs]

Refuses to run unless every BPG trial of seeds 12-35 is finished (no interim looks). Writes
``confirmatory.json`` with a manifest beside this file (``--write``).
"""

import argparse
import json
import pathlib

import numpy as np

from auctionsim import runs, stats

EPSILONS = (0.75, 0.5, 0.25, 0.0)
CONFIRMATORY_SEEDS = tuple(range(12, 36))
HYPOTHESES = (  # (metric, result key, higher epsilon, lower epsilon)
    ("max_exploitability", "max_exploitability_lower", 0.75, 0.5),
    ("welfare", "welfare", 0.25, 0.0),
)


def load(folder: pathlib.Path, seeds) -> dict[tuple[float, int], dict]:
    found = {}
    for epsilon in EPSILONS:
        for seed in seeds:
            path = folder / f"bpg-eps{epsilon:g}-N100-seed{seed}" / "result.json"
            if path.is_file():
                runs.verify_manifest(path)
                found[epsilon, seed] = json.loads(path.read_text())
    return found


def grid(results: dict, epsilon: float, seeds, key: str) -> np.ndarray:
    return np.array([results[epsilon, seed][key] for seed in seeds], dtype=np.float64)


def confirmatory(results: dict, seeds) -> list[dict]:
    scores = {f"{metric} eps={eps:g}": grid(results, eps, seeds, key) for metric, key, high, low in HYPOTHESES for eps in (high, low)}
    pairs = [(f"{metric} eps={high:g}", f"{metric} eps={low:g}") for metric, _, high, low in HYPOTHESES]
    tests = []
    for comparison in stats.compare(scores, pairs):
        record = comparison.to_dict()
        record["confirmed"] = bool(record["p_holm"] < 0.05 and record["difference"]["mean"] > 0)
        tests.append(record)
    return tests


def secondary(results: dict, seeds) -> dict:
    rows = {f"eps={eps:g}": {m: stats.grid_mean(grid(results, eps, seeds, key)).to_dict() for m, key in (("welfare", "welfare"), ("max_exploitability", "max_exploitability_lower"))} for eps in EPSILONS}
    scores = {f"{m} eps={eps:g}": grid(results, eps, seeds, key) for m, key in (("welfare", "welfare"), ("max_exploitability", "max_exploitability_lower")) for eps in EPSILONS}
    pairs = [(f"{m} eps={a:g}", f"{m} eps={b:g}") for m in ("welfare", "max_exploitability") for a, b in zip(EPSILONS, EPSILONS[1:])]
    adjacent = [c.to_dict() for c in stats.compare(scores, pairs)]
    means = [rows[f"eps={eps:g}"]["max_exploitability"]["mean"] for eps in EPSILONS]
    return {"seeds": list(seeds), "rows": rows, "adjacent": adjacent, "max_exploitability_falls_at_every_step": all(a > b for a, b in zip(means, means[1:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="results/bpg-n100-confirm/runs", help="folder of the finished trials (seeds 0-35)")
    parser.add_argument("--write", action="store_true", help="write confirmatory.json (with a manifest) beside this script")
    options = parser.parse_args()
    folder = pathlib.Path(options.runs)
    results = load(folder, range(36))
    missing = [f"eps={eps:g} seed {seed}" for eps in EPSILONS for seed in CONFIRMATORY_SEEDS if (eps, seed) not in results]
    if missing:
        raise SystemExit(f"{len(missing)} of {len(EPSILONS) * len(CONFIRMATORY_SEEDS)} confirmatory BPG trials are not finished under {folder} (first: {missing[0]}); the test is computed once, when all are in")
    every_seed = [seed for seed in range(36) if all((eps, seed) in results for eps in EPSILONS)]
    report = {"hypotheses": confirmatory(results, CONFIRMATORY_SEEDS), "confirmatory_seeds": list(CONFIRMATORY_SEEDS), "secondary": secondary(results, every_seed)}
    for test in report["hypotheses"]:
        d = test["difference"]
        print(f"{test['a']} - {test['b']}: {d['mean']:+.5g} [{d['low']:+.5g}, {d['high']:+.5g}], p {test['p_value']:.3g}, Holm p {test['p_holm']:.3g}: {'confirmed' if test['confirmed'] else 'not confirmed'}")
    print(json.dumps(report["secondary"], indent=1))
    if options.write:
        path = pathlib.Path(__file__).with_name("confirmatory.json")
        runs.atomic_write_json(path, report)
        runs.write_manifest(path, config={"runs": str(folder), "hypotheses": [list(h) for h in HYPOTHESES], "confirmatory_seeds": list(CONFIRMATORY_SEEDS)})


if __name__ == "__main__":
    main()
