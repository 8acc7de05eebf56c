"""BPG checkpoints that survive a kill and load only what this program wrote; weights-only export.

RLlib's ``Algorithm.save_to_path`` writes several files (some pickled) one after another, and
``Algorithm.from_checkpoint`` unpickles them. So a checkpoint is

* written **atomically**: into a temporary folder ``.tmp-*`` beside the others, which is renamed
  to ``iteration-<k>`` only once every file and its manifest are on disk. A kill at any moment
  leaves either the complete new checkpoint or none (the temporary folder is ignored and removed
  by the next save), and the previous checkpoints are deleted only after the new one is in
  place (the newest ``keep`` are kept);
* **signed**: ``MANIFEST.json`` lists every file with its SHA-256 and carries an HMAC-SHA256 of
  that list under a key that never leaves this machine (``AUCTIONSIM_CHECKPOINT_KEY``, hex, or the
  file ``~/.config/auctionsim/checkpoint.key``, created with mode 0600 on first use). Loading
  verifies the HMAC and every file *before* anything is unpickled, and refuses (a
  :class:`CheckpointError` naming the file) a checkpoint with a missing, changed or unlisted file
  or a manifest this key did not sign: a crafted pickle dropped into an output folder, or a
  checkpoint copied from elsewhere, is never loaded. (A plain list of hashes beside the files
  would not do: whoever can write the pickle can rewrite the list.) On a cluster, give every node
  the same key through ``AUCTIONSIM_CHECKPOINT_KEY``.

Policies meant for sharing are exported as weights only (:func:`export_policy`: safetensors plus
a JSON description, no pickle) and loaded back with :func:`load_policy`, which never unpickles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pathlib
import re
import secrets
import shutil
import tempfile
from typing import Any

from auctionsim.errors import AuctionSimError
from auctionsim.validation import check_int

__all__ = [
    "CheckpointError",
    "CheckpointStore",
    "checkpoint_key",
    "export_policy",
    "load_policy",
    "MANIFEST_NAME",
    "KEY_ENVIRONMENT_VARIABLE",
]

MANIFEST_NAME = "MANIFEST.json"
KEY_ENVIRONMENT_VARIABLE = "AUCTIONSIM_CHECKPOINT_KEY"
_SCHEMA = "auctionsim.bpg_checkpoint/v1"
_POLICY_SCHEMA = "auctionsim.bpg_policy/v1"
_NAME = re.compile(r"^iteration-(\d{6,})$")


class CheckpointError(AuctionSimError, RuntimeError):
    """A checkpoint (or exported policy) that is missing, incomplete, or not this program's."""


def checkpoint_key() -> bytes:
    """The signing key: ``AUCTIONSIM_CHECKPOINT_KEY`` (hex) if set, else the key file in the
    user's config folder (``$XDG_CONFIG_HOME`` or ``~/.config``), created on first use."""
    value = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
    if value:
        try:
            key = bytes.fromhex(value.strip())
        except ValueError:
            raise CheckpointError(f"{KEY_ENVIRONMENT_VARIABLE} must be a hex string, got {len(value)} other characters") from None
        if len(key) < 16:
            raise CheckpointError(f"{KEY_ENVIRONMENT_VARIABLE} must hold at least 16 bytes (32 hex digits), got {len(key)}")
        return key
    folder = pathlib.Path(os.environ.get("XDG_CONFIG_HOME") or pathlib.Path.home() / ".config") / "auctionsim"
    path = folder / "checkpoint.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint.key.")
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)  # fails if another process created the key meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return bytes.fromhex(path.read_text().strip())


