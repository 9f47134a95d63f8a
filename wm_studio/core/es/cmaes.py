"""The (mu/mu_w, lambda)-CMA-ES of Hansen's tutorial (arXiv 1604.00772, the summary table of its appendix A).

Notation follows the tutorial: m the mean, sigma the step size, C = B D^2 B^T the covariance matrix, p_sigma and
p_c the evolution paths, y_k = (x_k - m) / sigma, and w_i the recombination weights, positive for the mu best and
negative ("active" CMA) for the worst, scaled by min(alpha_mu^-, alpha_mu_eff^-, alpha_posdef^-).

One generation:
    z_k ~ N(0, I),  y_k = B D z_k,  x_k = m + sigma y_k                                       (ask)
    <y>_w = sum_{i<=mu} w_i y_{i:lambda};  m <- m + c_m sigma <y>_w                               (tell)
    p_sigma <- (1 - c_sigma) p_sigma + sqrt(c_sigma (2 - c_sigma) mu_eff) C^-1/2 <y>_w
    h_sigma = [ |p_sigma| / sqrt(1 - (1 - c_sigma)^(2 (g + 1))) < (1.4 + 2 / (n + 1)) E|N(0, I)| ]
    p_c <- (1 - c_c) p_c + h_sigma sqrt(c_c (2 - c_c) mu_eff) <y>_w
    w°_i = w_i, times n / |C^-1/2 y_{i:lambda}|^2 where w_i < 0
    C <- (1 + c_1 (1 - h_sigma) c_c (2 - c_c) - c_1 - c_mu sum_j w_j) C + c_1 p_c p_c^T
         + c_mu sum_i w°_i y_{i:lambda} y_{i:lambda}^T
    sigma <- sigma exp(c_sigma / d_sigma (|p_sigma| / E|N(0, I)| - 1))
B and D come from `eigh` of C every `eigen_gap` generations (lazy update). The engine stores and updates only the
lower triangle of C, which is all `eigh` reads: the matrix it decomposes is symmetric by construction, and the
rank-mu update costs half as much. C^-1/2 = B D^-1 B^T uses the same decomposition as the sampling, so for the
samples handed out by ask() C^-1/2 y_k is simply B z_k and |C^-1/2 y_k| = |z_k|: tell() reuses z instead of
multiplying by C^-1/2 again.

All random draws come from the engine's own numpy Generator, also with the CuPy backend (the normal samples are
drawn on the host and copied to the GPU), so a run is reproducible from its seed and resumes bit for bit.
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # numpy's eigh kernel itself, which can write into arrays the engine keeps (see eigh_lower)
    from numpy.linalg import _umath_linalg
except ImportError:  # pragma: no cover - a numpy without it: np.linalg.eigh
    _umath_linalg = None

from wm_studio.core import files
from wm_studio.core.device import gpu_probe, to_numpy
from wm_studio.core.errors import CheckpointError, ConfigError, WmStudioError
from wm_studio.core.es.termination import (Termination, fitness_window, history_length, is_stagnating,
                                           stagnation_window)

CHECKPOINT_FORMAT = 1
# Only the lower triangle of C is kept up to date, in blocks of this many rows: half the flops of a full update,
# no n x n temporary, each block scaled and added to while in cache (fastest of 16..256 at n = 867 and 10,000).
UPDATE_BLOCK_ROWS = 64
PENDING = ("pending_x", "pending_y", "pending_z")  # a generation asked for but not told yet, in a checkpoint
# Up to this n the eigenvectors are written into a spare n x n array kept between decompositions; above it the
# O(n^3) eigh dwarfs the page faults a fresh array costs, and a second n x n array would not be worth its memory.
REUSED_EIGENVECTORS_MAX_N = 3000


class EvaluationError(WmStudioError):
    """Every objective value of a generation was NaN or infinite: there is nothing to rank."""


@dataclass(frozen=True)
class StrategyParameters:
    """The tutorial's default strategy parameters for dimension n (table 1 of arXiv 1604.00772)."""
    n: int
    popsize: int
    mu: int
    weights: np.ndarray        # (popsize,), positive ones sum to 1, negative ones scaled per the tutorial
    mu_eff: float
    mu_eff_minus: float
    c_m: float
    c_sigma: float
    d_sigma: float
    cc: float
    c1: float
    cmu: float
    chi_n: float               # E|N(0, I)|
    eigen_gap: int             # generations between two eigendecompositions


