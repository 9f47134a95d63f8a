"""The whole World Models pipeline in order: collect -> V (then encode) -> M -> C, resuming whatever is done.

    results = run_pipeline(run, device, backend=None, workers=None, cluster=None)   # None: each stage its own

Each step is the stage generator its own command runs (collect, train_vae, encode_rollouts, train_mdn,
train_controller), driven with a progress bar; each resumes by itself from its checkpoints. A step that has
already finished (every rollout on disk; V, M or C at their configured epochs or generations) is skipped without
being started, so a second call only reports. Every step ends with a summary line, and the pipeline with one
line per step.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

import numpy as np

from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import META_KEY
from wm_studio.core.runs import Run


@dataclass(frozen=True)
class PipelineStep:
    name: str                               # the run stage it fills (collect, vae, encode, mdn, controller)
    label: str                              # the progress bar's label
    finished: Callable[[], bool]            # True when running it would do nothing
    start: Callable[[], Iterator]           # the stage generator


@dataclass(frozen=True)
class StepResult:
    name: str
    label: str
    skipped: bool
    seconds: float
    summary: str

    def line(self) -> str:
        how = "already done, skipped" if self.skipped else f"done in {self.seconds:.0f} s"
        return f"{self.label}: {how}" + (f" ({self.summary})" if self.summary else "")


def checkpoint_meta(path: Path | None) -> dict:
    """The JSON meta of an npz file (a checkpoint, a latent file), read without its arrays; {} when absent."""
    if path is None:
        return {}
    import json
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data[META_KEY])) if META_KEY in data.files else {}
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a checkpoint: {exc}") from None


def _encoded(run: Run) -> bool:
    """Every rollout has its latents, written by the V now in models/vae.npz."""
    from wm_studio.core.data.dataset import rollout_files
    from wm_studio.core.train.encode import model_fingerprint
    if not run.model_path("vae").is_file():
        return False
    fingerprint = model_fingerprint(run.model_path("vae"))
    latents = run.latents_dir
    return all((latents / source.name).is_file() and checkpoint_meta(latents / source.name).get("vae") == fingerprint
               for source in rollout_files(run.rollouts_dir))


def _trained(run: Run, stage: str, key: str, wanted: int) -> bool:
    meta = checkpoint_meta(run.latest_checkpoint(stage))
    return run.model_path(stage).is_file() and int(meta.get(key, -1)) >= wanted


def pipeline_steps(run: Run, device, backend: str | None = None, workers: int | None = None,
                   cluster: str | None = None) -> list[PipelineStep]:
    from wm_studio.core.data.collect import CollectSettings, collect, missing_rollouts
    from wm_studio.core.train.controller_stage import ControllerSettings, train_controller
    from wm_studio.core.train.encode import encode_rollouts
    from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn
    from wm_studio.core.train.vae_stage import VaeSettings, train_vae

    config = run.config
    collect_settings = CollectSettings.from_config(config)
    vae = VaeSettings.from_config(config)
    mdn = MdnSettings.from_config(config)
    controller = ControllerSettings.from_config(config)
    return [
        PipelineStep("collect", "collect",
                     lambda: not missing_rollouts(run.rollouts_dir, collect_settings.rollouts),
                     lambda: collect(run, collect_settings, workers, backend, cluster)),
        PipelineStep("vae", "V", lambda: _trained(run, "vae", "epoch", vae.epochs),
                     lambda: train_vae(run, vae, device)),
        PipelineStep("encode", "encode", lambda: _encoded(run),
                     lambda: encode_rollouts(run, device, batch_size=max(vae.batch_size, 100))),
        PipelineStep("mdn", "M", lambda: _trained(run, "mdn", "epoch", mdn.epochs),
                     lambda: train_mdn(run, mdn, device)),
        PipelineStep("controller", "C", lambda: _trained(run, "controller", "step", controller.generations),
                     lambda: train_controller(run, controller, backend=backend, workers=workers,
                                              cluster=cluster)),
    ]


def run_pipeline(run: Run, device, backend: str | None = None, workers: int | None = None,
                 cluster: str | None = None, stream: TextIO | None = None,
                 progress: TextIO | None = None) -> list[StepResult]:
    """Run every step that is not finished, in order; summary lines go to `stream` (stdout), bars to `progress`."""
    from wm_studio.core.progress import drive
    stream = stream or sys.stdout
    results = []
    for step in pipeline_steps(run, device, backend, workers, cluster):
        start = time.monotonic()
        if step.finished():
            result = StepResult(step.name, step.label, True, 0.0, "")
        else:
            last = drive(step.start(), step.label, progress)
            result = StepResult(step.name, step.label, False, time.monotonic() - start,
                                last.summary() if last is not None else "")
        results.append(result)
        print(result.line(), file=stream, flush=True)
    return results
