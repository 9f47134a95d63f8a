"""The GPU check of issue 15: every figure in one run, written as JSON as it goes.

    python benchmarks/gpu_check.py --out OUT                        # on a GPU machine (gpu_check.sh calls it)
    python benchmarks/gpu_check.py --device cpu --quick --out OUT   # a dry run of every phase on the CPU

Phases (`--phases`, comma-separated, in this order by default):

- machine: Python, numpy, Chainer, CuPy, CUDA (runtime, driver, NVRTC, cuDNN, NCCL), the GPU, what
  `resolve_device` picks, and what wm_studio.core.cupy_compat did;
- audit: every CuPy attribute that Chainer 7.8.1's code names, resolved in the installed CuPy (by import, or
  by the compiled module's names where a CUDA library is missing);
- tests: `pytest -m gpu` on the files that hold GPU tests (JUnit XML beside the JSON);
- vae: V (the paper's ConvVAE, z 32, batch 100) trained by the real stage on synthetic frames, a few hundred
  batches on the device and fewer on the CPU: images/s of both, the first batch (CUDA kernels compile there) and
  the first loss of each (same seed, same batches: they agree to float32 rounding);
- mdn: M (LSTM 256, 5 Gaussians, z 32, batch 100 x 100 steps) likewise: transitions/s;
- cmaes: full CMA-ES at n = 10,000, lambda 64, numpy against CuPy: seconds per generation (median of the
  regular generations plus one timed eigendecomposition spread over the engine's eigen gap);
- studio: V trains on the device on a background thread while the Latent pane's slider decodes (its decoder
  process); p50 / p95 from value change to image shown, target p95 <= 16 ms. With PyQt5 it runs
  benchmarks/bench_studio_latent.py (the real pane, offscreen); without it (a GPU machine that cannot carry
  PyQt5's 60 MB) it measures the same decode round trips without Qt and says so.

Each phase's figures (or its error) are saved in OUT/gpu_check.json right after it ends, so a run cut short
keeps what it measured; `--budget-s` skips the phases that would start after that many seconds.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wm_studio.core import cupy_compat  # noqa: E402  (before anything imports Chainer)

PREPARED = cupy_compat.prepare_chainer_import()

import numpy as np  # noqa: E402

PHASES = ("machine", "audit", "tests", "vae", "mdn", "cmaes", "studio")
GPU_TEST_FILES = ("tests/core/test_gpu_path.py", "tests/core/es/test_cmaes_behaviour.py")   # hold `gpu` tests
SLIDER_TARGET_MS = 16.0

# Sizes: (full, quick). Full sizes follow the issue: a few hundred batches on the device, fewer on the CPU.
SIZES = {
    "vae_batches": (300, 3), "vae_cpu_batches": (40, 3), "vae_batch_size": (100, 8), "vae_warmup": (10, 1),
    "vae_frames": (10_000, 64),
    "mdn_batches": (200, 3), "mdn_cpu_batches": (20, 3), "mdn_batch_size": (100, 4), "mdn_seq_len": (100, 16),
    "mdn_warmup": (5, 1), "mdn_files": (100, 4), "mdn_steps": (1000, 60), "mdn_hidden": (256, 32),
    "cmaes_n": (10_000, 300), "cmaes_generations": (5, 3),
    "studio_changes": (300, 20),
}


def size(name: str, quick: bool):
    return SIZES[name][1 if quick else 0]


# ---- results ----------------------------------------------------------------------------------------------------

class Results:
    def __init__(self, out: Path, args):
        self.path = out / "gpu_check.json"
        self.started = time.monotonic()
        self.data = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:], "device": args.device,
                     "quick": args.quick, "compat_prepared": PREPARED, "phases": {}}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def record(self, phase: str, figures: dict):
        self.data["phases"][phase] = figures
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.data, indent=2, default=_jsonable) + "\n")
        temporary.replace(self.path)


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def synchronize(device) -> None:
    """Wait for the GPU's queued work (timings of CuPy code end here); nothing on the CPU."""
    if device.kind == "gpu":
        import cupy
        cupy.cuda.Device(device.index).synchronize()


# ---- machine ----------------------------------------------------------------------------------------------------

