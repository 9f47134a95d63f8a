"""Restart strategies for CMA-ES: IPOP (Auger & Hansen 2005) and BIPOP (Hansen 2009).

Both have the ask/tell/stop interface of the engines. When the inner run stops for a non-final reason (tolfun,
stagnation, ...; see termination.py) the next tell() starts a new inner run. The budgets (max_evaluations,
max_generations, counted over all runs), the target and `max_restarts` end everything. Other attributes (mean,
sigma, C, ...) are those of the current inner run, `es`.

With a target, a run is also restarted once it is converging on a point above the target ("above_target"): the
best values of its last 10 + 30 n / lambda generations (tolfun's window) spread over less than `above_target`
(1e-3) times the distance from its best value to the target. A run that approaches the target shrinks its values
geometrically, so their spread stays comparable to that distance and the test never fires; a run caught in a
local optimum would go on to refine it to tolfun's 1e-12, and on Rastrigin that refinement was about a third of
everything IPOP spent (measured: 60 seeds at 10-D, 72,700 evaluations on average without it, 53,900 with it; 20-D:
244,000 and 184,000; the same seeds solved). The last run allowed by max_restarts is never cut short this way.

- IPOP: every restart multiplies the population by `incpopsize` (2), from x0 with sigma0.
- BIPOP: two regimes share the evaluations. The large regime is IPOP (lambda_def * 2^k, sigma0). The small one
  draws, with U1, U2 ~ U(0, 1), lambda_s = floor(lambda_def * (lambda_large / lambda_def)^(U1^2)) and
  sigma_s = sigma0 * 10^(-2 U2) (a local search around x0 with a population up to the last large one), capped at
  half the evaluations the large regime has spent. Each restart goes to the regime that has spent fewer
  evaluations; the first run (lambda_def) counts as small, as in Hansen's and pycma's code, so the first restart
  is large. `max_restarts` counts the large restarts only.

`restart_events()` lists every restart (generation, evaluations, new popsize, sigma0, regime) for plots.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from wm_studio.core import files
from wm_studio.core.errors import CheckpointError, ConfigError, WmStudioError
from wm_studio.core.es.cmaes import CMAES, _CMABase, spread, value_from_json, value_to_json
from wm_studio.core.es.sep import SepCMAES
from wm_studio.core.es.termination import Termination, fitness_window

CHECKPOINT_FORMAT = 1
ABOVE_TARGET = 1e-3
_ENGINES = {"full": CMAES, "separable": SepCMAES}
INNER = "inner/"


class IPOPCMAES:
    """Restarts with popsize * incpopsize^k. x0 is a vector, or a function of a numpy Generator that draws a
    fresh start point for each run; `variant` "full" or "separable" picks the inner engine."""

    _KIND = "wm_studio.ipopcmaes"
    strategy = "ipop"

    def __init__(self, x0, sigma0, popsize=None, mu=None, seed=None, backend="numpy", termination=None,
                 max_restarts: int = 9, incpopsize: float = 2, variant: str = "full",
                 above_target: float | None = ABOVE_TARGET):
        if variant not in _ENGINES:
            raise ConfigError(f"unknown CMA-ES variant {variant!r}: use {' or '.join(_ENGINES)}")
        if not (isinstance(max_restarts, (int, np.integer)) and max_restarts >= 0):
            raise ConfigError(f"max_restarts must be a count >= 0, not {max_restarts!r}")
        if not incpopsize > 1:
            raise ConfigError(f"incpopsize must be > 1, not {incpopsize!r}")
        if above_target is not None and not (isinstance(above_target, (int, float)) and 0 < above_target < 1):
            raise ConfigError(f"above_target must be a fraction in (0, 1) or None, not {above_target!r}")
        if mu is not None and not (isinstance(mu, float) and 0 < mu < 1):
            raise ConfigError(f"{type(self).__name__} takes mu as a fraction of the population (or None), which "
                              f"stays meaningful as the population changes")
        self.termination = termination or Termination()
        self.x0, self.sigma0, self._mu_fraction, self._backend = x0, float(sigma0), mu, backend
        self.max_restarts, self.incpopsize, self.variant = int(max_restarts), incpopsize, variant
        self.above_target = above_target
        self._seeds = np.random.default_rng(seed)
        self.restarts = 0
        self.history: list[dict] = []      # one entry per finished inner run: popsize, evaluations, reasons
        self.best_value = math.inf
        self._best_x = None
        self._evaluations_before = 0       # spent by the finished inner runs
        self._generations_before = 0
        self.es = self._new_run(popsize, self.sigma0)
        self.default_popsize = self.es.popsize
        self.regime = "large"              # of the current inner run (BIPOP: "small" or "large")
        self.run_sigma0 = self.sigma0      # sigma0 of the current inner run

    def _start_point(self):
        return self.x0(self._seeds) if callable(self.x0) else self.x0

    def _new_run(self, popsize, sigma0, max_evaluations=None) -> _CMABase:
        inner_seed = int(self._seeds.integers(2 ** 63))
        termination = self.termination.without_final_criteria()
        if max_evaluations is not None:
            termination = termination.with_max_evaluations(max_evaluations)
        return _ENGINES[self.variant](self._start_point(), sigma0, popsize=popsize, mu=self._mu_fraction,
                                      seed=inner_seed, backend=self._backend, termination=termination)

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
        # only reached for names the restart strategy does not define: those of the current inner run
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
        if self._final_reasons() or self._out_of_restarts():
            return
        reasons = self.es.stop() or self._converging_above_target()
        if reasons:
            self._restart(reasons)

    def _converging_above_target(self) -> dict:
        """{"above_target": ratio} when the run's recent best values spread over less than that share of their
        distance to the target (see the module docstring)."""
        target = self.termination.target
        if target is None or self.above_target is None:
            return {}
        es = self.es
        window = fitness_window(es.n, es.popsize)
        recent = es.best_values(window)
        if len(recent) == window and spread(recent) < self.above_target * (es.best_value - target):
            return {"above_target": self.above_target}
        return {}

    def tell_maximise(self, X, rewards) -> None:
        self.tell(X, -np.asarray(rewards, dtype=np.float64))

    def _restart(self, reasons: dict) -> None:
        self.history.append({"popsize": self.es.popsize, "evaluations": self.es.evaluations,
                             "generations": self.es.generation, "stop": reasons,
                             "best_value": value_to_json(self.es.best_value), "regime": self.regime,
                             "sigma0": self.run_sigma0})
        self._evaluations_before += self.es.evaluations
        self._generations_before += self.es.generation
        self._finished_run(self.regime, self.es.evaluations)
        self.regime, popsize, self.run_sigma0, cap = self._next_run()
        self.restarts += 1
        self.es = self._new_run(popsize, self.run_sigma0, cap)

    def _finished_run(self, regime: str, evaluations: int) -> None:
        """Account for an inner run that has just ended (BIPOP's budgets)."""

    def _next_run(self) -> tuple[str, int, float, int | None]:
        """(regime, popsize, sigma0, evaluation cap or None) of the next inner run."""
        return "large", int(round(self.es.popsize * self.incpopsize)), self.sigma0, None

    def _out_of_restarts(self) -> bool:
        return self.restarts >= self.max_restarts

    def _final_reasons(self) -> dict:
        return self.termination.final_met(self.best_value, self.evaluations, self.generation)

    def stop(self) -> dict:
        """The budget or target once reached; else, after the last allowed restart, the inner run's reasons
        together with {"max_restarts": max_restarts}."""
        met = self._final_reasons()
        if not met and self._out_of_restarts():
            inner = self.es.stop()
            if inner:
                met = {**inner, "max_restarts": self.max_restarts}
        return met

    def restart_events(self) -> list[dict]:
        """Every restart so far, oldest first: the generation and evaluations (over all runs) after which the
        new run started, its popsize, sigma0 and regime, and what stopped the run before it."""
        events, generation, evaluations = [], 0, 0
        runs = self.history[1:] + [{"popsize": self.es.popsize, "regime": self.regime, "sigma0": self.run_sigma0}]
        for ended, started in zip(self.history, runs):
            generation, evaluations = generation + ended["generations"], evaluations + ended["evaluations"]
            events.append({"generation": generation, "evaluations": evaluations, "popsize": started["popsize"],
                           "sigma0": started.get("sigma0", self.sigma0), "regime": started.get("regime", "large"),
                           "stop": ended["stop"]})
        return events

    # --- files --------------------------------------------------------------------------------------------
    def _extra_meta(self) -> dict:
        return {}

    def _restore_extra(self, meta) -> None:
        pass

    def save(self, path) -> Path:
        """One npz, written atomically: the restart state plus the inner run's arrays under 'inner/'."""
        inner_arrays, inner_meta = self.es.state()
        arrays = {f"{INNER}{name}": value for name, value in inner_arrays.items()}
        arrays["best_x"] = self._best_x if self._best_x is not None else np.empty(0)
        arrays["x0"] = np.empty(0) if callable(self.x0) else np.asarray(self.x0, dtype=np.float64)
        meta = {"kind": self._KIND, "format": CHECKPOINT_FORMAT, "sigma0": self.sigma0, "mu": self._mu_fraction,
                "backend": self._backend, "max_restarts": self.max_restarts, "incpopsize": self.incpopsize,
                "variant": self.variant, "restarts": self.restarts, "history": self.history,
                "best_value": value_to_json(self.best_value),
                "evaluations_before": self._evaluations_before, "generations_before": self._generations_before,
                "termination": self.termination.to_dict(), "rng": files.generator_state(self._seeds),
                "x0_callable": callable(self.x0), "inner": inner_meta, "default_popsize": self.default_popsize,
                "regime": self.regime, "run_sigma0": self.run_sigma0, "above_target": self.above_target,
                **self._extra_meta()}
        return files.save_npz(path, arrays, meta)

    @classmethod
    def load(cls, path, x0: Callable | None = None, n: int | None = None, backend: str | None = None):
        """Rebuild a saved run of this strategy. A run whose x0 was a function needs that function again."""
        arrays, meta = files.load_npz(path)
        if meta.get("kind") != cls._KIND or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not an {cls.__name__} checkpoint of format {CHECKPOINT_FORMAT}")
        if meta.get("x0_callable") and x0 is None:
            raise CheckpointError(f"{path} was made with a function for x0: pass it again as x0=...")
        try:
            variant = meta["variant"]
            inner = {name[len(INNER):]: value for name, value in arrays.items() if name.startswith(INNER)}
            engine = _ENGINES[variant].from_state(inner, meta["inner"], source=str(path), n=n, backend=backend)
            run = cls.__new__(cls)
            run.termination = Termination.from_dict(meta["termination"])
            run.x0 = x0 if meta["x0_callable"] else arrays["x0"]
            run.sigma0, run._mu_fraction = float(meta["sigma0"]), meta["mu"]
            run._backend = backend or meta["backend"]
            run.max_restarts, run.incpopsize, run.variant = int(meta["max_restarts"]), meta["incpopsize"], variant
            run._seeds = files.restore_generator(meta["rng"])
            run.restarts, run.history = int(meta["restarts"]), list(meta["history"])
            run.best_value = value_from_json(meta["best_value"])
            run._best_x = arrays["best_x"] if arrays["best_x"].size else None
            run._evaluations_before = int(meta["evaluations_before"])
            run._generations_before = int(meta["generations_before"])
            # checkpoints written before BIPOP existed lack these: IPOP's values then
            history = run.history
            run.default_popsize = int(meta.get("default_popsize", history[0]["popsize"] if history
                                               else engine.popsize))
            run.regime, run.run_sigma0 = meta.get("regime", "large"), float(meta.get("run_sigma0", run.sigma0))
            run.above_target = meta.get("above_target")   # None in older checkpoints: they ran without it
            run._restore_extra(meta)
            run.es = engine
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, WmStudioError) as exc:
            raise CheckpointError(f"{path} is not a valid {cls.__name__} checkpoint: {exc}") from None
        return run


