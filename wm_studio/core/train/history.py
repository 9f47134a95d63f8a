"""What a stage has done so far, read back from a run folder as the stage's own snapshot type: the studio's Training
pane draws it when it opens a run, before (or without) training anything.

    snapshot = stage_history(run, "vae")     # VaeSnapshot, MdnSnapshot, ControllerSnapshot, CollectHistory or None

V, M and C: the newest checkpoint's (for a bundled model: its history/<stage>.npz) recorded history (loss per batch, held-out figures per epoch; C's fitness per
generation, its last population and the search distribution projected on C's two leading axes), read lazily from
the npz (weights and optimiser state are not loaded). No reconstructions or predictions are made: those arrays are
empty, except V's preview pairs (with preview=True): the held-out frames V's stage previews, reconstructed by the V
in models/vae.npz. Collect: the reward of every rollout written so far, from metrics/collect.jsonl.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np

from wm_studio.core.files import load_npz, read_meta, unreadable_npz
from wm_studio.core.runs import Run
from wm_studio.core.train.checkpointing import epoch_counts, prefixed, widen

NO_FRAMES = np.zeros((0, 64, 64, 3), np.uint8)


@dataclass(frozen=True)
class CollectHistory:
    step: ClassVar[str] = "collect"  # the step that makes it (wm_studio.core.stages)
    done: int                 # rollouts on disk
    total: int                # rollouts wanted
    rewards: np.ndarray       # (k,) total reward of each rollout written, in the order they were written
    indices: np.ndarray       # (k,) their rollout numbers

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def summary(self) -> str:
        mean = f", mean reward {self.rewards.mean():.1f}" if len(self.rewards) else ""
        return f"{self.done} / {self.total} rollouts on disk{mean}"


def _read(path: Path, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
    """The named arrays (those present) and the meta of an npz, without reading the other arrays."""
    meta = read_meta(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names if name in data.files}, meta
    except (OSError, ValueError, KeyError, EOFError):
        raise unreadable_npz(path) from None


def stage_history(run: Run, stage: str, preview: bool = False):
    """The stage's progress as a snapshot, or None when it has not started."""
    if stage == "collect":
        return _collect(run)
    path = run.latest_checkpoint(stage) or _bundled_record(run, stage)
    if path is None:
        return None
    if stage == "vae":
        return _vae(run, path, preview)
    if stage == "mdn":
        return _mdn(run, path)
    if stage == "controller":
        return _controller(run, path)
    raise ValueError(f"unknown stage {stage!r}")


def _bundled_record(run: Run, stage: str) -> Path | None:
    """A bundled model (wm-studio bundle) has no checkpoints but keeps each stage's record in history/."""
    from wm_studio.core.bundle import RECORD_DIR
    path = run.root / RECORD_DIR / f"{stage}.npz"
    return path if path.is_file() else None


def _collect(run: Run) -> CollectHistory | None:
    from wm_studio.core.bundle import bundled_rollouts
    from wm_studio.core.data.collect import CollectSettings, missing_rollouts
    settings = CollectSettings.from_config(run.config)
    records = [r for r in run.read_metrics("collect") if "reward" in r and "rollout" in r]
    done = settings.rollouts - len(missing_rollouts(run.rollouts_dir, settings.rollouts))
    if not records and not done:
        return None
    total = bundled_rollouts(run) or settings.rollouts   # a bundle keeps only a few of the run's rollouts
    return CollectHistory(done, total, np.array([float(r["reward"]) for r in records]),
                          np.array([int(r["rollout"]) for r in records], dtype=np.int64))


def _recent_means(history: np.ndarray, columns: slice, recent: int = 20) -> np.ndarray:
    rows = history[-recent:, columns]
    return rows.mean(axis=0) if len(rows) else np.full(rows.shape[1], math.nan)


def _vae_preview(run: Run, settings) -> tuple[np.ndarray, np.ndarray]:
    """The frames V's stage previews (the first held-out rollout) and their reconstructions by models/vae.npz."""
    from wm_studio.core.data.dataset import split_holdout
    from wm_studio.core.models.serialization import load_vae
    from wm_studio.core.train.vae_stage import preview_frames, reconstruct_frames, rollout_files_of
    if not run.model_path("vae").is_file():
        return NO_FRAMES, NO_FRAMES
    train, heldout = split_holdout(rollout_files_of(run), settings.holdout, settings.seed)
    frames = preview_frames(heldout or train)
    return frames, reconstruct_frames(load_vae(run.model_path("vae")), frames, np)