def default_popsize(n: int) -> int:
    return 4 + int(math.floor(3 * math.log(n)))


def resolve_mu(mu, popsize: int) -> int:
    """None -> floor(lambda / 2); an int -> itself; a float in (0, 1) -> that fraction of lambda."""
    if mu is None:
        return popsize // 2
    if isinstance(mu, (bool, np.bool_)):
        raise ConfigError(f"mu must be a count or a fraction of the population, not {mu!r}")
    if isinstance(mu, (int, np.integer)):
        count = int(mu)
    elif isinstance(mu, (float, np.floating)) and 0 < mu < 1:
        count = int(math.floor(mu * popsize + 1e-9))
    else:
        raise ConfigError(f"mu must be an int or a fraction in (0, 1), not {mu!r}")
    if not 1 <= count <= popsize:
        raise ConfigError(f"mu = {mu!r} gives {count} parents, outside 1..{popsize} (the population size)")
    return count


def raw_weights(popsize: int, mu: int, default_mu: bool) -> np.ndarray:
    """The tutorial's w'_i = ln((lambda + 1) / 2) - ln i; for a chosen mu, ln(mu + 1/2) - ln i for the mu best
    and the mirrored values for the worst min(mu, lambda - mu), zero in between (the same shape as pycma)."""
    if default_mu:
        return math.log((popsize + 1) / 2) - np.log(np.arange(1, popsize + 1))
    shape = math.log(mu + 0.5) - np.log(np.arange(1, 2 * mu + 1))
    negatives = shape[mu:][mu - min(mu, popsize - mu):]
    return np.concatenate([shape[:mu], np.zeros(popsize - mu - len(negatives)), negatives])


def strategy_parameters(n: int, popsize: int | None = None, mu=None, separable: bool = False) -> StrategyParameters:
    if n < 1:
        raise ConfigError(f"the search space needs at least one dimension, not {n}")
    popsize = default_popsize(n) if popsize is None else checked_popsize(popsize)
    mu_count = resolve_mu(mu, popsize)
    raw = raw_weights(popsize, mu_count, mu is None)
    positive, negative = raw[raw > 0], raw[raw < 0]
    mu_eff = positive.sum() ** 2 / np.sum(positive ** 2)
    mu_eff_minus = negative.sum() ** 2 / np.sum(negative ** 2) if negative.size else 0.0

    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    d_sigma = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    cc = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    c1 = 2 / ((n + 1.3) ** 2 + mu_eff)
    cmu = min(1 - c1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
    if separable:  # Ros & Hansen 2008: a diagonal C can learn (n + 2) / 3 times faster
        c1 *= (n + 2) / 3
        cmu = min(1 - c1, cmu * (n + 2) / 3)

    weights = raw / positive.sum()
    if negative.size:
        alpha_mu = 1 + c1 / cmu if cmu > 0 else math.inf
        alpha_mu_eff = 1 + 2 * mu_eff_minus / (mu_eff + 2)
        alpha_posdef = (1 - c1 - cmu) / (n * cmu) if cmu > 0 else math.inf
        scale = min(alpha_mu, alpha_mu_eff, alpha_posdef)
        weights = np.where(raw < 0, scale * raw / -negative.sum(), weights)
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n ** 2))
    eigen_gap = max(1, int(math.floor(1 / (10 * n * (c1 + cmu)))))
    return StrategyParameters(n=n, popsize=popsize, mu=mu_count, weights=weights, mu_eff=float(mu_eff),
                              mu_eff_minus=float(mu_eff_minus), c_m=1.0, c_sigma=c_sigma, d_sigma=d_sigma, cc=cc,
                              c1=c1, cmu=cmu, chi_n=chi_n, eigen_gap=eigen_gap)


