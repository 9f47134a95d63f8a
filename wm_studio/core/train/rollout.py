"""Rollouts of controllers, in the real game or in M's dream, on any task runner (serial, processes, Dask).

    evaluator = make_evaluator(run, runner, in_dream=False, inputs="zh")
    rewards, steps = evaluator.evaluate(params (P, n), seeds (K,), max_steps=1000, early_stop=0)   # (P, K) each

The driver owns every seed: candidate p's k-th rollout plays game seed seeds[k] (the same K seeds for every
candidate of a generation: common random numbers, so candidates are ranked on the same tracks rather than on
luck). A rollout is a deterministic function of (parameters, seed), so a generation's fitness is the same on
every backend and for any number of workers.

Real game, per step (the paper's order): z = mu of V's encoder on the 64x64 frame (the mean, not a sample: the
controller reacts to the frame, not to V's noise, and the rollout stays deterministic); a = C(z, h) (Doom:
C(z, h, c)); the game steps with a; M's LSTM steps on (z, a) to give the next (h, c). M's mixture head is not
needed for that and is never computed. V and M run through the numpy path of wm_studio.core.train.inference.

The heavy state of a worker (the game, V's encoder, M's LSTM; the dream's M and its pool of start latents) is
built by the context spec's load(), once per worker: specs are small frozen dataclasses of paths and sizes,
stamped with the size and modification time of the model files, so a retrained model is a new spec.

Early stopping (training only, off by default for paper fidelity): `early_stop=N` ends a rollout after N
consecutive steps of negative reward. In CarRacing every step costs 0.1 and only new road tiles pay, so N such
steps mean the car is off the track, stuck or circling; ending there saves most of the time bad candidates
would waste. Evaluation (`wm-studio evaluate`) always plays full episodes.

The dream (Doom, as in the paper): all of a generation's dreams (lambda candidates x K rollouts) step together in
numpy (`envs.dream.run_dreams`: one LSTM call per step for every row still alive; rows whose episode ended are
dropped from the batch), by default as one task, so the BLAS of one process gets every row at once. Row (p, k)
starts from the first frame of the real episode that seeds[k] picks (z drawn from V's (mu, logvar)), and draws
M's sampling noise from lane k: every candidate meets the same K dreams (common random numbers), and a row's
dream does not depend on how rows are split into tasks, so the result does not depend on the backend either. A
dream pays 1 per step survived (Doom's done head; the step on which M predicts the end counts); CarRacing's M has
no reward head (as in the paper), so training C in a CarRacing dream is refused with one clear message.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.models.controller import ControllerBatch, ControllerShape, Controller, to_game_action

START_POOL = 1024          # first frames of real episodes a dream can start from
DREAM_NOISE_TAG = 2018     # mixed into the seeds of M's sampling noise


def file_stamp(path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def require_model(run, stage: str, command: str) -> Path:
    path = run.model_path(stage)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: run `wm-studio {command} --run {run.root}` first")
    return path


def model_meta(path) -> dict[str, Any]:
    from wm_studio.core.files import load_npz
    return load_npz(path)[1]


class _ShapedSpec:
    """A worker spec's controller shape, from its game, sizes and inputs."""

    @property
    def shape(self) -> ControllerShape:
        return ControllerShape(self.game, self.z_size, self.hidden, self.inputs)


# ---- the real game -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GameSpec(_ShapedSpec):
    """What a rollout worker needs to play controllers in the real game."""
    game: str
    vae_path: str
    mdn_path: str | None        # None for a z-only controller (it never reads M)
    inputs: str = "zh"
    z_size: int = 32
    hidden: int = 256
    stamp: tuple = ()

    def load(self) -> "GameWorld":
        from wm_studio.core.envs import make_env
        from wm_studio.core.models.serialization import read_model
        from wm_studio.core.train.inference import LeanEncoder, LeanLSTM
        encoder = LeanEncoder(read_model(self.vae_path, "vae")[0])
        lstm = LeanLSTM(read_model(self.mdn_path, "mdn")[0]) if self.inputs == "zh" else None
        return GameWorld(make_env(self.game), encoder, lstm, self.shape)


class GameWorld:
    def __init__(self, env, encoder, lstm, shape: ControllerShape):
        self.env, self.encoder, self.lstm, self.shape = env, encoder, lstm, shape

    def close(self) -> None:
        self.env.close()


@dataclass(frozen=True)
class RolloutTask:
    params: np.ndarray | None   # the controller's flat parameters; None plays the random policy
    seed: int                   # the game's seed (the track)
    max_steps: int
    early_stop: int = 0         # end after this many consecutive negative rewards (0: never)
    record: bool = False        # keep the game's full RGB frames (info["frame"])


@dataclass(frozen=True)
class RolloutResult:
    reward: float
    steps: int
    frames: np.ndarray | None = None     # uint8 (steps + 1, H, W, 3) when recorded


def random_policy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 7])