def _epoch_fields(path: Path, epochs: int, history_width: int, heldout_width: int) -> dict:
    """The snapshot fields V's and M's checkpoints share: position, loss history, held-out rows, finished."""
    arrays, meta = _read(path, ("history", "heldout"))
    per_epoch = int(meta.get("batches_per_epoch") or 1)
    epoch, batch = int(meta.get("epoch", 0)), int(meta.get("batch", 0))
    return {**epoch_counts(epoch, batch, per_epoch, epochs),
            "history": widen(arrays.get("history", np.zeros((0, history_width))), history_width),
            "heldout": widen(arrays.get("heldout", np.zeros((0, heldout_width))), heldout_width),
            "finished": epoch >= epochs}


def _vae(run: Run, path: Path, preview: bool):
    from wm_studio.core.train.vae_stage import VaeSettings, VaeSnapshot
    settings = VaeSettings.from_config(run.config)
    fields = _epoch_fields(path, settings.epochs, 4, 3)
    heldout = fields["heldout"]
    loss, rec, kl = _recent_means(fields["history"], slice(1, 4))
    inputs, reconstructions = _vae_preview(run, settings) if preview else (NO_FRAMES, NO_FRAMES)
    return VaeSnapshot(**fields, loss=float(loss), rec=float(rec), kl=float(kl),
                       heldout_rec=float(heldout[-1, 1]) if len(heldout) else None,
                       heldout_mse=float(heldout[-1, 2]) if len(heldout) else None,
                       inputs=inputs, reconstructions=reconstructions)


def _mdn(run: Run, path: Path):
    from wm_studio.core.train.mdn_stage import HELDOUT_COLUMNS, MdnSettings, MdnSnapshot
    settings = MdnSettings.from_config(run.config)
    fields = _epoch_fields(path, settings.epochs, 3, len(HELDOUT_COLUMNS))
    heldout = fields["heldout"]
    nll, done_loss = _recent_means(fields["history"], slice(1, 3))
    empty = np.zeros((0, 4), np.float32)
    return MdnSnapshot(**fields, nll=float(nll), done_loss=float(done_loss) if settings.predict_done else None,
                       heldout_nll=float(heldout[-1, 1]) if len(heldout) else None, true_next=empty,
                       predicted_next=empty)


def _controller(run: Run, path: Path):
    from wm_studio.core.es import CMAES, SepCMAES
    from wm_studio.core.es.projection import project
    from wm_studio.core.train.controller_stage import HISTORY_COLUMNS, ControllerSettings, ControllerSnapshot
    arrays, meta = load_npz(path)
    settings = ControllerSettings.from_config(run.config)
    es_meta = meta.get("es", {})
    engine = SepCMAES if es_meta.get("kind") == getattr(SepCMAES, "_KIND", None) else CMAES
    es = engine.from_state(prefixed(arrays, "es/"), es_meta, source=str(path))
    history = arrays.get("history", np.zeros((0, len(HISTORY_COLUMNS)))).reshape(-1, len(HISTORY_COLUMNS))
    last = history[-1] if len(history) else np.full(len(HISTORY_COLUMNS), math.nan)
    population = arrays.get("population")
    fitness = arrays.get("fitness", np.empty(0))
    projection, best_params = None, es.mean.copy()
    if population is not None and len(population):
        projection = project(population, es.mean, es.sigma ** 2 * es.C)
        best_params = population[int(np.argmax(np.where(np.isfinite(fitness), fitness, -np.inf)))].copy()
    evals = arrays.get("evals", np.zeros((0, 2))).reshape(-1, 2)
    seconds = history[-1, 1] - (history[-2, 1] if len(history) > 1 else 0.0) if len(history) else 0.0
    rate = float(history[-1, 7] / seconds) if len(history) and seconds > 0 else 0.0
    return ControllerSnapshot(
        done=es.generation, total=settings.generations, fitness=fitness,
        population=np.empty((0, es.n)) if population is None else population,
        rewards=arrays.get("rewards", np.empty((0, settings.rollouts))), best=float(last[2]), mean=float(last[3]),
        worst=float(last[4]), sigma=es.sigma, axis_ratio=es.axis_ratio, projection=projection,
        best_params=best_params, mean_params=es.mean.copy(), eval_score=None, best_eval=meta.get("best_eval"),
        best_eval_generation=meta.get("best_eval_generation"), history=history, evals=evals,
        steps_per_second=rate, in_dream=settings.in_dream, finished=es.generation >= settings.generations)
