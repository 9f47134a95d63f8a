"""The collect stage: random rollouts of a real game, one compressed npz per rollout, in parallel workers.

Rollout i is played from a seed derived from (run seed, i) with numpy's SeedSequence, so its frames do not
depend on the number of workers or on the order in which rollouts finish. Workers write their own files
(atomically, through a temporary name), so 12 MB of frames per rollout never cross a pipe and a killed run leaves
only complete files behind; the next run deletes stray temporary files and plays only the missing rollouts.

A rollout stops when the episode terminates (the car leaves the playfield, the Doom player dies), is truncated
(lap done, time limit) or reaches `steps`. `dones[t]` is True only for a termination: a time limit is not an end
the world model should learn. A rollout shorter than `min_steps` (the paper's Doom data: 100) is played again
from the next seed of its own sequence, so rollout i is the same whatever else happened.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from wm_studio.core.data.dataset import rollout_files
from wm_studio.core.data.policies import POLICIES, make_policy
from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.files import save_npz
from wm_studio.core.parallel import make_runner
from wm_studio.core.presets import stage_settings
from wm_studio.core.runs import Run

MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class CollectSettings:
    env: str = "carracing"
    rollouts: int = 100
    steps: int = 500
    policy: str = "brownian"
    min_steps: int = 0
    seed: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
                    ) -> "CollectSettings":
        """Settings from a run's config.json: the game at the top level, the rest in its "collect" section."""
        return stage_settings(cls, config, "collect", overrides, env=config.get("env", "carracing"))

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}: choose one of {', '.join(POLICIES)}")
        if self.rollouts < 1 or self.steps < 1:
            raise ConfigError(f"rollouts and steps must be at least 1 (got {self.rollouts} and {self.steps})")
        if self.min_steps > self.steps:
            raise ConfigError(f"min_steps ({self.min_steps}) is above steps ({self.steps}): no rollout could be kept")


@dataclass(frozen=True)
class GameSpec:
    """The state of a collect worker: one game, made once per worker process."""
    env: str
    max_steps: int

    def load(self):
        from wm_studio.core.envs import make_env
        return make_env(self.env, max_steps=self.max_steps)


@dataclass(frozen=True)
class RolloutTask:
    index: int
    run_seed: int
    env: str
    policy: str
    steps: int
    min_steps: int
    path: str


@dataclass(frozen=True)
class CollectSnapshot:
    step: ClassVar[str] = "collect"  # the step that makes it (wm_studio.core.stages)
    done: int                 # rollouts on disk
    total: int                # rollouts wanted
    written: int              # rollouts written by this call
    frames: int               # frames written by this call
    steps_per_second: float   # game steps per second of wall time, all workers (replayed short episodes too)
    mean_reward: float        # mean total reward of the rollouts written by this call (nan before the first)
    last_index: int | None = None   # the rollout just written (None in the first snapshot)
    reward: float = float("nan")    # its total reward

    def summary(self) -> str:
        reward = "" if self.written == 0 else f", mean reward {self.mean_reward:.1f}"
        return f"{self.written} new, {self.frames} frames, {self.steps_per_second:.0f} steps/s{reward}"


def rollout_seed(run_seed: int, index: int, attempt: int = 0) -> np.random.SeedSequence:
    return np.random.SeedSequence(run_seed, spawn_key=(index, attempt))


def rollout_path(folder, index: int) -> Path:
    return Path(folder) / f"rollout_{index:06d}.npz"


def play(env, policy, seed: int, steps: int) -> dict[str, np.ndarray]:
    """One episode of at most `steps` actions: frames[t] seen before actions[t]; rewards, dones after it."""
    obs, _ = env.reset(seed=seed)
    frames, actions, rewards, dones = [], [], [], []
    for _ in range(steps):
        action = policy.act(obs)
        frames.append(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action)
        rewards.append(reward)
        dones.append(terminated)
        if terminated or truncated:
            break
    return {"frames": np.stack(frames).astype(np.uint8), "actions": np.stack(actions).astype(np.float32),
            "rewards": np.asarray(rewards, dtype=np.float32), "dones": np.asarray(dones, dtype=bool)}


