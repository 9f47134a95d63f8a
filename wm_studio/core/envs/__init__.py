"""Games behind one Gym-style API (CarRacing, Doom Take Cover), frame preprocessing, and the dream.

    env = make_env("carracing" | "doom", seed=None)
    obs, info = env.reset(seed=123)        # obs uint8 (64, 64, 3); info["frame"] the full RGB frame
    obs, reward, terminated, truncated, info = env.step(action)
    env.action_size, env.max_steps, env.close()

The game packages are imported when a game is made, not when this package is imported.
"""
from __future__ import annotations

from wm_studio.core.envs.preprocess import FRAME_SIZE, frames_to_input, input_to_frames, resize_frame
from wm_studio.core.errors import ConfigError

GAMES = ("carracing", "doom")


def make_env(name: str, seed: int | None = None, max_steps: int | None = None, isolated: bool | None = None):
    """A real game, headless. `seed` is used by the first reset() that has no seed of its own; `max_steps`
    (default: the paper's 1000 for CarRacing, 2100 for Doom) truncates an episode.

    isolated: play the game in a spawned process of its own (envs.isolated). None: Doom is isolated wherever
    another thread may be inside BLAS (vizdoom forks its engine, and a fork beside a busy BLAS thread hangs)."""
    if name == "carracing":
        from wm_studio.core.envs.carracing import CarRacingEnv
        return CarRacingEnv(seed, max_steps or 1000)
    if name == "doom":
        from wm_studio.core.envs.doom import DoomTakeCoverEnv, require_vizdoom
        from wm_studio.core.envs.isolated import IsolatedGame, forks_safely
        require_vizdoom()                    # a missing extra is said here, not in the game's process
        if isolated or (isolated is None and not forks_safely()):
            return IsolatedGame(name, seed, max_steps)
        return DoomTakeCoverEnv(seed, max_steps or 2100)
    raise ConfigError(f"unknown game {name!r}: choose one of {', '.join(GAMES)}")


__all__ = ["FRAME_SIZE", "GAMES", "frames_to_input", "input_to_frames", "make_env", "resize_frame"]
