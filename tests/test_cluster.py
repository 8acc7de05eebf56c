"""Multi-node Ray (auctionsim.cluster): a token-authenticated cluster running code shipped to its
workers, and the project's parallel work on a simulated three-node cluster
(``ray.cluster_utils.Cluster``): exploitability tasks, BPG with remote EnvRunners and Learners, and
dataset shards. Every result is compared with the same computation on one node.

One cluster for the module (starting nodes costs seconds each); session files live in private
temp folders removed afterwards, and only the tests' own processes are stopped."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest
import yaml

from auctionsim import cluster as ray_cluster
from auctionsim.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(impressions_per_episode=2_000, n_ticks=6)


# ---------------------------------------------------------------------- no Ray needed
def test_runtime_env_ships_the_three_packages_and_excludes_caches():
    environment = ray_cluster.runtime_env({"OMP_NUM_THREADS": 1})
    assert environment["py_modules"] == [str(ROOT / name) for name in ("auctionsim", "agents", "experiments")]
    for pattern in ("__pycache__", "*.nbi", "*.nbc", "results", ".venv", ".git"):
        assert pattern in environment["excludes"]
    assert environment["env_vars"] == {"OMP_NUM_THREADS": "1"}


def test_map_tasks_refuses_bad_resources_before_starting_anything():
    with pytest.raises(ConfigError, match="num_gpus"):
        ray_cluster.map_tasks(abs, [1], num_gpus=-1)
    with pytest.raises(ConfigError, match="num_cpus"):
        ray_cluster.init_ray(num_cpus=0)


def test_sample_cluster_configs_parse_and_hold_the_required_fields():
    """docs/cluster.yaml (``ray up``) and docs/raycluster.yaml (KubeRay) are valid YAML with the
    fields Ray's autoscaler and KubeRay's RayCluster require, and start Ray with token auth."""
    up = yaml.safe_load((ROOT / "docs" / "cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type", "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in up, key
    assert up["head_node_type"] in up["available_node_types"]
    for name, node in up["available_node_types"].items():
        assert {"node_config", "resources"} <= node.keys(), name
        if name != up["head_node_type"]:
            assert node["min_workers"] <= node["max_workers"], name
    assert up["max_workers"] >= sum(node.get("max_workers", 0) for name, node in up["available_node_types"].items() if name != up["head_node_type"])
    commands = " ".join(up["head_start_ray_commands"] + up["worker_start_ray_commands"] + up.get("setup_commands", []))
    assert "RAY_AUTH_MODE=token" in commands and "ray start --head" in commands and "ray start --address" in commands
    assert "AUCTIONSIM_CHECKPOINT_KEY" in commands

    kuberay = yaml.safe_load((ROOT / "docs" / "raycluster.yaml").read_text())
    assert kuberay["apiVersion"].startswith("ray.io/") and kuberay["kind"] == "RayCluster" and kuberay["metadata"]["name"]
    spec = kuberay["spec"]
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    assert spec["workerGroupSpecs"], "at least one worker group"
    for group in spec["workerGroupSpecs"]:
        assert {"groupName", "rayStartParams", "template", "replicas", "minReplicas", "maxReplicas"} <= group.keys()
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["template"]["spec"]["containers"][0]["image"]
    for pod in [head, *spec["workerGroupSpecs"]]:
        variables = {item["name"] for item in pod["template"]["spec"]["containers"][0].get("env", [])}
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "AUCTIONSIM_CHECKPOINT_KEY"} <= variables

def test_gpu_check_prints_cpu_figures_and_skips_what_is_missing(capsys, monkeypatch):
    """benchmarks/gpu.py on this CPU-only machine: a real row (IQL) gets CPU seconds, the GPU
    column is skipped with its reason, a row whose component is missing is skipped, not failed."""
    import json

    import torch

    from benchmarks import gpu

    def absent(device, steps):
        import agents.not_merged_yet  # noqa: F401  (a component of a branch not merged here)

    monkeypatch.setitem(gpu.ROWS, "absent", ("Absent component", absent))
    payload = gpu.main(["--rows", "iql", "absent", "--steps", "1", "--devices", "cpu"])
    out = capsys.readouterr().out
    assert "IQL steps" in out and "Absent component" in out
    iql, missing = payload["results"]
    assert iql["cpu"]["seconds"] > 0 and "20 steps" in iql["cpu"]["work"]
    assert "ModuleNotFoundError" in missing["cpu"]["skipped"]
    if not torch.cuda.is_available():
        assert iql["cuda"] == {"skipped": "no CUDA device"}
    assert json.loads(next(line for line in out.splitlines() if line.startswith("JSON "))[5:])["results"] == payload["results"]


_TOKEN_CLUSTER = """
import json, os, pathlib, sys
from ray.cluster_utils import Cluster
from auctionsim.cluster import init_ray, map_tasks

