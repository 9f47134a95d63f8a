"""Make a compact copy of a trained run, as the studio's bundled default model (resources/default_model).

    report = make_bundle(Run.open("runs/default"), "resources/default_model", rollouts=6)

The copy holds config.json, V, M and C with float16 weights (loading casts them back to float32), the first few
rollouts, encoded again by the float16 V (enough for the Latent and Dream panes), the metrics (the Training pane's curves and
the last evaluation) and BUNDLE.json saying where it came from. It leaves out checkpoints and the rest of the
data. It is built in a temporary folder beside `out` and renamed into place, so a failed bundle never replaces
a good one.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wm_studio.core.backend import resolve_device
from wm_studio.core.data.dataset import rollout_files
from wm_studio.core.errors import ConfigError
from wm_studio.core.files import load_npz, save_json, save_npz
from wm_studio.core.runs import Run
from wm_studio.core.run_contents import MODEL_PARTS
from wm_studio.core.train.encode import encode_rollouts

BUNDLE_FILE = "BUNDLE.json"


@dataclass(frozen=True)
class BundleReport:
    out: Path
    files: int
    size_bytes: int

    def summary(self) -> str:
        return f"bundled {self.files} files, {self.size_bytes / 2**20:.1f} MiB, into {self.out}"


def make_bundle(run: Run, out, rollouts: int = 6) -> BundleReport:
    """Copy `run` compactly into the folder `out` (replaced if it exists); see the module docstring."""
    if rollouts < 1:
        raise ConfigError(f"a bundle needs at least one rollout, not {rollouts}")
    missing = [stage for stage in MODEL_PARTS if not run.model_path(stage).is_file()]
    if missing:
        raise ConfigError(f"{run.root} has no trained {', '.join(missing)} yet: finish the run first "
                          f"(`wm-studio pipeline --run {run.root}`)")
    out = Path(out)
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _fill(run, staging, rollouts)
        _replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    return BundleReport(out, len(files), sum(p.stat().st_size for p in files))


def _fill(run: Run, staging: Path, rollouts: int) -> None:
    (staging / "models").mkdir(parents=True)
    shutil.copy2(run.config_path, staging / "config.json")
    for stage in MODEL_PARTS:
        _copy_as_float16(run.model_path(stage), staging / "models" / f"{stage}.npz")
    kept = rollout_files(run.rollouts_dir)[:rollouts]
    bundle = Run(staging)
    bundle.rollouts_dir.mkdir(parents=True)
    for rollout in kept:
        shutil.copy2(rollout, bundle.rollouts_dir / rollout.name)
    for _ in encode_rollouts(bundle, resolve_device("cpu")):   # latents of the float16 V, so they match it
        pass
    metrics = run.root / "metrics"
    if metrics.is_dir():
        shutil.copytree(metrics, staging / "metrics")
    save_json(staging / BUNDLE_FILE, {"source": str(run.root), "made": time.strftime("%Y-%m-%d %H:%M"),
                                      "rollouts": len(kept), "weights": "float16"})


def _copy_as_float16(source: Path, target: Path) -> None:
    arrays, meta = load_npz(source)
    compact = {name: value.astype(np.float16) if np.issubdtype(value.dtype, np.floating) else value
               for name, value in arrays.items()}
    save_npz(target, compact, {**meta, "dtype": "float16"}, compressed=True)


def _replace(staging: Path, out: Path) -> None:
    """Swap the finished staging folder in for `out`, keeping the old one until the new one is in place."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
