"""Ray in one place: start a local instance or join a cluster, ship our code to its workers, and
spread independent tasks over its nodes. Every Ray entry point of the project (the equilibrium
tools, BPG and its Tune sweeps, parallel dataset collection, the benchmarks) starts Ray here.

* :func:`init_ray` starts Ray once per process: with an address (``address=`` or ``RAY_ADDRESS``)
  it joins that cluster and ships the code (:func:`runtime_env`); otherwise it starts a private
  local instance (``num_cpus`` CPUs, no dashboard, token authentication off, session files in a
  private temp folder instead of ``/tmp/ray``) whose workers import the same checkout.
* :func:`ray_session`: the same for a ``with`` block; a Ray instance this block started is shut
  down after it and its temp folder removed (a caller's running instance is used and left alone).
* :func:`runtime_env`: the ``py_modules`` of ``auctionsim``, ``agents`` and ``experiments`` from
  the folders this process imports them from (results, caches, virtual environments, git and
  Numba caches excluded), so a cluster of stock Ray nodes that have the pinned dependencies
  (``pip install -c constraints.txt "auctionsim[all]"``'s dependencies, or the same image) runs
  the driver's exact code, uncommitted edits included. Workers on a cluster keep their own working
  directory (``py_modules`` rather than ``working_dir``), so absolute output paths mean the same
  on every node; put them on shared storage (``docs/cluster.md``).
* :func:`map_tasks`: one Ray task per item, spread over the nodes (``SPREAD`` scheduling),
  shared arguments put in the object store once; results in item order, with the node each ran on.

Authentication: Ray 2.60 clusters started with ``RAY_AUTH_MODE=token`` refuse nodes and clients
without the token. Export ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` (or ``RAY_AUTH_TOKEN_PATH``,
or the file ``~/.ray/auth_token``) *before* starting Python: Ray reads them once, when it is
imported. Local instances run with authentication off unless the caller set a mode.

Costs measured on the 2-core development machine (``benchmarks/cluster.py``): shipping the code
(~0.3 MB zipped) adds well under a second to joining a cluster; each node then unpacks it once per
session, and the Numba kernels compile once per node and session (the unpacked copy is a new path
for Numba's cache).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import tempfile
from typing import Any, Callable, Iterator, Sequence

from auctionsim.errors import ConfigError, describe
from auctionsim.runs import clean_stale_ray_sessions

__all__ = ["PACKAGES", "CODE_EXCLUDES", "project_root", "runtime_env", "cluster_address", "init_ray", "ray_session", "map_tasks"]

logger = logging.getLogger(__name__)

#: The project's import packages, shipped to every worker of a cluster.
PACKAGES = ("auctionsim", "agents", "experiments")
#: Never uploaded (gitignore syntax, matched inside each package folder): byte code, Numba's
#: caches, and results or environments someone may have put inside a package folder.
CODE_EXCLUDES = ("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info", ".git", ".venv", "results", ".pytest_cache", ".hypothesis", "*.tmp-*")


def project_root() -> pathlib.Path:
    """The folder holding the ``auctionsim``, ``agents`` and ``experiments`` packages this process
    imports (a checkout, or ``site-packages`` for an installed wheel)."""
    return pathlib.Path(__file__).resolve().parent.parent


def runtime_env(env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """The Ray ``runtime_env`` that ships this process's code to a cluster's workers.

    Args:
        env_vars: environment variables to set in every worker (e.g. ``{"OMP_NUM_THREADS": "1"}``).
            Do not put secrets here (the checkpoint key, tokens): a job's runtime environment is
            visible in the dashboard; give them to the nodes instead (``docs/cluster.md``).
    Returns:
        ``{"py_modules": [<root>/auctionsim, <root>/agents, <root>/experiments], "excludes": [...]}``
        (plus ``env_vars``), for ``ray.init(runtime_env=...)`` or a job submission.
    """
    root = project_root()
    folders = [root / name for name in PACKAGES]
    missing = [str(folder) for folder in folders if not (folder / "__init__.py").is_file()]
    if missing:
        raise ConfigError(f"cannot ship the code: package folder(s) {', '.join(missing)} not found beside {root}")
    environment: dict[str, Any] = {"py_modules": [str(folder) for folder in folders], "excludes": list(CODE_EXCLUDES)}
    if env_vars:
        environment["env_vars"] = {str(key): str(value) for key, value in env_vars.items()}
    return environment


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to join: ``address`` if given, else ``RAY_ADDRESS`` (None: start locally)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _put_on_pythonpath(folder: pathlib.Path) -> None:
    """Local workers inherit the driver's environment: with the project root on ``PYTHONPATH``
    they import the same code (and share its Numba cache) even without an install."""
    current = os.environ.get("PYTHONPATH")
    if str(folder) not in (current or "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), current) if p)


def init_ray(
    num_cpus: int = 2,
    temp_dir: str | os.PathLike | None = None,
    *,
    address: str | None = None,
    num_gpus: int | None = None,
    ship_code: bool | None = None,
    log_to_driver: bool = False,
) -> bool:
    """Start (or join) Ray once per process; returns whether this call started it.

    Args:
        num_cpus: CPUs of a local instance (a cluster reports its own).
        temp_dir: session folder of a local instance (default: a fresh ``ray-*`` folder in the
            system temp dir, which :func:`auctionsim.runs.clean_stale_ray_sessions` removes once
            its driver is gone).
        address: a cluster to join (``"10.0.0.1:6379"``, ``"auto"``, ``"ray://..."``); default
            ``RAY_ADDRESS``; none: start a local instance.
        num_gpus: GPUs of a local instance (default: Ray's detection).
        ship_code: ship the code with :func:`runtime_env` (default: when joining a cluster).
        log_to_driver: print the workers' output here.
    """
    import ray

    if ray.is_initialized():
        return False
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1:
        raise ConfigError(f"num_cpus must be an integer >= 1, got {describe(num_cpus)}")
    address = cluster_address(address)
    ship = bool(address) if ship_code is None else bool(ship_code)
    environment = runtime_env() if ship else None
    if address:
        try:
            ray.init(address=address, runtime_env=environment, logging_level="WARNING", log_to_driver=log_to_driver)
        except ConnectionError as error:
            raise ConnectionError(
                f"{error}. If the cluster uses token authentication (Ray 2.60 clusters need it to join nodes), export RAY_AUTH_MODE=token and "
                "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) before starting Python: Ray reads them when it is imported"
            ) from error
        resources = ray.cluster_resources()
        logger.info("joined Ray cluster %s: %d node(s), %g CPUs, %g GPUs; code shipped: %s",
                    address, len(ray.nodes()), resources.get("CPU", 0), resources.get("GPU", 0), ship)  # fmt: skip
        return True
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    clean_stale_ray_sessions()  # what killed runs left behind
    _put_on_pythonpath(project_root())
    folder = pathlib.Path(temp_dir) if temp_dir is not None else pathlib.Path(tempfile.mkdtemp(prefix="ray-"))
    ray.init(
        num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level="WARNING",
        log_to_driver=log_to_driver, runtime_env=environment, _temp_dir=str(folder.resolve()),
    )  # fmt: skip
    return True


@contextlib.contextmanager
def ray_session(num_cpus: int = 2, *, address: str | None = None, num_gpus: int | None = None, ship_code: bool | None = None) -> Iterator[Any]:
    """Ray for a ``with`` block (yields the ``ray`` module): the caller's instance if one is
    running, else one started by :func:`init_ray` (same arguments) and shut down afterwards, a
    local instance's temp folder removed and ``PYTHONPATH`` restored."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    saved_path = os.environ.get("PYTHONPATH")
    temp_dir = None if cluster_address(address) else tempfile.mkdtemp(prefix="ray-")
    try:
        init_ray(num_cpus, temp_dir, address=address, num_gpus=num_gpus, ship_code=ship_code)
        yield ray
    finally:
        ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path


def _on_node(function: Callable[..., Any], *arguments: Any) -> tuple[str, Any]:
    """One task: the node it ran on and ``function(*arguments)``."""
    import ray

    return ray.get_runtime_context().get_node_id(), function(*arguments)


def map_tasks(
    function: Callable[..., Any],
    items: Sequence[Any],
    *,
    shared: Sequence[Any] = (),
    num_cpus: float = 1,
    num_gpus: float = 0,
    on_result: Callable[[int, Any], None] | None = None,
) -> tuple[list[Any], list[str]]:
    """``function(*shared, item)`` for every item, one Ray task each, on the running instance.

    Tasks are spread over the nodes (``SPREAD``; inside a placement group, such as a Ray Tune
    trial's, they run in it); ``shared`` arguments go to the object store
    once and are passed to every task by reference. ``on_result(index, value)`` is called in this
    process as each task finishes (e.g. to write a shard or advance a progress bar). A task's
    error is raised here. Returns the results in item order and the id of the node each ran on.
    The tasks must not depend on which node or in which order they run: then the results equal
    a serial loop's.
    """
    import ray

    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f"{name} must be a number >= 0, got {describe(value)}")
    # Inside a placement group (a Tune trial's), tasks stay in it; elsewhere they spread.
    strategy = None if ray.util.get_current_placement_group() is not None else "SPREAD"
    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, scheduling_strategy=strategy)(_on_node)
    references = [ray.put(value) for value in shared]
    pending = {task.remote(function, *references, item): index for index, item in enumerate(items)}
    results: list[Any] = [None] * len(items)
    nodes: list[str] = [""] * len(items)
    while pending:
        # Everything finished within half a second (one wait per round, not one per task).
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
        for reference in done:
            index = pending.pop(reference)
            nodes[index], results[index] = ray.get(reference)
            if on_result is not None:
                on_result(index, results[index])
    return results, nodes
