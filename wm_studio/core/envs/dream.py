"""The dream: M's world, stepped without the game, with V to turn its latents back into frames.

Two ways to dream, with the same rules:

- `DreamEnv`: a Gym-style environment over the Chainer M (numpy or CuPy), `batch` rows sharing one LSTM call per
  step, with V to render them: what the studio's Dream pane and `wm-studio dream` play.
- `run_dreams`: the controller stage's batched dream in plain numpy (`inference.LeanMDN`): thousands of rows
  step together through one LSTM call, and rows whose episode has ended are dropped from the batch.

    env = DreamEnv(mdn, vae, tau=1.15, batch=64, max_steps=2100, seed=0, starts=episode_starts(files))
    z, info = env.reset()                                    # z (B, z); info["h"], info["c"] (B, hidden)
    z, reward, terminated, truncated, info = env.step(actions)   # actions (B, A)
    frames = env.render()                                    # uint8 (B, 64, 64, 3) decoded by V

The rules follow the original Doom code (hardmaru's doomrnn): a dream starts from the first frame of a real
episode, with z drawn from V's (mu, logvar) of that frame, and M's LSTM state at zero (as it is at the start of
every episode M trained on); C acts on z and the state after the previous step; the step on which M's p(done)
passes `done_threshold` ends the dream but still counts as survived. Rewards: the paper's M has no reward head. A
Doom dream (an M with a done head) pays 1 for every step survived, so its score is the number of steps; a
CarRacing dream pays 0 and ends only at max_steps. In a DreamEnv a row that has ended stays ended: its z and
LSTM state are frozen and it earns nothing, while the other rows go on. Controllers act on [z, h] (Doom:
[z, h, c]): info carries h and c, the state after the step, as host numpy copies.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from wm_studio.core.device import to_numpy
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_npz
from wm_studio.core.models.mdnrnn import MDNRNN, LSTMState, Mixture, sample, sample_with_noise

DOOM_REWARD_PER_STEP = 1.0
# Where a dream starts in a real episode: Doom at its first frame (the original code); CarRacing after the
# zoom of its first second (50 steps at 50 fps), which shows the track from far above and only once.
START_STEP = {"carracing": 50, "doom": 0}


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
        self.starts = None if starts is None else self._starts(starts)
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
        """Start every row, with M's state at zero, from initial_z (B, z) or (z,), or else from a start drawn out
        of `starts` (z sampled from its (mu, logvar)). -> (z, info)"""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if initial_z is None:
            if self.starts is None:
                raise ConfigError("a dream starts from real latents: pass initial_z or make it with starts=")
            picked = self.starts[self.rng.integers(0, len(self.starts), self.batch)]
            initial_z = sample_starts(picked, self.rng.standard_normal((self.batch, self.z_size)))
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
        reward = np.where(self.alive, self.reward_per_step, 0.0).astype(np.float32)   # the last step counts
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

    def _starts(self, starts) -> np.ndarray:
        """Starts as (N, 2, z) (mu, logvar) pairs; plain latents (N, z) become pairs with logvar -inf (exact)."""
        starts = np.asarray(to_numpy(starts), dtype=np.float32)
        if starts.ndim == 2:
            starts = np.stack([self._latents(starts, "starts", rows=None), np.full_like(starts, -np.inf)], 1)
        if starts.ndim != 3 or starts.shape[1:] != (2, self.z_size) or not len(starts):
            raise ConfigError(f"starts must have shape (N, {self.z_size}) or (N, 2, {self.z_size}), not "
                              f"{starts.shape}")
        return starts

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


def episode_starts(latent_files: Sequence, limit: int | None = None, step: int = 0) -> np.ndarray:
    """V's (mu, logvar) of each episode's frame at `step` (its last frame if shorter): (N, 2, z), where dreams
    start (see START_STEP).

    With `limit`, an evenly spread subset of at most that many episodes (always the same files)."""
    if not latent_files:
        raise CheckpointError("there are no latents to start a dream from: run `wm-studio train-vae` first")
    files = list(latent_files)
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    starts = []
    for path in files:
        arrays, _ = load_npz(path, required=("mu", "logvar"))
        mu, logvar = arrays["mu"], arrays["logvar"]
        if mu.ndim != 2 or not len(mu) or logvar.shape != mu.shape:
            raise CheckpointError(f"{path} holds no latents (mu is {mu.shape}, logvar {logvar.shape})")
        first = min(int(step), len(mu) - 1)
        starts.append(np.stack([mu[first], logvar[first]]))
    return np.stack(starts).astype(np.float32)


def sample_starts(starts: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """z = mu + exp(logvar / 2) * normal for (N, 2, z) starts and (N, z) standard normal noise."""
    mu, logvar = starts[:, 0], starts[:, 1]
    return (mu + np.exp(0.5 * logvar) * normal).astype(np.float32)


def run_dreams(mdn, actor, starts: np.ndarray, lanes: np.ndarray, tau: float, done_threshold: float,
               max_steps: int, seed: int) -> np.ndarray:
    """Steps survived (R,) by R dreams stepped together in numpy, one LSTM call per step for all rows alive.

    mdn: an inference.LeanMDN with a done head; actor: `act(z, h, c) -> actions` for the rows alive and
    `keep(mask)` to drop rows (a ControllerBatch, RandomActor); starts: (R, 2, z) (mu, logvar) of each row's
    first frame. Row r draws its randomness (its start z, M's component choices and noise) from lane lanes[r]:
    rows of one lane share every random number, step by step (common random numbers: candidates that meet the
    same lane are ranked on the same luck), and a row's dream does not depend on the other rows.
    """
    if not mdn.predict_done:
        raise ConfigError("this M has no done head, so a dream never ends and pays nothing")
    if not 0 < done_threshold < 1:
        raise ConfigError(f"the done threshold must be in (0, 1), not {done_threshold}")
    lanes = np.asarray(lanes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_lanes, z_size = int(lanes.max()) + 1, mdn.z_size
    z = sample_starts(np.asarray(starts, np.float32), rng.standard_normal((n_lanes, z_size), np.float32)[lanes])
    h, c = mdn.initial_state(len(z))
    rows = np.arange(len(z))
    survived = np.zeros(len(z), dtype=np.int64)
    threshold = np.float32(np.log(done_threshold / (1.0 - done_threshold)))   # p > t  <=>  logit > logit(t)
    for _ in range(int(max_steps)):
        actions = actor.act(z, h, c)
        h, c = mdn.step(z, actions, h, c)
        survived[rows] += 1
        uniform = rng.random((n_lanes, z_size), np.float32)
        normal = rng.standard_normal((n_lanes, z_size), np.float32)
        alive = mdn.done_logits(h) <= threshold
        if not alive.all():                  # the rows that ended leave before M's mixture is computed
            rows, lanes, h, c = rows[alive], lanes[alive], h[alive], c[alive]
            actor.keep(alive)
            if not len(rows):
                break
        z = sample_with_noise(Mixture(*mdn.mixture(h)), tau, uniform[lanes], normal[lanes])
    return survived


class RandomActor:
    """The random policy in a batched dream: a uniform raw action per row and step, mapped as the game maps C's."""

    def __init__(self, game: str, outputs: int, rows: int, rng: np.random.Generator):
        self.game, self.outputs, self.rows, self.rng = game, outputs, rows, rng

    def act(self, z, h=None, c=None) -> np.ndarray:
        from wm_studio.core.models.controller import to_game_action
        return to_game_action(self.game, self.rng.uniform(-1.0, 1.0, (self.rows, self.outputs)))

    def keep(self, mask) -> None:
        self.rows = int(np.count_nonzero(mask))
