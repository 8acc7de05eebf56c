"""The ``auctionsim`` command line: simulate, dataset, plot and experiment forwarding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.datasets import OfflineDataset
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
