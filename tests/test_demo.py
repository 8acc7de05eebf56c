"""`make demo` (experiments.demo): results, plot and a manifest covering every file it writes."""

import json

from auctionsim import runs
from experiments import demo


def test_demo_writes_a_manifest_beside_every_file(tmp_path):
    output = tmp_path / "demo"
    demo.main(["--output-dir", str(output), "--impressions-per-episode", "20000", "--seed", "2"])
    written = {str(p.relative_to(output)) for p in output.rglob("*") if p.is_file()}
    assert written == {"summary.json", "advertisers.csv", "ticks.npz", "day.png", "manifest.json"}
    manifest = runs.verify_manifest(output)  # every file listed, hashes match
    assert set(manifest["files"]) == written - {"manifest.json"}
    assert manifest["status"] == "complete" and manifest["seeds"] == {"episode": [2]}
    assert manifest["config"]["impressions_per_episode"] == 20000
    summary = json.loads((output / "summary.json").read_text())["summary"]
    assert summary["seed"] == 2 and summary["social_welfare"] > 0