def shipped(item):
    # The package folders this task received (sys.path entries Ray added for py_modules).
    folders = {}
    for entry in sys.path:
        if "runtime_resources" in entry and "py_modules" in entry:
            for package in pathlib.Path(entry).iterdir():
                folders[package.name] = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    return folders

nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": os.environ["RAY_TMPDIR"], "include_dashboard": False})
try:
    nodes.add_node(num_cpus=1)
    init_ray(address=nodes.address)  # joining a cluster ships the code by default
    results, where = map_tasks(shipped, range(4))
    print("RESULT " + json.dumps({"nodes": len(set(where)), "shipped": results[0]}))
finally:
    import ray
    ray.shutdown()
    nodes.shutdown()
"""


def test_token_authenticated_cluster_runs_the_shipped_code_on_two_nodes():
    """As on a real Ray 2.60 cluster: nodes and driver authenticate with a token (set before Ray is
    imported), the driver joins through :func:`init_ray`, which ships the three packages without
    caches, and tasks run on both nodes."""
    import json
    import subprocess
    import sys

    temp_dir = pathlib.Path(tempfile.mkdtemp(prefix="ray-token-tests-"))  # short: Ray's socket paths have a length limit
    (temp_dir / "ray").mkdir()
    environment = {**os.environ, "RAY_TMPDIR": str(temp_dir), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(), "HOME": str(temp_dir)}
    environment.pop("RAY_ADDRESS", None)
    try:
        run = subprocess.run([sys.executable, "-c", _TOKEN_CLUSTER], env=environment, cwd=temp_dir, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT ") :])
    assert result["nodes"] == 2
    assert set(result["shipped"]) == {"auctionsim", "agents", "experiments"}
    for package, files in result["shipped"].items():
        sources = sorted(str(path.relative_to(ROOT / package)) for path in (ROOT / package).rglob("*.py") if "__pycache__" not in path.parts)
        assert [name for name in files if name.endswith(".py")] == sources, package
        assert not [name for name in files if "__pycache__" in name or name.endswith((".nbi", ".nbc", ".pyc"))], package


# ---------------------------------------------------------------------- a simulated cluster
@pytest.fixture(scope="module")
def cluster():
    """Three nodes of two logical CPUs, the driver joined through :func:`auctionsim.cluster.init_ray`
    (``ship_code=False``: the nodes run on this machine and share the checkout's compiled Numba
    kernels; shipping and token authentication are tested in a process of their own below)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.skip("a Ray instance of another test module is still running; run tests/test_cluster.py in a process of its own")
    temp_dir = tempfile.mkdtemp(prefix="ray-cluster-tests-")
    (pathlib.Path(temp_dir) / "ray").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        # Ray writes the cluster's address under $RAY_TMPDIR/ray: keep it out of /tmp/ray, where
        # other Ray users on this machine look for theirs.
        patch.setenv("RAY_TMPDIR", temp_dir)
        patch.setenv("RAY_AUTH_MODE", "disabled")  # Ray reads it at import: see the token test below
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "temp_dir": temp_dir, "include_dashboard": False})
        try:
            for _ in range(2):
                nodes.add_node(num_cpus=2)
            assert ray_cluster.init_ray(address=nodes.address, ship_code=False)
            assert len([node for node in ray.nodes() if node["Alive"]]) == 3
            yield nodes
        finally:
            ray.shutdown()
            nodes.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.cluster
