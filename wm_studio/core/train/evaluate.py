"""Score the trained controller in the real game, beside a random policy on the same tracks.

    for snapshot in evaluate(run, episodes=20, seed=0, record="drive.mp4"):
        ...                                     # one snapshot per episode played; the last one has the report
    print(snapshot.report.lines())

Both play the same N game seeds (derived from `seed`), full episodes (the run's episode length, config
"max_steps": CarRacing 1000, Doom 2100; no early stop).
The random policy draws each raw action uniformly from [-1, 1] per step (then the game's mapping, as the
controller's tanh outputs: CarRacing gas (u+1)/2 and brake clip(u, 0, 1); Doom thirds). With `record`, the
controller's first episode is written as a GIF or MP4 of the game's full RGB frames (info["frame"]): one frame
for the start and one per step. The scores are kept in RUN/metrics/evaluation.json, except in a bundle (read-only:
its own record stays as it was), and in the JSON file `out` names.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import save_json
from wm_studio.core.models.controller import load_controller
from wm_studio.core.parallel import make_runner
from wm_studio.core.runs import Run, output_file
from wm_studio.core.train.controller_stage import episode_steps
from wm_studio.core.train.rollout import RolloutTask, game_spec, play

GAME_FPS = {"carracing": 50.0, "doom": 35.0}   # the games' own frame rates
EVALUATION_TAG = 20180327                      # keeps evaluation seeds apart from any training seed stream
EVALUATION_FILE = "evaluation.json"            # RUN/metrics/evaluation.json: the last evaluation's scores

log = logging.getLogger(__name__)


def evaluation_seeds(seed: int, episodes: int) -> np.ndarray:
    return np.random.SeedSequence([EVALUATION_TAG, int(seed)]).generate_state(episodes) % (2 ** 31 - 1)


@dataclass(frozen=True)
class EvaluationReport:
    game: str
    seeds: np.ndarray
    controller_rewards: np.ndarray      # (N,) total reward per episode
    controller_steps: np.ndarray
    random_rewards: np.ndarray
    random_steps: np.ndarray
    controller_meta: dict = field(default_factory=dict)
    recording: Path | None = None
    recorded_frames: int = 0
    saved_to: tuple[Path, ...] = ()     # where the scores were written
    note: str = ""                      # why they were not kept in the run

    @property
    def episodes(self) -> int:
        return len(self.seeds)

    @property
    def difference(self) -> float:
        return float(self.controller_rewards.mean() - self.random_rewards.mean())

    def lines(self) -> list[str]:
        def line(name, rewards, steps):
            return (f"{name}: {rewards.mean():.1f} +- {rewards.std():.1f} over {len(rewards)} episodes "
                    f"(min {rewards.min():.1f}, max {rewards.max():.1f}, {steps.mean():.0f} steps on average)")
        lines = [line("controller", self.controller_rewards, self.controller_steps),
                 line("random policy", self.random_rewards, self.random_steps),
                 f"difference: {self.difference:+.1f}"]
        if self.recording is not None:
            lines.append(f"recorded the controller's first episode ({self.recorded_frames} frames) to "
                         f"{self.recording}")
        if self.saved_to:
            lines.append(f"scores written to {', '.join(str(path) for path in self.saved_to)}")
        if self.note:
            lines.append(self.note)
        return lines


@dataclass(frozen=True)
class EvaluateSnapshot:
    done: int                 # episodes played (controller and random policy together)
    total: int
    controller_mean: float    # over the controller's episodes finished so far (nan before the first)
    random_mean: float
    report: EvaluationReport | None = None

    def summary(self) -> str:
        return f"controller {self.controller_mean:.1f}, random {self.random_mean:.1f}"


def controller_path(run: Run) -> Path:
    path = run.model_path("controller")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: run `wm-studio train-controller --run {run.root}` first")
    return path


def evaluate(run: Run, episodes: int, seed: int = 0, record=None, fps: float | None = None, scale: int = 3,
             runner=None, backend: str | None = None, workers: int | None = None, cluster: str | None = None,
             out=None) -> Iterator[EvaluateSnapshot]:
    """Play the controller and the random policy on the same `episodes` seeds; see the module docstring.
    `out`: a JSON file for the scores besides the run's metrics/evaluation.json (the only one for a bundle)."""
    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, not {episodes}")
    if scale < 1:
        raise ConfigError(f"scale must be at least 1, not {scale}")
    if record is not None and Path(record).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"cannot record to {Path(record).name}: use a .gif or .mp4 file name")
    if record is not None:
        output_file(record, "--record")
    if out is not None:
        output_file(out, "--out")
    controller, meta = load_controller(controller_path(run))
    spec = game_spec(run, controller.shape.inputs)
    if spec.shape != controller.shape:
        raise CheckpointError(f"{run.model_path('controller')} is a controller for {controller.shape}, but this "
                              f"run's V and M need {spec.shape}: train C again (`wm-studio train-controller "
                              f"--run {run.root}`)")
    seeds = evaluation_seeds(seed, episodes)
    steps = episode_steps(run.config)
    tasks = [RolloutTask(controller.params, int(s), steps, record=(record is not None and i == 0))
             for i, s in enumerate(seeds)]
    tasks += [RolloutTask(None, int(s), steps) for s in seeds]
    rewards, lengths = np.full(len(tasks), np.nan), np.zeros(len(tasks), dtype=np.int64)
    frames = None
    own_runner = runner is None
    if own_runner:
        backend = backend or ("dask" if cluster else "processes")
        if backend == "processes":
            workers = min(workers or os.cpu_count() or 1, len(tasks))
        runner = make_runner(backend, workers, cluster=cluster)
    try:
        yield EvaluateSnapshot(0, len(tasks), float("nan"), float("nan"))
        done = 0
        for index, result in runner.run(play, tasks, spec):
            rewards[index], lengths[index] = result.reward, result.steps
            if result.frames is not None:
                frames = result.frames
            done += 1
            yield EvaluateSnapshot(done, len(tasks), _mean(rewards[:episodes]), _mean(rewards[episodes:]))
    finally:
        if own_runner:
            runner.close()
    recording = None
    if record is not None:
        from wm_studio.core.export import write_animation
        height, width = frames.shape[1:3]
        recording = write_animation(record, list(frames), fps=fps or GAME_FPS[spec.game],
                                    size=(width * scale, height * scale))
    report = EvaluationReport(spec.game, seeds, rewards[:episodes], lengths[:episodes], rewards[episodes:],
                              lengths[episodes:], meta, recording, 0 if frames is None else len(frames))
    note = ""
    if run.read_only:
        note = (f"{run.root} is a bundle, which is read-only: its metrics/{EVALUATION_FILE} keeps its own record"
                + ("" if out is not None else "; --out FILE keeps these scores"))
    report = replace(report, saved_to=save_evaluation(run, report, seed, out), note=note)
    yield EvaluateSnapshot(len(tasks), len(tasks), float(report.controller_rewards.mean()),
                           float(report.random_rewards.mean()), report)


def save_evaluation(run: Run, report: EvaluationReport, seed: int, out=None) -> tuple[Path, ...]:
    """Keep the last evaluation in RUN/metrics/evaluation.json (not in a bundle), so the scores travel with the
    model, and in `out` when given; return where they were written."""
    record = {"time": time.time(), "game": report.game, "episodes": report.episodes, "seed": seed,
              "controller_mean": float(report.controller_rewards.mean()),
              "controller_std": float(report.controller_rewards.std()),
              "random_mean": float(report.random_rewards.mean()),
              "random_std": float(report.random_rewards.std()),
              "controller_rewards": report.controller_rewards.tolist(),
              "random_rewards": report.random_rewards.tolist()}
    targets = ([] if run.read_only else [run.root / "metrics" / EVALUATION_FILE]) + ([Path(out)] if out else [])
    written = []
    for target in targets:
        try:
            written.append(save_json(target, record))
        except OSError as exc:     # a folder the user may not write still gets its scores printed
            log.warning("could not save the evaluation in %s: %s", target, exc)
    return tuple(written)


def _mean(values: np.ndarray) -> float:
    finished = values[np.isfinite(values)]
    return float(finished.mean()) if len(finished) else float("nan")
