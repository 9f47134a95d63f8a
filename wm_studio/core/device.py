"""Where arrays live: numpy on the CPU, or CuPy on a GPU when one is present and asked for.

CuPy is an optional extra (`pip install -e ".[gpu]"`). Asking for a GPU that is not there never fails: the work
falls back to the CPU and `Device.notice` says why, for the command line and the studio's status bar to show.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from wm_studio.core.errors import ConfigError


@dataclass(frozen=True)
class Device:
    kind: str                   # "cpu" or "gpu"
    index: int | None = None    # CUDA device number for "gpu"
    notice: str | None = None   # why the device differs from what was asked, if it does

    @property
    def name(self) -> str:
        return "cpu" if self.kind == "cpu" else f"gpu:{self.index}"

    @property
    def xp(self):
        """The array module: numpy or cupy."""
        if self.kind == "cpu":
            return np
        import cupy
        return cupy

    @property
    def chainer_device(self):
        import chainer
        return chainer.get_device("@numpy" if self.kind == "cpu" else f"@cupy:{self.index}")

    def describe(self) -> str:
        if self.kind == "cpu":
            return "CPU (numpy)"
        return f"GPU {self.index}: {gpu_names().get(self.index, 'unknown')} (CuPy)"


@functools.lru_cache(maxsize=1)
def gpu_probe() -> tuple[int, str | None]:
    """(number of usable CUDA devices, reason there are none). Cached: probing CUDA costs a second or two."""
    try:
        import cupy
    except ImportError:
        return 0, 'CuPy is not installed (pip install -e ".[gpu]")'
    except Exception as exc:  # a broken CUDA install raises all sorts of errors on import
        return 0, f"CuPy failed to load: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return 0, f"CuPy found no usable GPU: {_cuda_error_hint(exc)}"
    if not count:
        return 0, "CuPy found no GPU"
    # CuPy can see a GPU while Chainer cannot use it (a CUDA library such as cuBLAS missing): say so here, in one
    # line, rather than fail deep inside training.
    from wm_studio.core import cupy_compat
    cupy_compat.prepare_chainer_import()
    from chainer.backends import cuda as chainer_cuda
    if not chainer_cuda.available:
        reason = getattr(chainer_cuda, "_resolution_error", None) or "unknown reason"
        return 0, (f"CuPy sees {count} GPU(s) but Chainer cannot use CuPy: {reason} (install the CUDA "
                   f"libraries, e.g. the nvidia-*-cu12 wheels, or put them on LD_LIBRARY_PATH)")
    cupy_compat.apply()
    return count, None


def _cuda_error_hint(exc: Exception) -> str:
    """CuPy's CUDA error, with what it usually means for the two that a machine without a GPU gives."""
    text = str(exc)
    if "cudaErrorInsufficientDriver" in text:
        return f"{text} (no NVIDIA driver, or one older than CuPy's CUDA)"
    if "cudaErrorNoDevice" in text:
        return f"{text} (no NVIDIA GPU on this machine)"
    return text


def gpu_names() -> dict[int, str]:
    count, _ = gpu_probe()
    names = {}
    if count:
        import cupy
        for index in range(count):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props.get("name", b"GPU")
            names[index] = name.decode() if isinstance(name, bytes) else str(name)
    return names


def resolve_device(spec: str = "auto") -> Device:
    """Parse `auto`, `cpu`, `gpu` or `gpu:N` into a Device, falling back to the CPU with a notice."""
    spec = (spec or "auto").strip().lower()
    match = re.fullmatch(r"(auto|cpu|gpu)(?::(\d+))?", spec)
    if not match or (match.group(1) != "gpu" and match.group(2)):
        raise ConfigError(f"unknown device {spec!r}: use auto, cpu, gpu or gpu:N")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        return Device("cpu")
    count, reason = gpu_probe()
    if count == 0:
        return Device("cpu", notice=f"no GPU: {reason}; running on the CPU")
    if index >= count:
        return Device("cpu", notice=f"GPU {index} does not exist ({count} found); running on the CPU")
    return Device("gpu", index)


def to_numpy(array) -> np.ndarray:
    """A host copy of a numpy or CuPy array (what workers send to the GUI thread)."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    return np.asarray(get() if get is not None else array)
