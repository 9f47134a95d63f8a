"""One dream after another, step by step, with every step ready to draw: what the studio's Dream pane shows and
`wm-studio dream` writes.

    controls = DreamControls(tau=1.15, driver="controller", keys=keyboard_action("doom", ()), cap=2100,
                             controller=controller)
    for frame in dream_session(vae, mdn, "doom", controls, seed=0, starts=episode_starts(files)):
        frame.dream, frame.done_prob, frame.ended ...      # a DreamFrame per step; step 0 is the start

The session is a batch-1 DreamEnv. A dream starts where the controller stage's dreams start (`starts`: V's
(mu, logvar) of episodes' first frames, z drawn from them; CarRacing after its zoom-in, see dream.START_STEP),
else from V's encoding of a random frame of `start_frames` (rollout files, not before START_STEP), else from
z ~ N(0, I). With real=True the real game plays beside the dream, which then starts from V's encoding of the game's
frame at START_STEP (CarRacing idles through its zoom-in first), and both take the same actions. The driver is C
(on the dream's z and M's state), the keyboard, or a random (brownian) policy. An episode ends when M predicts the end (Doom's done head), when the real game ends, or at the cap, and
the next one starts at once with M's state at zero.

Everything the user may change while the dream runs (temperature, driver, held keys, cap, a restart) comes in
through DreamControls, read once per step under a lock: the session runs on a worker thread, the changes come
from the GUI thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wm_studio.core.data.policies import make_policy
from wm_studio.core.envs import make_env
from wm_studio.core.envs.dream import START_STEP, DreamEnv, decode_frames, episode_starts, sample_starts
from wm_studio.core.run_contents import load_frames
from wm_studio.core.train.encode import encode_frames

DRIVERS = ("controller", "keyboard", "random")
NEVER = 10 ** 9            # DreamEnv's own limit: the session applies the (changeable) cap
START_POOL = 256           # episodes a session can start from
BRAKE = 0.8                # a full brake locks the wheels; the paper's human demo used 0.8
GAP = 4                    # pixels between the dream and the real frame in an export
EXPORT_LABELS = ("dream (M + V)", "real game")   # over the halves of an export, in the pane's order


def keyboard_action(game: str, held) -> np.ndarray:
    """The action of the keys held ("left", "right", "gas", "brake"): CarRacing (steer, gas, brake); Doom (left,
    right)."""
    left, right = "left" in held, "right" in held
    if game == "doom":
        return np.array([left, right], np.float32)
    return np.array([float(right) - float(left), float("gas" in held), BRAKE * ("brake" in held)], np.float32)


@dataclass(frozen=True)
class DreamFrame:
    """One step of a dream session (a host copy of everything a view draws)."""
    episode: int
    step: int
    dream: np.ndarray                 # uint8 (64, 64, 3): V's picture of M's z
    real: np.ndarray | None           # uint8 (64, 64, 3): the real game's frame (real beside dream)
    action: np.ndarray                # the action that led here (zeros at step 0)
    driver: str                       # who chose it
    tau: float
    score: float                      # the dream's reward so far (Doom: steps survived; CarRacing dreams pay 0)
    real_score: float | None          # the real game's reward so far
    error: float | None               # pixel MSE between the real and the dream frame, in [0, 1]^2 units
    z_error: float | None             # mean squared difference between the real frame's z and the dream's z
    done_prob: float | None           # M's p(done) on the step that led here (Doom; None at step 0)
    ended: str                        # why the episode ends here ('' while it goes on)
    start: str                        # where the episode started
    time: float                       # time.perf_counter() when it was made


@dataclass(frozen=True)
class ControlState:
    tau: float
    driver: str
    keys: np.ndarray
    cap: int
    controller: object


class DreamControls:
    """What may change while the dream runs; read by the session once per step (under a lock)."""

    def __init__(self, tau: float, driver: str, keys: np.ndarray, cap: int, controller=None):
        self._lock = threading.Lock()
        self._state = ControlState(float(tau), driver, keys, int(cap), controller)
        self._restart = False

    def update(self, **changes) -> None:
        with self._lock:
            values = {**self._state.__dict__, **changes}
            self._state = ControlState(**values)

    def read(self) -> ControlState:
        with self._lock:
            return self._state

    def request_restart(self) -> None:
        with self._lock:
            self._restart = True

    def take_restart(self) -> bool:
        with self._lock:
            asked, self._restart = self._restart, False
            return asked


def _encode(vae, frame: np.ndarray) -> np.ndarray:
    return encode_frames(vae, frame[None], np, 1)[0][0]


def dream_session(vae, mdn, game: str, controls: DreamControls, seed: int, starts: np.ndarray | None = None,
                  start_frames=(), real: bool = False, decode=decode_frames, latent_files=()):
    """Dream episodes one after another, forever; yields a DreamFrame per step (step 0: the start).

    starts: (N, 2, z) (mu, logvar) pairs or (N, z) latents to start from, else read from `latent_files` (up to
    START_POOL episodes, read by the generator, i.e. on the thread that runs it); decode(vae, z (N, z_size)) ->
    uint8 frames: decode_frames, or a decoder process's decode."""
    if starts is None and latent_files:
        starts = episode_starts(list(latent_files), START_POOL, START_STEP[game])
    rng = np.random.default_rng(seed)
    policy = make_policy("brownian", game, rng)
    real_env = make_env(game) if real else None
    env = DreamEnv(mdn, vae, max_steps=NEVER, seed=int(rng.integers(2 ** 31)))
    try:
        episode = 0
        while True:
            yield from _episode(episode, env, vae, game, controls, rng, policy, starts, start_frames, real_env,
                                decode)
            episode += 1
    finally:
        if real_env is not None:
            real_env.close()


