"""CMA-ES on a test function, one snapshot per generation: the Evolution pane and `wm-studio es-animate` both
iterate these generators, the pane on a worker thread and the command offscreen.

Snapshot k >= 1 shows generation k as it was sampled: the distribution N(m, sigma^2 C) the population was drawn
from (mean m, ellipse of sigma^2 C), that population and its values, and the best point found so far (this
generation included). Snapshot 0 is the start: m = x0, sigma = sigma0, C = I and no population yet. Everything is
in the plane of C's two leading principal axes (wm_studio.core.es.projection); for n == 2 that is the plane itself.

`run_es` runs one engine; `run_frames` runs one or two settings in lockstep (the pane's comparison) and yields
`EsFrame`s: run B is projected on run A's plane, so both share one picture; a run that has stopped keeps showing
its last generation. `ReplayStore` keeps a run's frames for replay in bounded memory, `EsHistory` its curves.
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from wm_studio.core.errors import ConfigError
from wm_studio.core.es.cmaes import CMAES
from wm_studio.core.es.problems import get_problem
from wm_studio.core.es.projection import lift, project
from wm_studio.core.es.restarts import BIPOPCMAES, IPOPCMAES
from wm_studio.core.es.sep import SepCMAES
from wm_studio.core.es.termination import Termination

Box = tuple[tuple[float, float], tuple[float, float]]  # ((x_min, x_max), (y_min, y_max))
# strategy -> (engine, label)
STRATEGIES = {"full": (CMAES, "CMA-ES"), "separable": (SepCMAES, "sep-CMA-ES"), "ipop": (IPOPCMAES, "IPOP-CMA-ES"),
              "bipop": (BIPOPCMAES, "BIPOP-CMA-ES")}


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
    origin: np.ndarray           # (n,) m in the full space: the plotted plane passes through the frame's origin
    total: int = 0               # generations asked for; 0 when the run goes on until CMA-ES stops
    strategy: str = "full"       # a key of STRATEGIES
    restarts: int = 0            # restarts so far (IPOP, BIPOP)
    restarted: bool = False      # this generation is the first of a restarted run: lambda and m jumped
    done: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "done", self.generation)

    def summary(self) -> str:
        best = "-" if math.isinf(self.best_value) else f"{self.best_value:.3e}"
        text = (f"gen {self.generation} evals {self.evaluations} best {best} sigma {self.sigma:.3g} "
                f"axis ratio {self.axis_ratio:.3g}")
        return text + (f" stop: {', '.join(self.stop)}" if self.stop else "")


@dataclass(frozen=True, eq=False)
class EsFrame:
    """One step of one or two runs in lockstep: run A, and run B (or None) projected on A's plane."""
    index: int                   # generations stepped; a run that stopped earlier shows its last one
    a: EsSnapshot
    b: EsSnapshot | None = None
    total: int = 0

    @property
    def generation(self) -> int:
        return self.index

    @property
    def done(self) -> int:
        return self.index

    @property
    def stop(self) -> bool:
        """Every run of the frame has stopped."""
        return bool(self.a.stop) and (self.b is None or bool(self.b.stop))

    def snapshots(self) -> tuple[EsSnapshot, ...]:
        return (self.a,) if self.b is None else (self.a, self.b)

    def summary(self) -> str:
        return self.a.summary() + ("" if self.b is None else f" | B: {self.b.summary()}")


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
    strategy: str = "full"              # a key of STRATEGIES
    shift: tuple[float, float] = (10.0, 10.0)  # where the Schaffer problem has its optimum

    def problem(self):
        return get_problem(self.function, self.dimension, shift=self.shift if self.function == "schaffer" else None)

    def start(self) -> np.ndarray:
        x0 = np.asarray(self.x0, dtype=float).reshape(-1)
        if x0.size == 1:
            return np.full(self.dimension, float(x0[0]))
        if x0.size != self.dimension:
            raise ConfigError(f"x0 has {x0.size} values but the problem has {self.dimension} dimensions: "
                              f"give one value (used for every coordinate) or {self.dimension}")
        return x0

    def engine(self):
        """The engine these settings start (ConfigError for settings it refuses)."""
        return make_engine(self.strategy, self.start(), self.sigma0, self.popsize, self.mu, self.seed)

    def run(self, generations: int | None = None) -> Iterator[EsSnapshot]:
        return run_es(self.problem(), self.start(), self.sigma0, self.popsize, self.mu, self.seed, generations,
                      name=self.function, strategy=self.strategy)


