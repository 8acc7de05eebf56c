"""Shared fixtures: kernels are compiled (or loaded from Numba's cache) once per session."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

import auctionsim
from auctionsim import MarketConfig, Population
from tests.ray_helpers import local_ray

settings.register_profile("default", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("default")


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    auctionsim.warm_up()


@pytest.fixture(scope="session", autouse=True)
def sb3_log_folder(tmp_path_factory):
    """SB3's ``learn`` makes an ``SB3-<time>`` folder under the system temp dir unless
    ``SB3_LOGDIR`` is set: keep them in pytest's temp tree (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3-logs")))
        yield


def small_population(n: int = 6, n_categories: int = 2, budget: float = 50.0, seed: int = 0) -> Population:
    """A small population with varied budgets and CPA targets."""
    generator = np.random.default_rng(seed)
    return Population(
        ids=np.arange(100, 100 + 7 * n, 7),
        budgets=budget * generator.uniform(0.5, 1.5, n),
        cpa_targets=generator.uniform(60, 130, n),
        categories=np.arange(n) % n_categories,
        n_categories=n_categories,
    )


def small_config(**overrides) -> MarketConfig:
    """A small, quick market (a few ticks and a few thousand impressions)."""
    fields = dict(n_ticks=4, impressions_per_episode=2_000)
    fields.update(overrides)
    return MarketConfig(**fields)


@pytest.fixture(scope="session")
def ray_instance():
    """One Ray instance for every RLlib test of the session (starting Ray costs seconds and about
    a gigabyte), with its session files in a temporary folder removed afterwards. The caller's
    instance is used when one is running."""
    yield from local_ray("auctionsim-ray-tests-")
