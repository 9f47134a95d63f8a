"""Doom Take Cover (vizdoom 1.3.2 through gymnasium, the optional `doom` extra) behind wm_studio's game API.

`VizdoomTakeCover-v1` is made with `max_buttons_pressed=0`, which turns its action space into MultiBinary(2)
over the scenario's buttons (MOVE_LEFT, MOVE_RIGHT): our 2-vector of buttons maps onto it one to one. The
scenario pays 1 per step alive and has no time limit of its own; `max_steps` (2100, the paper's cap) truncates.
vizdoom renders 320x240 without a window; the top 5/6 of the frame is kept (the paper: rows 0-400 of 480).
"""
from __future__ import annotations

import numpy as np

from wm_studio.core.envs.game import Game
from wm_studio.core.envs.preprocess import preprocess_doom
from wm_studio.core.errors import MissingDependencyError

ENV_ID = "VizdoomTakeCover-v1"
INSTALL_HINT = 'Doom Take Cover needs the doom extra (vizdoom and gymnasium): pip install -e ".[doom]"'


def require_vizdoom():
    """gymnasium with vizdoom's environments registered; MissingDependencyError (the install command) otherwise.
    Importing starts no game, so it is safe in any process."""
    try:
        import gymnasium
        import vizdoom.gymnasium_wrapper  # noqa: F401  (registers the Vizdoom* ids with gymnasium)
    except Exception as exc:  # ImportError, or a vizdoom build that does not load
        raise MissingDependencyError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from None
    return gymnasium


def _make_gymnasium_env():
    return require_vizdoom().make(ENV_ID, max_buttons_pressed=0, disable_env_checker=True)


def buttons(action) -> np.ndarray:
    """Any 2-vector -> int8 (left, right) buttons, each pressed when its value is above 0.5; NaN is released."""
    action = np.nan_to_num(np.asarray(action, dtype=np.float32).reshape(2), nan=0.0)
    return (action > 0.5).astype(np.int8)


class DoomTakeCoverEnv(Game):
    name = "doom"
    action_size = 2

    def __init__(self, seed: int | None = None, max_steps: int = 2100):
        super().__init__(_make_gymnasium_env(), seed, max_steps)

    _action = staticmethod(buttons)
    _observe = staticmethod(preprocess_doom)

    def _frame(self, observation) -> np.ndarray:
        return observation["screen"]    # all zeros once the player is dead: vizdoom has no state then
