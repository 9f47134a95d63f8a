"""Test problems for CMA-ES: vectorised, to minimise, 0 at the optimum.

`get_problem(name, n)` returns a `Problem`; `problem.evaluate(X)` takes a (k, n) batch (or one (n,) point) and
returns k values. `box` gives plotting bounds ((x_min, x_max), (y_min, y_max)) for the first two coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from wm_studio.core.errors import ConfigError

SCHAFFER_SHIFT = (10.0, 10.0)  # the optimum of the classic demo (docs/architecture.md, "CMA-ES")


def schaffer_f(X: np.ndarray, shift=SCHAFFER_SHIFT) -> np.ndarray:
    """The shifted Schaffer function f(x, y) = 0.5 + (sin^2(dx^2 - dy^2) - 0.5) / (1 + 0.001 r^2)^2 with
    (dx, dy) = (x, y) - shift and r^2 = dx^2 + dy^2, written as (sin^2(u) + 0.5 a (2 + a)) / (1 + a)^2 with
    a = 0.001 r^2: the same function, without the cancellation of 0.5 - 0.5 that would hide distances below
    about 1e-6 from the optimum. f(shift) = 0 exactly."""
    dx, dy = X[:, 0] - shift[0], X[:, 1] - shift[1]
    a = 0.001 * (dx ** 2 + dy ** 2)
    return (np.sin(dx ** 2 - dy ** 2) ** 2 + 0.5 * a * (2 + a)) / (1 + a) ** 2


def schaffer(X: np.ndarray, shift=SCHAFFER_SHIFT) -> np.ndarray:
    """(f - f(shift))^2 = f^2: the demo maximises F = -(f - f*)^2, so CMA-ES minimises its negative."""
    return schaffer_f(X, shift) ** 2


def sphere(X: np.ndarray) -> np.ndarray:
    return np.sum(X ** 2, axis=1)


def ellipsoid_scales(n: int) -> np.ndarray:
    """10^(6 (i - 1) / (n - 1)), i = 1..n: condition number 1e6."""
    return 10.0 ** (6 * np.arange(n) / (n - 1)) if n > 1 else np.ones(1)


def rosenbrock(X: np.ndarray) -> np.ndarray:
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def rastrigin(X: np.ndarray) -> np.ndarray:
    return 10 * X.shape[1] + np.sum(X ** 2 - 10 * np.cos(2 * math.pi * X), axis=1)


def griewank(X: np.ndarray) -> np.ndarray:
    """1 + sum x_i^2 / 4000 - prod cos(x_i / sqrt(i)), i = 1..n."""
    return 1 + np.sum(X ** 2, axis=1) / 4000 - np.prod(np.cos(X / np.sqrt(np.arange(1, X.shape[1] + 1))), axis=1)


@dataclass(frozen=True)
class Problem:
    name: str
    n: int
    function: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    optimum: np.ndarray = field(repr=False)
    box: tuple[tuple[float, float], tuple[float, float]]
    description: str

    def evaluate(self, X) -> np.ndarray:
        """Values (k,) to minimise for candidates X (k, n); one point (n,) gives one value in a (1,) array."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[1] != self.n:
            raise ConfigError(f"{self.name} takes points with {self.n} coordinates, got an array of shape "
                              f"{X.shape}")
        return self.function(X)


def _ellipsoid(n: int) -> Callable[[np.ndarray], np.ndarray]:
    scales = ellipsoid_scales(n)
    return lambda X: X ** 2 @ scales


def schaffer_problem(shift=SCHAFFER_SHIFT) -> Problem:
    """The Schaffer demo with its optimum at `shift`; the plotted box holds the optimum and the origin (the
    default x0) with 8 units to spare: (-8, 18) on both axes for the classic (10, 10)."""
    try:
        shift = tuple(float(v) for v in np.asarray(shift, dtype=float).reshape(-1))
    except (TypeError, ValueError):
        raise ConfigError(f"the Schaffer optimum must be two numbers, not {shift!r}") from None
    if len(shift) != 2 or not all(math.isfinite(v) for v in shift):
        raise ConfigError(f"the Schaffer optimum must be two finite numbers, not {shift!r}")
    box = tuple((min(0.0, v) - 8.0, max(0.0, v) + 8.0) for v in shift)
    where = f"({shift[0]:g}, {shift[1]:g})"
    return Problem(
        "schaffer", 2, lambda X: schaffer(X, shift), np.array(shift), box,
        f"Shifted Schaffer function, optimum at {where} inside rings of local optima; value (f - f{where})^2. "
        "The value is about 1e-6 d^4 at distance d from the optimum: lower Termination(tolfun=...) to get "
        "closer than d = 0.03.")


_PROBLEMS = {
    "schaffer": lambda n: schaffer_problem(),
    "sphere": lambda n: Problem(
        "sphere", n, sphere, np.zeros(n), ((-5.0, 5.0), (-5.0, 5.0)), "Sum of squares, optimum at 0."),
    "ellipsoid": lambda n: Problem(
        "ellipsoid", n, _ellipsoid(n), np.zeros(n), ((-5.0, 5.0), (-5.0, 5.0)),
        "Axis-parallel ellipsoid sum 10^(6 (i-1)/(n-1)) x_i^2, condition number 1e6, optimum at 0."),
    "rosenbrock": lambda n: Problem(
        "rosenbrock", n, rosenbrock, np.ones(n), ((-2.0, 2.0), (-1.0, 3.0)),
        "Rosenbrock's curved valley, optimum at (1, ..., 1)."),
    "rastrigin": lambda n: Problem(
        "rastrigin", n, rastrigin, np.zeros(n), ((-5.12, 5.12), (-5.12, 5.12)),
        "Rastrigin: a sphere with a cosine grid of about 10^n local optima, optimum at 0."),
    "griewank": lambda n: Problem(
        "griewank", n, griewank, np.zeros(n), ((-12.0, 12.0), (-12.0, 12.0)),
        "Griewank: a wide bowl with a product of cosines on it, local optima near every point of a grid; "
        "optimum at 0."),
}
PROBLEMS = tuple(_PROBLEMS)


def get_problem(name: str, n: int = 2, shift=None) -> Problem:
    """The problem `name` in n dimensions; shift moves the Schaffer problem's optimum (default (10, 10))."""
    if name not in _PROBLEMS:
        raise ConfigError(f"unknown problem {name!r}: choose one of {', '.join(PROBLEMS)}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the dimension must be a positive integer, not {n!r}")
    if name == "schaffer" and n != 2:
        raise ConfigError(f"the Schaffer problem is 2-dimensional, not {n}-dimensional")
    if name == "rosenbrock" and n < 2:
        raise ConfigError("Rosenbrock needs at least 2 dimensions")
    if shift is not None:
        if name != "schaffer":
            raise ConfigError(f"only the Schaffer problem can be shifted, not {name}")
        return schaffer_problem(shift)
    return _PROBLEMS[name](int(n))


def allows_any_dimension(function: str) -> bool:
    """Whether the problem exists beyond 2-D (Schaffer does not)."""
    try:
        get_problem(function, 3)
    except ConfigError:
        return False
    return True
