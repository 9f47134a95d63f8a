"""CarRacing (gym 0.26.2 `CarRacing-v2`, Box2D) behind wm_studio's game API, headless.

The environment class is built directly rather than through `gym.make`: that skips gym's passive checker (a
`np.bool8` deprecation warning on every step) and its fixed 1000-step TimeLimit, so `max_steps` is ours to set.
The zoom-in animation of the first second of an episode is kept, as in the paper's code.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

import numpy as np

from wm_studio.core.envs.game import Game
from wm_studio.core.envs.preprocess import preprocess_carracing
from wm_studio.core.errors import MissingDependencyError

INSTALL_HINT = ("CarRacing needs gym 0.26.2 with Box2D and pygame: pip install -e . "
                "(or: pip install gym==0.26.2 box2d==2.3.10 \"pygame>=2.6,<2.7\")")
GYM_NOTICE = "Gym has been unmaintained"
ACTION_LOW = np.array([-1.0, 0.0, 0.0], dtype=np.float32)
ACTION_HIGH = np.array([1.0, 1.0, 1.0], dtype=np.float32)


def headless() -> None:
    """SDL's dummy video and audio drivers (no window, no sound card) before pygame is first imported."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def import_gym():
    """Import gym without its two known complaints: the 'unmaintained' notice it prints to stderr at import and
    deprecation warnings from its own modules. Anything else it prints is passed on."""
    headless()
    if "gym" in sys.modules:
        return sys.modules["gym"]
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"gym(\.|$)")
        import gym
    text = captured.getvalue()
    if text and GYM_NOTICE not in text:
        sys.stderr.write(text)
    return gym


def gym_car_racing_class():
    try:
        import_gym()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from gym.envs.box2d.car_racing import CarRacing as GymCarRacing
    except Exception as exc:  # ImportError, gym's DependencyNotInstalled, a broken Box2D or pygame build
        raise MissingDependencyError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from None
    return GymCarRacing


def clip_action(action) -> np.ndarray:
    """Any 3-vector -> float32 (steer in [-1, 1], gas in [0, 1], brake in [0, 1]); NaN becomes 0."""
    action = np.nan_to_num(np.asarray(action, dtype=np.float32).reshape(3), nan=0.0)
    return np.clip(action, ACTION_LOW, ACTION_HIGH)


class CarRacingEnv(Game):
    """`seed` picks the track."""
    name = "carracing"
    action_size = 3

    def __init__(self, seed: int | None = None, max_steps: int = 1000):
        super().__init__(gym_car_racing_class()(verbose=False), seed, max_steps)

    _action = staticmethod(clip_action)
    _observe = staticmethod(preprocess_carracing)