def collect_rollout(env, task: RolloutTask) -> dict[str, Any]:
    """Worker side: play rollout `task.index` (again from its next seed while shorter than min_steps), write it."""
    start = time.monotonic()
    played = 0
    for attempt in range(MAX_ATTEMPTS):
        sequence = rollout_seed(task.run_seed, task.index, attempt)
        env_seed = int(sequence.generate_state(1)[0])
        policy = make_policy(task.policy, task.env, np.random.default_rng(sequence.spawn(1)[0]))
        rollout = play(env, policy, env_seed, task.steps)
        length = len(rollout["frames"])
        played += length
        if length >= task.min_steps:
            meta = {"env": task.env, "seed": env_seed, "policy": task.policy, "steps": length,
                    "index": task.index, "run_seed": task.run_seed, "attempt": attempt, "max_steps": task.steps}
            save_npz(task.path, rollout, meta, compressed=True)
            return {"frames": length, "played": played, "reward": float(rollout["rewards"].sum()),
                    "attempts": attempt + 1, "seconds": time.monotonic() - start}
    raise WmStudioError(f"rollout {task.index}: {MAX_ATTEMPTS} episodes in a row ended before min_steps "
                        f"({task.min_steps}); lower min_steps")


def remove_partial_files(folder) -> int:
    """Delete temporary files left by a killed writer (atomic writes use '.<name>.<random>.tmp')."""
    folder = Path(folder)
    stray = list(folder.glob(".rollout_*.tmp")) if folder.is_dir() else []
    for path in stray:
        path.unlink(missing_ok=True)
    return len(stray)


def missing_rollouts(folder, total: int) -> list[int]:
    present = {int(p.stem.split("_")[1]) for p in rollout_files(folder) if p.stem.split("_")[1].isdigit()}
    return [i for i in range(total) if i not in present]


def collect(run: Run, settings: CollectSettings | None = None, workers: int | None = None,
            backend: str | None = None, cluster: str | None = None) -> Iterator[CollectSnapshot]:
    """The collect stage as a generator: a snapshot first, then one per rollout written.

    Resumable: rollouts already on disk are kept and skipped. workers: default all cores; backend: "serial",
    "processes" (default when workers > 1) or "dask" (cluster: a scheduler address, None for a local cluster;
    the workers write the files themselves, so on a real cluster the run folder must be on storage they share).
    One collect at a time per run folder.
    """
    settings = settings or CollectSettings.from_config(run.config)
    settings.check()
    folder = run.rollouts_dir
    folder.mkdir(parents=True, exist_ok=True)
    remove_partial_files(folder)
    todo = missing_rollouts(folder, settings.rollouts)
    workers = max(1, min(os.cpu_count() or 1 if workers is None else workers, len(todo) or 1))
    backend = backend or ("dask" if cluster else "processes" if workers > 1 else "serial")
    done = settings.rollouts - len(todo)
    written = frames = played = 0
    rewards: list[float] = []
    start = time.monotonic()

    def snapshot(last_index=None, reward=float("nan")) -> CollectSnapshot:
        elapsed = max(time.monotonic() - start, 1e-9)
        return CollectSnapshot(done, settings.rollouts, written, frames, played / elapsed,
                               float(np.mean(rewards)) if rewards else float("nan"), last_index, reward)

    yield snapshot()
    if not todo:
        return
    tasks = [RolloutTask(i, settings.seed, settings.env, settings.policy, settings.steps, settings.min_steps,
                         str(rollout_path(folder, i))) for i in todo]
    with make_runner(backend, workers, cluster=cluster) as runner:
        for position, result in runner.run(collect_rollout, tasks, GameSpec(settings.env, settings.steps)):
            index = tasks[position].index
            done += 1
            written += 1
            frames += result["frames"]
            played += result["played"]
            rewards.append(result["reward"])
            # lost_workers: worker processes that died (or hung) with this rollout in hand; the runner logged each
            run.append_metrics("collect", {"rollout": index, "frames": result["frames"],
                                           "reward": result["reward"], "attempts": result["attempts"],
                                           "seconds": round(result["seconds"], 3),
                                           "lost_workers": sum(loss.task == position for loss in runner.losses)})
            yield snapshot(index, float(result["reward"]))
