"""Every Python snippet of the README runs as printed (in a temporary folder) and finishes."""

from __future__ import annotations

import pathlib
import re
import shutil

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
NEEDS_RAY = ("build_algo", "rllib")


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 6


@pytest.mark.parametrize("index", range(len(SNIPPETS)), ids=lambda i: f"snippet{i}")
def test_readme_snippet_runs(index, tmp_path, monkeypatch, request):
    code = SNIPPETS[index]
    results = pathlib.Path.home() / "ray_results"
    existed = set(results.iterdir()) if results.exists() else None
    if any(word in code for word in NEEDS_RAY):
        request.getfixturevalue("ray_instance")  # one Ray for the session, not one per snippet
        pytest.importorskip("ray.rllib")
    if "stable_baselines3" in code:
        pytest.importorskip("stable_baselines3")
    if "stable_baselines3" in code or "torch" in code or "bpg" in code:
        torch = pytest.importorskip("torch")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small networks on a shared 2-core machine: one thread is fastest
        request.addfinalizer(lambda: torch.set_num_threads(threads))
    monkeypatch.chdir(tmp_path)  # snippets that save files save them here
    try:
        exec(compile(code, f"README.md python snippet {index}", "exec"), {"__name__": f"readme_snippet_{index}"})
    finally:
        # RLlib algorithms make a trial folder under ~/ray_results: leave no files behind.
        if results.exists():
            for folder in set(results.iterdir()) - (existed or set()):
                shutil.rmtree(folder, ignore_errors=True)
            if existed is None and not any(results.iterdir()):
                results.rmdir()