def phase_machine(args) -> dict:
    from wm_studio.core.device import gpu_probe, resolve_device
    import chainer
    from chainer.backends import cuda as chainer_cuda
    device = resolve_device(args.device)
    figures = {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
        "numpy": np.__version__, "chainer": chainer.__version__,
        "chainer_cuda_available": bool(chainer_cuda.available),
        "chainer_cudnn_enabled": bool(chainer_cuda.cudnn_enabled),
        "chainer_cuda_resolution_error": str(getattr(chainer_cuda, "_resolution_error", "") or "") or None,
        "gpu_probe": list(gpu_probe()), "device_asked": args.device, "device": device.name,
        "device_described": device.describe(), "device_notice": device.notice,
        "compat_applied": (cupy_compat.apply() or "nothing left to do (gpu_probe applied it)") if
        device.kind == "gpu" else "not applied (no GPU)",
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"), "CUDA_PATH": os.environ.get("CUDA_PATH"),
    }
    try:
        import cupy
    except Exception as exc:
        figures["cupy"] = f"not importable: {exc}"
        return figures
    figures["cupy"] = cupy.__version__
    figures["cupy_cuda_path"] = _try(lambda: cupy.cuda.get_cuda_path())
    figures["cuda_runtime"] = _try(lambda: cupy.cuda.runtime.runtimeGetVersion())
    figures["cuda_driver"] = _try(lambda: cupy.cuda.runtime.driverGetVersion())
    figures["nvrtc"] = _try(lambda: list(cupy.cuda.nvrtc.getVersion()))
    figures["cudnn"] = _try(lambda: bool(importlib.import_module("cupy.cuda.cudnn").available))
    figures["nccl"] = _try(lambda: bool(importlib.import_module("cupy.cuda.nccl").available))
    if device.kind == "gpu":
        props = cupy.cuda.runtime.getDeviceProperties(device.index)
        name = props.get("name", b"")
        figures["gpu"] = {"name": name.decode() if isinstance(name, bytes) else str(name),
                          "compute_capability": f"{props.get('major')}.{props.get('minor')}",
                          "memory_gib": round(props.get("totalGlobalMem", 0) / 2 ** 30, 1),
                          "multiprocessors": props.get("multiProcessorCount")}
        started = time.perf_counter()
        total = float((cupy.arange(1 << 10, dtype=cupy.float32) * 2).sum())     # compiles two kernels
        figures["first_kernel_s"] = round(time.perf_counter() - started, 3)
        figures["first_kernel_ok"] = total == float((np.arange(1 << 10) * 2).sum())
    return figures


def _try(function):
    try:
        return function()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


# ---- audit ------------------------------------------------------------------------------------------------------

# What chainer.backends.cuda's names stand for (it binds them from CuPy when CuPy imports).
CHAINER_CUDA_NAMES = {"cupy": "cupy", "cupyx": "cupyx", "cudnn": "cupy.cudnn", "libcudnn": "cupy.cuda.cudnn",
                      "cuda": "cupy.cuda", "ndarray": "cupy.ndarray", "Device": "cupy.cuda.Device",
                      "Event": "cupy.cuda.Event", "Stream": "cupy.cuda.Stream"}
CHAINER_CUDA_MODULES = ("chainer.backends.cuda", "chainer.cuda")


def _dotted(node) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _bindings(tree: ast.Module, module_name: str) -> dict[str, str]:
    """Names a Chainer module binds to CuPy or to chainer.backends.cuda: imports, and `name = chain` lines."""
    names: dict[str, str] = {}
    if module_name == "chainer.backends.cuda":
        names.update({"cuda": "cupy.cuda", "cudnn": "cupy.cudnn", "libcudnn": "cupy.cuda.cudnn"})
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("cupy", "cupyx"):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if node.module.split(".")[0] in ("cupy", "cupyx") or full in CHAINER_CUDA_MODULES:
                    names[alias.asname or alias.name] = full
    for node in ast.walk(tree):     # `cudnn = cuda.cudnn`, `libcudnn = cuda.cuda.cudnn`, ...
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            parts = _dotted(node.value)
            if parts and parts[0] in names:
                names[node.targets[0].id] = _to_cupy(".".join([names[parts[0]]] + parts[1:])) or ""
    return {name: target for name, target in names.items() if target}


