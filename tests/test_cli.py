"""The ``auctionsim`` command line: simulate, dataset, plot and experiment forwarding."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from agents.datasets import OfflineDataset
from auctionsim import runs
from auctionsim.errors import ConfigError
from experiments import cli

SMALL = ["--set", "impressions_per_episode=20000", "--set", "n_ticks=6"]


def test_simulate_prints_and_saves_the_episode(tmp_path, capsys):
    output = tmp_path / "run.json"
    assert cli.main(["simulate", *SMALL, "--population", "pid", "--episodes", "2", "--seed", "5", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "episode 1 (seed 6" in printed and "saved" in printed
    payload = json.loads(output.read_text())
    assert payload["population"] == "pid" and [e["summary"]["seed"] for e in payload["episodes"]] == [5, 6]
    advertisers = payload["episodes"][0]["advertisers"]
    spend = np.asarray(advertisers["spend"])
    assert spend.shape == (48,) and np.all(spend <= np.asarray(advertisers["budget"]) + 1e-9)


def test_simulate_is_deterministic_under_its_seed(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        cli.main(["simulate", *SMALL, "--seed", "3", "--output", str(path)])
    first, second = (json.loads(p.read_text())["episodes"][0]["advertisers"] for p in paths)
    assert first == second


def test_dataset_writes_a_loadable_npz(tmp_path):
    output = tmp_path / "logs.npz"
    assert cli.main(["dataset", *SMALL, "--episodes", "2", "--noise", "0.2", "--output", str(output)]) == 0
    logs = OfflineDataset.load(output)
    assert logs.observations.shape == (2, 7, 48, 24)  # (episodes, ticks + 1, advertisers, 18 + 6 categories)
    assert np.isfinite(logs.rewards).all() and logs.live[:, 0].all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--set", "warp=9"], "FIELD one of"),
        (["simulate", "--set", "reserve_price=-1"], "reserve_price"),
    ],
)
def test_bad_settings_exit_2_naming_the_field(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["simulate", "--bogus"])
    assert stop.value.code == 2 and "--bogus" in capsys.readouterr().err


@pytest.mark.parametrize("experiment", sorted(cli.EXPERIMENTS))
def test_experiments_receive_their_own_flags(experiment, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([experiment, "--help"])
    assert stop.value.code == 0 and "--quick" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        cli.main([experiment, "--no-such-flag"])
    assert stop.value.code == 2 and "--no-such-flag" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 17: CLI inputs, outputs, crash safety
@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", *SMALL, "--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["dataset", *SMALL, "--episodes", "0", "--output", "x.npz"], "--episodes must be >= 1, got 0"),
        (["simulate", "--set", "n_ticks=abc"], "--set n_ticks must be an integer"),
        (["simulate", "--set", "impressions_per_episode=1e30"], "--set impressions_per_episode must be an integer below 2**62"),
        (["simulate", "--set", "n_ticks=2.5"], "--set n_ticks must be an integer"),
        (["simulate", "--set", "reserve_price=abc"], "--set reserve_price must be a number"),
        (["simulate", *SMALL, "--rows", "-5"], "--rows must be >= 0, got -5"),
        (["dataset", *SMALL, "--noise", "-1", "--output", "x.npz"], "--noise must be >= 0.0, got -1.0"),
        (["dataset", *SMALL, "--noise", "nan", "--output", "x.npz"], "--noise must be finite"),
        (["dataset", *SMALL, "--output", "x.json"], "--output must end in .npz"),
        (["bpg", "--iterations", "-1"], "iterations must be >= 1, got -1"),
    ],
)
def test_bad_cli_inputs_give_one_line_and_status_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # refused before any work or output


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("")
    for argv, message in (
        (["dataset", *SMALL, "--output", str(tmp_path / "folder.npz")], "is a folder"),
        (["dataset", *SMALL, "--output", str(tmp_path / "file" / "x.npz")], "is a file"),
        (["simulate", *SMALL, "--output", str(tmp_path / "file" / "x.json")], "is a file"),
    ):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "episode 0" not in captured.out  # no episode was played


def test_simulate_and_dataset_write_a_manifest_beside_the_result(tmp_path):
    json_path, npz_path = tmp_path / "run.json", tmp_path / "logs.npz"
    assert cli.main(["simulate", *SMALL, "--episodes", "2", "--output", str(json_path)]) == 0
    assert cli.main(["dataset", *SMALL, "--episodes", "2", "--output", str(npz_path)]) == 0
    for path, seeds in ((json_path, [0, 1]), (npz_path, [0, 1])):
        manifest = runs.verify_manifest(path)
        assert manifest["config"]["episodes"] == 2 and manifest["seeds"] == {"episodes": seeds}
        assert manifest["clock"]["wall_seconds"] > 0 and path.name in manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([json_path.name, npz_path.name, f"{json_path.name}.manifest.json", f"{npz_path.name}.manifest.json", ".run.json.lock", ".logs.npz.lock"])


def test_a_second_run_on_a_locked_output_is_refused(tmp_path, capsys):
    output = tmp_path / "logs.npz"
    with runs.OutputLock(output):
        # flock locks are per open file description: a second open in this process conflicts too
        assert cli.main(["dataset", *SMALL, "--output", str(output)]) == 2
    assert "is in use by process" in capsys.readouterr().err and not output.exists()


_KILLER = """
import os, signal, sys
import numpy as np
import agents.datasets as datasets
from experiments import cli

