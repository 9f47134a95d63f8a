"""Chainer 7.8.1 beside CuPy 13 (and Python 3.12): the few places that need help, each fixed in place, no fork.

Chainer 7.8.1 was released for CuPy 7 (its 7.8.0 added experimental support for CuPy 8). wm_studio's GPU path
uses it with CuPy 13 (`cupy-cuda12x` or `cupy-cuda13x` 13.x: CuPy 14 needs numpy 2, on which Chainer does not
import). What was checked, without a GPU (benchmarks/gpu_check.py --phases audit lists it again on any machine):

- Every `cupy...`, `cupyx...`, `cuda.cudnn...` and `libcudnn...` attribute that Chainer's own code names, per
  file with that file's imports, resolves in CuPy 13.6 (imported, or, where a CUDA library is missing, looked
  up in the compiled module's names). cuDNN's Python API moved to `cupyx.cudnn` (`cupy.cudnn` re-exports it
  with a DeprecationWarning) with the signatures Chainer calls (convolution_forward(x, W, b, y, pad, stride,
  dilation, groups, *, auto_tune, tensor_core, d_layout, w_layout) and the rest).
- `cupy-cuda13x` 13.6 ships no cuDNN module at all and `cupy-cuda12x` 13.x needs cuDNN 8 (`libcudnn.so.8`);
  without it Chainer's `cudnn_enabled` is False and its convolutions run on its own im2col + cuBLAS path:
  correct, slower. Nothing to fix.

What does need help, and what this module does about it:

1. NCCL, cuDNN and cuTENSOR no longer fail at import. Since CuPy 8, `import cupy.cuda.nccl` (and `.cudnn`)
   succeeds when the library is missing: the module sets `available = False` and warns with a multi-line
   UserWarning ("nccl library could not be loaded ..."). `import chainer` imports it (its multi-process updater
   does), so every command printed that warning on a machine with CuPy but without NCCL, and Chainer's
   `multiprocess_parallel_updater._available` became True although NCCL is missing (Chainer took a successful
   import as "NCCL is there"). wm_studio uses neither NCCL nor that updater:
   `prepare_chainer_import()` silences those CuPy warnings (only them), and `apply()` sets `_available` from
   `cupy.cuda.nccl.available`.
2. Python 3.12: numpy 1.26 has no `numpy.distutils` there, and `import chainer` imports
   `numpy.distutils.system_info` for a macOS-only check (`_check_osx_numpy_backend`). `prepare_chainer_import()`
   registers a stub whose `get_info()` returns `{}` (what numpy.distutils returns for a library it does not
   know), only when the real module cannot be imported and before Chainer is imported. On Python 3.11
   numpy.distutils exists and nothing is stubbed; Python 3.12 is supported with the stub (3.13 is not: numpy < 2
   has no wheel for it).

`prepare_chainer_import()` must run before the first `import chainer`: `wm_studio/__init__.py` calls it, so any
import of wm_studio does (the GPU check script and its sitecustomize call it too); `apply()` runs after it and only
when CuPy imports and finds a GPU (`wm_studio.core.device.gpu_probe` calls it). Both are idempotent and return what they did, for the log.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import warnings

# The libraries whose "could not be loaded" warnings CuPy 13 prints at import; wm_studio needs none of them.
QUIET_LIBRARIES = ("nccl", "cutensor", "cudnn")
_STUB_NAME = "numpy.distutils.system_info"


def _real_module_importable(name: str) -> bool:
    """Whether `name` can be imported, found without running it (numpy.distutils warns when imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _stub_numpy_distutils() -> types.ModuleType:
    """`numpy.distutils` with a `system_info.get_info(name, notfound_action=0) -> {}`, nothing else."""
    package = types.ModuleType("numpy.distutils")
    package.__doc__ = "Stub made by wm_studio.core.cupy_compat: numpy 1.26 has no numpy.distutils on Python 3.12."
    package.__path__ = []          # a package, so that `import numpy.distutils.system_info` looks no further
    system_info = types.ModuleType(_STUB_NAME)
    system_info.__doc__ = package.__doc__
    system_info.get_info = lambda name, notfound_action=0: {}
    package.system_info = system_info
    package.wm_studio_stub = True
    return package


def prepare_chainer_import() -> list[str]:
    """Before the first `import chainer`: the numpy.distutils stub where it is missing (Python 3.12 with
    numpy 1.x) and a filter for CuPy's warnings about libraries wm_studio does not use. Returns what it did."""
    done = []
    for library in QUIET_LIBRARIES:
        # CuPy's message starts with a newline: "\n<lib> library could not be loaded.\n\nReason: ..."
        warnings.filterwarnings("ignore", message=rf"\s*{library} library could not be loaded", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"cupy\.cudnn is deprecated", category=DeprecationWarning)
    done.append("CuPy's warnings about " + ", ".join(QUIET_LIBRARIES) + " (unused by wm_studio) silenced")
    if "numpy.distutils" not in sys.modules and not _real_module_importable("numpy.distutils"):
        if "chainer" in sys.modules:
            done.append("numpy.distutils is missing but Chainer is already imported: too late to stub it")
        else:
            stub = _stub_numpy_distutils()
            sys.modules["numpy.distutils"] = stub
            sys.modules[_STUB_NAME] = stub.system_info
            import numpy
            numpy.distutils = stub
            done.append("numpy.distutils stubbed (Python 3.12 with numpy 1.x) so that Chainer imports")
    return done


def apply() -> list[str]:
    """After Chainer is imported, when CuPy imports (the caller checks that a GPU exists): set Chainer's NCCL
    flag from CuPy's own. Returns what it changed; [] when there is nothing to do or CuPy does not import."""
    try:
        import cupy  # noqa: F401
    except Exception:  # not installed, or a broken CUDA install: nothing to adjust
        return []
    done = []
    updater = sys.modules.get("chainer.training.updaters.multiprocess_parallel_updater")
    nccl = sys.modules.get("cupy.cuda.nccl")
    if updater is not None and nccl is not None:
        available = bool(getattr(nccl, "available", False))
        if getattr(updater, "_available", None) != available:
            updater._available = available
            done.append(f"Chainer's NCCL flag set to CuPy's ({available})")
    return done