def test_exploitability_tasks_spread_over_nodes_equal_the_serial_run(cluster):
    from agents.baselines import PIDPacing
    from agents.bpg import market_spec
    from agents.equilibrium import ExploitabilityConfig, GridBestResponse, evaluate_exploitability

    spec = market_spec(4, **TINY)
    settings = dict(eval_seeds=(5,), fit_seeds=(1,), estimators=(GridBestResponse((0.5, 1.0, 1.5), periods=1),), max_advertisers=None, progress=False)
    spread = evaluate_exploitability(PIDPacing(), spec, config=ExploitabilityConfig(backend="ray", **settings))
    serial = evaluate_exploitability(PIDPacing(), spec, config=ExploitabilityConfig(backend="serial", **settings))
    nodes = spread.metadata["task_nodes"]
    assert sum(nodes.values()) == 4 and len(nodes) >= 2, nodes
    for bound in ("lower", "upper"):
        np.testing.assert_array_equal(spread.deviation_returns(bound), serial.deviation_returns(bound))
    np.testing.assert_array_equal(spread.population_returns, serial.population_returns)


@pytest.mark.cluster
def test_dataset_shards_in_parallel_equal_the_serial_dataset_and_resume(cluster, tmp_path):
    from agents.datasets import SHARD_PATTERN, collect_dataset
    from agents.populations import named_population
    from auctionsim.envs import AuctionParallelEnv
    from auctionsim.runs import manifest_path

    env = AuctionParallelEnv("auctionnet", reward="value", **TINY)
    policy = named_population("mixed", env.market.population.ids)
    settings = dict(episodes=5, seed=4, action_noise=0.2, progress=False)
    serial = collect_dataset(env, policy, **settings)
    folder = tmp_path / "shards"
    parallel = collect_dataset(env, policy, **settings, backend="ray", shard_episodes=2, checkpoint_dir=folder)
    shards = sorted(folder.glob(SHARD_PATTERN))
    assert [path.name for path in shards] == ["episodes-000000-000002.npz", "episodes-000002-000004.npz", "episodes-000004-000005.npz"]
    assert all(manifest_path(path).is_file() for path in shards)
    # A killed run: one shard lost, one cut short (no manifest); the rest are kept, not replayed.
    shards[0].unlink()
    manifest_path(shards[1]).unlink()
    kept = shards[2].stat().st_mtime_ns
    resumed = collect_dataset(env, policy, **settings, backend="ray", shard_episodes=1, checkpoint_dir=folder)
    assert shards[2].stat().st_mtime_ns == kept
    for dataset in (parallel, resumed):
        for name in ("observations", "actions", "rewards", "spend", "seeds"):
            np.testing.assert_array_equal(getattr(dataset, name), getattr(serial, name), err_msg=name)


def _bpg_config(runners: int, learners: int):
    from agents.bpg import BPGConfig, market_spec

    settings = dict(seed=3, epsilon=0.0, episodes_per_kind=4, xstar_episodes=4, group_size=2, xstar_updates=1, xstar_pretrain_updates=1, nu_minibatch_size=16)
    return (
        BPGConfig().bpg(market=market_spec(3, **TINY), **settings).training(num_epochs=2, minibatch_size=16)
        .env_runners(num_env_runners=runners).learners(num_learners=learners)
    )  # fmt: skip


def _train(runners: int, learners: int, iterations: int):
    import ray

    algo = _bpg_config(runners, learners).build_algo()
    try:
        for _ in range(iterations):
            algo.train()
        node = lambda worker: ray.get_runtime_context().get_node_id()  # noqa: E731
        runner_nodes = algo.env_runner_group.foreach_env_runner(node, local_env_runner=False) if runners else []
        weights = algo.learner_group.get_weights()
        return algo, [dict(record) for record in algo.history], weights, runner_nodes
    except BaseException:
        algo.stop()
        raise


