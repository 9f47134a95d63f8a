"""IPOP-CMA-ES (Auger & Hansen 2005): restart CMA-ES with a doubled population whenever a run stalls.

`IPOPCMAES` has the ask/tell/stop interface of the engines. When the inner run stops for a non-final reason
(tolfun, stagnation, ...; see termination.py) the next tell() starts a new inner run from x0 with `incpopsize`
times the population. The budgets (max_evaluations, max_generations, counted over all runs), the target and
`max_restarts` end everything. Other attributes (mean, sigma, C, ...) are those of the current inner run, `es`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from wm_studio.core import files
from wm_studio.core.errors import CheckpointError, ConfigError, WmStudioError
from wm_studio.core.es.cmaes import CMAES, _CMABase
from wm_studio.core.es.sep import SepCMAES
from wm_studio.core.es.termination import Termination

CHECKPOINT_FORMAT = 1
_KIND = "wm_studio.ipopcmaes"
_ENGINES = {"full": CMAES, "separable": SepCMAES}
INNER = "inner/"


class IPOPCMAES:
    """Restarts with popsize * incpopsize^k. x0 is a vector, or a function of a numpy Generator that draws a
    fresh start point for each run; `variant` "full" or "separable" picks the inner engine."""

    def __init__(self, x0, sigma0, popsize=None, mu=None, seed=None, backend="numpy", termination=None,
                 max_restarts: int = 9, incpopsize: float = 2, variant: str = "full"):
        if variant not in _ENGINES:
            raise ConfigError(f"unknown CMA-ES variant {variant!r}: use {' or '.join(_ENGINES)}")
        if not (isinstance(max_restarts, (int, np.integer)) and max_restarts >= 0):
            raise ConfigError(f"max_restarts must be a count >= 0, not {max_restarts!r}")
        if not incpopsize > 1:
            raise ConfigError(f"incpopsize must be > 1, not {incpopsize!r}")
        if mu is not None and not (isinstance(mu, float) and 0 < mu < 1):
            raise ConfigError("IPOPCMAES takes mu as a fraction of the population (or None), which stays "
                              "meaningful as the population grows")
        self.termination = termination or Termination()
        self.x0, self.sigma0, self._mu_fraction, self._backend = x0, float(sigma0), mu, backend
        self.max_restarts, self.incpopsize, self.variant = int(max_restarts), incpopsize, variant
        self._seeds = np.random.default_rng(seed)
        self.restarts = 0
        self.history: list[dict] = []      # one entry per finished inner run: popsize, evaluations, reasons
        self.best_value = math.inf
        self._best_x = None
        self._evaluations_before = 0       # spent by the finished inner runs
        self._generations_before = 0
        self.es = self._new_run(popsize)

    def _start_point(self):
        return self.x0(self._seeds) if callable(self.x0) else self.x0

    def _new_run(self, popsize) -> _CMABase:
        inner_seed = int(self._seeds.integers(2 ** 63))
        return _ENGINES[self.variant](self._start_point(), self.sigma0, popsize=popsize, mu=self._mu_fraction,
                                      seed=inner_seed, backend=self._backend,
                                      termination=self.termination.without_final_criteria())

    # --- the interface of the engines ---------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        return self._evaluations_before + self.es.evaluations

    @property
    def generation(self) -> int:
        return self._generations_before + self.es.generation

    @property
    def best_x(self) -> np.ndarray | None:
        return None if self._best_x is None else self._best_x.copy()

    def __getattr__(self, name):
        # only reached for names IPOPCMAES does not define: those of the current inner run
        if name.startswith("_") or name == "es":
            raise AttributeError(name)
        return getattr(self.es, name)

    def ask(self) -> np.ndarray:
        return self.es.ask()

    def tell(self, X, values) -> None:
        try:
            self.es.tell(X, values)
        finally:
            if self.es.best_value < self.best_value:
                self.best_value, self._best_x = self.es.best_value, self.es.best_x
        if self._final_reasons() or self.restarts >= self.max_restarts:
            return
        reasons = self.es.stop()
        if reasons:
            self._restart(reasons)

    def tell_maximise(self, X, rewards) -> None:
        self.tell(X, -np.asarray(rewards, dtype=np.float64))

    def _restart(self, reasons: dict) -> None:
        best = self.es.best_value
        self.history.append({"popsize": self.es.popsize, "evaluations": self.es.evaluations,
                             "generations": self.es.generation, "stop": reasons,
                             "best_value": best if math.isfinite(best) else None})
        self._evaluations_before += self.es.evaluations
        self._generations_before += self.es.generation
        self.restarts += 1
        self.es = self._new_run(int(round(self.es.popsize * self.incpopsize)))

    def _final_reasons(self) -> dict:
        return self.termination.final_met(self.best_value, self.evaluations, self.generation)

    def stop(self) -> dict:
        """The budget or target once reached; else, after the last allowed restart, the inner run's reasons
        together with {"max_restarts": max_restarts}."""
        met = self._final_reasons()
        if not met and self.restarts >= self.max_restarts:
            inner = self.es.stop()
            if inner:
                met = {**inner, "max_restarts": self.max_restarts}
        return met

    # --- files --------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """One npz, written atomically: the restart state plus the inner run's arrays under 'inner/'."""
        inner_arrays, inner_meta = self.es.state()
        arrays = {f"{INNER}{name}": value for name, value in inner_arrays.items()}
        arrays["best_x"] = self._best_x if self._best_x is not None else np.empty(0)
        arrays["x0"] = np.empty(0) if callable(self.x0) else np.asarray(self.x0, dtype=np.float64)
        meta = {"kind": _KIND, "format": CHECKPOINT_FORMAT, "sigma0": self.sigma0, "mu": self._mu_fraction,
                "backend": self._backend, "max_restarts": self.max_restarts, "incpopsize": self.incpopsize,
                "variant": self.variant, "restarts": self.restarts, "history": self.history,
                "best_value": self.best_value if math.isfinite(self.best_value) else None,
                "evaluations_before": self._evaluations_before, "generations_before": self._generations_before,
                "termination": self.termination.to_dict(), "rng": files.generator_state(self._seeds),
                "x0_callable": callable(self.x0), "inner": inner_meta}
        return files.save_npz(path, arrays, meta)

    @classmethod
    def load(cls, path, x0: Callable | None = None, n: int | None = None, backend: str | None = None):
        """Rebuild a saved IPOPCMAES. A run whose x0 was a function needs that function again (x0=...)."""
        arrays, meta = files.load_npz(path)
        if meta.get("kind") != _KIND or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not an IPOPCMAES checkpoint of format {CHECKPOINT_FORMAT}")
        if meta.get("x0_callable") and x0 is None:
            raise CheckpointError(f"{path} was made with a function for x0: pass it again as x0=...")
        try:
            variant = meta["variant"]
            inner = {name[len(INNER):]: value for name, value in arrays.items() if name.startswith(INNER)}
            engine = _ENGINES[variant].from_state(inner, meta["inner"], source=str(path), n=n, backend=backend)
            ipop = cls.__new__(cls)
            ipop.termination = Termination.from_dict(meta["termination"])
            ipop.x0 = x0 if meta["x0_callable"] else arrays["x0"]
            ipop.sigma0, ipop._mu_fraction = float(meta["sigma0"]), meta["mu"]
            ipop._backend = backend or meta["backend"]
            ipop.max_restarts, ipop.incpopsize, ipop.variant = int(meta["max_restarts"]), meta["incpopsize"], variant
            ipop._seeds = files.restore_generator(meta["rng"])
            ipop.restarts, ipop.history = int(meta["restarts"]), list(meta["history"])
            ipop.best_value = math.inf if meta["best_value"] is None else float(meta["best_value"])
            ipop._best_x = arrays["best_x"] if arrays["best_x"].size else None
            ipop._evaluations_before = int(meta["evaluations_before"])
            ipop._generations_before = int(meta["generations_before"])
            ipop.es = engine
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, WmStudioError) as exc:
            raise CheckpointError(f"{path} is not a valid IPOPCMAES checkpoint: {exc}") from None
        return ipop
