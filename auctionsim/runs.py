"""Run bookkeeping shared by the CLI, the experiments, datasets and benchmarks: manifests beside
results, atomic writes, an output lock, checks of the output before any work, and resume checks.

* :class:`RunClock` measures a run (start/end time, wall and CPU seconds); :func:`write_manifest`
  is the one function that writes a manifest: ``<file>.manifest.json`` beside a result file, or
  ``manifest.json`` inside a result folder (listing every file with its size and SHA-256). A
  manifest holds the package version, git commit and dirty flag (when run from a checkout), the
  resolved config, the seeds, key package versions, the machine (CPU, GPU when torch sees one)
  and the clock.
* :func:`write_json_result`: a JSON result written atomically with its manifest beside it.
* :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_write` (any writer that
  takes a path) write to a temporary file in the destination's folder, flush it to disk and
  rename it over the destination: a reader (or a kill) sees the old file or the new one, never a
  part. :func:`atomic_directory` does the same for a whole folder; the previous folder is kept
  until the new one is complete.
* :class:`OutputLock` refuses a second concurrent run on the same output (an advisory ``flock``
  on ``.<name>.lock`` beside it, released by the kernel when a process dies, so a killed run never leaves
  a stale lock).
* :func:`check_output_file` / :func:`check_output_dir` validate an output location (creatable,
  writable, of the right kind) before any work is done.
* :func:`check_resume` compares a resumed run's config with the one recorded in the previous
  run's manifest: equal fields pass, fields that may grow (more seeds, more iterations) extend,
  anything else is refused with a message naming each field.
* :func:`run_folder` puts these together for a run that writes one output folder: check, lock,
  resume check, a manifest marked ``"running"`` at the start and ``"complete"`` at the end.
* :func:`clean_stale_ray_sessions` removes the Ray temp folders of runs that were killed.

Errors are :class:`RunError` (an :class:`~auctionsim.errors.AuctionSimError`), which the CLI
prints as one line with exit status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _datetime
import errno
import hashlib
import importlib.metadata
import json
import logging
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from auctionsim.errors import AuctionSimError

__all__ = [
    "RunError",
    "RunClock",
    "MANIFEST_SCHEMA",
    "manifest_path",
    "manifest",
    "write_manifest",
    "read_manifest",
    "verify_manifest",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_directory",
    "write_json_result",
    "OutputLock",
    "check_output_file",
    "check_output_dir",
    "check_resume",
    "config_dict",
    "RunFolder",
    "run_folder",
    "clean_stale_ray_sessions",
]

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = "auctionsim.manifest/v1"
KEY_PACKAGES = ("numpy", "numba", "scipy", "torch", "ray", "gymnasium", "pettingzoo")


class RunError(AuctionSimError, RuntimeError):
    """An output cannot be used (locked, unwritable, wrong kind) or a resume does not match."""


# ----------------------------------------------------------------------------------- manifest
class RunClock:
    """Start/end time, wall seconds and CPU seconds (this process and its finished children),
    and the git state at the start (the code that ran, even if the checkout moves on during a
    long run; the manifest records the state at its writing too when they differ)."""

    def __init__(self) -> None:
        self.git_at_start = _git_state()
        self.started = _datetime.datetime.now(_datetime.timezone.utc)
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    def to_dict(self) -> dict[str, Any]:
        """The clock read now: ``started``, ``ended`` (ISO 8601, UTC), ``wall_seconds``, ``cpu_seconds``."""
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "ended": _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - self._wall, 3),
            "cpu_seconds": round(self._cpu_now() - self._cpu, 3),
        }


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in ("auctionsim", *KEY_PACKAGES):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_state() -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout this package runs from (None outside one)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    machine: dict[str, Any] = {"hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu, "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # only when the run used torch: importing it costs seconds
    if torch is not None and torch.cuda.is_available():
        machine["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return machine


def config_dict(config: Any) -> Any:
    """A JSON-ready copy of a config: dataclasses as dicts, tuples as lists, NumPy scalars as numbers."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {field.name: config_dict(getattr(config, field.name)) for field in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(key): config_dict(value) for key, value in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_dict(value) for value in config]
    if isinstance(config, pathlib.Path):
        return str(config)
    if hasattr(config, "item") and callable(config.item):  # NumPy scalar
        return config.item()
    return config