def _drop_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if not key.endswith("seconds") and key != "time_s"} for record in history]


@pytest.mark.cluster
def test_bpg_results_do_not_depend_on_the_number_of_env_runners_or_nodes(cluster):
    """The same two BPG iterations sampled in the driver and by two remote EnvRunners on other
    nodes: identical histories and weights (episodes are seeded per episode, split across runners)."""
    from agents.bpg.algorithm import group_shards

    local, local_history, local_weights, _ = _train(0, 0, 2)
    try:
        # group_shards keeps episode groups (group_size 2) whole on each learner.
        episodes = local._sample("deviation", 8, seed=11)
        shards = group_shards(episodes, 2)
        assert [len(shard) for shard in shards] == [4, 4]
        with pytest.raises(ConfigError, match="learners"):
            group_shards(episodes, 5)
    finally:
        local.stop()
    remote, remote_history, remote_weights, nodes = _train(2, 0, 2)
    remote.stop()
    assert len(set(nodes)) == 2, nodes
    assert _drop_timings(remote_history) == _drop_timings(local_history)
    for module, tensors in local_weights.items():
        for name, value in tensors.items():
            np.testing.assert_array_equal(np.asarray(remote_weights[module][name]), np.asarray(value), err_msg=f"{module}.{name}")


@pytest.mark.cluster
def test_bpg_with_two_remote_env_runners_and_two_remote_learners(cluster):
    """Data-parallel learners on whole episode groups: an iteration runs, the two learners hold the
    same weights afterwards, and the weights moved from their initial values."""
    algo, history, weights, nodes = _train(2, 2, 0)
    try:
        initial = {module: {name: np.array(value) for name, value in tensors.items()} for module, tensors in weights.items()}
        algo.train()
        assert np.isfinite(algo.history[-1]["welfare"]) and len(nodes) == 2
        def learner_weights(learner) -> dict:  # defined here: Ray pickles it by value (the actors cannot import this test module)
            return {module: {name: tensor.detach().cpu().numpy() for name, tensor in learner.module[module].unwrapped().state_dict().items()} for module in learner.module.keys()}

        per_learner = algo.learner_group.foreach_learner(learner_weights)
        states = [result.get() for result in per_learner]
        assert len(states) == 2
        for module in states[0]:
            for name, value in states[0][module].items():
                np.testing.assert_array_equal(np.asarray(states[1][module][name]), np.asarray(value), err_msg=f"{module}.{name}")
        after = algo.learner_group.get_weights()
        assert any(not np.array_equal(np.asarray(after["population"][name]), initial["population"][name]) for name in initial["population"])
    finally:
        algo.stop()


@pytest.mark.cluster
def test_cluster_benchmark_bpg_workload_and_table(cluster):
    """benchmarks/cluster.py's BPG workload (one remote EnvRunner and one dual task per node) on
    the test cluster, and its table's speed-up and efficiency."""
    from benchmarks import cluster as bench

    args = bench.parse_args(["--quick"])
    timed = bench.bpg_seconds(args, 2)
    assert timed["seconds"] > 0 and timed["dual_seconds"] > 0
    rows = [{"workload": "bpg", "nodes": 1, "cpus_per_node": 2, "seconds": 2 * timed["seconds"]}, {"workload": "bpg", "nodes": 2, "cpus_per_node": 2, **timed}]
    payload = {"cores": 2, "exploitability_n": args.exploitability_n, "bpg_n": args.bpg_n, "load_average": (1.0, 1.0, 1.0), "results": rows}
    lines = bench.table(payload).splitlines()
    assert rows[1]["speedup"] == pytest.approx(2.0) and rows[1]["efficiency"] == pytest.approx(1.0)
    assert lines[-1].split()[:4] == ["bpg", str(args.bpg_n), "2", "2"] and lines[-1].endswith("(nodes share cores)")
