"""Training V: the ConvVAE learns to compress every collected frame into z (Adam 1e-4, batch 100 in the paper).

Frames stream from the rollout files (FrameDataset: shuffled across rollouts, one chunk of files in memory).
A fraction of the rollouts is held out: at the end of each epoch V reconstructs every held-out frame from its mean
latent and the per-image sum of squared error and the per-pixel MSE go to metrics/vae.jsonl. A fixed held-out
batch gives the input/reconstruction pairs that the snapshots carry.

Checkpoints (weights, Adam state, epoch, batch, the sampling generator, the loss history) are written every
`checkpoint_every_s` seconds, at each epoch's end and when the generator is closed; each also refreshes
models/vae.npz, so the studio can show the newest V while training goes on. A resumed run draws the same batches
and the same noise as the uninterrupted one would have.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import chainer
import numpy as np

from wm_studio.core import chainer_fast
from wm_studio.core.backend import Device, to_numpy
from wm_studio.core.data.dataset import FrameDataset, rollout_files, split_holdout
from wm_studio.core.envs.preprocess import frames_to_input, input_to_frames
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import check_shapes, generator_state, load_npz, restore_generator
from wm_studio.core.models.serialization import (copy_into_link, link_shapes, model_arrays, optimizer_arrays,
                                                 restore_optimizer, save_model)
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.runs import Run

STAGE = "vae"
RECENT = 20         # batches in the snapshot's running means
PREVIEW_PAIRS = 4   # input/reconstruction pairs in a snapshot


@dataclass(frozen=True)
class VaeSettings:
    z_size: int
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-4
    holdout: float = 0.05           # fraction of rollouts held out (at least one when there are two or more)
    seed: int = 0
    checkpoint_every_s: float = 60.0
    preview_every: int = 20         # batches between two reconstructions of the preview frames

    def __post_init__(self):
        positive = {"z_size": self.z_size, "epochs": self.epochs, "batch_size": self.batch_size,
                    "preview_every": self.preview_every}
        bad = [f"{name} = {value}" for name, value in positive.items() if not value >= 1]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append(f"lr = {self.lr}")
        if not 0 <= self.holdout < 1:
            bad.append(f"holdout = {self.holdout} (must be in [0, 1))")
        if not self.checkpoint_every_s >= 0:
            bad.append(f"checkpoint_every_s = {self.checkpoint_every_s}")
        if bad:
            raise ConfigError("V's settings are out of range: " + ", ".join(bad))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> "VaeSettings":
        """Settings from a run's config.json: z_size at the top level, the rest in its "vae" section."""
        section = {**config.get("vae", {}), **(overrides or {})}
        section.setdefault("seed", config.get("seed", 0))     # the run's seed unless V has its own
        unknown = sorted(set(section) - (set(cls.__dataclass_fields__) - {"z_size"}))
        if unknown:
            raise ConfigError(f"unknown setting(s) in the run's vae section: {', '.join(unknown)}")
        if "z_size" not in config:
            raise ConfigError("the run's config.json lacks 'z_size'; make the run from a preset")
        return cls(z_size=int(config["z_size"]), **section)


@dataclass(frozen=True)
class VaeSnapshot:
    done: int                       # batches done over the whole run
    total: int                      # batches in all epochs
    epoch: int                      # the epoch under way, counted from 1 (== epochs when finished)
    epochs: int
    loss: float                     # means over the last RECENT batches: total loss per image,
    rec: float                      # its sum of squared error per image
    kl: float                       # and its floored KL per image
    heldout_rec: float | None       # after the latest finished epoch: held-out squared error per image
    heldout_mse: float | None       # and per pixel (the same divided by 64 * 64 * 3)
    history: np.ndarray             # (batches, 4): epoch, loss, rec, kl
    heldout: np.ndarray             # (epochs finished, 3): epoch, held-out rec per image, per-pixel MSE
    inputs: np.ndarray              # uint8 (PREVIEW_PAIRS, 64, 64, 3): fixed held-out frames
    reconstructions: np.ndarray     # uint8 (PREVIEW_PAIRS, 64, 64, 3): V's images of their mean latents
    finished: bool = False
    note: str = field(default="", compare=False)

    def summary(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}", f"loss {self.loss:.1f}", f"rec {self.rec:.1f}",
                 f"kl {self.kl:.1f}"]
        if self.heldout_rec is not None:
            parts.append(f"held-out {self.heldout_rec:.1f} (mse {self.heldout_mse:.5f})")
        return " ".join(parts)