def _sha256(path: pathlib.Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every file under ``folder`` except the manifest, by POSIX relative path."""
    manifest = folder / MANIFEST_NAME
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path != manifest and (path.is_file() or path.is_symlink())}


def _signature(body: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), hashlib.sha256).hexdigest()


def _fsync(path: pathlib.Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def sign_folder(folder: pathlib.Path, metadata: dict[str, Any]) -> None:
    """Write ``MANIFEST.json`` into ``folder``: every file's SHA-256, ``metadata`` and the HMAC."""
    files = _files(folder)
    for path in files.values():
        _fsync(path)
    body = {"schema": _SCHEMA, "metadata": metadata, "files": {name: _sha256(path) for name, path in files.items()}}
    manifest = {**body, "hmac": _signature(body, checkpoint_key())}
    target = folder / MANIFEST_NAME
    target.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _fsync(target)
    _fsync(folder)


def verify_folder(folder: pathlib.Path) -> dict[str, Any]:
    """Check ``folder`` against its signed manifest (nothing is unpickled); returns the metadata."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CheckpointError(f"{folder} has no {MANIFEST_NAME}: it was not written (completely) by this program; refusing to load it")
    try:
        manifest = json.loads(manifest_path.read_text())
        body = {key: manifest[key] for key in ("schema", "metadata", "files")}
        signature = manifest["hmac"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{manifest_path} is not a checkpoint manifest; refusing to load {folder}") from None
    if body["schema"] != _SCHEMA or not isinstance(signature, str) or not hmac.compare_digest(signature, _signature(body, checkpoint_key())):
        raise CheckpointError(f"{manifest_path} was not signed with this machine's checkpoint key: {folder} was not written by this program (or was altered); refusing to load it")
    links = [path for path in folder.rglob("*") if path.is_symlink()]
    if links:
        raise CheckpointError(f"{links[0]} is a symbolic link: this program never writes one into a checkpoint; refusing to load {folder}")
    present = _files(folder)
    for name, path in present.items():
        expected = body["files"].get(name)
        if expected is None:
            raise CheckpointError(f"{path} is not listed in {manifest_path}: refusing to load a checkpoint with files this program did not write")
        if _sha256(path) != expected:
            raise CheckpointError(f"{path} differs from what this program wrote (SHA-256 mismatch); refusing to load it")
    missing = sorted(set(body["files"]) - set(present))
    if missing:
        raise CheckpointError(f"{folder / missing[0]} is missing from the checkpoint; refusing to load it")
    return dict(body["metadata"])


class CheckpointStore:
    """Numbered, signed checkpoints of one run in ``root`` (see module doc).

    Args:
        root: the run's checkpoint folder (created on the first save).
        keep: complete checkpoints kept (>= 1); older ones are removed after each save.
    """

    def __init__(self, root: str | os.PathLike, keep: int = 2) -> None:
        self.keep = check_int("keep", keep, low=1, error=CheckpointError)
        self.root = pathlib.Path(root).resolve()

    def checkpoints(self) -> list[tuple[int, pathlib.Path]]:
        """``(iteration, folder)`` of every renamed (complete) checkpoint, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(match.group(1)), path) for path in self.root.iterdir() if path.is_dir() and (match := _NAME.match(path.name))]
        return sorted(found)

    def save(self, algo, metadata: dict[str, Any] | None = None) -> pathlib.Path:
        """Checkpoint ``algo`` (an :class:`~agents.bpg.BPG`) at its current iteration."""
        iteration = int(algo.bpg_state.iteration)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        temporary = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{iteration:06d}-", dir=self.root))
        try:
            algo.save_to_path(str(temporary / "algorithm"))
            sign_folder(temporary, {**(metadata or {}), "iteration": iteration})
            target = self.root / f"iteration-{iteration:06d}"
            if target.exists():  # the same iteration saved again (e.g. after a resume)
                shutil.rmtree(target)
            os.rename(temporary, target)
            _fsync(self.root)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        for _, old in self.checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def latest(self) -> tuple[pathlib.Path, dict[str, Any]] | None:
        """The newest checkpoint, verified (``(folder, metadata)``), or ``None`` if there is none.
        A checkpoint that fails verification raises :class:`CheckpointError`: it is never
        skipped silently, since only tampering or corruption can cause it (a kill mid-save
        leaves a temporary folder, not a checkpoint)."""
        found = self.checkpoints()
        if not found:
            return None
        folder = found[-1][1]
        return folder, verify_folder(folder)

    def restore(self, folder: pathlib.Path | None = None):
        """A :class:`~agents.bpg.BPG` restored from ``folder`` (default: the newest), verified
        before RLlib reads (unpickles) any of its files."""
        from agents.bpg.algorithm import BPG

        if folder is None:
            latest = self.latest()
            if latest is None:
                raise CheckpointError(f"no checkpoint in {self.root}")
            folder = latest[0]
        else:
            folder = pathlib.Path(folder)
            verify_folder(folder)
        return BPG.from_checkpoint(str(folder / "algorithm"))


# ---------------------------------------------------------------------- weights-only policies
def export_policy(actor, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> pathlib.Path:
    """Save a :class:`~agents.bpg.module.RowActor` for sharing: ``<path>.safetensors`` (its
    tensors) and ``<path>.json`` (its shape and action bounds, plus ``metadata``). No pickle."""
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in actor.state_dict().items()}
    linear = [tensors[name] for name in sorted(tensors) if name.endswith(".weight")]
    description = {
        "schema": _POLICY_SCHEMA,
        "n_features": int(actor.net[0].in_features),
        "hidden": [int(layer.out_features) for layer in actor.net if hasattr(layer, "out_features")][:-1],
        "action_bounds": list(actor.action_bounds),
        "metadata": metadata or {},
    }
    assert len(linear) == len(description["hidden"]) + 1
    weights, text = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for target, write in ((weights, lambda temporary: save_file(tensors, str(temporary))), (text, lambda temporary: temporary.write_text(json.dumps(description, indent=1)))):
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        write(temporary)
        os.replace(temporary, target)
    return weights


def load_policy(path: str | os.PathLike):
    """A :class:`~agents.bpg.module.RowActor` from :func:`export_policy`'s files (safetensors
    and JSON only: nothing is unpickled). Returns ``(actor, metadata)``."""
    from safetensors.torch import load_file

    from agents.bpg.module import RowActor

    path = pathlib.Path(path)
    weights, text = path.with_suffix(".safetensors"), path.with_suffix(".json")
    try:
        description = json.loads(text.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read the policy description {text}: {error}") from None
    if not isinstance(description, dict) or description.get("schema") != _POLICY_SCHEMA:
        raise CheckpointError(f"{text} is not an exported BPG policy (schema {_POLICY_SCHEMA})")
    actor = RowActor(int(description["n_features"]), [int(h) for h in description["hidden"]], tuple(description["action_bounds"]))
    try:
        actor.load_state_dict(load_file(str(weights)))
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"cannot load the policy weights {weights}: {error}") from None
    return actor, dict(description.get("metadata", {}))
