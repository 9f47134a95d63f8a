"""One episode of the real game, step by step, and the controller's scores beside a random policy's (real and
dream): what the studio's Controller pane shows.

    for step in play_episode(run, seed=7, policy="controller"):     # or policy="random"
        step.frame, step.reconstruction, step.z, step.h, step.action, step.reward, step.total_reward

    for snapshot in score_controller(run, episodes=20, seed=0):      # the last one holds both reports
        snapshot.real.controller_rewards, snapshot.dream_controller, snapshot.dream_note

`play_episode` is rollout.play() opened up: the same models (V's mean latent through the numpy encoder, M's LSTM
step, C), the same order (z_t from the frame, a_t = C(z_t, h_t), the game steps, then M's state advances on
(z_t, a_t)) and the same random policy per seed, so its total reward equals play()'s for the same seed. Each step
yields a snapshot of host arrays: the game frame the agent acted on, V's reconstruction of its z (decoded by a
CPU copy of V, optional), z, h, the action and the rewards so far. M's state is computed for the random policy too
(the pane shows what M makes of the random drive); it does not change the random actions.

`score_controller` runs core.train.evaluate (the controller and the random policy on the same seeds, full
episodes), then, where the run's M can score a dream (Doom: a done head, 1 per step survived), the same number of
dreams for each policy at the run's temperature tau. CarRacing's M predicts no reward (as in the paper), so its
dream score is not defined and `dream_note` says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.models.controller import Controller, load_controller, to_game_action
from wm_studio.core.runs import Run
from wm_studio.core.train.controller_stage import ControllerSettings, episode_steps
from wm_studio.core.train.evaluate import EvaluationReport, controller_path, evaluate, evaluation_seeds
from wm_studio.core.train.rollout import (DreamWorld, dream, dream_spec, dream_tasks, game_spec,
                                          random_policy_rng)

POLICIES = ("controller", "random")
DREAM_TAG = 7          # keeps the dream's seeds apart from the real evaluation's


@dataclass(frozen=True)
class EpisodeStep:
    done: int                          # steps played
    total: int                         # the episode's step limit
    seed: int                          # the game seed (the track)
    policy: str                        # "controller" or "random"
    frame: np.ndarray                  # uint8 (H, W, 3): the game's full frame the agent acted on
    observation: np.ndarray            # uint8 (64, 64, 3): what V saw
    reconstruction: np.ndarray | None  # uint8 (64, 64, 3): V's decoding of z (None when not asked for)
    z: np.ndarray                      # (z_size,) V's mean latent of the observation
    h: np.ndarray | None               # (hidden,) M's state when the action was chosen (None without M)
    raw_action: np.ndarray             # (outputs,) the policy's output in [-1, 1] (C's tanh)
    action: np.ndarray                 # (action_size,) what the game got
    reward: float                      # what this action brought
    total_reward: float
    rewards: np.ndarray                # (done,) the reward of every step so far
    terminated: bool
    truncated: bool

    @property
    def finished(self) -> bool:
        return self.terminated or self.truncated or self.done >= self.total

    def summary(self) -> str:
        return f"{self.policy} step {self.done}/{self.total} reward {self.total_reward:.1f}"


def load_policy(run: Run, policy: str) -> tuple[Controller | None, str]:
    """(controller or None for the random policy, the inputs the world must provide: "zh" or "z")."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}")
    if policy == "random":
        # M's state is shown for the random drive too, where the run has an M.
        return None, "zh" if run.model_path("mdn").is_file() else "z"
    controller, _ = load_controller(controller_path(run))
    return controller, controller.shape.inputs


def play_episode(run: Run, seed: int, policy: str = "controller", max_steps: int | None = None,
                 reconstruct: bool = True) -> Iterator[EpisodeStep]:
    """Play one episode of the run's game with its controller (or the random policy), a snapshot per step."""
    controller, inputs = load_policy(run, policy)
    spec = game_spec(run, inputs)
    if controller is not None and controller.shape != spec.shape:
        raise CheckpointError(f"{run.model_path('controller')} is a controller for {controller.shape}, but this "
                              f"run's V and M need {spec.shape}: train C again")
    limit = min(int(max_steps or episode_steps(run.config)), episode_steps(run.config))
    decoder = _decoder(spec.vae_path) if reconstruct else None
    world = spec.load()
    try:
        yield from _steps(world, controller, decoder, int(seed), limit, policy)
    finally:
        world.close()


def _decoder(vae_path: str):
    """V on the CPU, for the reconstructions (the worker's own copy: nothing shared with other threads)."""
    from wm_studio.core.models.serialization import load_vae
    return load_vae(vae_path)


def _reconstruct(vae, z: np.ndarray) -> np.ndarray:
    from wm_studio.core.envs.dream import decode_frames
    return decode_frames(vae, z[None])[0]


