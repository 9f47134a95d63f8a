"""The stages of a run and the one runner of their steps: the Training pane, `wm-studio pipeline` and each stage's
command all go through here.

A stage (collect, vae, mdn, controller) is what a user starts: a section of config.json, checkpoints/<stage>,
models/<stage>.npz, a row of the Training pane. It runs one or more steps in order (V's stage: train V, then
encode every rollout); a step is one core generator and a test of whether running it would do nothing.

    for step in unfinished(stage_steps(run, "vae", device)):   # skips what is done
        drive(step.start(), step.label)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from wm_studio.core.data.policies import POLICIES
from wm_studio.core.errors import WmStudioError
from wm_studio.core.files import read_meta
from wm_studio.core.runs import DEFAULT_MODEL, Run, read_only_folder

log = logging.getLogger(__name__)

MAX_FILES_LISTED = 50


@dataclass(frozen=True)
class Field:
    """A setting of a stage the studio shows (its config.json key, label, kind and range)."""
    key: str
    label: str
    kind: str                     # "int", "float", "bool", "choice", "optional-int"
    tip: str
    low: float = 1
    high: float = 10_000_000
    choices: tuple = ()


@dataclass(frozen=True)
class Stage:
    key: str                      # the run stage (config section, checkpoints/<key>, models/<key>.npz)
    label: str
    unit: str
    fields: tuple[Field, ...]
    uses_device: bool             # runs on the GPU when there is one (else worker processes on the CPU)
    steps: tuple[str, ...]        # the steps it runs, in order


STAGES = (
    Stage("collect", "Collect rollouts", "rollouts", (
        Field("rollouts", "Rollouts", "int", "Episodes of the random policy to record (the paper: 10,000)"),
        Field("steps", "Steps per rollout", "int", "Frames per rollout at most (the paper: 1000 for CarRacing)"),
        Field("policy", "Policy", "choice", "How the random driver acts", choices=POLICIES),
    ), False, ("collect",)),
    Stage("vae", "V: the VAE, then encoding", "batches", (
        Field("epochs", "Epochs", "int", "Passes over every collected frame (the paper: 10)"),
        Field("batch_size", "Batch size", "int", "Frames per batch (the paper: 100)"),
        Field("lr", "Learning rate", "float", "Adam's step size (the paper: 1e-4)", 1e-7, 1.0),
    ), True, ("vae", "encode")),
    Stage("mdn", "M: the MDN-RNN", "batches", (
        Field("epochs", "Epochs", "int", "Passes over every encoded rollout (the paper: 20)"),
        Field("batch_size", "Batch size", "int", "Sequences per batch (the paper: 100)"),
        Field("seq_len", "Sequence length", "int", "Transitions per training window (the paper: 999)"),
        Field("lr", "Learning rate", "float", "Adam's step size (the paper: 1e-3)", 1e-7, 1.0),
    ), True, ("mdn",)),
    Stage("controller", "C: CMA-ES", "generations", (
        Field("generations", "Generations", "int", "CMA-ES generations in all (the paper: 1,800)"),
        Field("popsize", "Population λ", "int", "Candidates per generation (the paper: 64)", 2),
        Field("rollouts", "Rollouts each", "int", "Episodes per candidate; fitness is their mean (paper: 16)"),
        Field("sigma0", "σ0", "float", "CMA-ES's initial step size (the paper: 0.1)", 1e-6, 100.0),
        Field("eval_every", "Score m every", "int", "Generations between two scorings of the mean (paper: 25)"),
        Field("eval_rollouts", "Scoring episodes", "int", "Episodes that score the mean (the paper: 1,024)"),
        Field("max_steps", "Steps per rollout", "optional-int", "Cap of a training episode (0: the full game)",
              0),
        Field("early_stop", "Early stop", "int", "End a training rollout after this many negative rewards in a "
                                                 "row: off the track or stuck (0: never, as in the paper)", 0),
        Field("in_dream", "Train in the dream", "bool", "Fitness from M's dream instead of the real game "
                                                        "(Doom only: CarRacing's M predicts no reward)"),
    ), False, ("controller",)),
)
STAGE_BY_KEY = {stage.key: stage for stage in STAGES}
STEP_ORDER = tuple(name for stage in STAGES for name in stage.steps)   # collect, vae, encode, mdn, controller


@dataclass(frozen=True)
class Step:
    name: str                               # collect, vae, encode, mdn or controller
    label: str                              # the progress bar's label
    finished: Callable[[], bool]            # True when running it would do nothing
    start: Callable[[], Iterator]           # the step's generator of snapshots


def settings_type(stage: str) -> type:
    """The settings class that parses the stage's section of config.json."""
    from wm_studio.core.data.collect import CollectSettings
    from wm_studio.core.train.controller_stage import ControllerSettings
    from wm_studio.core.train.mdn_stage import MdnSettings
    from wm_studio.core.train.vae_stage import VaeSettings
    return {"collect": CollectSettings, "vae": VaeSettings, "mdn": MdnSettings,
            "controller": ControllerSettings}[stage]