def _to_cupy(dotted: str) -> str | None:
    for prefix in CHAINER_CUDA_MODULES:
        if dotted == prefix:
            return prefix
        if dotted.startswith(prefix + "."):
            head, _, rest = dotted[len(prefix) + 1:].partition(".")
            if head in CHAINER_CUDA_NAMES:
                return CHAINER_CUDA_NAMES[head] + ("." + rest if rest else "")
            return None
    return dotted if dotted.split(".")[0] in ("cupy", "cupyx") else None


def chainer_cupy_references(chainer_root: Path) -> dict[str, set[str]]:
    """{cupy.dotted.name: files of Chainer that name it} over Chainer's code (its test helpers left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted(chainer_root.rglob("*.py")):
        relative = path.relative_to(chainer_root.parent)
        if relative.parts[1:2] == ("testing",):
            continue
        module_name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf8"))
        names = _bindings(tree, module_name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            parts = _dotted(node)
            if not parts or parts[0] not in names:
                continue
            dotted = _to_cupy(".".join([names[parts[0]]] + parts[1:]))
            if dotted and dotted.split(".")[0] in ("cupy", "cupyx"):
                found.setdefault(dotted, set()).add(str(relative))
    # keep the longest chains: a.b.c covers a.b
    return {name: files for name, files in found.items()
            if not any(other.startswith(name + ".") for other in found)}


def _compiled_names(module_name: str) -> tuple[set[str], bytes] | None:
    """(identifier strings, raw bytes) of a compiled module's file, read without loading it (its CUDA library may
    be missing). Names the module defines stand alone there, or (Cython 3 packs its string table) inside a longer
    run of text: a name found only that way is reported as such."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        return None
    data = Path(spec.origin).read_bytes()
    tokens = {token.decode() for token in
              re.findall(rb"(?<![\x21-\x7e])([A-Za-z_][A-Za-z0-9_]*)(?![\x21-\x7e])", data)}
    return tokens, data


def resolve(dotted: str) -> tuple[str, str]:
    """("ok" | "ok by name" | "missing" | "missing by name" | "unverified", detail)."""
    parts = dotted.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except Exception as exc:
        return "unverified", f"{parts[0]} does not import: {exc}"
    path = parts[0]
    for index, part in enumerate(parts[1:], start=1):
        following = parts[index + 1] if index + 1 < len(parts) else None
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(f"{path}.{part}")
            except ModuleNotFoundError:
                return _by_name(path, part, "no such attribute or module")
            except Exception as exc:    # the module exists but its CUDA library does not load here
                if following is None:
                    return "ok by name", f"{path}.{part} exists but does not load here: {type(exc).__name__}: {exc}"
                return _by_name(f"{path}.{part}", following, f"{type(exc).__name__}: {exc}", loaded=False)
        except Exception as exc:
            return "unverified", f"{path}.{part}: {type(exc).__name__}: {exc}"
        path = f"{path}.{part}"
    return "ok", ""


def _by_name(module_path: str, attribute: str, why: str, loaded: bool = True) -> tuple[str, str]:
    """An attribute missing from a module: really missing, unless the module did not load (or loaded without its
    CUDA library, `available = False`); then look for the name in its compiled file."""
    module = sys.modules.get(module_path)
    if loaded and not (module is not None and getattr(module, "available", True) is False):
        return "missing", f"{module_path}.{attribute}: {why}"
    last = module_path.rsplit(".", 1)[-1]
    # cupy.cudnn re-exports cupyx.cudnn; cupy.cuda.<library> re-exports cupy_backends.cuda.libs.<library>.
    candidates = {f"cupy.{last}": f"cupyx.{last}", f"cupy.cuda.{last}": f"cupy_backends.cuda.libs.{last}"}
    for candidate in (candidates.get(module_path, module_path),):
        found = _compiled_names(candidate)
        if found is not None:
            tokens, data = found
            verdict = ("ok by name" if attribute in tokens else "ok by name (inside packed strings)"
                       if attribute.encode() in data else "missing by name")
            return verdict, f"looked in {candidate}'s compiled names (its library does not load here)"
    return "unverified", f"{module_path} has no compiled module to look in ({why})"


def phase_audit(args) -> dict:
    import chainer
    references = chainer_cupy_references(Path(chainer.__file__).parent)
    verdicts: dict[str, list] = {}
    for name in sorted(references):
        status, detail = resolve(name)
        verdicts.setdefault(status, []).append({"name": name, "detail": detail, "files": sorted(references[name])})
    figures = {"names": len(references), "counts": {status: len(items) for status, items in verdicts.items()}}
    figures["problems"] = [item for status in ("missing", "missing by name") for item in verdicts.get(status, [])]
    figures["unverified"] = verdicts.get("unverified", [])
    figures["by_name"] = [item["name"] for status in ("ok by name", "ok by name (inside packed strings)")
                          for item in verdicts.get(status, [])]
    return figures