def _steps(world, controller, decoder, seed: int, limit: int, policy: str) -> Iterator[EpisodeStep]:
    game, outputs = world.shape.game, world.shape.outputs
    rng = random_policy_rng(seed) if controller is None else None
    obs, info = world.env.reset(seed=seed)
    h = c = None
    if world.lstm is not None:
        h, c = world.lstm.initial_state()
    rewards: list[float] = []
    total = 0.0
    while len(rewards) < limit:
        frame, z = info["frame"], world.encoder(obs)
        if controller is None:
            raw = rng.uniform(-1.0, 1.0, outputs)[None]        # the draw rollout.play() makes per step
            action = to_game_action(game, raw)[0]
        else:
            raw = controller.raw_output(z, h, c)
            action = to_game_action(game, raw)[0]
        seen_h = None if h is None else h[0].copy()
        seen_obs = obs
        obs, reward, terminated, truncated, info = world.env.step(action)
        rewards.append(float(reward))
        total += reward
        if h is not None and not (terminated or truncated):
            h, c = world.lstm.step(z, action[None], h, c)
        yield EpisodeStep(
            done=len(rewards), total=limit, seed=seed, policy=policy, frame=np.asarray(frame, np.uint8).copy(),
            observation=np.asarray(seen_obs, np.uint8).copy(),
            reconstruction=None if decoder is None else _reconstruct(decoder, z[0]),
            z=z[0].copy(), h=seen_h, raw_action=np.asarray(raw, np.float32)[0].copy(),
            action=np.asarray(action, np.float32).copy(), reward=float(reward), total_reward=float(total),
            rewards=np.asarray(rewards, np.float64), terminated=bool(terminated), truncated=bool(truncated))
        if terminated or truncated:
            return


# ---- scores: real game and dream, controller beside the random policy --------------------------------------------

@dataclass(frozen=True)
class ScoreSnapshot:
    done: int                              # episodes played (real and dream, both policies)
    total: int
    phase: str                             # "real" while the game is played, then "dream", then "done"
    controller_mean: float                 # real game, episodes finished so far (nan before the first)
    random_mean: float
    real: EvaluationReport | None = None   # once every real episode is played
    dream_controller: np.ndarray | None = None   # (N,) dream score per episode (Doom: steps survived)
    dream_random: np.ndarray | None = None
    dream_note: str = ""                   # why there is no dream score, when there is none

    def summary(self) -> str:
        text = f"{self.phase}: controller {self.controller_mean:.1f}, random {self.random_mean:.1f}"
        if self.dream_controller is not None:
            text += (f"; dream: controller {self.dream_controller.mean():.1f}, "
                     f"random {self.dream_random.mean():.1f}")
        return text


def dream_note(run: Run) -> str:
    """'' when the run's M can score a dream; otherwise the reason, for the pane to show."""
    path = run.model_path("mdn")
    if not path.is_file():
        return f"no dream score: the run has no M ({path.name})"
    from wm_studio.core.data.dataset import rollout_files
    from wm_studio.core.train.rollout import model_meta
    if not model_meta(path).get("predict_done"):
        return (f"dream score not defined for {run.config.get('env', 'carracing')}: M predicts no reward "
                f"(as in the paper, only Doom's M has a done head)")
    if not rollout_files(run.latents_dir):
        return f"no dream score: the run has no latents ({run.latents_dir.name}) to start dreams from"
    return ""


def dream_scores(run: Run, params: np.ndarray | None, inputs: str, seeds: np.ndarray, tau: float,
                 done_threshold: float = 0.5, max_steps: int | None = None, world: DreamWorld | None = None
                 ) -> np.ndarray:
    """Dream score of one controller (params) or of the random policy (None), one dream per seed, batched.

    Dream k starts from the first frame of the episode that seeds[k] picks, as the controller stage's dreams do."""
    world = world or dream_spec(run, inputs, tau, done_threshold).load()
    seeds = np.asarray(seeds, dtype=np.int64)
    limit = int(max_steps or episode_steps(run.config))
    rows = None if params is None else np.asarray(params, dtype=np.float64)[None]
    (task,) = dream_tasks(rows, seeds, limit)
    totals, _ = dream(world, task)
    return totals


def score_controller(run: Run, episodes: int, seed: int = 0, runner=None, backend: str | None = None,
                     workers: int | None = None) -> Iterator[ScoreSnapshot]:
    """The controller and the random policy: `episodes` real episodes each (core evaluate), then as many dreams
    each where the run's M can score them. One snapshot per real episode, one for the dreams."""
    note = dream_note(run)
    with_dream = not note
    total = 2 * episodes + (2 if with_dream else 0)
    real = None
    last = None
    for last in evaluate(run, episodes, seed, runner=runner, backend=backend, workers=workers):
        real = last.report
        yield ScoreSnapshot(last.done, total, "real" if real is None else ("dream" if with_dream else "done"),
                            last.controller_mean, last.random_mean, real, dream_note=note)
    if not with_dream or real is None:
        return
    controller, _ = load_controller(controller_path(run))
    settings = ControllerSettings.from_config(run.config)
    seeds = evaluation_seeds(seed + DREAM_TAG, episodes)
    world = dream_spec(run, controller.shape.inputs, settings.tau, settings.done_threshold).load()
    ours = dream_scores(run, controller.params, controller.shape.inputs, seeds, settings.tau,
                        settings.done_threshold, world=world)
    theirs = dream_scores(run, None, controller.shape.inputs, seeds, settings.tau, settings.done_threshold,
                          world=world)
    yield ScoreSnapshot(total, total, "done", last.controller_mean, last.random_mean, real, ours, theirs)


def mean_and_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    return float(values.mean()), float(values.std())
