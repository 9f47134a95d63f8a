"""Versions of everything the studio stands on, for `wm-studio --info` and the About box."""
from __future__ import annotations

from importlib import metadata
import platform
import sys


def _version(*distributions: str) -> str:
    """The installed version of the first distribution found (read from metadata: nothing is imported)."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _qt_versions() -> str:
    try:
        from PyQt5.QtCore import PYQT_VERSION_STR, QT_VERSION_STR
    except ImportError:
        return "not installed"
    return f"Qt {QT_VERSION_STR}, PyQt5 {PYQT_VERSION_STR}"


def _gpu() -> str:
    from wm_studio.core.device import gpu_names, gpu_probe
    count, reason = gpu_probe()
    if not count:
        return f"none ({reason})"
    return ", ".join(f"{i}: {name}" for i, name in gpu_names().items())


def versions() -> dict[str, str]:
    from wm_studio import __version__
    return {
        "wm_studio": __version__,
        "Python": f"{platform.python_version()} ({sys.executable})",
        "Platform": platform.platform(),
        "Qt": _qt_versions(),
        "pyqtgraph": _version("pyqtgraph"),
        "numpy": _version("numpy"),
        "Chainer": _version("chainer"),
        "CuPy": _version("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"),
        "GPU": _gpu(),
        "gym": _version("gym"),
        "Box2D": _version("box2d", "Box2D"),
        "vizdoom": _version("vizdoom"),
        "Dask distributed": _version("distributed"),
    }


def describe_environment() -> str:
    rows = versions()
    width = max(map(len, rows))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows.items())
