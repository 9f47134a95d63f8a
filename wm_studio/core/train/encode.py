"""After V: encode every rollout into the latents M trains on (data/latents/<same stem>.npz).

Each latent file holds mu and logvar float32 (T, z) of V's posterior for every frame, with the rollout's actions,
rewards and dones, and records in its meta which V wrote it (a fingerprint of models/vae.npz). A rerun skips the
rollouts already encoded by the same V, so an interrupted encoding resumes, and encodes again what an older V
wrote. Files are written atomically: a kill leaves no half-written latent file behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import chainer
import numpy as np

from wm_studio.core.device import Device, to_numpy
from wm_studio.core.envs.preprocess import frames_to_input
from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import load_npz, model_fingerprint, save_npz
from wm_studio.core.models.serialization import load_vae
from wm_studio.core.runs import Run
from wm_studio.core.train.vae_stage import rollout_files_of

ROLLOUT_ARRAYS = ("frames", "actions", "rewards", "dones")


@dataclass(frozen=True)
class EncodeSnapshot:
    step: ClassVar[str] = "encode"  # the step that makes it (wm_studio.core.stages)
    done: int           # rollouts encoded or found already encoded
    total: int          # rollouts in the run
    encoded: int        # rollouts encoded by this call
    skipped: int        # rollouts whose latents by this V were already there
    frames: int         # frames encoded by this call
    last: str           # the file just handled

    def summary(self) -> str:
        return f"{self.encoded} encoded, {self.skipped} already done, {self.frames} frames ({self.last})"


def encode_frames(model, frames: np.ndarray, xp, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) float32 (T, z) of uint8 frames (T, 64, 64, 3), computed batch_size frames at a time."""
    mus, logvars = [], []
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        for start in range(0, len(frames), batch_size):
            mu, logvar = model.encode(xp.asarray(frames_to_input(frames[start:start + batch_size])))
            mus.append(to_numpy(mu.array))
            logvars.append(to_numpy(logvar.array))
    empty = np.zeros((0, model.z_size), np.float32)
    return (np.concatenate(mus) if mus else empty), (np.concatenate(logvars) if logvars else empty)


def _already_encoded(path: Path, fingerprint: str) -> bool:
    if not path.is_file():
        return False
    try:
        _, meta = load_npz(path)
    except CheckpointError:
        return False        # unreadable: encode it again
    return meta.get("vae") == fingerprint


def encode_rollouts(run: Run, device: Device, batch_size: int = 200) -> Iterator[EncodeSnapshot]:
    """Encode every rollout of the run with its trained V (models/vae.npz); yields after each rollout."""
    files = rollout_files_of(run)
    model_path = run.model_path("vae")
    if not model_path.is_file():
        raise CheckpointError(f"{run.root} has no trained V ({model_path}): run "
                              f"`wm-studio train-vae --run {run.root}` first")
    fingerprint = model_fingerprint(model_path)
    model = load_vae(model_path, device)
    encoded = skipped = frames_done = 0
    for index, source in enumerate(files, 1):
        target = run.latents_dir / source.name
        if _already_encoded(target, fingerprint):
            skipped += 1
        else:
            arrays, meta = load_npz(source, required=ROLLOUT_ARRAYS)
            mu, logvar = encode_frames(model, arrays["frames"], device.xp, batch_size)
            save_npz(target, {"mu": mu, "logvar": logvar, "actions": arrays["actions"],
                              "rewards": arrays["rewards"], "dones": arrays["dones"]},
                     {"env": meta.get("env"), "source": source.name, "z_size": model.z_size, "vae": fingerprint})
            encoded += 1
            frames_done += len(mu)
        yield EncodeSnapshot(done=index, total=len(files), encoded=encoded, skipped=skipped,
                             frames=frames_done, last=source.name)