# ---- tests ------------------------------------------------------------------------------------------------------

def phase_tests(args) -> dict:
    """The tests marked `gpu` (they skip without a GPU), then cupy_compat's own tests (no GPU needed)."""
    # Only the plugins these tests need: a GPU machine's Python may hold others that do not suit numpy 1.26.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SDL_VIDEODRIVER": "dummy",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plugins = ["-p", "pytest_timeout"] if _importable("pytest_timeout") else []
    files = [f for f in GPU_TEST_FILES if (ROOT / f).exists()]
    runs = {"gpu": ["-m", "gpu", "--junitxml", str(Path(args.out) / "gpu_tests.xml"), *files],
            "compat": ["tests/core/test_cupy_compat.py"]}
    figures = {}
    for name, selection in runs.items():
        command = [sys.executable, "-m", "pytest", "-rs", "-q", "-p", "no:cacheprovider", *plugins, *selection]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=args.tests_timeout_s)
        lines = (done.stdout + done.stderr).strip().splitlines()
        pattern = r"(\d+) (passed|failed|skipped|deselected|errors?)"
        summary = next((line for line in reversed(lines) if re.search(pattern, line)), "")
        figures[name] = {"command": " ".join(command[2:]), "returncode": done.returncode,
                         "summary": summary.strip("= "),
                         "counts": {word: int(number) for number, word in re.findall(pattern, summary)},
                         "seconds": round(time.perf_counter() - started, 1), "tail": lines[-40:]}
    figures["returncode"] = max(run["returncode"] for run in figures.values())
    figures["summary"] = "; ".join(f"{name}: {run['summary']}" for name, run in figures.items()
                                   if isinstance(run, dict))
    return figures


# ---- V and M ----------------------------------------------------------------------------------------------------

def _timed_stage(generator, batches: int, warmup: int, device, batch_units: int) -> dict:
    """Iterate a training stage (one snapshot per batch): the first batch's time, then `warmup` batches, then
    `batches` timed ones. Each batch ends with the loss read back to the host (the stage does that), so the times
    are the GPU's too."""
    times, losses = [], []
    last = time.perf_counter()
    first_batch_s = None
    for index, snapshot in enumerate(generator):
        synchronize(device)
        now = time.perf_counter()
        if index == 0:
            first_batch_s = now - last
            history = np.asarray(snapshot.history)
            losses.append(float(history[0, 1]) if len(history) else float("nan"))
        elif index > warmup:
            times.append(now - last)
        last = now
        if len(times) >= batches:
            break
    generator.close()
    total = sum(times)
    return {"batches_timed": len(times), "warmup_batches": warmup, "first_batch_s": round(first_batch_s, 3),
            "seconds": round(total, 3), "per_s": batch_units * len(times) / total if total else None,
            "per_s_median_batch": batch_units / statistics.median(times) if times else None,
            "first_loss": losses[0] if losses else None}


def _devices(args):
    from wm_studio.core.device import resolve_device
    accelerated = resolve_device(args.device)
    return accelerated, resolve_device("cpu")