def resolve_backend(backend: str):
    """(array module, notice): CuPy when asked for and usable, else numpy with a sentence saying why."""
    if backend == "numpy":
        return np, None
    if backend != "cupy":
        raise ConfigError(f"unknown CMA-ES backend {backend!r}: use 'numpy' or 'cupy'")
    count, reason = gpu_probe()
    if not count:
        return np, f"CMA-ES runs on the CPU with numpy: the cupy backend was asked for but {reason}."
    import cupy
    return cupy, None


def eigh_lower(C, vectors_out=None):
    """eigenvalues, eigenvectors of the symmetric matrix whose lower triangle C holds: the same LAPACK call as
    np.linalg.eigh(C, UPLO="L") (bit for bit), but written into `vectors_out` when given. A fresh n x n result
    is fresh memory the kernel first faults in page by page: 7 of eigh's 69 ms at n = 867."""
    if vectors_out is None or _umath_linalg is None:
        return np.linalg.eigh(C, UPLO="L")
    # The kernel reports non-convergence as an invalid-value flag, which np.linalg.eigh turns into LinAlgError.
    with np.errstate(invalid="raise", divide="ignore"):
        try:
            return _umath_linalg.eigh_lo(C, out=(np.empty(C.shape[0]), vectors_out))
        except FloatingPointError:
            raise np.linalg.LinAlgError("Eigenvalues did not converge") from None


def spread(values: np.ndarray) -> float:
    """max - min, 0 when all are equal (also all -inf, where the difference would be NaN)."""
    high, low = values.max(), values.min()
    return 0.0 if high == low else float(high - low)


def checked_popsize(popsize) -> int:
    """A population size given as any whole number (64, np.int64(64), 64.0); 2.7 or "64" is a ConfigError."""
    if isinstance(popsize, (bool, np.bool_)) or not isinstance(popsize, numbers.Real) \
            or not math.isfinite(popsize) or popsize != int(popsize):
        raise ConfigError(f"the population size must be a whole number, not {popsize!r}")
    if popsize < 2:
        raise ConfigError(f"the population size must be at least 2, not {popsize!r}")
    return int(popsize)


def checked_sigma0(sigma0) -> float:
    """sigma0 as a float: any real number (int, float, Fraction, numpy scalar or 0-d array) that is positive
    and finite; anything else is a ConfigError."""
    if isinstance(sigma0, np.ndarray) and sigma0.ndim == 0 and sigma0.dtype.kind in "iuf":
        sigma0 = sigma0.item()
    if isinstance(sigma0, (bool, np.bool_)) or not isinstance(sigma0, numbers.Real) \
            or not (math.isfinite(sigma0) and sigma0 > 0):
        raise ConfigError(f"sigma0 must be a positive finite number, not {sigma0!r}")
    return float(sigma0)


def value_to_json(value: float):
    """A best value for a JSON checkpoint: +inf (nothing evaluated yet) as None, -inf as the string "-inf"."""
    if math.isfinite(value):
        return value
    return None if value > 0 else "-inf"


def value_from_json(value) -> float:
    return math.inf if value is None else float(value)


def read_only(array) -> np.ndarray:
    """A host array the caller cannot write into (CuPy arrays are copied, numpy ones viewed)."""
    view = to_numpy(array).view()
    view.flags.writeable = False
    return view


