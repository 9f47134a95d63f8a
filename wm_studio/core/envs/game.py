"""The part of wm_studio's game API that every real game shares: a Gym-style environment, seeded on its first
reset by make_env's seed, truncated after `max_steps`, its full RGB frame in info["frame"]."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Game(ABC):
    """A game around its Gym-style env; subclasses set `name` and `action_size`."""
    name: str
    action_size: int

    def __init__(self, env, seed: int | None, max_steps: int):
        self._env = env
        self.max_steps = int(max_steps)
        self._next_seed = seed
        self.steps = 0

    def reset(self, seed: int | None = None):
        """Start an episode; `seed` seeds the game (the env's seed from make_env on the first reset)."""
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        observation, _ = self._env.reset(seed=None if seed is None else int(seed))
        self.steps = 0
        frame = self._frame(observation)
        return self._observe(frame), {"frame": frame}

    def step(self, action):
        observation, reward, terminated, truncated, _ = self._env.step(self._action(action))
        self.steps += 1
        truncated = bool(truncated) or self.steps >= self.max_steps
        frame = self._frame(observation)
        return self._observe(frame), float(reward), bool(terminated), truncated, {"frame": frame}

    def close(self) -> None:
        self._env.close()

    @abstractmethod
    def _action(self, action):
        """Our action vector (any values, NaN included) -> the env's action."""

    @abstractmethod
    def _observe(self, frame: np.ndarray) -> np.ndarray:
        """The full RGB frame -> the uint8 (64, 64, 3) observation."""

    def _frame(self, observation) -> np.ndarray:
        """The env's observation -> its full RGB frame."""
        return observation
