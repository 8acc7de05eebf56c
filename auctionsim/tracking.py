"""Seeding and experiment tracking shared by every training loop.

* :func:`seed_everything`: seeds Python's ``random``, NumPy's global generator and torch (CPU and
  CUDA) when torch is installed: the one place that does it.
* :class:`ScalarLogger`: TensorBoard scalars (``torch.utils.tensorboard.SummaryWriter``) under a
  run's output folder, or nothing at all when disabled: training loops call ``log`` either way.

Our own code draws from explicit generators (``np.random.default_rng(seed)``, the engine's
counter-based streams); the global generators are seeded for libraries that use them (torch
initialisation and dropout, RLlib's exploration and minibatch shuffles).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
import random
from typing import Any, Mapping

import numpy as np

__all__ = ["seed_everything", "ScalarLogger"]

logger = logging.getLogger(__name__)


def seed_everything(seed: int, torch_threads: int | None = None) -> None:
    """Seed ``random``, NumPy's global generator and torch (if installed) with ``seed``.

    Args:
        seed: a non-negative integer (NumPy's global generator takes it modulo 2**32).
        torch_threads: when given, also ``torch.set_num_threads(torch_threads)`` (small
            networks on a busy 2-core machine run far faster on one thread).
    """
    from auctionsim.validation import check_int

    seed = check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)  # seeds every CUDA device too
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)


class ScalarLogger:
    """TensorBoard scalars for one training run; a no-op when ``log_dir`` is None.

    ``ScalarLogger(output_dir / "tensorboard" / run_name)`` writes event files that
    ``tensorboard --logdir <output_dir>/tensorboard`` shows. Use as a context manager or call
    :meth:`close`. Needs ``tensorboard`` (the ``rl`` extra) only when enabled.
    """

    def __init__(self, log_dir: str | os.PathLike | None, flush_secs: int = 30) -> None:
        self.log_dir = None if log_dir is None else pathlib.Path(log_dir)
        self._writer: Any = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def log(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
        """Write each finite scalar of ``scalars`` as ``prefix + name`` at ``step``."""
        if self._writer is None:
            return
        for name, value in scalars.items():
            value = float(value)
            if np.isfinite(value):
                self._writer.add_scalar(prefix + name, value, int(step))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ScalarLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