class EsHistory:
    """Per-generation figures of a run, for the curves (best / median / worst value, sigma, axis ratio), the path
    of the mean m and the restarts.

    add() every snapshot in order; repeats are skipped, and snapshot 0 (no population yet) adds only its mean.
    Memory: the curves take 56 bytes a generation (numpy columns that double when full); the path keeps at most
    PATH_POINTS means, the older half thinned to every other one whenever it is full."""

    FIELDS = ("generation", "best", "median", "worst", "best_so_far", "sigma", "axis_ratio")
    PATH_POINTS = 4096

    def __init__(self):
        self._rows = np.empty((256, len(self.FIELDS)))
        self._size = 0
        self._means: list[np.ndarray] = []   # m (full dimension) of snapshots, with their generations
        self._mean_generations: list[int] = []
        self.restarts: list[tuple[int, int]] = []   # (generation, new lambda) of every restart
        self._last_generation = -1

    def __len__(self) -> int:
        return self._size

    def add(self, snapshot: EsSnapshot | None) -> None:
        if snapshot is None or snapshot.generation <= self._last_generation:
            return
        self._last_generation = snapshot.generation
        self._add_mean(snapshot.generation, snapshot.origin)
        if snapshot.restarted:
            self.restarts.append((snapshot.generation, snapshot.popsize))
        if snapshot.generation < 1:
            return
        if self._size == len(self._rows):
            self._rows = np.concatenate([self._rows, np.empty_like(self._rows)])
        self._rows[self._size] = (snapshot.generation, snapshot.generation_best, snapshot.generation_median,
                                  snapshot.generation_worst, snapshot.best_value, snapshot.sigma, snapshot.axis_ratio)
        self._size += 1

    def _add_mean(self, generation: int, mean: np.ndarray) -> None:
        if len(self._means) >= self.PATH_POINTS:
            half = len(self._means) // 2
            self._means = self._means[:half:2] + self._means[half:]
            self._mean_generations = self._mean_generations[:half:2] + self._mean_generations[half:]
        self._means.append(mean)
        self._mean_generations.append(generation)

    def arrays(self, upto: int | None = None) -> dict[str, np.ndarray]:
        """The columns, of generations <= upto (all by default)."""
        rows = self._rows[:self._size]
        if upto is not None:
            rows = rows[:int(np.searchsorted(rows[:, 0], upto, side="right"))]
        return {name: rows[:, k] for k, name in enumerate(self.FIELDS)}

    def mean_path(self, basis: np.ndarray, upto: int | None = None) -> np.ndarray:
        """(k, 2): the means m of the snapshots so far (of generations <= upto), projected on `basis`."""
        count = len(self._means) if upto is None else bisect.bisect_right(self._mean_generations, upto)
        if not count:
            return np.empty((0, 2))
        return np.asarray(self._means[:count]) @ basis

    def restarts_until(self, upto: int | None = None) -> list[tuple[int, int]]:
        return [event for event in self.restarts if upto is None or event[0] <= upto]


