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


def fast_car_racing_class():
    """gym's CarRacing with the road drawn from numpy: the same polygons, clipped by the same test and drawn with
    the same pygame calls on the same coordinates, so every frame is the same, pixel for pixel (tested).

    gym transforms each of the ~800 polygons of a frame (road tiles, grass patches) vertex by vertex in Python
    with pygame Vector2 objects, and only then drops the ones off screen: most of a step's time. Here the vertices
    of all polygons are rotated, scaled and shifted at once, with the rotation's cosine and sine taken from pygame
    itself (its rotate_rad special-cases right angles), in the same order of operations; the loop in Python only
    draws the few polygons on screen."""
    base = gym_car_racing_class()
    from gym.envs.box2d import car_racing as gym_module
    from pygame import gfxdraw
    from pygame.math import Vector2

    class FastCarRacing(base):
        _grass = None
        _road_source = None

        def _polygons(self):
            """(grass vertices (G, 4, 2), road vertices (R, 4, 2), road colours) of the current track (a tile's
            colour changes in place when the car first touches it: read it when drawing)."""
            if FastCarRacing._grass is None:
                dim = gym_module.GRASS_DIM
                FastCarRacing._grass = np.array(
                    [[(dim * x + dim, dim * y), (dim * x, dim * y), (dim * x, dim * y + dim),
                      (dim * x + dim, dim * y + dim)] for x in range(-20, 20, 2) for y in range(-20, 20, 2)],
                    dtype=np.float64)
            if self._road_source is not self.road_poly:
                self._road_source = self.road_poly
                self._road = np.array([[(p[0], p[1]) for p in poly] for poly, _ in self.road_poly], np.float64)
                self._road_colours = [colour for _, colour in self.road_poly]
            return FastCarRacing._grass, self._road, self._road_colours

        def _render_road(self, zoom, translation, angle):
            bounds = gym_module.PLAYFIELD
            field = [(bounds, bounds), (bounds, -bounds), (-bounds, -bounds), (-bounds, bounds)]
            self._draw_colored_polygon(self.surf, field, self.bg_color, zoom, translation, angle, clip=False)
            grass, road, colours = self._polygons()
            cos, sin = Vector2(1.0, 0.0).rotate_rad(angle)
            for vertices, colour_of in ((grass, None), (road, colours)):
                x, y = vertices[..., 0], vertices[..., 1]
                screen_x = (cos * x - sin * y) * zoom + translation[0]
                screen_y = (sin * x + cos * y) * zoom + translation[1]
                margin = gym_module.MAX_SHAPE_DIM
                inside = ((-margin <= screen_x) & (screen_x <= gym_module.WINDOW_W + margin)
                          & (-margin <= screen_y) & (screen_y <= gym_module.WINDOW_H + margin)).any(axis=1)
                points = np.stack([screen_x, screen_y], axis=-1)
                for index in np.flatnonzero(inside):
                    polygon = points[index].tolist()
                    colour = self.grass_color if colour_of is None else [int(c) for c in colour_of[index]]
                    gfxdraw.aapolygon(self.surf, polygon, colour)
                    gfxdraw.filled_polygon(self.surf, polygon, colour)

    return FastCarRacing


def clip_action(action) -> np.ndarray:
    """Any 3-vector -> float32 (steer in [-1, 1], gas in [0, 1], brake in [0, 1]); NaN becomes 0."""
    action = np.nan_to_num(np.asarray(action, dtype=np.float32).reshape(3), nan=0.0)
    return np.clip(action, ACTION_LOW, ACTION_HIGH)


class CarRacingEnv(Game):
    """`seed` picks the track."""
    name = "carracing"
    action_size = 3

    def __init__(self, seed: int | None = None, max_steps: int = 1000):
        super().__init__(fast_car_racing_class()(verbose=False), seed, max_steps)

    _action = staticmethod(clip_action)
    _observe = staticmethod(preprocess_carracing)