def _vae_run(root: Path, frames_total: int, seed: int = 0):
    from wm_studio.core.files import save_npz
    from wm_studio.core.presets import preset
    from wm_studio.core.runs import Run
    run = Run.create(root, preset("carracing", "quick"))
    rng = np.random.default_rng(seed)
    per_file = min(500, frames_total)
    for index in range(max(1, frames_total // per_file)):
        frames = rng.integers(0, 256, (per_file, 64, 64, 3), dtype=np.uint8)
        frames[:, 40:] = (90, 150, 90)                                   # some structure: a "road" band
        arrays = {"frames": frames, "actions": rng.uniform(-1, 1, (per_file, 3)).astype(np.float32),
                  "rewards": np.zeros(per_file, np.float32), "dones": np.zeros(per_file, bool)}
        save_npz(run.rollouts_dir / f"rollout_{index:06d}.npz", arrays, {"env": "carracing"})
    return run


def phase_vae(args, scratch: Path) -> dict:
    from wm_studio.core.train.vae_stage import VaeSettings, train_vae
    quick = args.quick
    accelerated, cpu = _devices(args)
    batch = size("vae_batch_size", quick)
    settings = VaeSettings(z_size=32, epochs=10 ** 6, batch_size=batch, holdout=0.0, checkpoint_every_s=1e9,
                           preview_every=10 ** 9)
    figures = {"model": "ConvVAE z 32 (the paper's V)", "batch_size": batch, "frames": size("vae_frames", quick),
               "unit": "images/s"}
    for label, device, batches in (("device", accelerated, size("vae_batches", quick)),
                                   ("cpu", cpu, size("vae_cpu_batches", quick))):
        run = _vae_run(scratch / f"vae-{label}", size("vae_frames", quick))
        result = _timed_stage(train_vae(run, settings, device), batches, size("vae_warmup", quick), device, batch)
        figures[label] = {"device": device.name, "notice": device.notice, **result}
        print(f"  V on {device.name}: {result['per_s']:.1f} images/s ({result['batches_timed']} batches of {batch}; "
              f"first batch {result['first_batch_s']:.2f} s)", flush=True)
    _ratio(figures)
    return figures


def _ratio(figures: dict) -> None:
    device, cpu = figures["device"], figures["cpu"]
    if device.get("per_s") and cpu.get("per_s"):
        figures["device_over_cpu"] = device["per_s"] / cpu["per_s"]
    if device.get("first_loss") and cpu.get("first_loss"):
        figures["first_loss_relative_difference"] = abs(device["first_loss"] - cpu["first_loss"]) / abs(
            cpu["first_loss"])


def _mdn_run(root: Path, files: int, steps: int, z_size: int, seed: int = 0):
    from wm_studio.core.files import save_npz
    from wm_studio.core.presets import preset
    from wm_studio.core.runs import Run
    run = Run.create(root, preset("carracing", "quick"))
    rng = np.random.default_rng(seed)
    for index in range(files):
        mu = np.cumsum(rng.normal(0, 0.1, (steps, z_size)), axis=0).astype(np.float32)
        arrays = {"mu": mu, "logvar": np.full((steps, z_size), -2.0, np.float32),
                  "actions": rng.uniform(-1, 1, (steps, 3)).astype(np.float32),
                  "rewards": np.zeros(steps, np.float32), "dones": np.zeros(steps, bool)}
        save_npz(run.latents_dir / f"rollout_{index:06d}.npz", arrays, {"env": "carracing", "z_size": z_size})
    return run


def phase_mdn(args, scratch: Path) -> dict:
    from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn
    quick = args.quick
    accelerated, cpu = _devices(args)
    batch, seq_len, hidden = size("mdn_batch_size", quick), size("mdn_seq_len", quick), size("mdn_hidden", quick)
    settings = MdnSettings(z_size=32, action_size=3, hidden=hidden, predict_done=False, epochs=10 ** 6,
                           batch_size=batch, seq_len=seq_len, holdout=0.0, checkpoint_every_s=1e9)
    figures = {"model": f"MDN-RNN LSTM {hidden}, 5 Gaussians, z 32", "batch_size": batch, "seq_len": seq_len,
               "unit": "transitions/s (sequences x steps)"}
    for label, device, batches in (("device", accelerated, size("mdn_batches", quick)),
                                   ("cpu", cpu, size("mdn_cpu_batches", quick))):
        run = _mdn_run(scratch / f"mdn-{label}", size("mdn_files", quick), size("mdn_steps", quick), 32)
        result = _timed_stage(train_mdn(run, settings, device), batches, size("mdn_warmup", quick), device,
                              batch * seq_len)
        figures[label] = {"device": device.name, "notice": device.notice, **result}
        print(f"  M on {device.name}: {result['per_s']:.0f} transitions/s ({result['batches_timed']} batches of "
              f"{batch} x {seq_len}; first batch {result['first_batch_s']:.2f} s)", flush=True)
    _ratio(figures)
    return figures


# ---- CMA-ES -----------------------------------------------------------------------------------------------------

def phase_cmaes(args) -> dict:
    from wm_studio.core.device import resolve_device
    from wm_studio.core.es import CMAES
    from wm_studio.core.es.problems import get_problem
    n, generations = size("cmaes_n", args.quick), size("cmaes_generations", args.quick)
    accelerated = resolve_device(args.device)
    backends = [("numpy", resolve_device("cpu"))]
    backends.append(("cupy", accelerated))   # on the CPU the engine itself falls back to numpy, with its notice
    sphere = get_problem("sphere", n).evaluate
    figures = {"variant": "full", "n": n, "popsize": 64, "sigma0": 0.1, "generations_timed": generations}
    for backend, device in backends:
        es = CMAES(np.zeros(n), 0.1, popsize=64, seed=1, backend=backend)
        times = []
        for generation in range(generations + 1):
            started = time.perf_counter()
            X = es.ask()
            asked = time.perf_counter()
            values = sphere(X)
            resumed = time.perf_counter()
            es.tell(X, values)
            synchronize(device if es.backend == "cupy" else resolve_device("cpu"))
            if generation:                 # the first one is a warm-up
                times.append(asked - started + time.perf_counter() - resumed)
        started = time.perf_counter()
        es._decompose()                    # one eigendecomposition, as the engine does it every eigen_gap
        synchronize(device if es.backend == "cupy" else resolve_device("cpu"))
        eigh_s = time.perf_counter() - started
        regular = statistics.median(times)
        figures[backend] = {"engine_backend": es.backend, "notice": es.notice, "regular_s": regular,
                            "eigh_s": eigh_s, "eigen_gap": es.eigen_gap,
                            "s_per_generation": regular + eigh_s / es.eigen_gap}
        print(f"  CMA-ES full n={n} on {es.backend}: {figures[backend]['s_per_generation']:.4f} s/gen "
              f"(regular {regular:.4f} s, eigh {eigh_s:.2f} s every {es.eigen_gap})", flush=True)
        del es
    if figures["numpy"]["s_per_generation"] and figures["cupy"]["s_per_generation"]:
        figures["numpy_over_cupy"] = figures["numpy"]["s_per_generation"] / figures["cupy"]["s_per_generation"]
    return figures


# ---- the studio -------------------------------------------------------------------------------------------------

def phase_studio(args, scratch: Path) -> dict:
    changes = size("studio_changes", args.quick)
    if _importable("PyQt5") and _importable("pyqtgraph"):
        out = Path(args.out) / "studio_latent.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "bench_studio_latent.py"), "--changes", str(changes),
                   "--methods", "pane", "--device", args.device, "--out", str(out)]
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=args.studio_timeout_s)
        if done.returncode != 0:
            return {"qt": True, "returncode": done.returncode, "tail": (done.stdout + done.stderr)[-3000:]}
        rows = json.loads(out.read_text())["rows"]
        training = next(row for row in rows if row["training"] and row["method"] == "pane")
        idle = next(row for row in rows if not row["training"] and row["method"] == "pane")
        figures = {"qt": True, "what": "the Latent pane offscreen: slider value change -> image in the ImageItem",
                   "changes": changes, "idle": idle, "training": training}
    else:
        figures = _studio_without_qt(args, scratch, changes)
    figures["target_p95_ms"] = SLIDER_TARGET_MS
    figures["p95_ms_while_training"] = figures["training"]["p95_ms"]
    figures["meets_target"] = figures["training"]["p95_ms"] <= SLIDER_TARGET_MS
    trained_on = figures["training"].get("training_device") or args.device
    print(f"  slider decode while V trains on {trained_on}: p50 {figures['training']['p50_ms']:.1f} ms, "
          f"p95 {figures['training']['p95_ms']:.1f} ms ({'Qt pane' if figures['qt'] else 'no Qt'})", flush=True)
    return figures


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _studio_without_qt(args, scratch: Path, changes: int) -> dict:
    """The pane's decode path without Qt: V trains on the device on a plain thread (the generator the Training
    pane's worker runs) while the main thread asks the decoder process for one z at a time, 16 ms apart."""
    from wm_studio.core.models.vae import ConvVAE
    from wm_studio.core.train.vae_stage import VaeSettings, train_vae
    from wm_studio.gui.decoder_process import DecoderProcess
    accelerated, _ = _devices(args)
    vae = ConvVAE(32, seed=0)
    decoder = DecoderProcess()
    rng = np.random.default_rng(0)

    def latencies() -> dict:
        values = []
        z = np.zeros((1, 32), np.float32)
        for _ in range(changes):
            z[0, rng.integers(32)] = rng.uniform(-3, 3)
            started = time.perf_counter()
            decoder.decode(vae, z)
            values.append((time.perf_counter() - started) * 1000)
            time.sleep(0.016)
        ms = np.array(values)
        return {"changes": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                "max_ms": float(ms.max())}

    try:
        decoder.decode(vae, np.zeros((1, 32), np.float32))          # start the child and send V once
        idle = latencies()
        run = _vae_run(scratch / "studio-train", 2000)
        settings = VaeSettings(z_size=32, epochs=10 ** 6, batch_size=100, holdout=0.0, checkpoint_every_s=1e9,
                               preview_every=10 ** 9)
        stop, trained = threading.Event(), []

        def train():
            generator = train_vae(run, settings, accelerated)
            for snapshot in generator:
                trained.append(snapshot.done if hasattr(snapshot, "done") else len(trained))
                if stop.is_set():
                    break
            generator.close()

        worker = threading.Thread(target=train, name="wm-studio gpu-check training", daemon=True)
        worker.start()
        deadline = time.monotonic() + 120
        while len(trained) < 3 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        started, before = time.perf_counter(), len(trained)
        training = latencies()
        rate = (len(trained) - before) * 100 / (time.perf_counter() - started)
        stop.set()
        worker.join(60)
    finally:
        decoder.close()
    return {"qt": False, "what": "decode round trip through the pane's DecoderProcess, no Qt (PyQt5 not installed "
            "here): the pane adds drawing the image on top", "changes": changes, "idle": idle,
            "training": {**training, "training_images_per_s": rate, "training_device": accelerated.name}}


