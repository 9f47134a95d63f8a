"""Atomic npz/JSON files and safe loading: nothing read from disk is ever unpickled.

Every write goes to a temporary file in the target folder, is flushed to disk, then renamed over the target, so a
process killed mid-write leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError

META_KEY = "__meta__"
_UMASK = os.umask(0)
os.umask(_UMASK)
_RNG_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call write(binary_file) on a temporary sibling of path, then rename it to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; data and models should read like any other
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_npz(path, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
             compressed: bool = False) -> Path:
    """Write arrays (and an optional JSON-able meta dict) to an npz file atomically."""
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    if META_KEY in payload:
        raise ValueError(f"{META_KEY} is reserved for the metadata")
    if meta is not None:
        payload[META_KEY] = np.array(json.dumps(meta))
    savez = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda f: savez(f, **payload))


def load_npz(path, required: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an npz file without pickle; return (arrays, meta). Any problem becomes one CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is corrupt or not an npz file: {exc}") from None
    meta = {}
    if META_KEY in arrays:
        try:
            meta = json.loads(str(arrays.pop(META_KEY)))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} has unreadable metadata: {exc}") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it was not written by this version of "
                              f"wm_studio or for this purpose")
    return arrays, meta


def check_shapes(path, arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple]) -> None:
    """Raise CheckpointError naming every array whose shape differs from what the model expects."""
    wrong = [f"{name} is {tuple(arrays[name].shape)}, expected {tuple(shape)}"
             for name, shape in expected.items()
             if name in arrays and tuple(arrays[name].shape) != tuple(shape)]
    absent = [f"{name} is missing" for name in expected if name not in arrays]
    if wrong or absent:
        raise CheckpointError(f"{path} does not match this model: " + "; ".join(absent + wrong))


def save_json(path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_json(path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt or not JSON: {exc}") from None


def generator_state(rng: np.random.Generator) -> dict:
    """The full state of a numpy Generator as plain JSON-able data (Python ints hold the 128-bit words)."""
    return rng.bit_generator.state


def restore_generator(state: Mapping[str, Any]) -> np.random.Generator:
    """Rebuild a Generator from generator_state(); the next draws equal those the original would have made."""
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    if name not in _RNG_BIT_GENERATORS:
        raise CheckpointError(f"unknown random generator state {name!r}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = dict(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"invalid random generator state: {exc}") from None
    return np.random.Generator(bit_generator)
