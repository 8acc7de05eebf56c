"""Ray for tests: one local instance started (and removed) by a fixture, or the caller's."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any


def local_ray(prefix: str) -> Iterator[Any]:
    """Yield the ``ray`` module with Ray running: the caller's instance if one is running (left
    running), else a 2-CPU local one with its session files in a temporary folder, shut down and
    removed afterwards. Use with ``yield from`` in a fixture of the scope the tests need."""
    import ray

    from auctionsim.cluster import init_ray

    if ray.is_initialized():
        yield ray
        return
    temp_dir = tempfile.mkdtemp(prefix=prefix)
    init_ray(num_cpus=2, temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