class ReplayStore:
    """The frames of a run for replay: every one of the newest `recent`, and beyond them a thinned record. When
    more than `capacity` are held, every other frame older than the newest `recent` is dropped (the first frame
    and the first of every restarted run stay), so the frames kept of the past grow sparser as the run grows
    longer while the memory stays below `capacity` frames (plus one per restart).

    at(g) is the kept frame nearest before generation g: any generation of the newest `recent`, exactly."""

    def __init__(self, capacity: int = 4096, recent: int = 1024):
        if not 0 < recent < capacity:
            raise ConfigError(f"a replay store needs 0 < recent < capacity, not {recent} and {capacity}")
        self.capacity, self.recent = capacity, recent
        self._frames: list[EsFrame] = []
        self._indices: list[int] = []

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: EsFrame) -> None:
        if self._indices and frame.index <= self._indices[-1]:
            return
        self._frames.append(frame)
        self._indices.append(frame.index)
        if len(self._frames) > self.capacity:
            self._thin()

    def _thin(self) -> None:
        old = len(self._frames) - self.recent
        keep = [k for k in range(len(self._frames))
                if k >= old or k % 2 == 0 or k == 0 or any(s.restarted for s in self._frames[k].snapshots())]
        self._frames = [self._frames[k] for k in keep]
        self._indices = [self._indices[k] for k in keep]

    @property
    def first(self) -> EsFrame | None:
        return self._frames[0] if self._frames else None

    @property
    def latest(self) -> EsFrame | None:
        return self._frames[-1] if self._frames else None

    def indices(self) -> list[int]:
        return list(self._indices)

    def at(self, index: int) -> EsFrame | None:
        """The kept frame of the largest index <= `index` (the first frame for anything before it)."""
        if not self._frames:
            return None
        return self._frames[max(0, bisect.bisect_right(self._indices, index) - 1)]

    def between(self, first: int, last: int) -> list[EsFrame]:
        """The kept frames with first <= index <= last, oldest first."""
        low, high = bisect.bisect_left(self._indices, first), bisect.bisect_right(self._indices, last)
        return self._frames[low:high]


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


def format_vector(values) -> str:
    """The text parse_vector reads back."""
    return ", ".join(f"{float(v):.4g}" for v in values)


def parse_vector(text: str, name: str = "x0") -> tuple[float, ...]:
    """'1, 2' or '1 2' -> (1.0, 2.0); `name` says in an error which field it was."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{name} must be numbers separated by commas, not {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{name} must be finite numbers separated by commas, not {text!r}")
    return values


# The demo stops once the population has visibly collapsed. Value-based criteria would stop it early: the
# Schaffer value (f - f*)^2 falls like the fourth power of the distance, below tolfun's 1e-12 about 0.03 away.
DEMO_TERMINATION = Termination(tolfun=None, tolfunhist=None, tolx=1e-6)
# A restart strategy would restart a run that converged on the optimum as readily as one stuck in a ring: it ends
# at a value of 1e-12 (0.03 from the Schaffer optimum, where a ring's value is 1e-5 or more).
RESTART_TERMINATION = replace(DEMO_TERMINATION, target=1e-12)


def make_engine(strategy: str, x0, sigma0, popsize=None, mu=None, seed=None):
    """The demo's engine for a strategy (a key of STRATEGIES); ConfigError for settings it refuses."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    engine, label = STRATEGIES[strategy]
    termination = DEMO_TERMINATION
    if engine in (IPOPCMAES, BIPOPCMAES):
        if isinstance(mu, int):
            raise ConfigError(f"{label} changes λ at every restart: give μ as a fraction of λ (0.25) or leave it "
                              f"empty, not a count ({mu})")
        termination = RESTART_TERMINATION
    return engine(np.asarray(x0, dtype=float), sigma0, popsize=popsize, mu=mu, seed=seed, termination=termination)


