"""Starting Ray for BPG: locally on a few cores by default, on a cluster with ``RAY_ADDRESS``."""

from __future__ import annotations

import os
import tempfile

__all__ = ["init_ray"]


def init_ray(num_cpus: int = 2, temp_dir: str | None = None) -> None:
    """Start (or connect to) Ray once per process.

    With ``RAY_ADDRESS`` set, connects to that cluster and ignores ``num_cpus``; otherwise starts
    a local instance with ``num_cpus`` CPUs, no dashboard, token authentication off
    (``RAY_AUTH_MODE=disabled``) and its session files under ``temp_dir`` (default: a fresh
    folder in the system temp dir) rather than ``/tmp/ray``.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="auctionsim-ray-")
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=os.path.abspath(temp_dir))
