"""Small helpers shared by the offline-RL training loops."""

from __future__ import annotations

import random
from typing import Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from auctionsim.validation import check_number

__all__ = ["seed_everything", "soft_update", "progress_steps", "check_positive", "check_unit_interval", "frozen_copy"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a CPU generator for batch sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """Polyak averaging ``target <- (1 - rate) target + rate source``."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, rate)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` without gradients (a target network)."""
    import copy

    target = copy.deepcopy(module)
    for param in target.parameters():
        param.requires_grad_(False)
    return target


def progress_steps(steps: int, description: str, enabled: bool) -> Iterable[int]:
    """``range(steps)`` with a tqdm bar when ``enabled``."""
    return tqdm(range(steps), desc=description, disable=not enabled, unit="step", mininterval=1.0)


def check_positive(owner: str, **values: float) -> None:
    """Raise ``ConfigError`` naming the first field that is not a finite number > 0."""
    for name, value in values.items():
        check_number(f"{owner}.{name}", value, low=0.0, low_open=True)


def check_unit_interval(owner: str, **values: float) -> None:
    """Raise ``ConfigError`` naming the first field outside ``[0, 1]``."""
    for name, value in values.items():
        check_number(f"{owner}.{name}", value, low=0.0, high=1.0)
