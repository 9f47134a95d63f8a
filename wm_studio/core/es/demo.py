"""CMA-ES on a test function, one snapshot per generation: the Evolution pane and `wm-studio es-animate` both
iterate `run_es`, the pane on a worker thread and the command offscreen.

Snapshot k >= 1 shows generation k as it was sampled: the distribution N(m, sigma^2 C) the population was drawn
from (mean m, ellipse of sigma^2 C), that population and its values, and the best point found so far (this
generation included). Snapshot 0 is the start: m = x0, sigma = sigma0, C = I and no population yet. Everything is
in the plane of C's two leading principal axes (wm_studio.core.es.projection); for n == 2 that is the plane itself.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from wm_studio.core.errors import ConfigError
from wm_studio.core.es.cmaes import CMAES
from wm_studio.core.es.termination import Termination
from wm_studio.core.es.problems import get_problem
from wm_studio.core.es.projection import lift, project

Box = tuple[tuple[float, float], tuple[float, float]]  # ((x_min, x_max), (y_min, y_max))


def _frozen(array) -> np.ndarray:
    """A private read-only copy: snapshots cross threads and must not change under the reader."""
    array = np.array(array, dtype=float)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class EsSnapshot:
    problem: str
    dimension: int
    popsize: int                 # lambda
    parents: int                 # mu
    generation: int
    evaluations: int
    population: np.ndarray       # (lambda, 2) projected candidates; (0, 2) in snapshot 0
    values: np.ndarray           # (lambda,) their objective values (lower is better)
    mean: np.ndarray             # (2,) the distribution mean m the population was drawn from (not the sample mean)
    best_so_far: np.ndarray      # (2,) projected best candidate so far; NaN before the first generation
    best_value: float            # its value; inf before the first generation
    solution: np.ndarray         # (2,) the known optimum, projected
    cov2: np.ndarray             # (2, 2) projected sigma^2 C
    sigma: float
    axis_ratio: float            # sqrt of the condition number of C
    generation_best: float       # best / median / worst value of this generation (NaN in snapshot 0)
    generation_median: float
    generation_worst: float
    stop: tuple[str, ...]        # termination criteria met after this generation (empty while it goes on)
    basis: np.ndarray            # (n, 2) the projection's axes (identity for n == 2)
    origin: np.ndarray           # (n,) m in the full space: the plotted plane passes through it
    total: int = 0               # generations asked for; 0 when the run goes on until CMA-ES stops
    done: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "done", self.generation)

    def summary(self) -> str:
        best = "-" if math.isinf(self.best_value) else f"{self.best_value:.3e}"
        text = (f"gen {self.generation} evals {self.evaluations} best {best} sigma {self.sigma:.3g} "
                f"axis ratio {self.axis_ratio:.3g}")
        return text + (f" stop: {', '.join(self.stop)}" if self.stop else "")


@dataclass(frozen=True)
class EsSettings:
    """What the pane's controls and es-animate's options choose."""
    function: str = "schaffer"
    dimension: int = 2
    popsize: int | None = 64            # None: the default 4 + floor(3 ln n)
    mu: int | float | None = 0.25       # count, fraction of lambda, or None (lambda // 2)
    sigma0: float = 3.0
    seed: int | None = 1
    x0: tuple[float, ...] = (0.0,)      # one value for every coordinate, or n values

    def problem(self):
        return get_problem(self.function, self.dimension)

    def start(self) -> np.ndarray:
        x0 = np.asarray(self.x0, dtype=float).reshape(-1)
        if x0.size == 1:
            return np.full(self.dimension, float(x0[0]))
        if x0.size != self.dimension:
            raise ConfigError(f"x0 has {x0.size} values but the problem has {self.dimension} dimensions: "
                              f"give one value (used for every coordinate) or {self.dimension}")
        return x0

    def run(self, generations: int | None = None) -> Iterator[EsSnapshot]:
        return run_es(self.problem(), self.start(), self.sigma0, self.popsize, self.mu, self.seed, generations,
                      name=self.function)


class EsHistory:
    """Per-generation figures of a run, for the curves (best / median / worst value, sigma, axis ratio) and the
    path of the mean m.

    add() every snapshot in order; repeats are skipped, and snapshot 0 (no population yet) adds only its mean."""

    FIELDS = ("generation", "best", "median", "worst", "best_so_far", "sigma", "axis_ratio")

    def __init__(self):
        self._columns: dict[str, list[float]] = {name: [] for name in self.FIELDS}
        self._means: list[np.ndarray] = []   # m of every snapshot (snapshot 0 included), full dimension
        self._last_generation = -1

    def __len__(self) -> int:
        return len(self._columns["generation"])

    def add(self, snapshot: EsSnapshot) -> None:
        if snapshot.generation <= self._last_generation:
            return
        self._last_generation = snapshot.generation
        self._means.append(snapshot.origin)
        if snapshot.generation < 1:
            return
        row = (snapshot.generation, snapshot.generation_best, snapshot.generation_median,
               snapshot.generation_worst, snapshot.best_value, snapshot.sigma, snapshot.axis_ratio)
        for name, value in zip(self.FIELDS, row):
            self._columns[name].append(value)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(values, dtype=float) for name, values in self._columns.items()}

    def mean_path(self, basis: np.ndarray) -> np.ndarray:
        """(k, 2): the means m of all snapshots so far, projected on `basis` (the newest snapshot's axes)."""
        if not self._means:
            return np.empty((0, 2))
        return np.asarray(self._means) @ basis


def parse_mu(text: str) -> int | float | None:
    """'16' -> 16 parents, '0.25' -> a quarter of lambda, '' -> None (lambda // 2)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"mu must be a count (16) or a fraction of lambda (0.25), not {text!r}") from None
    if value >= 1 and value == int(value) and "." not in text:
        return int(value)
    if 0 < value < 1:
        return value
    raise ConfigError(f"mu must be a whole count >= 1 or a fraction in (0, 1), not {text!r}")


def parse_vector(text: str) -> tuple[float, ...]:
    """'1, 2' or '1 2' -> (1.0, 2.0)."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"x0 must be numbers separated by commas, not {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"x0 must be finite numbers separated by commas, not {text!r}")
    return values


# The demo stops once the population has visibly collapsed. Value-based criteria would stop it early: the
# Schaffer value (f - f*)^2 falls like the fourth power of the distance, below tolfun's 1e-12 about 0.03 away.
DEMO_TERMINATION = Termination(tolfun=None, tolfunhist=None, tolx=1e-6)


def run_es(problem, x0, sigma0: float, popsize: int | None = None, mu=None, seed: int | None = None,
           generations: int | None = None, name: str = "") -> Iterator[EsSnapshot]:
    """Snapshot 0 (the start), then one snapshot per generation until `generations` (None: until CMA-ES meets
    a termination criterion; it also stops there when `generations` is given)."""
    es = CMAES(np.asarray(x0, dtype=float), sigma0, popsize=popsize, mu=mu, seed=seed, termination=DEMO_TERMINATION)
    optimum = np.asarray(problem.optimum, dtype=float)
    total = int(generations or 0)
    name = name or getattr(problem, "name", type(problem).__name__)

    def distribution():
        """m, sigma, sigma^2 C and the axis ratio now, as copies (tell() updates C in place)."""
        return es.mean.copy(), es.sigma, es.sigma ** 2 * np.array(es.C), es.axis_ratio

    def snapshot(state, population, values, previous_basis, stop=()) -> EsSnapshot:
        mean, sigma, cov, axis_ratio = state
        view = project(population, mean, cov, optimum, previous_basis)
        best = es.best_x @ view.basis if es.evaluations else np.full(2, np.nan)
        finite = values[np.isfinite(values)]
        stats = (finite.min(), np.median(finite), finite.max()) if finite.size else (np.nan,) * 3
        return EsSnapshot(
            problem=name, dimension=es.n, popsize=es.popsize, parents=es.mu, generation=es.generation, evaluations=es.evaluations,
            population=_frozen(view.points), values=_frozen(values), mean=_frozen(view.mean),
            best_so_far=_frozen(best), best_value=float(es.best_value), solution=_frozen(view.optimum),
            cov2=_frozen(view.cov2), sigma=float(sigma), axis_ratio=float(axis_ratio),
            generation_best=float(stats[0]), generation_median=float(stats[1]), generation_worst=float(stats[2]),
            stop=tuple(stop), basis=_frozen(view.basis), origin=_frozen(mean), total=total)

    shown = snapshot(distribution(), np.empty((0, es.n)), np.empty(0), None)
    yield shown
    while not total or es.generation < total:
        state = distribution()
        population = es.ask()
        values = np.asarray(problem.evaluate(population), dtype=float).reshape(-1)
        es.tell(population, values)
        shown = snapshot(state, population, values, shown.basis, stop=tuple(es.stop()))
        yield shown
        if shown.stop:
            return


def plot_box(problem, snapshot: EsSnapshot, margin: float = 0.15) -> Box:
    """The plotted region: the problem's own box in 2-D; for n > 2 a square around the 3-sigma ellipse and the
    projected optimum (the plane moves with m, so the view follows it)."""
    if snapshot.dimension == 2:
        (x_lo, x_hi), (y_lo, y_hi) = problem.box
        return (float(x_lo), float(x_hi)), (float(y_lo), float(y_hi))
    spread = 3.0 * np.sqrt(np.clip(np.diag(snapshot.cov2), 0.0, None))
    points = np.stack([snapshot.mean - spread, snapshot.mean + spread, snapshot.solution])
    low, high = points.min(axis=0), points.max(axis=0)
    center, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-12) * (1 + margin)
    return (center[0] - half, center[0] + half), (center[1] - half, center[1] + half)


def function_grid(problem, basis: np.ndarray, origin: np.ndarray, box: Box, resolution: int = 200) -> np.ndarray:
    """f on a resolution x resolution grid over box, on the plane through origin spanned by basis.

    Row i is y = y_min + i * dy (row 0 at the bottom of the plot), column j is x. For n == 2 (basis = I) this is
    f itself; for n > 2 it is the slice of f that the projected population sits in.
    """
    (x_lo, x_hi), (y_lo, y_hi) = box
    xs, ys = np.linspace(x_lo, x_hi, resolution), np.linspace(y_lo, y_hi, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    values = np.asarray(problem.evaluate(lift(np.asarray(basis), np.asarray(origin), grid)), dtype=float)
    return values.reshape(resolution, resolution)


def slice_grid(problem, snapshot: EsSnapshot, box: Box | None = None, resolution: int = 200) -> np.ndarray:
    """function_grid on the snapshot's plane (through m, spanned by C's two leading axes)."""
    box = plot_box(problem, snapshot) if box is None else box
    return function_grid(problem, snapshot.basis, snapshot.origin, box, resolution)