class Rows:
    """A table that grows by rows; `view()` is a read-only view of the rows so far, made in constant time.

    Snapshots carry the whole loss history after every batch (a million rows in the paper's run): copying it
    each time would cost more than the batch. Rows never change once written, so a view stays valid.
    """

    def __init__(self, width: int, rows=None):
        rows = np.asarray(rows if rows is not None else np.zeros((0, width)), dtype=np.float64).reshape(-1, width)
        self._data = np.zeros((max(256, 2 * len(rows)), width))
        self._data[:len(rows)] = rows
        self.count = len(rows)

    def append(self, row) -> None:
        if self.count == len(self._data):
            grown = np.zeros((2 * len(self._data), self._data.shape[1]))
            grown[:self.count] = self._data
            self._data = grown
        self._data[self.count] = row
        self.count += 1

    def view(self) -> np.ndarray:
        rows = self._data[:self.count]
        rows.flags.writeable = False
        return rows


@dataclass
class _Progress:
    """Where training stands; checkpointed whole so that a resumed run equals an uninterrupted one."""
    epoch: int
    batch: int
    rng: np.random.Generator
    history: Rows = field(default_factory=lambda: Rows(4))   # epoch, loss, rec, kl per batch
    heldout: Rows = field(default_factory=lambda: Rows(3))   # epoch, rec per image, mse per pixel per epoch


def rollout_files_of(run: Run) -> list:
    files = rollout_files(run.rollouts_dir)
    if not files:
        raise CheckpointError(f"{run.root} has no rollouts in {run.rollouts_dir}: run "
                              f"`wm-studio collect --run {run.root}` first")
    return files


def train_vae(run: Run, settings: VaeSettings | Mapping[str, Any] | None, device: Device
              ) -> Iterator[VaeSnapshot]:
    """Train V on the run's rollouts, yielding a snapshot after every batch; resumes from the newest checkpoint.

    settings: a VaeSettings, or a mapping that overrides the run's "vae" section, or None for the run's own.
    """
    if not isinstance(settings, VaeSettings):
        settings = VaeSettings.from_config(run.config, settings)
    train_files, heldout_files = split_holdout(rollout_files_of(run), settings.holdout, settings.seed)
    data = FrameDataset(train_files, settings.batch_size, settings.seed)
    heldout = FrameDataset(heldout_files, settings.batch_size, settings.seed) if heldout_files else None
    preview = preview_frames(heldout_files or train_files)

    model = ConvVAE(settings.z_size, seed=settings.seed)
    model.to_device(device.chainer_device)
    optimizer = chainer_fast.Adam(alpha=settings.lr)     # Chainer's Adam, in place on the CPU
    optimizer.setup(model)
    per_epoch = data.batches_per_epoch()
    progress = _restore(run, model, optimizer, settings, per_epoch)
    xp = device.xp
    reconstructions = reconstruct_frames(model, preview, xp)
    last_checkpoint = time.monotonic()
    try:
        while progress.epoch < settings.epochs:
            if progress.batch < per_epoch:
                for frames in data.epoch(progress.epoch, progress.batch):
                    _train_batch(model, optimizer, frames, progress, xp)
                    progress.batch += 1
                    if progress.batch % settings.preview_every == 0:
                        reconstructions = reconstruct_frames(model, preview, xp)
                    if time.monotonic() - last_checkpoint >= settings.checkpoint_every_s:
                        _checkpoint(run, model, optimizer, settings, progress, per_epoch)
                        last_checkpoint = time.monotonic()
                    yield _snapshot(settings, progress, per_epoch, preview, reconstructions)
            _finish_epoch(run, model, settings, progress, heldout, xp)
            _checkpoint(run, model, optimizer, settings, progress, per_epoch)
            last_checkpoint = time.monotonic()
            reconstructions = reconstruct_frames(model, preview, xp)
            yield _snapshot(settings, progress, per_epoch, preview, reconstructions)
        yield _snapshot(settings, progress, per_epoch, preview, reconstructions, finished=True)
    finally:
        _checkpoint(run, model, optimizer, settings, progress, per_epoch)


def _train_batch(model: ConvVAE, optimizer, frames: np.ndarray, progress: _Progress, xp) -> None:
    total, rec, kl = model.loss(xp.asarray(frames_to_input(frames)), progress.rng)
    value = float(total.array)
    if not math.isfinite(value):
        # Stop before the update so that the weights (and the final checkpoint) stay finite.
        raise ConfigError(f"V's loss became {value} in epoch {progress.epoch + 1}, batch {progress.batch + 1}; "
                          f"lower the learning rate (--lr) and run the same command again to resume")
    model.cleargrads()
    total.backward()
    optimizer.update()
    progress.history.append([progress.epoch + 1, value, float(rec.array), float(kl.array)])


def preview_frames(files, count: int = PREVIEW_PAIRS) -> np.ndarray:
    """`count` frames spread evenly over the first file (a held-out rollout when there is one)."""
    arrays, _ = load_npz(files[0], required=("frames",))
    frames = arrays["frames"]
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)].copy()


