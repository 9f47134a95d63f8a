"""Atomic npz/JSON files and safe loading: nothing read from disk is ever unpickled.

Every write goes to a temporary file in the target folder, is flushed to disk, then renamed over the target, so a
process killed mid-write leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError
from wm_studio.core.folders import how_to_rebuild

META_KEY = "__meta__"
_UMASK = os.umask(0)
os.umask(_UMASK)
_RNG_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of path for the block to write by name (a program such as ffmpeg wants the right
    `suffix`); when the block ends without an error it is flushed to disk and renamed to path, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; data and models should read like any other
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call write(binary_file) on a temporary sibling of path, then rename it to path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


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
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        raise unreadable_npz(path) from None
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


def read_meta(path, required: bool = False) -> dict[str, Any]:
    """The JSON meta of an npz written by save_npz, read without its arrays; {} when it has none (CheckpointError
    when `required`)."""
    member = f"{META_KEY}.npy"
    try:
        with zipfile.ZipFile(path) as archive:
            if member not in archive.namelist():
                if required:
                    raise CheckpointError(f"{path} has no metadata: it was not written by wm_studio")
                return {}
            with archive.open(member) as stream:
                meta = json.loads(str(np.lib.format.read_array(stream, allow_pickle=False)))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        raise unreadable_npz(path) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has unreadable metadata")
    return meta


def unreadable_npz(path) -> CheckpointError:
    """The error for an npz file that cannot be read, whichever reader failed: the reason comes from the file
    itself (numpy's reader says "pickled data" where zipfile says "not a zip file" for the same file), followed
    by how to make the file again."""
    hint = how_to_rebuild(path)
    return CheckpointError(f"{path} is corrupt: {_why_unreadable(Path(path))}" + (f". {hint}" if hint else ""))


def _why_unreadable(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"it cannot be opened ({exc.strerror})"
    if not head:
        return "it is empty"
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        return "it is not an npz file (no zip archive)"
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        return f"its zip archive is damaged ({exc})"
    return f"its part {damaged} is damaged" if damaged else "its arrays cannot be read as numpy arrays"


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


def model_fingerprint(path) -> str:
    """A short hash of a model file: latents, M and C remember which V and M made what they learned from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
