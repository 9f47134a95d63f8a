"""The random policies that collect V's and M's training data.

Every policy works on a raw action vector u in [-1, 1]^k (k = 3 for CarRacing, 1 for Doom) which
`to_game_action` maps the way the paper's controller does: CarRacing steer = u0, gas = (u1 + 1) / 2,
brake = clip(u2, 0, 1) (so half of the raw range releases the brake and the car can move); Doom thirds of u0 ->
left / none / right. A policy is made per rollout from that rollout's numpy Generator and draws nothing else.

- random-weights: a random linear controller per rollout, u = tanh(W f + b), on random features of what the car
  sees: f is the 8x8 grey thumbnail of the 64x64 frame, standardised per frame. Like the paper's controllers with
  random parameters, each rollout has its own behaviour, and that behaviour reacts to the road.
- brownian: u drifts as a random walk (steps N(0, 0.2^2) per axis, clipped to [-1, 1]), starting from a random
  point; the car steers smoothly and keeps its speed for a while, which covers much more track than noise.
- sticky: a random u held for a random number of steps (1 to 20), then another one.
- long-sticky: the same with holds of 1 to 300 steps, log-uniform (half of them under 17 steps). Early
  controllers of CMA-ES hold one action for hundreds of steps; an M that never saw a long hold dreams them wrong
  (Doom: it dreamt "hold right" safe, 1,300 steps, where the game kills it in 160).
"""
from __future__ import annotations

import numpy as np

from wm_studio.core.errors import ConfigError

POLICIES = ("random-weights", "brownian", "sticky", "long-sticky")
RAW_SIZES = {"carracing": 3, "doom": 1}
THUMBNAIL = 8
BROWNIAN_STEP = 0.2
MAX_HOLD = 20
MAX_LONG_HOLD = 300


def to_game_action(env_name: str, raw: np.ndarray) -> np.ndarray:
    """Raw controller output in [-1, 1]^k -> the game's action (float32)."""
    if env_name == "carracing":
        return np.array([raw[0], (raw[1] + 1.0) / 2.0, max(float(raw[2]), 0.0)], dtype=np.float32)
    if env_name == "doom":
        return np.array([raw[0] < -1 / 3, raw[0] > 1 / 3], dtype=np.float32)
    raise ConfigError(f"unknown game {env_name!r}")


def thumbnail_features(obs: np.ndarray) -> np.ndarray:
    """uint8 (64, 64, 3) -> float64 (64,): the 8x8 grey thumbnail, zero mean and unit spread per frame."""
    size = obs.shape[0] // THUMBNAIL
    grey = obs.reshape(THUMBNAIL, size, THUMBNAIL, size, 3).mean(axis=(1, 3, 4)).ravel()
    return (grey - grey.mean()) / (grey.std() + 1.0)


class RandomWeightsPolicy:
    def __init__(self, raw_size: int, rng: np.random.Generator):
        features = THUMBNAIL * THUMBNAIL
        gain = rng.uniform(0.0, 2.0)
        self.weights = rng.standard_normal((raw_size, features)) * gain / np.sqrt(features)
        self.bias = rng.normal(0.0, 0.5, raw_size)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.tanh(self.weights @ thumbnail_features(obs) + self.bias)


class BrownianPolicy:
    def __init__(self, raw_size: int, rng: np.random.Generator):
        self.rng = rng
        self.raw = rng.uniform(-1.0, 1.0, raw_size)

    def act(self, obs: np.ndarray) -> np.ndarray:
        current = self.raw
        self.raw = np.clip(current + self.rng.normal(0.0, BROWNIAN_STEP, current.shape), -1.0, 1.0)
        return current


class StickyPolicy:
    def __init__(self, raw_size: int, rng: np.random.Generator):
        self.rng = rng
        self.raw_size = raw_size
        self.left = 0
        self.raw = np.zeros(raw_size)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.left == 0:
            self.raw = self.rng.uniform(-1.0, 1.0, self.raw_size)
            self.left = self.hold()
        self.left -= 1
        return self.raw

    def hold(self) -> int:
        return int(self.rng.integers(1, MAX_HOLD + 1))


class LongStickyPolicy(StickyPolicy):
    def hold(self) -> int:
        return int(np.exp(self.rng.uniform(0.0, np.log(MAX_LONG_HOLD + 1))))


_CLASSES = {"random-weights": RandomWeightsPolicy, "brownian": BrownianPolicy, "sticky": StickyPolicy,
            "long-sticky": LongStickyPolicy}


class GamePolicy:
    """A random policy for one game and one rollout: act(obs) -> the game's action."""

    def __init__(self, name: str, env_name: str, rng: np.random.Generator):
        if name not in _CLASSES:
            raise ConfigError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}")
        if env_name not in RAW_SIZES:
            raise ConfigError(f"unknown game {env_name!r}")
        self.env_name = env_name
        self._policy = _CLASSES[name](RAW_SIZES[env_name], rng)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return to_game_action(self.env_name, self._policy.act(obs))


def make_policy(name: str, env_name: str, rng: np.random.Generator) -> GamePolicy:
    return GamePolicy(name, env_name, rng)
