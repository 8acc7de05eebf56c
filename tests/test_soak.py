"""The memory-soak guard (benchmarks/soak.py): it must flag a leak it is shown, pass a flat run,
and print its table and JSON line on the real targets."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

SOAK_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("soak_benchmark", SOAK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GUARD_CHECK = """
import importlib.util, json, sys, types
import numpy as np
spec = importlib.util.spec_from_file_location("soak_benchmark", sys.argv[1])
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)
kept = []
soak.TARGETS["leaky"] = lambda: (lambda index: None, lambda index: kept.append(types.SimpleNamespace(tick=np.ones(64 * 1024 // 8))))
soak.TARGETS["flat"] = lambda: (lambda index: None, lambda index: np.ones(64 * 1024 // 8).sum())
print(json.dumps([soak.soak(name, 12, threshold_kib=1.0, progress=False) for name in ("leaky", "flat")]))
"""


def test_the_guard_flags_a_leak_and_passes_a_flat_run():
    """In a fresh process, as the benchmark runs (inside a long test session the allocator
    reuses freed memory and RSS need not grow): a leak of 64 KiB and one Python object per
    episode is flagged by both measures; a run that frees what it allocates passes."""
    result = subprocess.run([sys.executable, "-c", GUARD_CHECK, str(SOAK_PATH)], capture_output=True, text=True, timeout=300, check=True)
    leak, flat = json.loads(result.stdout.splitlines()[-1])
    assert not leak["passed"] and leak["slope_95_low"] > 32 and leak["python_objects_end"] > leak["python_objects_after_warm_up"]
    assert flat["passed"] and flat["fds_end"] == flat["fds_start"]


def test_soak_prints_a_table_and_a_json_line(soak, capsys):
    soak.main(["--market-episodes", "2", "--env-episodes", "1"])  # the verdict of so short a run is noise
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["target", "episodes", "s/ep"]
    assert [line.split()[0] for line in out[1:5]] == list(soak.TARGETS)
    summary = json.loads(out[-1].removeprefix("JSON "))
    assert summary["benchmark"] == "soak" and summary["threshold_kib_per_episode"] == 1.0
    assert [row["episodes"] for row in summary["results"]] == [2, 1, 1, 1]
    assert summary["passed"] == all(row["passed"] for row in summary["results"])
