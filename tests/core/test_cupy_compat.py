"""wm_studio.core.cupy_compat and the GPU probe's messages, on a machine without a GPU (CuPy faked where needed)."""
import os
import subprocess
import sys
import types
from pathlib import Path
import warnings

import pytest

from wm_studio.core import cupy_compat
from wm_studio.core import device as core_device

ROOT = Path(__file__).resolve().parents[2]


def run_python(script: str) -> subprocess.CompletedProcess:
    """A fresh interpreter that imports this checkout's wm_studio."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": path})


@pytest.fixture
def fresh_probe():
    core_device.gpu_probe.cache_clear()
    yield
    core_device.gpu_probe.cache_clear()


def fake_cupy(count=None, error=None) -> types.ModuleType:
    """A module that answers getDeviceCount() like CuPy: `count` GPUs, or raises `error`."""
    def device_count():
        if error is not None:
            raise error
        return count
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=device_count))
    return module


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="numpy 1.26 has numpy.distutils up to Python 3.11 only")
def test_nothing_is_stubbed_where_numpy_distutils_exists():
    done = cupy_compat.prepare_chainer_import()
    assert not any("stubbed" in line for line in done)
    module = sys.modules.get("numpy.distutils")
    assert module is None or not getattr(module, "wm_studio_stub", False)


def test_chainer_imports_without_numpy_distutils_once_wm_studio_is_imported():
    """Python 3.12 with numpy 1.26 has no numpy.distutils; here it is hidden from a fresh interpreter. Importing
    wm_studio prepares Chainer's import (its __init__), so every entry point gets it."""
    script = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy.distutils" or name.startswith("numpy.distutils."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
try:
    import chainer
except ImportError as exc:
    print("without:", exc)
for name in [n for n in sys.modules if n == "chainer" or n.startswith("chainer.")]:
    del sys.modules[name]
import wm_studio
print("stubbed:", getattr(sys.modules.get("numpy.distutils"), "wm_studio_stub", False))
import chainer, chainer.functions as F, numpy as np
print("with:", chainer.__version__, float(F.sum(F.relu(np.array([-1.0, 2.0], np.float32))).array))
"""
    done = run_python(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "without: numpy.distutils" in done.stdout       # the import failed where nothing stubs it
    assert "stubbed: True" in done.stdout
    assert "with: 7.8.1 2.0" in done.stdout


def test_stub_answers_like_numpy_distutils_for_an_unknown_library():
    stub = cupy_compat._stub_numpy_distutils()
    assert stub.system_info.get_info("blas_opt") == {}
    assert stub.wm_studio_stub


def test_only_cupys_unused_library_warnings_are_silenced():
    script = """
import warnings
from wm_studio.core import cupy_compat
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cupy_compat.prepare_chainer_import()              # its filters go in front of "always"
    for library in ("nccl", "cutensor", "cudnn"):
        warnings.warn(f"\\n{library} library could not be loaded.\\n\\nReason: ImportError (lib{library}.so)",
                      UserWarning)
    warnings.warn("cupy.cudnn is deprecated. Use cupyx.cudnn instead", DeprecationWarning)
    warnings.warn("something else went wrong", UserWarning)
print([str(w.message) for w in caught])
"""
    done = run_python(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['something else went wrong']"


def test_apply_sets_chainers_nccl_flag_from_cupys(monkeypatch):
    import chainer.training.updaters.multiprocess_parallel_updater as updater
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", types.SimpleNamespace(available=False))
    monkeypatch.setattr(updater, "_available", True)     # what Chainer concluded from the import succeeding
    assert cupy_compat.apply() == ["Chainer's NCCL flag set to CuPy's (False)"]
    assert updater._available is False
    assert cupy_compat.apply() == []                      # idempotent


def test_apply_does_nothing_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)        # import cupy raises ImportError
    assert cupy_compat.apply() == []


def test_probe_says_in_one_line_when_chainer_cannot_use_the_gpu(monkeypatch, fresh_probe):
    from chainer.backends import cuda
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=1))
    monkeypatch.setattr(cuda, "available", False)
    monkeypatch.setattr(cuda, "_resolution_error",
                        ImportError("libcublas.so.12: cannot open shared object file: No such file or directory"),
                        raising=False)
    device = core_device.resolve_device("gpu")
    assert device.kind == "cpu"
    assert "\n" not in device.notice
    assert device.notice.startswith("no GPU: CuPy sees 1 GPU(s) but Chainer cannot use CuPy: libcublas.so.12")
    assert device.notice.endswith("running on the CPU")


def test_probe_applies_the_fixes_when_chainer_can_use_the_gpu(monkeypatch, fresh_probe):
    from chainer.backends import cuda
    calls = []
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=2))
    monkeypatch.setattr(cuda, "available", True)
    monkeypatch.setattr(cupy_compat, "apply", lambda: calls.append("apply") or [])
    assert core_device.gpu_probe() == (2, None)
    assert calls == ["apply"]


@pytest.mark.parametrize("code, hint", [("cudaErrorInsufficientDriver", "no NVIDIA driver"),
                                        ("cudaErrorNoDevice", "no NVIDIA GPU")])
def test_probe_explains_cudas_usual_errors_without_a_gpu(monkeypatch, fresh_probe, code, hint):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(error=RuntimeError(f"{code}: details")))
    device = core_device.resolve_device("gpu:0")
    assert device.kind == "cpu" and hint in device.notice and code in device.notice and "\n" not in device.notice
