"""auctionsim.tracking: one seed_everything, TensorBoard scalars that a reader can load."""

import random

import numpy as np
import pytest
import torch

from auctionsim.errors import ConfigError
from auctionsim.tracking import ScalarLogger, seed_everything


def test_seed_everything_repeats_python_numpy_and_torch_draws():
    seed_everything(7)
    first = (random.random(), np.random.random(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == first
    seed_everything(2**40)  # larger than NumPy's global seed range: taken modulo 2**32
    with pytest.raises(ConfigError, match="seed"):
        seed_everything(-1)


def test_scalar_logger_writes_event_files_and_is_a_no_op_when_disabled(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with ScalarLogger(None) as disabled:
        disabled.log(0, {"loss": 1.0})
        assert not disabled.enabled
    with ScalarLogger(tmp_path / "tb") as logger:
        for step in range(3):
            logger.log(step, {"loss": 1.0 / (step + 1), "skipped": float("nan")}, prefix="train/")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["scalars"] == ["train/loss"]
    assert [round(e.value, 3) for e in events.Scalars("train/loss")] == [1.0, 0.5, 0.333]
