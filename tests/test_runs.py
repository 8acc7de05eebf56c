"""auctionsim.runs: manifests, atomic writes, output locks, output checks, resume checks."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from auctionsim import runs
from auctionsim.runs import RunError


@dataclass
class Config:
    episodes: int = 3
    noise: float = 0.1
    seeds: tuple[int, ...] = (0, 1)


def test_manifest_beside_a_file_records_config_seeds_versions_clock_and_hash(tmp_path):
    result = tmp_path / "result.json"
    result.write_text("{}")
    clock = runs.RunClock()
    path = runs.write_manifest(result, Config(), seeds={"eval": [100, 101]}, clock=clock, command=["auctionsim", "x"])
    assert path == tmp_path / "result.json.manifest.json"
    data = json.loads(path.read_text())
    assert data["schema"] == runs.MANIFEST_SCHEMA and data["command"] == ["auctionsim", "x"]
    assert data["config"] == {"episodes": 3, "noise": 0.1, "seeds": [0, 1]} and data["seeds"] == {"eval": [100, 101]}
    assert {"auctionsim", "numpy", "numba", "torch", "ray", "gymnasium", "pettingzoo"} <= set(data["packages"])
    assert data["packages"]["numpy"] is not None
    assert data["git"] is None or {"commit", "dirty"} <= set(data["git"])
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["cpu"]
    assert {"started", "ended", "wall_seconds", "cpu_seconds"} <= set(data["clock"])
    assert data["files"]["result.json"]["bytes"] == 2
    assert runs.read_manifest(result)["config"]["episodes"] == 3


def test_manifest_records_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A long run's checkout may move on before its results are written: the manifest's git is
    the state when the clock started, and the state at writing is kept beside it."""
    states = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(runs, "_git_state", lambda: next(states))
    clock = runs.RunClock()
    result = tmp_path / "result.json"
    result.write_text("{}")
    data = json.loads(runs.write_manifest(result, Config(), clock=clock).read_text())
    assert data["git"] == {"commit": "a" * 40, "dirty": False} and data["git_at_write"] == {"commit": "b" * 40, "dirty": True}


