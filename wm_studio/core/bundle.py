"""Make a compact copy of a trained run, as the studio's bundled default model (resources/default_model).

    report = make_bundle(Run.open("runs/default"), "resources/default_model", rollouts=6)

The copy holds config.json; V, M and C with float16 weights (loading casts them back to float32); the first few
rollouts, encoded again by the float16 V (enough for the Latent and Dream panes); the metrics (the last evaluation
included); each stage's training record for the Training pane's curves (history/<stage>.npz: the newest
checkpoint without weights and optimiser state); and BUNDLE.json saying where it came from. It leaves out the
checkpoints and the rest of the data. It is built in a temporary folder beside `out` and renamed into place, so
a failed bundle never replaces a good one.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wm_studio.core.device import resolve_device
from wm_studio.core.data.dataset import rollout_files
from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.files import load_json, load_npz, save_json, save_npz
from wm_studio.core.runs import BUNDLE_FILE, Run, output_file, read_only_folder
from wm_studio.core.run_contents import MODEL_PARTS
from wm_studio.core.train.encode import encode_rollouts

RECORD_DIR = "history"      # BUNDLE/history/<stage>.npz: the stage's newest checkpoint without its weights
TRAINING_STATE = ("model/", "optimizer/")


@dataclass(frozen=True)
class BundleReport:
    out: Path
    files: int
    size_bytes: int

    def summary(self) -> str:
        return f"bundled {self.files} files, {self.size_bytes / 2**20:.1f} MiB, into {self.out}"


def bundled_rollouts(run: Run) -> int | None:
    """How many rollouts a bundle kept of those its V was trained on; None for a run that is no bundle."""
    path = run.root / BUNDLE_FILE
    if not path.is_file():
        return None
    try:
        return int(load_json(path)["rollouts"])
    except (WmStudioError, KeyError, TypeError, ValueError):
        return None


def make_bundle(run: Run, out, rollouts: int = 6, replace: bool = False) -> BundleReport:
    """Copy `run` compactly into the folder `out`; see the module docstring. An existing `out` is replaced only
    when it is a bundle and `replace` is set: bundles are read-only, and a run folder is never deleted."""
    if rollouts < 1:
        raise ConfigError(f"a bundle needs at least one rollout, not {rollouts}")
    out = Path(out)
    if out.exists():
        if read_only_folder(out) != out.resolve():
            raise ConfigError(f"--out {out} exists and is not a bundle: choose a new folder (bundling replaces "
                              f"only an older bundle)")
        if not replace:
            raise ConfigError(f"--out {out} is a bundle already, and bundles are read-only: pass --replace to "
                              f"replace it")
        output_file(out.parent / f".{out.name}.tmp")      # its folder must be no bundle itself
    else:
        output_file(out)
    missing = [stage for stage in MODEL_PARTS if not run.model_path(stage).is_file()]
    if missing:
        raise ConfigError(f"{run.root} has no trained {', '.join(missing)} yet: finish the run first "
                          f"(`wm-studio pipeline --run {run.root}`)")
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
    for stage in ("vae", "mdn", "controller"):
        _copy_training_record(run, stage, staging / RECORD_DIR / f"{stage}.npz")
    metrics = run.root / "metrics"
    if metrics.is_dir():
        shutil.copytree(metrics, staging / "metrics")
    save_json(staging / BUNDLE_FILE, {"source": str(run.root), "made": time.strftime("%Y-%m-%d %H:%M"),
                                      "rollouts": len(kept), "weights": "float16"})


def _copy_training_record(run: Run, stage: str, target: Path) -> None:
    """What the Training pane draws of a finished stage (losses, held-out figures, C's search distribution),
    without the weights and optimiser state that only resuming needs: a bundle is never trained further."""
    latest = run.latest_checkpoint(stage)
    if latest is None:
        return
    arrays, meta = load_npz(latest)
    record = {name: value.astype(np.float32) if value.dtype == np.float64 else value   # C's n x n: half the size
              for name, value in arrays.items() if not name.startswith(TRAINING_STATE)}
    save_npz(target, record, {**meta, "record_of": latest.name}, compressed=True)


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
