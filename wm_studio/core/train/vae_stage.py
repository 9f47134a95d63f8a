"""Training V: the ConvVAE learns to compress every collected frame into z (Adam 1e-4, batch 100 in the paper).

Frames stream from the rollout files (FrameDataset: shuffled across rollouts, one chunk of files in memory).
A fraction of the rollouts is held out: at the end of each epoch V reconstructs every held-out frame from its mean
latent and the per-image sum of squared error and the per-pixel MSE go to metrics/vae.jsonl. A fixed held-out
batch gives the input/reconstruction pairs that the snapshots carry.

Checkpoints (weights, Adam state, epoch, batch, the sampling generator, the loss history) are written every
`checkpoint_every_s` seconds, at each epoch's end and when the generator is closed; each also refreshes
models/vae.npz, so the studio can show the newest V while training goes on (checkpointing.py). A call that trains
nothing (V already finished) rewrites nothing, so the latents encoded by that V stay valid. A resumed run draws the
same batches and the same noise as the uninterrupted one would have.
"""
from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

import chainer
import numpy as np

from wm_studio.core import channels_last
from wm_studio.core.device import Device, to_numpy
from wm_studio.core.data.dataset import FrameDataset, run_data_files, split_holdout
from wm_studio.core.envs.preprocess import frames_to_input, input_to_frames
from wm_studio.core.errors import ConfigError
from wm_studio.core.files import load_npz
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.presets import stage_settings
from wm_studio.core.runs import Run
from wm_studio.core.train.checkpointing import (EpochProgress, EpochSnapshot, StageCheckpoints, descend,
                                                epoch_counts, train_epochs)

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
        if "z_size" not in config:
            raise ConfigError("the run's config.json lacks 'z_size'; make the run from a preset")
        return stage_settings(cls, config, "vae", overrides, z_size=int(config["z_size"]))


@dataclass(frozen=True)
class VaeSnapshot(EpochSnapshot):
    step: ClassVar[str] = "vae"  # the step that makes it (wm_studio.core.stages)
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


def rollout_files_of(run: Run) -> list:
    return run_data_files(run, "rollouts")


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
    optimizer = channels_last.Adam(alpha=settings.lr)     # Chainer's Adam, in place on the CPU
    optimizer.setup(model)
    checkpoints = StageCheckpoints(run, STAGE, model, optimizer, data.batches_per_epoch(),
                                   {"batch_size": settings.batch_size}, (4, 3), settings.checkpoint_every_s)
    progress = checkpoints.restore(settings.seed, "a V")
    xp = device.xp
    reconstructions = reconstruct_frames(model, preview, xp)
    with closing(train_epochs(progress, settings.epochs, checkpoints, data.epoch,
                              lambda frames: _train_batch(model, optimizer, frames, progress, xp),
                              lambda: _finish_epoch(run, model, progress, heldout, xp))) as steps:
        for _ in steps:
            if progress.batch % settings.preview_every == 0:     # every preview_every batches and each epoch's end
                reconstructions = reconstruct_frames(model, preview, xp)
            yield _snapshot(settings, progress, checkpoints.per_epoch, preview, reconstructions)
    yield _snapshot(settings, progress, checkpoints.per_epoch, preview, reconstructions, finished=True)


def _train_batch(model: ConvVAE, optimizer, frames: np.ndarray, progress: EpochProgress, xp) -> None:
    total, rec, kl = model.loss(xp.asarray(frames_to_input(frames)), progress.rng)
    value = descend(model, optimizer, total, progress, "V")
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


def _finish_epoch(run: Run, model, progress: EpochProgress, heldout, xp) -> None:
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


def _snapshot(settings: VaeSettings, progress: EpochProgress, per_epoch: int, inputs, reconstructions,
              finished=False) -> VaeSnapshot:
    history, heldout = progress.history.view(), progress.heldout.view()
    recent = history[-RECENT:]
    means = recent[:, 1:].mean(axis=0) if len(recent) else np.full(3, math.nan)
    return VaeSnapshot(
        **epoch_counts(progress.epoch, progress.batch, per_epoch, settings.epochs),
        loss=float(means[0]), rec=float(means[1]), kl=float(means[2]),
        heldout_rec=float(heldout[-1, 1]) if len(heldout) else None,
        heldout_mse=float(heldout[-1, 2]) if len(heldout) else None,
        history=history, heldout=heldout, inputs=inputs, reconstructions=reconstructions, finished=finished)