def test_manifest_of_a_folder_lists_every_file_and_verifies_hashes(tmp_path):
    (tmp_path / "a.json").write_text("1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.npz").write_bytes(b"xyz")
    runs.write_manifest(tmp_path, {"k": 1})
    data = runs.verify_manifest(tmp_path)
    assert set(data["files"]) == {"a.json", "sub/b.npz"}
    (tmp_path / "sub" / "b.npz").write_bytes(b"tampered")
    with pytest.raises(RunError, match="differs"):
        runs.verify_manifest(tmp_path, ["sub/b.npz"])
    with pytest.raises(RunError, match="not listed"):
        runs.verify_manifest(tmp_path, ["c.pkl"])


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "out.json"
    runs.atomic_write_json(path, {"a": (1, 2)})
    assert json.loads(path.read_text()) == {"a": [1, 2]}

    def failing(temporary):
        temporary.write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(path, failing)
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "run"
    with runs.atomic_directory(target) as folder:
        (folder / "x.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with runs.atomic_directory(target) as folder:
            (folder / "x.txt").write_text("second")
            raise RuntimeError("killed")
    assert (target / "x.txt").read_text() == "first"
    with runs.atomic_directory(target) as folder:
        (folder / "y.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["y.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("recover_with", ["atomic_directory", "lock"])
def test_a_kill_between_the_two_renames_keeps_the_previous_folder(tmp_path, recover_with):
    # The state a SIGKILL leaves after atomic_directory moved the old folder aside but before it
    # renamed the new one in: nothing at the target, the old folder under a temporary name.
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("good")
    os.replace(target, tmp_path / ".out.tmp-previous-4242")
    (tmp_path / ".out.tmp-abcd").mkdir()
    if recover_with == "lock":
        with runs.OutputLock(target):
            pass
    else:
        with pytest.raises(RuntimeError):
            with runs.atomic_directory(target):
                raise RuntimeError("the next run fails too")
    assert (target / "a.txt").read_text() == "good"
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_output_lock_refuses_a_second_process_and_is_freed_by_a_kill(tmp_path):
    output = tmp_path / "results"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from auctionsim.runs import OutputLock
            with OutputLock({str(output)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"in use by process {holder.pid}"):
            runs.OutputLock(output).acquire()
    finally:
        holder.kill()
        holder.wait()
    with runs.OutputLock(output):  # the kernel released the dead holder's lock
        pass


def test_output_checks_refuse_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="is a folder"):
        runs.check_output_file(tmp_path / "folder")
    with pytest.raises(RunError, match="must end in .npz"):
        runs.check_output_file(tmp_path / "x.json", suffix=".npz")
    with pytest.raises(RunError, match="is a file"):
        runs.check_output_file(tmp_path / "file" / "x.npz")
    with pytest.raises(RunError, match="is a file"):
        runs.check_output_dir(tmp_path / "file")
    assert runs.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "readonly"
        locked.mkdir(mode=0o500)
        with pytest.raises(RunError, match="not writable"):
            runs.check_output_dir(locked / "out")


def test_check_resume_extends_growing_fields_and_refuses_other_changes():
    previous = {"iterations": 10, "training_seeds": 3, "lr": 0.1, "output_dir": "a", "resume": False}
    assert runs.check_resume(None, previous) == {}
    assert runs.check_resume(previous, dict(previous, resume=True, output_dir="b"), ignored={"resume", "output_dir"}) == {}
    extended = runs.check_resume(previous, dict(previous, iterations=20, training_seeds=5), extendable={"iterations", "training_seeds"})
    assert extended == {"iterations": (10, 20), "training_seeds": (3, 5)}
    with pytest.raises(RunError, match=r"lr: 0.1 -> 0.2"):
        runs.check_resume(previous, dict(previous, lr=0.2), extendable={"iterations"}, ignored={"resume", "output_dir"})
    with pytest.raises(RunError, match="iterations: 10 -> 5"):
        runs.check_resume(previous, dict(previous, iterations=5), extendable={"iterations"}, ignored={"resume", "output_dir"})


def test_check_resume_grows_list_grids_and_accepts_new_fields_left_at_their_default():
    @dataclass
    class Config:
        epsilons: tuple = (0.5, 0.0)
        lr: float = 0.1
        dual_step: float = 0.0  # added after the previous run

    previous = {"epsilons": [0.5, 0.0], "lr": 0.1}
    assert runs.check_resume(previous, Config()) == {}  # dual_step absent before, default now
    with pytest.raises(RunError, match="dual_step"):
        runs.check_resume(previous, Config(dual_step=0.25))  # a new field set to a new value changes results
    grown = Config(epsilons=(0.75, 0.5, 0.25, 0.0))
    assert runs.check_resume(previous, grown, extendable={"epsilons"}) == {"epsilons": ([0.5, 0.0], [0.75, 0.5, 0.25, 0.0])}
    with pytest.raises(RunError, match="epsilons"):
        runs.check_resume(previous, Config(epsilons=(0.75, 0.5)), extendable={"epsilons"})  # 0.0 dropped: not an extension
    with pytest.raises(RunError, match="epsilons"):
        runs.check_resume(previous, grown)  # not extendable


def test_clean_stale_ray_sessions_removes_only_dead_ones(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"session_2026-01-01_00-00-00_000000_{dead}"
    live = tmp_path / f"session_2026-01-01_00-00-01_000000_{os.getpid()}"
    for folder in (stale, live):
        folder.mkdir()
    (tmp_path / "session_latest").symlink_to(live)
    assert runs.clean_stale_ray_sessions(tmp_path) == [stale]
    assert live.exists() and not stale.exists() and (tmp_path / "session_latest").exists()


def test_run_folder_records_running_then_complete_and_checks_resume(tmp_path):
    output = tmp_path / "exp"
    with runs.run_folder(output, {"iterations": 2, "lr": 0.1, "resume": False}) as run:
        assert runs.read_manifest(output)["status"] == "running"
        runs.atomic_write_json(run.path / "result.json", {"x": 1})
        run.seeds = {"training": [0, 1]}
    data = runs.read_manifest(output)
    assert data["status"] == "complete" and data["seeds"] == {"training": [0, 1]} and "result.json" in data["files"]
    with runs.run_folder(output, {"iterations": 4, "lr": 0.1, "resume": True}, resume=True, extendable={"iterations"}) as run:
        assert run.extended == {"iterations": (2, 4)} and run.previous["config"]["iterations"] == 2
    with pytest.raises(RunError, match="lr: 0.1 -> 0.3"):
        with runs.run_folder(output, {"iterations": 4, "lr": 0.3, "resume": True}, resume=True):
            pass
    with pytest.raises(RunError, match="no run to resume"):
        with runs.run_folder(tmp_path / "empty", {}, resume=True):
            pass
    with pytest.raises(RuntimeError):
        with runs.run_folder(output, {"iterations": 9}):
            raise RuntimeError("killed")
    assert runs.read_manifest(output)["status"] == "running"  # an interrupted run says so


def test_clean_stale_ray_sessions_removes_private_roots_of_killed_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    killed_root, live_root, starting_root = tmp_path / "ray-killed", tmp_path / "ray-live", tmp_path / "ray-starting"
    (killed_root / f"session_2026-01-01_00-00-00_000000_{dead}").mkdir(parents=True)
    (live_root / f"session_2026-01-01_00-00-00_000000_{os.getpid()}").mkdir(parents=True)
    starting_root.mkdir()
    assert runs.clean_stale_ray_sessions() == [killed_root]
    assert live_root.exists() and starting_root.exists()


def test_write_json_result_puts_a_manifest_beside_the_file(tmp_path):
    path = runs.write_json_result(tmp_path / "bench.json", {"benchmark": "x", "rate": 1.5}, {"repeats": 3}, clock=runs.RunClock())
    assert json.loads(path.read_text()) == {"benchmark": "x", "rate": 1.5}
    assert runs.verify_manifest(path)["config"] == {"repeats": 3}
