"""The examples run (small settings) and do what they say."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_bidder_example(capsys):
    example = _load("custom_bidder")
    assert example.single_bidder_seat(seed=1) > 0
    example.quarter_of_the_market(seed=1)
    assert "day-parting" in capsys.readouterr().out


def test_parallel_random_example(capsys):
    example = _load("parallel_random")
    example.dict_api(seed=2)
    assert "random agents" in capsys.readouterr().out


def test_train_tiny_policy_example_learns_shape():
    example = _load("train_tiny_policy")
    returns = example.train(episodes=4, seed=3)
    assert len(returns) == 4 and np.all(np.isfinite(returns))