class _CMABase(ABC):
    """What the full and the separable CMA-ES share: ranking, mean, paths, step size, termination, files.

    Subclasses say how C is stored, sampled, inverted and updated."""

    _KIND = ""
    _SEPARABLE = False

    def __init__(self, x0, sigma0, popsize=None, mu=None, seed=None, backend="numpy", termination=None):
        x0 = np.array(x0, dtype=np.float64).reshape(-1)
        if x0.size == 0 or not np.all(np.isfinite(x0)):
            raise ConfigError("x0 must be a non-empty vector of finite numbers")
        sigma0 = checked_sigma0(sigma0)
        if termination is not None and not isinstance(termination, Termination):
            raise ConfigError("termination must be a wm_studio.core.es.Termination")
        self.params = strategy_parameters(x0.size, popsize, mu, separable=self._SEPARABLE)
        self._mu_given = None if mu is None else self.params.mu
        self.backend_requested = backend
        self.xp, self.notice = resolve_backend(backend)
        self.backend = "cupy" if self.xp is not np else "numpy"
        self.termination = termination or Termination()
        self.seed = seed
        self._rng = np.random.default_rng(seed)

        xp = self.xp
        self._mean = xp.asarray(x0)
        self.sigma = float(sigma0)
        self.sigma0 = float(sigma0)
        self._ps = xp.zeros(self.n)
        self._pc = xp.zeros(self.n)
        self._init_covariance()
        self._weights = xp.asarray(self.params.weights)
        self.generation = 0
        self.evaluations = 0
        self.nan_count = 0
        self.last_nan_count = 0
        self.best_value = math.inf
        self._best_x = x0.copy()
        self._best_history = np.empty(0)
        self._median_history = np.empty(0)
        self._last_values = np.empty(0)
        self._initial_max_std = self.sigma * float(np.max(to_numpy(self._axis_lengths())))
        self._pending = None  # (x, y, z) of the last ask(), until tell() consumes it

    # --- strategy parameters -------------------------------------------------------------------------------
    n = property(lambda self: self.params.n)
    popsize = property(lambda self: self.params.popsize)
    mu = property(lambda self: self.params.mu)
    weights = property(lambda self: self.params.weights.copy())
    mu_eff = property(lambda self: self.params.mu_eff)
    c_m = property(lambda self: self.params.c_m)
    c1 = property(lambda self: self.params.c1)
    cmu = property(lambda self: self.params.cmu)
    c_sigma = property(lambda self: self.params.c_sigma)
    d_sigma = property(lambda self: self.params.d_sigma)
    cc = property(lambda self: self.params.cc)
    chi_n = property(lambda self: self.params.chi_n)
    eigen_gap = property(lambda self: self.params.eigen_gap)

    # --- state, as host arrays ----------------------------------------------------------------------------
    mean = property(lambda self: read_only(self._mean))
    ps = property(lambda self: read_only(self._ps))
    pc = property(lambda self: read_only(self._pc))
    best_x = property(lambda self: self._best_x.copy())
    D = property(lambda self: read_only(self._axis_lengths()))

    @property
    def axis_ratio(self) -> float:
        lengths = to_numpy(self._axis_lengths())
        return float(lengths.max() / lengths.min())

    # --- the generation -----------------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """popsize new candidates, (popsize, n) float64 on the host, one per row."""
        z_host = self._rng.standard_normal((self.popsize, self.n))
        z = self.xp.asarray(z_host)
        y = self._scale_samples(z)
        x = self._mean + self.sigma * y
        self._pending = (x, y, z)
        return to_numpy(x).copy()

    def tell(self, X, values) -> None:
        """Update the distribution from candidates X (popsize, n) and their values (lower is better).

        -inf is a value like any other, the best there is. NaN and +inf are failed evaluations: they rank last
        (after every other value, ties in row order) and are counted in nan_count / last_nan_count. If every
        value failed the distribution is left as it was and EvaluationError is raised (the evaluations still
        count)."""
        X, values = self._check_told(X, values)
        valid = values < np.inf  # False for NaN and +inf
        self.last_nan_count = int(self.popsize - valid.sum())
        self.nan_count += self.last_nan_count
        self.evaluations += self.popsize
        if not valid.any():
            self._pending = None
            raise EvaluationError(f"all {self.popsize} objective values of generation {self.generation + 1} are "
                                  f"NaN or +inf: check the objective function; the search was not updated")
        order = np.argsort(np.where(valid, values, np.inf), kind="stable")
        self._record_values(X, values, valid, order)

        y, z = self._samples_of(X)
        xp, p = self.xp, self.params
        ranked = xp.asarray(order)
        y, z = y[ranked], z[ranked]
        positive = slice(0, int(np.count_nonzero(p.weights > 0)))
        w_pos = self._weights[positive]
        y_w = w_pos @ y[positive]
        self._mean = self._mean + p.c_m * self.sigma * y_w

        self._ps = (1 - p.c_sigma) * self._ps + math.sqrt(p.c_sigma * (2 - p.c_sigma) * p.mu_eff) * \
            self._whitened_to_coordinates(w_pos @ z[positive])
        ps_norm = float(xp.sqrt(self._ps @ self._ps))
        h_sigma = ps_norm / math.sqrt(1 - (1 - p.c_sigma) ** (2 * (self.generation + 1))) \
            < (1.4 + 2 / (self.n + 1)) * p.chi_n
        self._pc = (1 - p.cc) * self._pc + h_sigma * math.sqrt(p.cc * (2 - p.cc) * p.mu_eff) * y_w

        used = np.flatnonzero(p.weights)
        w_used = self._weights[xp.asarray(used)]
        negative = w_used < 0
        if bool(negative.any()):  # rescale the worst samples to Mahalanobis length sqrt(n)
            sq_norms = xp.sum(z[xp.asarray(used)] ** 2, axis=1)
            w_used = xp.where(negative, w_used * self.n / xp.maximum(sq_norms, np.finfo(float).tiny), w_used)
        decay = 1 + p.c1 * (1 - h_sigma) * p.cc * (2 - p.cc) - p.c1 - p.cmu * float(p.weights.sum())
        self._update_covariance(decay, p.c1, p.cmu * w_used, y[xp.asarray(used)])

        self.sigma *= math.exp(p.c_sigma / p.d_sigma * (ps_norm / p.chi_n - 1))
        self.generation += 1
        self._pending = None
        self._after_generation()

    def tell_maximise(self, X, rewards) -> None:
        """tell() for rewards (higher is better); best_value then holds minus the best reward."""
        self.tell(X, -np.asarray(rewards, dtype=np.float64))

    def _check_told(self, X, values):
        X = np.asarray(X, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if X.shape != (self.popsize, self.n):
            raise ConfigError(f"tell() expects candidates of shape {(self.popsize, self.n)}, got {X.shape}")
        if values.shape != (self.popsize,):
            raise ConfigError(f"tell() expects {self.popsize} values, got {values.size}")
        if not np.all(np.isfinite(X)):
            raise ConfigError("tell() got candidates with NaN or infinite coordinates")
        return X, values

    def _samples_of(self, X):
        """(y, z) of the told candidates: those of the last ask() when X is that population unchanged, else
        recomputed from X (candidates edited or produced elsewhere)."""
        if self._pending is not None and np.array_equal(X, to_numpy(self._pending[0])):
            return self._pending[1], self._pending[2]
        y = (self.xp.asarray(X) - self._mean) / self.sigma
        return y, self._whiten(y)

    def _record_values(self, X, values, valid, order):
        best = order[0]
        if values[best] < self.best_value:
            self.best_value = float(values[best])
            self._best_x = X[best].copy()
        keep = history_length(self.n, self.popsize)
        self._best_history = np.append(self._best_history[-keep + 1:], values[best])
        self._median_history = np.append(self._median_history[-keep + 1:], np.median(values[valid]))
        self._last_values = values[valid].copy()

    def best_values(self, count: int) -> np.ndarray:
        """The best value of each of the last `count` generations (fewer at the start), oldest first."""
        return self._best_history[-count:].copy()

    # --- termination --------------------------------------------------------------------------------------
    def stop(self) -> dict:
        """The termination criteria met now, {name: threshold}; {} while the run should go on."""
        t = self.termination
        met = t.final_met(self.best_value, self.evaluations, self.generation)
        if self.generation == 0:
            return met
        window = fitness_window(self.n, self.popsize)
        recent = self._best_history[-window:]
        full_window = len(self._best_history) >= window
        if t.tolfun is not None and full_window and spread(np.concatenate([recent, self._last_values])) < t.tolfun:
            met["tolfun"] = t.tolfun
        if t.tolfunhist is not None and full_window and spread(recent) <= t.tolfunhist:
            met["tolfunhist"] = t.tolfunhist
        stds = self.sigma * to_numpy(self._coordinate_stds())
        if t.tolx is not None and np.all(stds < t.tolx) and np.all(self.sigma * np.abs(self.pc) < t.tolx):
            met["tolx"] = t.tolx
        lengths = to_numpy(self._axis_lengths())
        if t.tolxup is not None and self.sigma * lengths.max() > t.tolxup * self._initial_max_std:
            met["tolxup"] = t.tolxup
        if t.max_condition is not None and (lengths.max() / lengths.min()) ** 2 > t.max_condition:
            met["max_condition"] = t.max_condition
        mean = self.mean
        if t.noeffectaxis and np.array_equal(mean, mean + 0.1 * self.sigma * self._principal_axis(
                self.generation % self.n)):
            met["noeffectaxis"] = True
        if t.noeffectcoord and np.any(mean == mean + 0.2 * stds):
            met["noeffectcoord"] = True
        if t.stagnation and is_stagnating(self._best_history, self._median_history,
                                          stagnation_window(self.n, self.popsize, self.generation)):
            met["stagnation"] = True
        return met

    # --- files --------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the complete state (random generator included) to an npz file, atomically."""
        return files.save_npz(path, *self.state())

    @classmethod
    def load(cls, path, n: int | None = None, backend: str | None = None):
        """Rebuild an engine saved by save(); the next generations equal those of the run that was saved.

        n, when given, is the dimension the caller expects. Anything wrong with the file is a CheckpointError."""
        arrays, meta = files.load_npz(path)
        return cls.from_state(arrays, meta, source=str(path), n=n, backend=backend)

    def state(self) -> tuple[dict, dict]:
        """(arrays, JSON-able meta) holding everything; from_state() inverts it."""
        arrays = {"mean": to_numpy(self._mean), "ps": to_numpy(self._ps), "pc": to_numpy(self._pc),
                  "best_x": self._best_x, "best_history": self._best_history,
                  "median_history": self._median_history, "last_values": self._last_values,
                  **{name: to_numpy(a) for name, a in self._covariance_arrays().items()}}
        if self._pending is not None:
            arrays.update({name: to_numpy(a) for name, a in zip(PENDING, self._pending)})
        meta = {"kind": self._KIND, "format": CHECKPOINT_FORMAT, "n": self.n, "popsize": self.popsize,
                "mu": self._mu_given, "sigma": self.sigma, "sigma0": self.sigma0, "generation": self.generation,
                "evaluations": self.evaluations, "nan_count": self.nan_count, "last_nan_count": self.last_nan_count,
                "best_value": value_to_json(self.best_value), "initial_max_std": self._initial_max_std,
                "backend": self.backend_requested,
                "termination": self.termination.to_dict(), "rng": files.generator_state(self._rng),
                **self._covariance_meta()}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays, meta, source: str = "the checkpoint", n: int | None = None,
                   backend: str | None = None):
        kind = meta.get("kind")
        if kind != cls._KIND:
            known = {c._KIND: c.__name__ for c in _CMABase.__subclasses__()}
            if kind in known:
                raise CheckpointError(f"{source} holds a {known[kind]} state: load it with {known[kind]}.load")
            raise CheckpointError(f"{source} is not a {cls.__name__} checkpoint")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source} has checkpoint format {meta.get('format')!r}; this version reads "
                                  f"format {CHECKPOINT_FORMAT}")
        try:
            saved_n, popsize = int(meta["n"]), int(meta["popsize"])
            if n is not None and saved_n != n:
                raise CheckpointError(f"{source} is for a {saved_n}-dimensional search, not {n}")
            expected = {"mean": (saved_n,), "ps": (saved_n,), "pc": (saved_n,), "best_x": (saved_n,),
                        **cls._covariance_shapes(saved_n),
                        **{name: (popsize, saved_n) for name in PENDING if name in arrays}}
            files.check_shapes(source, arrays, expected)
            es = cls(arrays["mean"], float(meta["sigma0"]), popsize=popsize, mu=meta["mu"], seed=None,
                     backend=backend or meta["backend"], termination=Termination.from_dict(meta["termination"]))
            es._restore(arrays, meta)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, WmStudioError) as exc:
            raise CheckpointError(f"{source} is not a valid {cls.__name__} checkpoint: {exc}") from None
        return es

    def _restore(self, arrays, meta):
        xp = self.xp
        self._mean, self._ps, self._pc = (xp.asarray(arrays[name]) for name in ("mean", "ps", "pc"))
        self.sigma = float(meta["sigma"])
        self.generation, self.evaluations = int(meta["generation"]), int(meta["evaluations"])
        self.nan_count, self.last_nan_count = int(meta["nan_count"]), int(meta["last_nan_count"])
        self.best_value = value_from_json(meta["best_value"])
        self._best_x = arrays["best_x"].copy()
        self._best_history = arrays["best_history"].astype(np.float64)
        self._median_history = arrays["median_history"].astype(np.float64)
        self._last_values = arrays["last_values"].astype(np.float64)
        self._initial_max_std = float(meta["initial_max_std"])
        self._rng = files.restore_generator(meta["rng"])
        self._restore_covariance(arrays, meta)
        if all(name in arrays for name in PENDING):
            self._pending = tuple(xp.asarray(arrays[name]) for name in PENDING)
        if not (math.isfinite(self.sigma) and self.sigma > 0 and np.all(np.isfinite(arrays["mean"]))):
            raise CheckpointError("the saved step size or mean is not finite")

    # --- what a covariance representation provides -------------------------------------------------------
    @abstractmethod
    def _init_covariance(self):
        """Set C = I and whatever is derived from it."""

    @abstractmethod
    def _after_generation(self):
        """Called at the end of tell(): e.g. the lazy eigendecomposition."""

    @abstractmethod
    def _scale_samples(self, z):
        """y = C^1/2 z for standard normal rows z."""

    @abstractmethod
    def _whiten(self, y):
        """u with C^-1/2 y = _whitened_to_coordinates(u) and |u| = |C^-1/2 y| (rows)."""

    @abstractmethod
    def _whitened_to_coordinates(self, u):
        """C^-1/2 y from u (one vector)."""

    @abstractmethod
    def _update_covariance(self, decay, c1, coefficients, vectors):
        """C <- decay C + c1 pc pc^T + sum_k coefficients_k v_k v_k^T."""

    @abstractmethod
    def _axis_lengths(self):
        """D: square roots of the eigenvalues of C."""

    @abstractmethod
    def _coordinate_stds(self):
        """sqrt(diag C)."""

    @abstractmethod
    def _principal_axis(self, index):
        """D_i b_i, host array."""

    @abstractmethod
    def _covariance_arrays(self) -> dict:
        """Arrays a checkpoint needs to restore C exactly."""

    @abstractmethod
    def _covariance_meta(self) -> dict:
        """Plain values a checkpoint needs to restore C exactly."""

    @classmethod
    @abstractmethod
    def _covariance_shapes(cls, n) -> dict:
        """Expected shapes of _covariance_arrays() for dimension n."""

    @abstractmethod
    def _restore_covariance(self, arrays, meta):
        """Inverse of _covariance_arrays() / _covariance_meta()."""