# ---- main -------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_out", help="folder for the JSON (default $OUT)")
    parser.add_argument("--device", default="gpu", help="the device measured against the CPU (default gpu)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run of every phase")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from {', '.join(PHASES)}")
    parser.add_argument("--budget-s", type=float, default=1e9, help="start no phase after this many seconds")
    parser.add_argument("--tests-timeout-s", type=float, default=240)
    parser.add_argument("--studio-timeout-s", type=float, default=180)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out, args)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(unknown)}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="wm-gpu-check-") as scratch:
        for phase in phases:
            if results.elapsed() > args.budget_s:
                results.record(phase, {"skipped": f"time budget of {args.budget_s:.0f} s spent"})
                print(f"== {phase}: skipped (time budget)", flush=True)
                continue
            print(f"== {phase} (at {results.elapsed():.0f} s)", flush=True)
            started = time.perf_counter()
            try:
                function = globals()[f"phase_{phase}"]
                takes_scratch = function.__code__.co_argcount == 2
                figures = function(args, Path(scratch)) if takes_scratch else function(args)
            except Exception as exc:
                failed.append(phase)
                figures = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
                print(f"   {phase} failed: {type(exc).__name__}: {exc}", flush=True)
            figures["phase_seconds"] = round(time.perf_counter() - started, 1)
            results.record(phase, figures)
    tests = results.data["phases"].get("tests", {})
    if tests.get("returncode") not in (None, 0):
        failed.append("tests")
    results.data["failed_phases"] = failed
    results.record("summary", summary(results.data["phases"]))
    print(json.dumps(results.data["phases"]["summary"], indent=2, default=_jsonable))
    print(f"figures in {results.path}")
    return 1 if failed else 0


def summary(phases: dict) -> dict:
    """The figures the README's table needs, one line each."""
    def get(*keys):
        value = phases
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value
    return {
        "gpu": get("machine", "gpu", "name"), "cupy": get("machine", "cupy"), "cuda_runtime":
            get("machine", "cuda_runtime"), "cudnn": get("machine", "cudnn"),
        "tests": get("tests", "summary"),
        "audit_problems": [item["name"] for item in get("audit", "problems") or []],
        "vae_images_per_s": {"device": get("vae", "device", "per_s"), "cpu": get("vae", "cpu", "per_s")},
        "mdn_transitions_per_s": {"device": get("mdn", "device", "per_s"), "cpu": get("mdn", "cpu", "per_s")},
        "cmaes_s_per_generation": {"numpy": get("cmaes", "numpy", "s_per_generation"),
                                   "cupy": get("cmaes", "cupy", "s_per_generation"), "n": get("cmaes", "n")},
        "slider_p95_ms_while_training": get("studio", "p95_ms_while_training"),
        "slider_meets_16ms": get("studio", "meets_target"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