def play(world: GameWorld, task: RolloutTask) -> RolloutResult:
    """One episode of the real game with a controller (or the random policy): total reward and steps."""
    env, game = world.env, world.shape.game
    controller = None if task.params is None else Controller(world.shape, task.params)
    rng = random_policy_rng(task.seed) if controller is None else None
    obs, info = env.reset(seed=int(task.seed))
    frames = [info["frame"]] if task.record else None
    h = c = None
    if controller is not None and world.lstm is not None:
        h, c = world.lstm.initial_state()
    total, negative_run, steps = 0.0, 0, 0
    while steps < task.max_steps:
        if controller is None:
            action = to_game_action(game, rng.uniform(-1.0, 1.0, world.shape.outputs))[0]
        else:
            z = world.encoder(obs)
            action = controller.act(z, h, c)[0]
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        total += reward
        if frames is not None:
            frames.append(info["frame"])
        if terminated or truncated:
            break
        if h is not None:
            h, c = world.lstm.step(z, action[None], h, c)
        negative_run = negative_run + 1 if reward < 0 else 0
        if task.early_stop and negative_run >= task.early_stop:
            break
    return RolloutResult(float(total), steps, None if frames is None else np.stack(frames).astype(np.uint8))


# ---- the dream ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DreamSpec(_ShapedSpec):
    """What a dream worker needs: M, the real latents the dreams start from, the dream's settings."""
    game: str
    mdn_path: str
    latents_dir: str
    inputs: str = "zh"
    z_size: int = 64
    hidden: int = 512
    tau: float = 1.15
    done_threshold: float = 0.5
    stamp: tuple = ()

    def load(self) -> "DreamWorld":
        from wm_studio.core.data.dataset import rollout_files
        from wm_studio.core.envs.dream import episode_starts
        from wm_studio.core.train.inference import lean_mdn
        return DreamWorld(lean_mdn(self.mdn_path), episode_starts(rollout_files(self.latents_dir), START_POOL),
                          self)


class DreamWorld:
    def __init__(self, mdn, starts: np.ndarray, spec: DreamSpec):
        self.mdn, self.starts, self.spec = mdn, starts, spec


@dataclass(frozen=True)
class DreamTask:
    params: np.ndarray | None   # (R, n): one controller per row; None: the random policy
    starts: np.ndarray          # (R,) indices into the worker's start frames (taken modulo their number)
    lanes: np.ndarray           # (R,) the lane of each row's random numbers
    seed: int                   # M's sampling noise (every lane's stream derives from it)
    max_steps: int


def dream(world: DreamWorld, task: DreamTask) -> tuple[np.ndarray, np.ndarray]:
    """(total rewards (R,), steps survived (R,)) of R dreams stepped together, one LSTM call per step."""
    from wm_studio.core.envs.dream import RandomActor
    spec = world.spec
    rows = len(task.starts)
    if task.params is None:
        actor = RandomActor(spec.game, spec.shape.outputs, rows, np.random.default_rng([task.seed, 1]))
    else:
        actor = ControllerBatch(spec.shape, task.params)
    steps = dream_with(world, task, actor)
    return steps.astype(np.float64), steps


def dream_with(world: DreamWorld, task: DreamTask, actor) -> np.ndarray:
    """Steps survived (R,) by the task's R dreams, each row driven by `actor` (run_dreams' act / keep)."""
    from wm_studio.core.envs.dream import run_dreams
    spec = world.spec
    starts = world.starts[np.asarray(task.starts) % len(world.starts)]
    return run_dreams(world.mdn, actor, starts, task.lanes, spec.tau, spec.done_threshold, task.max_steps,
                      task.seed)


def dream_tasks(params, seeds, max_steps: int, rows_per_task: int | None = None) -> list[DreamTask]:
    """The tasks of P candidates (rows of params, or None: the random policy once per seed) x K dreams.

    Row p * K + k is candidate p in lane k, which starts from the episode seeds[k] picks."""
    seeds = np.asarray([int(s) for s in seeds], dtype=np.int64)
    count = 1 if params is None else len(params)
    rows = None if params is None else np.repeat(np.asarray(params, dtype=np.float64), len(seeds), axis=0)
    starts, lanes = np.tile(seeds, count), np.tile(np.arange(len(seeds)), count)
    noise_seed = int(np.random.SeedSequence([DREAM_NOISE_TAG, *seeds.tolist()]).generate_state(1)[0])
    size = rows_per_task or len(starts)
    return [DreamTask(None if rows is None else rows[lo:lo + size], starts[lo:lo + size], lanes[lo:lo + size],
                      noise_seed, max_steps) for lo in range(0, len(starts), size)]


# ---- evaluators: one interface over the runner -------------------------------------------------------------------