class CMAES(_CMABase):
    """The full (mu/mu_w, lambda)-CMA-ES with an n x n covariance matrix; see the module docstring.

    mu: None (lambda // 2), a count, or a fraction of lambda (0.25 for the Schaffer demo).
    backend: "numpy", or "cupy" to keep C and its eigendecomposition on the GPU (falls back to numpy with a
    `notice` when CuPy or a GPU is missing). ask() and every attribute return host numpy arrays."""

    _KIND = "wm_studio.cmaes"

    def _init_covariance(self):
        xp = self.xp
        self._C = xp.eye(self.n)
        self._B = xp.eye(self.n)
        self._D = xp.ones(self.n)
        self.eigen_generation = 0  # generation of the decomposition B, D come from
        reuse = xp is np and self.n <= REUSED_EIGENVECTORS_MAX_N
        self._spare_B = np.empty((self.n, self.n)) if reuse else None  # where the next eigh writes B

    @property
    def C(self) -> np.ndarray:
        """The covariance matrix (n, n), a new symmetric host array built from the stored lower triangle."""
        lower = np.tril(to_numpy(self._C))
        full = lower + np.tril(lower, -1).T
        full.flags.writeable = False
        return full

    # A copy: the array behind B is written over by a later decomposition (see _decompose).
    B = property(lambda self: read_only(to_numpy(self._B).copy()))

    def _after_generation(self):
        if self.generation - self.eigen_generation >= self.eigen_gap:
            self._decompose()

    def _decompose(self):
        """B, D from eigh of C (which reads the lower triangle, the part this engine keeps)."""
        xp = self.xp
        if xp is np:
            eigenvalues, decomposed = eigh_lower(self._C, self._spare_B)
            if self._spare_B is not None:  # trade places only now: a LinAlgError in eigh leaves B as it was
                self._spare_B = self._B
            self._B = decomposed
        else:
            eigenvalues, self._B = xp.linalg.eigh(self._C, UPLO="L")
        # Round-off can push the smallest eigenvalue of a badly conditioned C to or below zero; keep sampling
        # defined (max_condition reports the breakdown) rather than taking the root of a negative number.
        floor = float(eigenvalues[-1]) * 1e-20
        self._D = xp.sqrt(xp.maximum(eigenvalues, floor))
        self.eigen_generation = self.generation

    def _scale_samples(self, z):
        return (z * self._D) @ self._B.T

    def _whiten(self, y):
        return (y @ self._B) / self._D

    def _whitened_to_coordinates(self, u):
        return self._B @ u

    def _update_covariance(self, decay, c1, coefficients, vectors):
        """C <- decay C + c1 pc pc^T + sum_k coefficients_k v_k v_k^T on the lower triangle, a block of rows at a
        time (entries above the diagonal inside a block are updated too and never read). Where alpha_mu^- =
        1 + c1 / cmu scales the negative weights (the default population), c1 + cmu sum(w) = 0 and decay is 1
        whenever h_sigma is: multiplying C by it would be a pass over n^2 / 2 numbers that changes none."""
        xp = self.xp
        vectors = xp.concatenate([self._pc[None, :], vectors])
        scaled = (vectors * xp.concatenate([xp.asarray([c1]), coefficients])[:, None]).T.copy()
        for start in range(0, self.n, UPDATE_BLOCK_ROWS):
            stop = min(self.n, start + UPDATE_BLOCK_ROWS)
            block = self._C[start:stop, :stop]
            if decay != 1.0:
                block *= decay
            block += scaled[start:stop] @ vectors[:, :stop]

    def _axis_lengths(self):
        return self._D

    def _coordinate_stds(self):
        return self.xp.sqrt(self.xp.diagonal(self._C).copy())

    def _principal_axis(self, index):
        return to_numpy(self._B[:, index] * self._D[index])

    def _covariance_arrays(self):
        return {"C": self.C, "B": self.B, "D": self._D}

    def _covariance_meta(self):
        return {"eigen_generation": self.eigen_generation}

    @classmethod
    def _covariance_shapes(cls, n):
        return {"C": (n, n), "B": (n, n), "D": (n,)}

    def _restore_covariance(self, arrays, meta):
        xp = self.xp
        self._C, self._B, self._D = (xp.asarray(arrays[name]).copy() for name in ("C", "B", "D"))
        self.eigen_generation = int(meta["eigen_generation"])