class _Run:
    """One engine stepped generation by generation, and its snapshots on its own plane or on another run's."""

    def __init__(self, engine, problem, name: str, strategy: str, total: int):
        self.es, self.problem, self.name, self.strategy, self.total = engine, problem, name, strategy, total
        self.optimum = np.asarray(problem.optimum, dtype=float)
        self.state = self._distribution()
        self.population, self.values = np.empty((0, self.es.n)), np.empty(0)
        self.stop: tuple[str, ...] = ()
        self.generation = 0
        self.restarts = 0          # restarts before the generation shown was sampled
        self.restarted = False     # that generation is the first of a restarted run
        self.shown: EsSnapshot | None = None

    def _distribution(self):
        """m, sigma, sigma^2 C and the axis ratio now, as copies (tell() updates C in place)."""
        es = self.es
        return es.mean.copy(), es.sigma, es.sigma ** 2 * np.array(es.C), es.axis_ratio, es.popsize, es.mu

    def advance(self) -> None:
        """One generation: ask, evaluate, tell, and what stopped it. A restart strategy's tell() may start a new
        run; the generation after it is then the first of that run (restarted)."""
        restarts = getattr(self.es, "restarts", 0)
        self.restarted, self.restarts = restarts > self.restarts, restarts
        self.state = self._distribution()
        self.population = self.es.ask()
        self.values = np.asarray(self.problem.evaluate(self.population), dtype=float).reshape(-1)
        self.es.tell(self.population, self.values)
        self.generation = self.es.generation
        self.stop = tuple(self.es.stop())

    def snapshot(self, basis=None, origin=None) -> EsSnapshot:
        """The current generation projected on C's leading plane (following the last one shown), or on `basis`
        through `origin` (another run's plane)."""
        mean, sigma, cov, axis_ratio, popsize, parents = self.state
        previous = None if self.shown is None else self.shown.basis
        view = project(self.population, mean, cov, self.optimum, previous, basis=basis)
        es = self.es
        best = es.best_x @ view.basis if es.evaluations else np.full(2, np.nan)
        finite = self.values[np.isfinite(self.values)]
        stats = (finite.min(), np.median(finite), finite.max()) if finite.size else (np.nan,) * 3
        snapshot = EsSnapshot(
            problem=self.name, dimension=es.n, popsize=popsize, parents=parents, generation=self.generation,
            evaluations=es.evaluations, population=_frozen(view.points), values=_frozen(self.values),
            mean=_frozen(view.mean), best_so_far=_frozen(best), best_value=float(es.best_value),
            solution=_frozen(view.optimum), cov2=_frozen(view.cov2), sigma=float(sigma), axis_ratio=float(axis_ratio),
            generation_best=float(stats[0]), generation_median=float(stats[1]), generation_worst=float(stats[2]),
            stop=self.stop, basis=_frozen(view.basis), origin=_frozen(mean), total=self.total,
            strategy=self.strategy, restarts=self.restarts, restarted=self.restarted)
        if basis is None:
            self.shown = snapshot
        return snapshot

    def done(self) -> bool:
        return bool(self.stop) or bool(self.total) and self.generation >= self.total


def run_es(problem, x0, sigma0: float, popsize: int | None = None, mu=None, seed: int | None = None,
           generations: int | None = None, name: str = "", strategy: str = "full") -> Iterator[EsSnapshot]:
    """Snapshot 0 (the start), then one snapshot per generation until `generations` (None: until CMA-ES meets
    a termination criterion; it also stops there when `generations` is given)."""
    run = _Run(make_engine(strategy, x0, sigma0, popsize, mu, seed), problem,
               name or getattr(problem, "name", type(problem).__name__), strategy, int(generations or 0))
    yield run.snapshot()
    while not run.done():
        run.advance()
        yield run.snapshot()


def run_frames(a: EsSettings, b: EsSettings | None = None, generations: int | None = None) -> Iterator[EsFrame]:
    """Frames of run A alone, or of A and B in lockstep on A's plane, until both have stopped (or `generations`).
    B must be on the same problem in the same dimension."""
    total = int(generations or 0)
    runs = [_Run(a.engine(), a.problem(), a.function, a.strategy, total)]
    if b is not None:
        if (b.function, b.dimension) != (a.function, a.dimension):
            raise ConfigError("the runs compared must be on the same problem in the same dimension")
        runs.append(_Run(b.engine(), a.problem(), b.function, b.strategy, total))
    index = 0
    while True:
        first = runs[0].snapshot() if runs[0].shown is None or runs[0].shown.generation != runs[0].generation \
            else runs[0].shown
        other = runs[1].snapshot(first.basis) if len(runs) > 1 else None
        yield EsFrame(index=index, a=first, b=other, total=total)
        if all(run.done() for run in runs):
            return
        for run in runs:
            if not run.done():
                run.advance()
        index += 1


def plot_box(problem, snapshot: EsSnapshot, margin: float = 0.15, others=()) -> Box:
    """The plotted region: the problem's own box in 2-D; for n > 2 a square around the 3-sigma ellipse and the
    projected optimum (the plane moves with m, so the view follows it), and around the 3-sigma ellipses of
    `others` (a compared run, drawn on the same plane)."""
    if snapshot.dimension == 2:
        (x_lo, x_hi), (y_lo, y_hi) = problem.box
        return (float(x_lo), float(x_hi)), (float(y_lo), float(y_hi))
    points = [snapshot.solution]
    for shown in (snapshot, *others):
        spread = 3.0 * np.sqrt(np.clip(np.diag(shown.cov2), 0.0, None))
        points += [shown.mean - spread, shown.mean + spread]
    points = np.stack(points)
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