def check_settings(stage: str, config: dict) -> None:
    """ConfigError when the stage's section of `config` holds a value the stage would refuse."""
    settings_type(stage).from_config(config)


def _encoded(run: Run) -> bool:
    """Every rollout has its latents, written by the V now in models/vae.npz."""
    from wm_studio.core.data.dataset import rollout_files
    from wm_studio.core.files import model_fingerprint
    if not run.model_path("vae").is_file():
        return False
    fingerprint = model_fingerprint(run.model_path("vae"))
    latents = run.latents_dir
    return all((latents / source.name).is_file() and read_meta(latents / source.name).get("vae") == fingerprint
               for source in rollout_files(run.rollouts_dir))


def _trained(run: Run, stage: str, key: str, wanted: int) -> bool:
    checkpoint = run.latest_checkpoint(stage)
    meta = read_meta(checkpoint) if checkpoint is not None else {}
    return run.model_path(stage).is_file() and int(meta.get(key, -1)) >= wanted and _made_by_current(run, meta)


def _made_by_current(run: Run, meta: dict) -> bool:
    """False when the checkpoint was trained with a V or M that has been trained again since: not done, so that
    running the step says so."""
    from wm_studio.core.files import model_fingerprint
    from wm_studio.core.train.checkpointing import changed_parts
    recorded = meta.get("made_by") or {}
    on_disk = {part: model_fingerprint(run.model_path(part)) for part in recorded if run.model_path(part).is_file()}
    return not changed_parts(recorded, on_disk)


def make_step(run: Run, name: str, device=None, runner_kind: str | None = None, workers: int | None = None,
              cluster: str | None = None) -> Step:
    """One step of the run; its settings are read from config.json now, so a bad value fails before it starts."""
    if name == "collect":
        from wm_studio.core.data.collect import collect, missing_rollouts
        settings = settings_type("collect").from_config(run.config)
        return Step(name, "collect", lambda: not missing_rollouts(run.rollouts_dir, settings.rollouts),
                    lambda: collect(run, settings, workers, runner_kind, cluster))
    if name == "vae":
        from wm_studio.core.train.vae_stage import train_vae
        settings = settings_type("vae").from_config(run.config)
        return Step(name, "V", lambda: _trained(run, "vae", "epoch", settings.epochs),
                    lambda: train_vae(run, settings, device))
    if name == "encode":
        from wm_studio.core.train.encode import encode_rollouts
        settings = settings_type("vae").from_config(run.config)
        return Step(name, "encode", lambda: _encoded(run),
                    lambda: encode_rollouts(run, device, batch_size=max(settings.batch_size, 100)))
    if name == "mdn":
        from wm_studio.core.train.mdn_stage import train_mdn
        settings = settings_type("mdn").from_config(run.config)
        return Step(name, "M", lambda: _trained(run, "mdn", "epoch", settings.epochs),
                    lambda: train_mdn(run, settings, device))
    from wm_studio.core.train.controller_stage import train_controller
    settings = settings_type("controller").from_config(run.config)
    return Step(name, "C", lambda: _trained(run, "controller", "step", settings.generations),
                lambda: train_controller(run, settings, backend=runner_kind, workers=workers, cluster=cluster))


