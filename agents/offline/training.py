"""Small helpers shared by the offline-RL training loops: device generators, devices, bf16
autocast, target networks, progress bars, scalar logging and config validation."""

from __future__ import annotations

import contextlib
import copy
from typing import Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from auctionsim.errors import ConfigError, describe
from auctionsim.tracking import ScalarLogger
from auctionsim.validation import check_number

__all__ = [
    "autocast",
    "check_positive",
    "check_unit_interval",
    "device_generator",
    "frozen_copy",
    "log_scalars",
    "progress_steps",
    "resolve_device",
    "soft_update",
]


def device_generator(seed: int, device: str | torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: batches and noise are drawn where they are
    used (no host-to-device copy per step). On the CPU it is the generator
    the offline learners always used, so CPU runs are unchanged by the device option. Seed the
    global generators (network initialisation) with :func:`auctionsim.tracking.seed_everything`."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` (or ``None``): ``"cuda"`` when a GPU is available, else ``"cpu"``; otherwise the
    given torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``), checked to exist."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {describe(device)}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available")
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {describe(device)}")
    return str(parsed)


def autocast(device: str | torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for forward passes on CUDA (matrix products in bfloat16, reductions, exp and
    log in float32, as torch's autocast lists them); a no-op on the CPU, where bf16 is slower."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """Polyak averaging ``target <- (1 - rate) target + rate source`` (one fused call)."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), rate)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` without gradients (a target network)."""
    target = copy.deepcopy(module)
    for param in target.parameters():
        param.requires_grad_(False)
    return target


def progress_steps(steps: int, description: str, enabled: bool) -> Iterable[int]:
    """``range(steps)`` with a tqdm bar when ``enabled``."""
    return tqdm(range(steps), desc=description, disable=not enabled, unit="step", mininterval=1.0)


def log_scalars(writer: ScalarLogger | None, prefix: str, values: Mapping[str, torch.Tensor | float], step: int) -> dict[str, float]:
    """Turn ``values`` (tensors or numbers) into floats, log them to ``writer`` (TensorBoard) as
    ``prefix/name`` at ``step`` when given, and return them. The one place a training loop reads
    values back from the device: call it every ``log_every`` steps, not every step."""
    floats = {name: float(value) for name, value in values.items()}
    if writer is not None:
        writer.log(step, floats, prefix=f"{prefix}/")
    return floats


def check_positive(owner: str, **values: float) -> None:
    """Raise ``ConfigError`` naming the first field that is not a finite number > 0."""
    for name, value in values.items():
        check_number(f"{owner}.{name}", value, low=0.0, low_open=True)


def check_unit_interval(owner: str, **values: float) -> None:
    """Raise ``ConfigError`` naming the first field outside ``[0, 1]``."""
    for name, value in values.items():
        check_number(f"{owner}.{name}", value, low=0.0, high=1.0)