def _start(env, vae, rng, starts, start_frames, real_env, game):
    """(initial z, real frame or None, description)."""
    skip = START_STEP.get(game, 0)
    if real_env is not None:
        obs, _ = real_env.reset(seed=int(rng.integers(2 ** 31)))
        idle = np.zeros(real_env.action_size, np.float32)
        for _ in range(skip):   # CarRacing's zoom-in, seen once from far above: M would drift from step 1
            obs, *_ = real_env.step(idle)
        return _encode(vae, obs), obs, (f"the real game after its intro (step {skip})" if skip else
                                        "the real game's first frame")
    if starts is not None and len(starts):
        start = np.asarray(starts[rng.integers(len(starts))], np.float32)
        if start.ndim == 2:                              # (mu, logvar): z drawn as the training dreams draw it
            return sample_starts(start[None], rng.standard_normal((1, env.z_size)))[0], None, "a real episode"
        return start, None, "a real frame's latent"
    if start_frames:
        path = start_frames[rng.integers(len(start_frames))]
        frames = load_frames(path)
        step = int(rng.integers(min(skip, len(frames) - 1), len(frames)))
        return _encode(vae, frames[step]), None, f"{Path(path).stem}, step {step}"
    return rng.standard_normal(env.z_size).astype(np.float32), None, "z ~ N(0, I) (no real frames in this run)"


def _episode(episode, env, vae, game, controls, rng, policy, starts, start_frames, real_env, decode):
    state = controls.read()
    env.tau = state.tau
    controls.take_restart()
    z0, real_frame, start = _start(env, vae, rng, starts, start_frames, real_env, game)
    z, info = env.reset(z0)
    action = np.zeros(env.action_size, np.float32)
    score, real_score = 0.0, (0.0 if real_env is not None else None)
    step, real_ended = 0, False
    while True:
        dream_frame = decode(vae, z)[0]
        error = z_error = None
        if real_frame is not None:
            error = float(np.mean((real_frame.astype(np.float32) / 255 - dream_frame.astype(np.float32) / 255) ** 2))
            z_error = float(np.mean((_encode(vae, real_frame) - z[0]) ** 2))
        ended = ""
        if step > 0:
            if env.terminated[0]:
                ended = "M predicted the end of the episode"
            elif real_ended:
                ended = "the real game ended"
            elif step >= state.cap:
                ended = f"the cap of {state.cap} steps"
        done_prob = info.get("done_prob")
        yield DreamFrame(episode, step, dream_frame, real_frame, action, state.driver, state.tau, score, real_score,
                         error, z_error, None if done_prob is None else float(done_prob[0]), ended, start,
                         time.perf_counter())
        if ended:
            return
        state = controls.read()
        if controls.take_restart():
            return
        env.tau = state.tau
        action = _choose(state, game, policy, z, info)
        z, reward, _, _, info = env.step(action[None])
        score += float(reward[0])
        real_ended = False
        if real_env is not None:
            real_frame, real_reward, terminated, truncated, _ = real_env.step(action)
            real_score += real_reward
            real_ended = terminated or truncated
        step += 1


def _choose(state: ControlState, game: str, policy, z, info) -> np.ndarray:
    if state.driver == "controller" and state.controller is not None:
        return state.controller.act(z, info["h"], info["c"])[0]
    if state.driver == "keyboard":
        return state.keys
    return policy.act(None)


def first_episode(session, steps: int) -> tuple[list[DreamFrame], bool]:
    """The frames of a session's first episode, at most `steps` of them, and whether M ended it."""
    frames = []
    for frame in session:
        frames.append(frame)
        if frame.ended or len(frames) >= steps:
            return frames, frame.ended.startswith("M predicted")
    return frames, False


def export_frames(frames: list[DreamFrame], size: int) -> list[np.ndarray]:
    """The steps as frames of size x size; where the real game ran, dream | real side by side as in the Dream pane,
    under a band that names each half (a file travels without the pane's titles)."""
    exported = []
    factor = max(1, size // 64)
    width = 64 * factor
    bands = None
    for frame in frames:
        dream = frame.dream.repeat(factor, 0).repeat(factor, 1)
        if frame.real is not None:
            if bands is None:
                height = label_height(width)
                gap = np.full((height + width, GAP, 3), 255, np.uint8)
                bands = [label_band(width, height, text) for text in EXPORT_LABELS]
            real = frame.real.repeat(factor, 0).repeat(factor, 1)
            dream = np.concatenate([np.concatenate([bands[0], dream]), gap,
                                    np.concatenate([bands[1], real])], axis=1)
        exported.append(dream)
    return exported


def label_height(width: int) -> int:
    """Pixels of the band that names a half of an export `width` wide."""
    return max(16, width // 8)


def label_band(width: int, height: int, text: str) -> np.ndarray:
    """uint8 (height, width, 3): `text` centred, dark on white."""
    from PIL import Image, ImageDraw, ImageFont
    band = Image.new("RGB", (width, height), (255, 255, 255))
    font = ImageFont.load_default(size=max(9, int(height * 0.6)))   # a scalable font since Pillow 10.1
    ImageDraw.Draw(band).text((width / 2, height / 2), text, fill=(20, 20, 20), font=font, anchor="mm")
    return np.asarray(band)
