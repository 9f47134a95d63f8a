"""When a CMA-ES run should stop: the criteria of Hansen's tutorial (arXiv 1604.00772, appendix B.3) plus budgets.

`Termination` holds the user's thresholds; `check_termination` reads an engine's state and returns the criteria
met as {name: threshold}, an empty dict while the run should go on. A threshold of None switches a criterion off.

Criteria (n: dimension, lambda: population size, "window": 10 + ceil(30 n / lambda) generations):

- target            the best value so far is <= target                                         (default off)
- max_evaluations   this many objective evaluations were spent                                  (default off)
- max_generations   this many generations were told                                             (default off)
- tolfun            the best values of the last window generations and all values of the
                    latest generation lie within a range below tolfun                           (1e-12)
- tolfunhist        the best values of the last window generations lie within a range
                    <= tolfunhist; 0 means they are all equal (the tutorial's EqualFunValues)   (0.0)
- tolx              sigma * sqrt(C_ii) and sigma * |p_c,i| are below tolx in every coordinate   (1e-12)
- tolxup            sigma * max(D) grew by more than this factor: sigma0 was far too small     (1e4)
- max_condition     the condition number of C, (max D / min D)^2, exceeds this                  (1e14)
- noeffectaxis      adding 0.1 standard deviations along a principal axis (one per generation,
                    in turn) leaves the mean unchanged in floating point                        (on)
- noeffectcoord     adding 0.2 standard deviations to any single coordinate leaves it unchanged  (on)
- stagnation        over the last 20% of the generations (at least 120 + 30 n / lambda, at most
                    20,000), the median of the 20 newest best values and of the 20 newest
                    median values is no better than that of the 20 oldest                       (on)

Budgets and the target are "final": a restart strategy (IPOPCMAES, BIPOPCMAES) ends there; every other criterion
only says that this run of CMA-ES has nothing more to give, and a restart with a larger population may.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from wm_studio.core.errors import ConfigError

FINAL_CRITERIA = ("target", "max_evaluations", "max_generations")
STAGNATION_MAX_WINDOW = 20_000
STAGNATION_SAMPLES = 20


@dataclass(frozen=True)
class Termination:
    tolfun: float | None = 1e-12
    tolfunhist: float | None = 0.0
    tolx: float | None = 1e-12
    tolxup: float | None = 1e4
    max_condition: float | None = 1e14
    noeffectaxis: bool = True
    noeffectcoord: bool = True
    stagnation: bool = True
    max_evaluations: int | None = None
    max_generations: int | None = None
    target: float | None = None

    def __post_init__(self):
        for name in ("tolfun", "tolfunhist", "tolx", "tolxup", "max_condition", "max_evaluations",
                     "max_generations", "target"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value)):
                raise ConfigError(f"termination {name} must be a finite number or None, not {value!r}")
        for name in ("tolfun", "tolfunhist", "tolx", "max_evaluations", "max_generations"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"termination {name} must be >= 0, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Termination":
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})

    def final_met(self, best_value: float, evaluations: int, generation: int) -> dict[str, Any]:
        """The final criteria (target and budgets) met by a run at this point, {name: threshold}."""
        met = {}
        if self.target is not None and best_value <= self.target:
            met["target"] = self.target
        if self.max_evaluations is not None and evaluations >= self.max_evaluations:
            met["max_evaluations"] = self.max_evaluations
        if self.max_generations is not None and generation >= self.max_generations:
            met["max_generations"] = self.max_generations
        return met

    def without_final_criteria(self) -> "Termination":
        """The same tolerances with no budget and no target (an inner run of a restart strategy)."""
        return Termination(**{**asdict(self), **{name: None for name in FINAL_CRITERIA}})

    def with_max_evaluations(self, max_evaluations: int) -> "Termination":
        return Termination(**{**asdict(self), "max_evaluations": int(max_evaluations)})


def fitness_window(n: int, popsize: int) -> int:
    """Generations of best values that tolfun and tolfunhist look at: 10 + ceil(30 n / lambda)."""
    return 10 + math.ceil(30 * n / popsize)


def stagnation_window(n: int, popsize: int, generation: int) -> int:
    return int(min(STAGNATION_MAX_WINDOW, max(120 + 30 * n / popsize, 0.2 * generation)))


def history_length(n: int, popsize: int) -> int:
    """How many generations of best/median values an engine must keep for every criterion above."""
    return max(fitness_window(n, popsize), STAGNATION_MAX_WINDOW)


def is_stagnating(best: np.ndarray, medians: np.ndarray, window: int) -> bool:
    if window < 2 * STAGNATION_SAMPLES or len(best) < window:
        return False
    old, new = slice(-window, -window + STAGNATION_SAMPLES), slice(-STAGNATION_SAMPLES, None)
    return bool(np.median(best[new]) >= np.median(best[old])
                and np.median(medians[new]) >= np.median(medians[old]))