def pipeline_steps(run: Run, device=None, runner_kind: str | None = None, workers: int | None = None,
                   cluster: str | None = None) -> list[Step]:
    """Every step of a run in order: collect, V, encode, M, C."""
    return [make_step(run, name, device, runner_kind, workers, cluster) for name in STEP_ORDER]


def stage_steps(run: Run, stage: str, device=None, runner_kind: str | None = None, workers: int | None = None,
                cluster: str | None = None) -> list[Step]:
    """The steps of one stage, in order."""
    return [make_step(run, name, device, runner_kind, workers, cluster) for name in STAGE_BY_KEY[stage].steps]


def unfinished(steps: list[Step], skipped: Callable[[Step], None] | None = None) -> Iterator[Step]:
    """The steps not yet finished, in order (each asked when its turn comes); `skipped(step)` for the others."""
    for step in steps:
        if step.finished():
            if skipped is not None:
                skipped(step)
            continue
        yield step


def run_stage(run: Run, stage: Stage, device, runner_kind: str | None, workers: int | None) -> Iterator:
    """The stage's steps as one generator, skipping those already finished (a trained V is not re-saved, which
    would make its latents look stale); closing it closes the step under way, which checkpoints."""
    def skipped(step: Step) -> None:
        log.info("%s: %s is already done (raise its numbers to train more)", run.root.name, step.label)

    for step in unfinished(stage_steps(run, stage.key, device, runner_kind, workers), skipped):
        yield from step.start()


def stage_progress(root: Path, stages: tuple[str, ...]) -> dict[str, Any]:
    """What each stage has done: {stage: (snapshot or None, finished, error)}, read back from the run folder."""
    from wm_studio.core.device import resolve_device
    from wm_studio.core.train.history import stage_history
    run = Run(root)
    try:
        steps = {step.name: step for step in pipeline_steps(run, resolve_device("cpu"))}
    except WmStudioError as exc:
        return {key: (None, False, str(exc)) for key in stages}
    result = {}
    for key in stages:
        try:
            snapshot = stage_history(run, key, preview=True)
            finished = (all(steps[name].finished() for name in STAGE_BY_KEY[key].steps)
                        or getattr(snapshot, "finished", False))      # a bundled model's record says so
            result[key] = (snapshot, finished, "")
        except WmStudioError as exc:
            result[key] = (None, False, str(exc))
    return result


def why_not_trainable(path: Path | None) -> str:
    """'' when the run folder at `path` can be trained (by the studio's Training pane); else why not."""
    if path is None:
        return "No run is open: make one with New run…, or open one (File > Open run…)."
    bundle = read_only_folder(path)
    if bundle is not None:
        which = "The bundled model" if bundle == DEFAULT_MODEL.resolve() else f"{bundle} is a bundle, which"
        return f"{which} is read-only: make a new run (New run…) to train your own, or open a run folder."
    if not (path / "config.json").is_file():
        return f"{path} has no config.json, so its stages have no settings: make a new run to train."
    return ""


def describe_files(run: Run, stage: str) -> list[tuple[str, str, str, Path]]:
    """(name, step, modified, path) of the stage's checkpoints, newest first, then its model file."""
    if stage == "collect":   # no checkpoints: the rollouts are the stage's output
        from wm_studio.core.data.dataset import rollout_files
        rows = [(f"data/rollouts/{path.name}", "", path) for path in rollout_files(run.rollouts_dir)]
    else:
        rows = [(f"checkpoints/{stage}/{path.name}", str(int(path.stem.split("-")[1])), path)
                for path in run.checkpoints(stage)]
        model = run.model_path(stage)
        if model.is_file():
            rows.append((f"models/{model.name}", "", model))
    rows.sort(key=lambda row: (_mtime(row[2]), row[0]), reverse=True)
    rows = rows[:MAX_FILES_LISTED]
    return [(name, step, _modified(path), path) for name, step, path in rows]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _modified(path: Path) -> str:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
    except OSError:
        return "?"