class BIPOPCMAES(IPOPCMAES):
    """BIPOP-CMA-ES (Hansen 2009): IPOP's growing populations interleaved with short runs of small populations
    and smaller step sizes, each regime given about the same evaluations (see the module docstring)."""

    _KIND = "wm_studio.bipopcmaes"
    strategy = "bipop"

    def __init__(self, *args, **kwargs):
        self.budgets = {"small": 0, "large": 0}   # evaluations spent by each regime's finished runs
        self.large_runs = 0                        # restarts in the large regime so far
        super().__init__(*args, **kwargs)
        self.regime = "small"                      # the first run counts as small (see the module docstring)

    def _finished_run(self, regime: str, evaluations: int) -> None:
        self.budgets[regime] += evaluations

    def _next_run(self) -> tuple[str, int, float, int | None]:
        if self.budgets["small"] < self.budgets["large"]:
            u1, u2 = self._seeds.uniform(size=2)
            largest = self.incpopsize ** self.large_runs   # the last large population over the default one
            popsize = int(math.floor(self.default_popsize * largest ** (u1 ** 2)))
            cap = max(popsize, int(self.budgets["large"] // 2))
            return "small", popsize, self.sigma0 * 10 ** (-2 * u2), cap
        self.large_runs += 1
        popsize = int(round(self.default_popsize * self.incpopsize ** self.large_runs))
        return "large", popsize, self.sigma0, None

    def _out_of_restarts(self) -> bool:
        return self.large_runs >= self.max_restarts

    def _extra_meta(self) -> dict:
        return {"budgets": self.budgets, "large_runs": self.large_runs}

    def _restore_extra(self, meta) -> None:
        self.budgets = {"small": int(meta["budgets"]["small"]), "large": int(meta["budgets"]["large"])}
        self.large_runs = int(meta["large_runs"])


STRATEGIES = {"ipop": IPOPCMAES, "bipop": BIPOPCMAES}