point, argv = sys.argv[1], sys.argv[2:]
calls = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-collection":  # while playing the third episode (two are checkpointed)
    original = datasets.play_episode
    def play(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            die()
        return original(*args, **kwargs)
    datasets.play_episode = play
elif point == "mid-checkpoint-save":  # half-way through writing the second episode's shard
    original_savez = np.savez
    def savez(path, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            with open(path, "wb") as handle:
                handle.write(b"PK\\x03\\x04 partial")
                handle.flush()
            die()
        return original_savez(path, **arrays)
    np.savez = savez
elif point == "mid-save":  # half-way through writing the dataset itself
    def savez_compressed(path, **arrays):
        with open(path, "wb") as handle:
            handle.write(b"PK\\x03\\x04 partial")
            handle.flush()
        die()
    np.savez_compressed = savez_compressed
elif point == "before-manifest":  # the dataset is in place, its manifest not yet
    from auctionsim import runs
    original_manifest = runs.write_manifest
    def write_manifest(result, *args, **kwargs):
        if str(result).endswith("logs.npz"):  # the dataset's manifest, not a checkpoint shard's
            die()
        return original_manifest(result, *args, **kwargs)
    runs.write_manifest = write_manifest
cli.main(argv)
"""


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("point", ["mid-collection", "mid-checkpoint-save", "mid-save", "before-manifest"])
def test_dataset_killed_at_any_point_resumes_to_the_uninterrupted_result(point, tmp_path):
    import signal
    import subprocess
    import sys

    flags = [*SMALL, "--set", "impressions_per_episode=6000", "--episodes", "4", "--noise", "0.2", "--seed", "3"]
    reference = tmp_path / "reference.npz"
    assert cli.main(["dataset", *flags, "--output", str(reference)]) == 0
    output = tmp_path / "out" / "logs.npz"
    previous_good = b"previous good dataset"
    if point == "mid-save":  # a previous good file must survive a kill during the new save
        output.parent.mkdir()
        output.write_bytes(previous_good)
    killed = subprocess.run([sys.executable, "-c", _KILLER, point, "dataset", *flags, "--output", str(output)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point == "mid-save":
        assert output.read_bytes() == previous_good  # untouched
    elif point != "before-manifest":
        assert not output.exists()  # nothing partial under the output's name
    assert cli.main(["dataset", *flags, "--output", str(output), "--resume"]) == 0
    assert sorted(p.name for p in output.parent.iterdir()) == [".logs.npz.lock", "logs.npz", "logs.npz.manifest.json"]
    expected, resumed = _arrays(reference), _arrays(output)
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)


def test_dataset_resume_refuses_a_changed_config_and_extends_more_episodes(tmp_path, capsys):
    flags = [*SMALL, "--set", "impressions_per_episode=6000", "--noise", "0.1"]
    output = tmp_path / "logs.npz"
    assert cli.main(["dataset", *flags, "--episodes", "2", "--output", str(output)]) == 0
    assert cli.main(["dataset", *flags, "--episodes", "2", "--noise", "0.3", "--output", str(output), "--resume"]) == 2
    assert "noise: 0.1 -> 0.3" in capsys.readouterr().err
    assert cli.main(["dataset", *flags, "--episodes", "1", "--output", str(output), "--resume"]) == 2
    assert "episodes: 2 -> 1" in capsys.readouterr().err
    assert cli.main(["dataset", *flags, "--episodes", "3", "--output", str(output), "--resume"]) == 0
    reference = tmp_path / "reference.npz"
    assert cli.main(["dataset", *flags, "--episodes", "3", "--output", str(reference)]) == 0
    for name, value in _arrays(reference).items():
        np.testing.assert_array_equal(_arrays(output)[name], value, err_msg=name)
    assert cli.main(["dataset", *flags, "--episodes", "3", "--output", str(tmp_path / "none.npz"), "--resume"]) == 2
    assert "run without --resume" in capsys.readouterr().err


def test_help_shows_defaults_and_names_the_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: auctionsim simulate") and "(default: 48)" in out and "(default: auctionnet)" in out
    for experiment in sorted(cli.EXPERIMENTS):
        with pytest.raises(SystemExit):
            cli.main([experiment, "--help"])
        assert capsys.readouterr().out.startswith(f"usage: auctionsim {experiment}")


def test_a_crafted_pickle_in_a_dataset_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (tmp_path / "pwned",))

    crafted = tmp_path / "crafted.npz"
    np.savez(crafted, metadata=np.array([Payload()], dtype=object))
    with pytest.raises(ConfigError, match="refusing to unpickle"):
        OfflineDataset.load(crafted)
    assert not (tmp_path / "pwned").exists()