def reconstruct_frames(model: ConvVAE, frames: np.ndarray, xp) -> np.ndarray:
    """uint8 frames (N, 64, 64, 3) -> V's uint8 images of their mean latents."""
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        images = model.reconstruct(xp.asarray(frames_to_input(frames)))
    return input_to_frames(to_numpy(images.array))


def heldout_error(model: ConvVAE, data: FrameDataset, xp) -> tuple[float, float]:
    """(sum of squared error per image, per-pixel MSE) of V's reconstructions of every frame in data."""
    total, images = 0.0, 0
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        for frames in data.epoch(0):
            x = xp.asarray(frames_to_input(frames))
            y = model.reconstruct(x).array
            total += float(((x - y) ** 2).sum(dtype=np.float64))
            images += len(frames)
    per_image = total / max(images, 1)
    return per_image, per_image / (64 * 64 * 3)


def _finish_epoch(run: Run, model, settings: VaeSettings, progress: _Progress, heldout, xp) -> None:
    epoch = progress.epoch + 1
    history = progress.history.view()
    rows = history[history[:, 0] == epoch]
    record: dict[str, Any] = {"epoch": epoch, "batches": len(rows)}
    if len(rows):
        record.update(loss=float(rows[:, 1].mean()), rec=float(rows[:, 2].mean()), kl=float(rows[:, 3].mean()))
    if heldout is not None:
        rec, mse = heldout_error(model, heldout, xp)
        progress.heldout.append([epoch, rec, mse])
        record.update(heldout_rec=rec, heldout_mse=mse, heldout_frames=heldout.frames)
    run.append_metrics(STAGE, record)
    progress.epoch, progress.batch = epoch, 0


def _snapshot(settings: VaeSettings, progress: _Progress, per_epoch: int, inputs, reconstructions,
              finished=False) -> VaeSnapshot:
    history, heldout = progress.history.view(), progress.heldout.view()
    recent = history[-RECENT:]
    means = recent[:, 1:].mean(axis=0) if len(recent) else np.full(3, math.nan)
    done = min(progress.epoch * per_epoch + progress.batch, settings.epochs * per_epoch)
    return VaeSnapshot(
        done=done, total=settings.epochs * per_epoch,
        epoch=min(progress.epoch + 1, settings.epochs), epochs=settings.epochs,
        loss=float(means[0]), rec=float(means[1]), kl=float(means[2]),
        heldout_rec=float(heldout[-1, 1]) if len(heldout) else None,
        heldout_mse=float(heldout[-1, 2]) if len(heldout) else None,
        history=history, heldout=heldout, inputs=inputs, reconstructions=reconstructions, finished=finished)


# ---- checkpoints -----------------------------------------------------------------------------------------------


def _checkpoint(run: Run, model, optimizer, settings: VaeSettings, progress: _Progress, per_epoch: int) -> None:
    arrays = {f"model/{name}": value for name, value in model_arrays(model).items()}
    arrays.update({f"optimizer/{name}": value for name, value in optimizer_arrays(optimizer).items()})
    arrays["history"] = progress.history.view()
    arrays["heldout"] = progress.heldout.view()
    meta = {"epoch": progress.epoch, "batch": progress.batch, "batches_per_epoch": per_epoch,
            "batch_size": settings.batch_size, "rng": generator_state(progress.rng),
            "model": model.meta()}
    run.save_checkpoint(STAGE, progress.epoch * per_epoch + progress.batch, arrays, meta)
    save_model(run.model_path(STAGE), model, model.meta())


def _restore(run: Run, model, optimizer, settings: VaeSettings, per_epoch: int) -> _Progress:
    loaded = run.load_checkpoint(STAGE)
    if loaded is None:
        return _Progress(epoch=0, batch=0, rng=np.random.default_rng([settings.seed, 0]))
    arrays, meta = loaded
    path = run.latest_checkpoint(STAGE)
    if meta.get("model") != model.meta():
        raise CheckpointError(f"{path} holds a V of another shape ({meta.get('model')}) than this run's settings "
                              f"({model.meta()}); use another --run folder")
    weights = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    check_shapes(path, weights, link_shapes(model))
    copy_into_link(model, weights)
    restore_optimizer(optimizer, {name[len("optimizer/"):]: value for name, value in arrays.items()
                                  if name.startswith("optimizer/")}, source=path)
    try:
        progress = _Progress(epoch=int(meta["epoch"]), batch=int(meta["batch"]),
                             rng=restore_generator(meta["rng"]),
                             history=Rows(4, arrays.get("history")), heldout=Rows(3, arrays.get("heldout")))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} lacks its training position ({exc}); delete it to start over") from None
    if (meta.get("batches_per_epoch"), meta.get("batch_size")) != (per_epoch, settings.batch_size):
        # The epoch is cut differently now (another batch size or other data): the batch index means nothing,
        # so the epoch starts over with the trained weights.
        progress.batch = 0
    return progress