def manifest_path(result: str | os.PathLike) -> pathlib.Path:
    """Where a result's manifest goes: ``<folder>/manifest.json`` for a folder, else
    ``<file>.manifest.json`` beside the file."""
    result = pathlib.Path(result)
    return result / "manifest.json" if result.is_dir() else result.with_name(result.name + ".manifest.json")


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(result: pathlib.Path) -> Iterable[pathlib.Path]:
    if result.is_file():
        yield result
        return
    for path in sorted(result.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and not path.name.endswith((".lock", ".manifest.json")) and ".tmp-" not in path.name:
            yield path


def manifest(
    result: str | os.PathLike,
    config: Any,
    seeds: Any = None,
    clock: RunClock | None = None,
    command: Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of ``result`` (a file or a folder) as a dict; see :func:`write_manifest`."""
    result = pathlib.Path(result)
    base = result if result.is_dir() else result.parent
    files = {str(path.relative_to(base)): {"bytes": path.stat().st_size, "sha256": _sha256(path)} for path in _listed_files(result)}
    git = _git_state()
    started = clock.git_at_start if clock is not None else git
    return {
        "schema": MANIFEST_SCHEMA,
        "command": list(command) if command is not None else [os.path.basename(sys.argv[0]), *sys.argv[1:]],
        "config": config_dict(config),
        "seeds": config_dict(seeds),
        "packages": _package_versions(),
        "git": started,
        **({"git_at_write": git} if git != started else {}),
        "machine": _machine(),
        "clock": clock.to_dict() if clock is not None else None,
        "files": files,
        **(config_dict(dict(extra)) if extra else {}),
    }


def write_manifest(
    result: str | os.PathLike,
    config: Any,
    seeds: Any = None,
    clock: RunClock | None = None,
    command: Iterable[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Write the manifest beside ``result`` (atomically) and return its path.

    Args:
        result: the result file, or a folder of results (every file in it is listed).
        config: the resolved config (a dataclass, a dict, ...), recorded for resume checks.
        seeds: the seeds used (e.g. ``{"training": [0, 1, 2], "eval": [100, ...]}``).
        clock: the run's :class:`RunClock` (start/end, wall and CPU seconds).
        command: the command line (default ``sys.argv``).
        extra: more top-level entries (e.g. timings measured inside the run).
    """
    result = pathlib.Path(result)
    if not result.exists():
        raise RunError(f"cannot write a manifest for {result}: it does not exist")
    path = manifest_path(result)
    atomic_write_json(path, manifest(result, config, seeds, clock, command, extra))
    return path


def read_manifest(result: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest beside ``result``, or None when there is none."""
    path = manifest_path(result)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"unreadable manifest {path}: {error}") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise RunError(f"{path} is not an auctionsim manifest (schema {MANIFEST_SCHEMA})")
    return data


def verify_manifest(result: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Check that the files listed in ``result``'s manifest (or only ``names``) are present with
    the recorded SHA-256: load only what this program wrote. Returns the manifest."""
    result = pathlib.Path(result)
    data = read_manifest(result)
    if data is None:
        raise RunError(f"{result} has no manifest ({manifest_path(result)}); refusing to load files this program did not record")
    base = result if result.is_dir() else result.parent
    for name in names if names is not None else data["files"]:
        entry = data["files"].get(name)
        path = base / name
        if entry is None:
            raise RunError(f"{path} is not listed in {manifest_path(result)}; refusing to load it")
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            raise RunError(f"{path} differs from what {manifest_path(result)} recorded (missing or changed); refusing to load it")
    return data


# ----------------------------------------------------------------------------------- atomic writes
def _fsync_directory(folder: pathlib.Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def atomic_write(path: str | os.PathLike, writer: Callable[[pathlib.Path], Any], suffix: str | None = None) -> pathlib.Path:
    """Call ``writer(temporary_path)`` and rename the temporary file onto ``path``.

    The temporary file lives in ``path``'s folder (same file system: the rename is atomic) and
    keeps ``path``'s suffix (``suffix`` overrides it; NumPy's ``savez`` appends ``.npz`` to
    names without it). If the writer fails the temporary file is removed and ``path`` is left
    as it was.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix if suffix is None else suffix, dir=path.parent)
    os.close(descriptor)
    temporary = pathlib.Path(name)
    try:
        writer(temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_text(text))


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 1) -> pathlib.Path:
    """Write ``data`` as JSON to ``path`` atomically (NumPy scalars and tuples converted)."""
    return atomic_write_text(path, json.dumps(config_dict(data), indent=indent, default=float))


def _interrupted_temporaries(folder: pathlib.Path, name: str) -> list[pathlib.Path]:
    """The temporaries of :func:`atomic_write` / :func:`atomic_directory` left beside
    ``folder / name`` by a killed run, after recovering the one case that holds the last good
    output: a kill between moving the previous folder aside and renaming the new one in leaves
    ``.<name>.tmp-previous-*`` and nothing at ``name``, so that folder is renamed back."""
    target = folder / name
    for previous in sorted(folder.glob(f".{name}.tmp-previous-*")):
        if not target.exists() and not target.is_symlink():
            os.replace(previous, target)
            logger.warning("restored %s from an interrupted replacement", target)
    return list(folder.glob(f".{name}.tmp-*"))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Build a whole output folder, then put it in place in one step.

    Yields a new temporary folder beside ``path``; write every file there. On success the
    previous ``path`` (if any) is moved aside, the new folder renamed onto ``path``, and the
    previous one deleted; on an exception (or a kill) ``path`` is untouched and the temporary
    folder is removed (after a kill it is left as ``.<name>.tmp-*``, ignored by every reader and
    removed by the next run). A kill between the two renames leaves the previous folder as
    ``.<name>.tmp-previous-*`` and nothing at ``path``: the next run (or lock) puts it back.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _interrupted_temporaries(path.parent, path.name):
        shutil.rmtree(stale, ignore_errors=True)
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    previous = None
    if path.exists():
        previous = path.with_name(f".{path.name}.tmp-previous-{os.getpid()}")
        os.replace(path, previous)
    os.replace(temporary, path)
    _fsync_directory(path.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def write_json_result(path: str | os.PathLike, data: Any, config: Any, seeds: Any = None, clock: RunClock | None = None) -> pathlib.Path:
    """A JSON result file in one call: written atomically, then its manifest beside it."""
    path = atomic_write_json(path, data)
    write_manifest(path, config, seeds, clock)
    return path


# ----------------------------------------------------------------------------------- locks and checks
class OutputLock:
    """Exclusive use of an output (a file or a folder) by one run.

    ``with OutputLock(path): ...`` takes an advisory lock on ``.<name>.lock`` beside the output;
    a second run on the same output fails at once with a :class:`RunError` naming the process
    that holds it. The kernel releases the lock when the holder exits or is killed, so a lock
    file left behind by a killed run does not block the next one. Once acquired, temporary files
    of atomic writes left by a killed run on this output are removed.
    """

    def __init__(self, output: str | os.PathLike) -> None:
        output = pathlib.Path(output)
        self.output = output
        self.path = output.with_name(f".{output.name}.lock")
        self._handle = None

    def acquire(self) -> OutputLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunError(f"output {self.output} is in use by {holder}; wait for that run to finish or choose another output") from None
            raise
        self._remove_stale_temporaries()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {platform.node()} since {_datetime.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        self._handle = handle
        return self

    def _remove_stale_temporaries(self) -> None:
        """Temporary files and folders of atomic writes that a killed run left (``.<name>.tmp-*``
        beside the output, and inside an output folder): with the lock held nobody else writes them."""
        stale = _interrupted_temporaries(self.output.parent, self.output.name)
        if self.output.is_dir():
            for folder in {found.parent for found in self.output.rglob(".*.tmp-*")}:
                names = {found.name[1:].split(".tmp-", 1)[0] for found in folder.glob(".*.tmp-*")}
                stale += [found for name in names for found in _interrupted_temporaries(folder, name)]
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            logger.info("removed %d temporary file(s) left by an interrupted run on %s", len(stale), self.output)

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor releases the flock
            self._handle = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_creatable_folder(folder: pathlib.Path, role: str) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"{role}: {existing} is a file, so {folder} cannot be created as a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{role}: {existing} is not writable")


def check_output_file(path: str | os.PathLike, suffix: str | None = None, role: str = "--output") -> pathlib.Path:
    """Validate an output file's location before any work: not a folder, folder creatable and
    writable, existing file writable, ``suffix`` (e.g. ``".npz"``) present when given."""
    if str(path) == "":
        raise RunError(f"{role} must name a file, got an empty path")
    path = pathlib.Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise RunError(f"{role} {path} is a folder; give a file name{f' ending in {suffix}' if suffix else ''}")
    if suffix is not None and path.suffix != suffix:
        raise RunError(f"{role} must end in {suffix}, got {path}")
    _check_creatable_folder(path.parent, role)
    if path.exists() and not os.access(path, os.W_OK):
        raise RunError(f"{role} {path} exists and is not writable")
    return path


def check_output_dir(path: str | os.PathLike, role: str = "--output-dir") -> pathlib.Path:
    """Validate an output folder before any work: not an existing file, creatable and writable."""
    if str(path) == "":
        raise RunError(f"{role} must name a folder, got an empty path")
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{role} {path} is a file; give a folder")
    _check_creatable_folder(path, role)
    return path


def _field_defaults(config: Any) -> dict[str, Any]:
    """``{field: default}`` (JSON-ready) of a dataclass config's fields that have a default."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return {}
    defaults = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = config_dict(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = config_dict(field.default_factory())
    return defaults


def check_resume(previous: Mapping[str, Any] | None, config: Any, extendable: Iterable[str] = (), ignored: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Compare a resumed run's ``config`` with the ``previous`` run's (as recorded in its manifest).

    Args:
        previous: the previous run's config (``read_manifest(...)["config"]``); None means
            there is nothing to resume (an empty dict is returned).
        config: the new run's resolved config.
        extendable: numeric fields that may grow (more iterations, more seeds) and list fields
            that may gain items (a larger grid of trials): the resumed run extends the previous one.
        ignored: fields that do not change results (output folder, logging, ``resume`` itself).

    A field the previous run's manifest lacks (added to the config since) is accepted when the
    new config leaves it at its dataclass default: new options default to the old behaviour.

    Returns:
        ``{field: (old, new)}`` for each extended field.

    Raises:
        RunError: naming every other field that differs (and any extendable field that shrank).
    """
    if previous is None:
        return {}
    new, old = config_dict(config), config_dict(previous)
    skip, grow = set(ignored), set(extendable)
    defaults = _field_defaults(config)
    changed, extended = [], {}
    for name in sorted(set(new) | set(old)):
        if name in skip:
            continue
        before, after = old.get(name, "<absent>"), new.get(name, "<absent>")
        if before == after or (name not in old and name in defaults and after == defaults[name]):
            continue
        numeric_growth = isinstance(before, (int, float)) and isinstance(after, (int, float)) and after > before
        list_growth = isinstance(before, list) and isinstance(after, list) and all(item in after for item in before)
        if name in grow and (numeric_growth or list_growth):
            extended[name] = (before, after)
        else:
            changed.append(f"{name}: {before!r} -> {after!r}")
    if changed:
        growth = f" (only {', '.join(sorted(grow))} may grow)" if grow else ""
        raise RunError("--resume with a different config is refused; changed: " + "; ".join(changed) + f"{growth}. Rerun without --resume, or with the previous values")
    return extended


# ----------------------------------------------------------------------------------- a run's folder
@dataclasses.dataclass
class RunFolder:
    """A run writing into one output folder (see :func:`run_folder`).

    Attributes:
        path: the output folder (it exists).
        config: the resolved config, recorded in the manifest.
        clock: started when the run started.
        previous: the previous run's manifest when resuming (None otherwise).
        extended: ``{field: (old, new)}`` for fields a resumed run extends.
        seeds: set by the run; recorded in the manifest.
        extra: more manifest entries (e.g. timings measured inside the run).
    """

    path: pathlib.Path
    config: Any
    clock: RunClock
    previous: dict[str, Any] | None = None
    extended: dict[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)
    seeds: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def write_manifest(self, status: str) -> pathlib.Path:
        """(Re)write ``manifest.json``: ``status`` is ``"running"`` or ``"complete"``."""
        return write_manifest(self.path, self.config, self.seeds, self.clock, extra={**self.extra, "status": status, "extended": self.extended})


DEFAULT_IGNORED = ("resume", "output_dir", "tensorboard", "quick", "plot_only", "finished_only")


@contextlib.contextmanager
def run_folder(
    output_dir: str | os.PathLike,
    config: Any,
    resume: bool = False,
    extendable: Iterable[str] = (),
    ignored: Iterable[str] = DEFAULT_IGNORED,
    seeds: Any = None,
) -> Iterator[RunFolder]:
    """Check, lock and record a run that writes ``output_dir``, before any work is done.

    1. the folder must be creatable and writable (:func:`check_output_dir`);
    2. a second run on it is refused (:class:`OutputLock`, held until the block ends);
    3. with ``resume``, the previous run's manifest must exist and its config match
       (:func:`check_resume`: ``extendable`` fields may grow; ``ignored`` ones are not compared);
    4. ``manifest.json`` is written with ``"status": "running"`` (so a killed run can be
       resumed and checked), and rewritten with ``"complete"``, the clock and every file's hash
       when the block ends without an exception.

    Results inside should be written with the atomic helpers, one unit (seed, iteration) at a
    time, so that a resumed run can skip what is done.
    """
    folder = check_output_dir(output_dir)
    with OutputLock(folder):
        previous = read_manifest(folder) if folder.is_dir() else None
        if resume and previous is None:
            raise RunError(f"--resume: {folder} holds no run to resume (no manifest.json); run without --resume")
        extended = check_resume(previous["config"], config, extendable, ignored) if resume and previous is not None else {}
        folder.mkdir(parents=True, exist_ok=True)
        run = RunFolder(folder, config, RunClock(), previous if resume else None, extended, seeds)
        run.write_manifest("running")
        yield run
        run.write_manifest("complete")


# ----------------------------------------------------------------------------------- Ray
def clean_stale_ray_sessions(temp_dir: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Remove the Ray temp folders of runs that were killed (their driver process is gone).

    Ray keeps ``<root>/session_<date>_<time>_<microseconds>_<driver pid>`` per ``ray.init``; a
    killed driver leaves it behind (gigabytes of logs and spilled objects over time). A session
    is stale when its driver process is not alive. Roots searched: ``temp_dir`` when given, else
    Ray's default ``$RAY_TMPDIR or /tmp``/``ray`` and the private roots ``/tmp/ray-*`` that
    :func:`auctionsim.cluster.init_ray` (every Ray entry point) creates; a private root whose sessions are
    all stale is removed whole. Live sessions, ``session_latest`` links and roots without
    sessions (a run about to start) are left alone. Returns what was removed.
    """
    base = pathlib.Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
    roots = [pathlib.Path(temp_dir)] if temp_dir is not None else [base / "ray", *sorted(base.glob("ray-*"))]
    removed: list[pathlib.Path] = []
    for root in roots:
        if not root.is_dir() or root.is_symlink():
            continue
        sessions = [s for s in root.glob("session_2*") if s.is_dir() and not s.is_symlink()]
        stale = [s for s in sessions if s.name.rsplit("_", 1)[-1].isdigit() and not _alive(int(s.name.rsplit("_", 1)[-1]))]
        if temp_dir is None and root.name.startswith("ray-") and sessions and len(stale) == len(sessions):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
            continue
        for session in stale:
            shutil.rmtree(session, ignore_errors=True)
            removed.append(session)
    if removed:
        logger.info("removed %d stale Ray temp folder(s): %s", len(removed), ", ".join(str(p) for p in removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
