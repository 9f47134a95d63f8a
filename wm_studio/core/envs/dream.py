"""The dream: a Gym-style environment inside M, with V to turn its latents back into frames.

Many dreams step at once: `batch` rows share one LSTM call per step. Each row starts from the z of a real frame
(V's encoding), then M predicts a mixture for the next z and the dream samples from it at temperature tau.

    env = DreamEnv(mdn, vae, tau=1.15, batch=64, max_steps=2100, seed=0, starts=real_starts(files, 256, rng))
    z, info = env.reset()                                    # z (B, z); info["h"], info["c"] (B, hidden)
    z, reward, terminated, truncated, info = env.step(actions)   # actions (B, A)
    frames = env.render()                                    # uint8 (B, 64, 64, 3) decoded by V

Rewards: the paper's M has no reward head. A Doom dream (an M with a done head) pays 1 for every step survived
and ends when p(done) > done_threshold; a CarRacing dream pays 0 and ends only at max_steps. Once a row has
ended it stays ended: its z and LSTM state are frozen and it earns nothing, while the other rows go on. Controllers
act on [z, h] (Doom: [z, h, c]): info carries h and c, the state after the step, as host numpy copies.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from wm_studio.core.backend import to_numpy
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_npz
from wm_studio.core.models.mdnrnn import MDNRNN, LSTMState, sample

DOOM_REWARD_PER_STEP = 1.0


class DreamEnv:
    def __init__(self, mdn: MDNRNN, vae=None, tau: float = 1.0, done_threshold: float = 0.5,
                 max_steps: int = 1000, batch: int = 1, seed: int | None = None, starts: np.ndarray | None = None):
        if tau < 0:
            raise ConfigError(f"the temperature must be >= 0, not {tau}")
        if not 0 < done_threshold < 1:
            raise ConfigError(f"the done threshold must be in (0, 1), not {done_threshold}")
        if max_steps < 1 or batch < 1:
            raise ConfigError(f"a dream needs max_steps >= 1 and batch >= 1 (got {max_steps}, {batch})")
        self.mdn, self.vae = mdn, vae
        self.tau, self.done_threshold = float(tau), float(done_threshold)
        self.max_steps, self.batch = int(max_steps), int(batch)
        self.rng = np.random.default_rng(seed)
        self.starts = None if starts is None else self._latents(starts, "starts", rows=None)
        self.reward_per_step = DOOM_REWARD_PER_STEP if mdn.predict_done else 0.0
        self.z = self.state = self.alive = self.terminated = self.truncated = None
        self.steps = 0

    @property
    def z_size(self) -> int:
        return self.mdn.z_size

    @property
    def action_size(self) -> int:
        return self.mdn.action_size

    @property
    def h(self) -> np.ndarray:
        return to_numpy(self.state.h)

    @property
    def c(self) -> np.ndarray:
        return to_numpy(self.state.c)

    def reset(self, initial_z=None, seed: int | None = None):
        """Start every row from initial_z (B, z) or (z,), or from rows drawn out of `starts`. -> (z, info)"""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if initial_z is None:
            if self.starts is None:
                raise ConfigError("a dream starts from real latents: pass initial_z or make it with starts=")
            initial_z = self.starts[self.rng.integers(0, len(self.starts), self.batch)]
        z = self._latents(initial_z, "initial_z", rows=self.batch)
        self.z = self.mdn.xp.asarray(z)
        self.state = self.mdn.initial_state(self.batch)
        self.alive = np.ones(self.batch, dtype=bool)
        self.terminated = np.zeros(self.batch, dtype=bool)
        self.truncated = np.zeros(self.batch, dtype=bool)
        self.steps = 0
        return to_numpy(self.z).copy(), self._info(None)

    def step(self, actions):
        """Advance every row by one step with one LSTM call. -> (z, reward, terminated, truncated, info)"""
        if self.z is None:
            raise ConfigError("reset() the dream before stepping it")
        actions = np.asarray(actions, dtype=np.float32).reshape(self.batch, -1)
        if actions.shape[1] != self.action_size:
            raise ConfigError(f"the dream takes actions of size {self.action_size}, got {actions.shape[1]}")
        mixture, done_prob, state = self.mdn.step(self.z, actions, self.state)
        next_z = sample(mixture, self.tau, self.rng)
        done_prob = None if done_prob is None else to_numpy(done_prob)
        self.steps += 1

        ends = np.zeros(self.batch, bool) if done_prob is None else done_prob > self.done_threshold
        newly_terminated = self.alive & ends
        newly_truncated = self.alive & ~ends & (self.steps >= self.max_steps)
        reward = np.where(self.alive & ~ends, self.reward_per_step, 0.0).astype(np.float32)
        # Rows that had already ended keep their last z and state.
        xp = self.mdn.xp
        keep = xp.asarray(self.alive)[:, None]
        self.z = xp.where(keep, next_z, self.z)
        self.state = LSTMState(xp.where(keep, state.h, self.state.h), xp.where(keep, state.c, self.state.c))
        self.terminated |= newly_terminated
        self.truncated |= newly_truncated
        self.alive &= ~(newly_terminated | newly_truncated)
        return (to_numpy(self.z).copy(), reward, self.terminated.copy(), self.truncated.copy(),
                self._info(done_prob))

    def render(self) -> np.ndarray:
        """The current z of every row decoded by V: uint8 (B, 64, 64, 3)."""
        if self.z is None:
            raise ConfigError("reset() the dream before rendering it")
        return decode_frames(self.vae, to_numpy(self.z))

    def _info(self, done_prob) -> dict:
        return {"h": self.h.copy(), "c": self.c.copy(), "alive": self.alive.copy(), "steps": self.steps,
                "done_prob": done_prob}

    def _latents(self, values, name: str, rows: int | None) -> np.ndarray:
        z = np.asarray(to_numpy(values), dtype=np.float32)
        if z.ndim == 1 and rows is not None:
            z = np.broadcast_to(z, (rows, z.shape[0]))
        if z.ndim != 2 or z.shape[1] != self.z_size or (rows is not None and z.shape[0] != rows) or not len(z):
            want = f"({rows}, {self.z_size})" if rows is not None else f"(N, {self.z_size})"
            raise ConfigError(f"{name} must have shape {want}, not {z.shape}")
        if not np.isfinite(z).all():
            raise ConfigError(f"{name} holds NaN or infinite values")
        return np.ascontiguousarray(z)


def decode_frames(vae, z, chunk: int = 64) -> np.ndarray:
    """Latents (N, z) -> uint8 frames (N, 64, 64, 3) through V's decoder, `chunk` at a time."""
    if vae is None:
        raise ConfigError("rendering a dream needs V (pass vae= to the dream)")
    import chainer
    from wm_studio.core.envs.preprocess import input_to_frames
    z = np.asarray(z, dtype=np.float32)
    frames = []
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        for lo in range(0, len(z), chunk):
            images = vae.decode(vae.xp.asarray(z[lo:lo + chunk])).array
            frames.append(input_to_frames(to_numpy(images)))
    return np.concatenate(frames) if frames else np.zeros((0, 64, 64, 3), np.uint8)


def real_starts(latent_files: Sequence, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` latents (mu) of real frames, each from a random step of a random latent file. -> (count, z)"""
    if not latent_files:
        raise CheckpointError("there are no latents to start a dream from: run `wm-studio train-vae` first")
    picks = rng.integers(0, len(latent_files), count)
    starts = []
    for index in np.unique(picks):
        arrays, _ = load_npz(latent_files[index], required=("mu",))
        mu = arrays["mu"]
        if mu.ndim != 2 or not len(mu):
            raise CheckpointError(f"{latent_files[index]} holds no latents (mu is {mu.shape})")
        starts.append(mu[rng.integers(0, len(mu), int((picks == index).sum()))])
    return np.concatenate(starts).astype(np.float32)