class GameEvaluator:
    """Rollouts of many controllers in the real game, one task per rollout."""
    in_dream = False

    def __init__(self, runner, spec: GameSpec):
        self.runner, self.spec = runner, spec

    @property
    def shape(self) -> ControllerShape:
        return self.spec.shape

    def evaluate(self, params, seeds, max_steps: int, early_stop: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rewards, steps), each (P, K): candidate p (a row of params) on every seed."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        seeds = [int(s) for s in seeds]
        tasks = [RolloutTask(row, seed, max_steps, early_stop) for row in params for seed in seeds]
        rewards = np.full(len(tasks), np.nan)
        steps = np.zeros(len(tasks), dtype=np.int64)
        for index, result in self.runner.run(play, tasks, self.spec):
            rewards[index], steps[index] = result.reward, result.steps
        return rewards.reshape(len(params), len(seeds)), steps.reshape(len(params), len(seeds))


class DreamEvaluator:
    """Rollouts of many controllers in M's dream: all rows in one task by default (one LSTM call per step for all
    of them), or rows_per_task rows a task to spread them over workers; the result is the same either way."""
    in_dream = True

    def __init__(self, runner, spec: DreamSpec, rows_per_task: int | None = None):
        if rows_per_task is not None and rows_per_task < 1:
            raise ConfigError(f"rows_per_task must be at least 1, not {rows_per_task}")
        self.runner, self.spec, self.rows_per_task = runner, spec, rows_per_task

    @property
    def shape(self) -> ControllerShape:
        return self.spec.shape

    def evaluate(self, params, seeds, max_steps: int, early_stop: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rewards, steps), each (P, K). early_stop does not apply: a dream row ends when M says so."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        tasks = dream_tasks(params, seeds, max_steps, self.rows_per_task)
        rewards = np.full(sum(len(t.starts) for t in tasks), np.nan)
        steps = np.zeros(len(rewards), dtype=np.int64)
        offsets = np.cumsum([0] + [len(t.starts) for t in tasks])
        for index, (totals, survived) in self.runner.run(dream, tasks, self.spec):
            part = slice(offsets[index], offsets[index + 1])
            rewards[part], steps[part] = totals, survived
        return rewards.reshape(len(params), -1), steps.reshape(len(params), -1)


def game_spec(run, inputs: str = "zh") -> GameSpec:
    """The real-game spec of a run, with its models checked (missing ones named with the command that makes them)."""
    config = run.config
    game = config.get("env", "carracing")
    vae_path = require_model(run, "vae", "train-vae")
    vae_meta = model_meta(vae_path)
    if vae_meta.get("kind") != "vae":
        raise CheckpointError(f"{vae_path} is not a V model file")
    z_size = int(vae_meta["z_size"])
    mdn_path, hidden = None, int(config.get("hidden", 256))
    if inputs == "zh":
        mdn_path = require_model(run, "mdn", "train-mdn")
        hidden = _check_mdn(mdn_path, z_size, game)["hidden"]
    stamp = (file_stamp(vae_path),) + ((file_stamp(mdn_path),) if mdn_path else ())
    return GameSpec(game, str(vae_path), None if mdn_path is None else str(mdn_path), inputs, z_size, hidden, stamp)


def dream_spec(run, inputs: str = "zh", tau: float = 1.15, done_threshold: float = 0.5) -> DreamSpec:
    config = run.config
    game = config.get("env", "carracing")
    mdn_path = require_model(run, "mdn", "train-mdn")
    meta = model_meta(mdn_path)
    if not meta.get("predict_done"):
        raise ConfigError(f"{game}'s M has no reward or done head (as in the paper), so a dream pays nothing and "
                          f"C cannot learn in it: train C in the real game (leave out --in-dream)")
    from wm_studio.core.data.dataset import rollout_files
    if not rollout_files(run.latents_dir):
        raise CheckpointError(f"{run.root} has no latents in {run.latents_dir} to start dreams from: run "
                              f"`wm-studio train-vae --run {run.root}` first")
    meta = _check_mdn(mdn_path, int(meta["z_size"]), game)
    return DreamSpec(game, str(mdn_path), str(run.latents_dir), inputs, int(meta["z_size"]), int(meta["hidden"]),
                     float(tau), float(done_threshold), (file_stamp(mdn_path),))


def _check_mdn(path, z_size: int, game: str) -> dict:
    from wm_studio.core.presets import GAMES
    meta = model_meta(path)
    if meta.get("kind") != "mdn":
        raise CheckpointError(f"{path} is not an M model file")
    if meta.get("z_size") != z_size or meta.get("action_size") != GAMES[game]["action_size"]:
        raise CheckpointError(f"{path} was trained on z {meta.get('z_size')} and actions "
                              f"{meta.get('action_size')}, but this run's V gives z {z_size} and {game} has "
                              f"{GAMES[game]['action_size']} actions: train M again on this V's latents")
    return meta


def make_evaluator(run, runner, in_dream: bool = False, inputs: str = "zh", tau: float = 1.15,
                   done_threshold: float = 0.5, rows_per_task: int | None = None):
    if in_dream:
        return DreamEvaluator(runner, dream_spec(run, inputs, tau, done_threshold), rows_per_task)
    return GameEvaluator(runner, game_spec(run, inputs))
