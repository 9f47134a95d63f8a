"""Training C: CMA-ES on the controller's flat parameters, fitness from rollouts in the real game or the dream.

Each generation: ask lambda candidates; play each on the same K seeds (common random numbers: all candidates of
a generation drive the same K tracks, so they are ranked on skill rather than on the luck of the draw; the seeds
change every generation so C does not overfit K tracks); fitness = mean reward over the K rollouts minus
`l2` * mean(x^2) (estool's weight penalty; 0 by default); CMA-ES minimises -fitness (NaN rewards rank last in the
engine). Every `eval_every` generations, and after the last one, the distribution mean m is scored on
`eval_rollouts` episodes without early stopping (full episodes unless `eval_max_steps` caps them), in the same
world C trains in (the game or the dream); the best-scoring mean so far is written to models/controller.npz
(atomically: the studio and `wm-studio evaluate` pick it up).

Every seed comes from the stage's own generator, so the fitness of a generation does not depend on the backend.
A checkpoint after every generation holds the CMA-ES state (its random generator included), the stage's
generator, the best score and the history, so a run killed at any point resumes as the run that was not killed.
Metrics: one JSON line per generation in metrics/controller.jsonl, and metrics/controller.csv with estool's
columns (generation, time, best, mean, worst, sigma), rewritten whole from the checkpointed history every
generation so that it always agrees with the checkpoint.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.es import CMAES, SepCMAES
from wm_studio.core.es.projection import Projection, project
from wm_studio.core.files import atomic_write, generator_state, model_fingerprint, restore_generator
from wm_studio.core.models.controller import Controller, INPUT_MODES, save_controller
from wm_studio.core.parallel import RUNNERS, make_runner
from wm_studio.core.presets import GAMES, stage_settings
from wm_studio.core.runs import Run
from wm_studio.core.train.checkpointing import changed_parts, prefixed
from wm_studio.core.train.rollout import DreamEvaluator, GameEvaluator, dream_spec, game_spec

STAGE = "controller"
CSV_COLUMNS = ("generation", "time", "best", "mean", "worst", "sigma")
HISTORY_COLUMNS = CSV_COLUMNS + ("axis_ratio", "steps")
SEED_LIMIT = 2 ** 31 - 1


@dataclass(frozen=True)
class ControllerSettings:
    popsize: int = 64                   # lambda
    mu: int | float | None = None       # parents: a count, a fraction of lambda, or None (lambda // 2)
    sigma0: float = 0.1
    x0: float = 0.0                     # every parameter starts here
    rollouts: int = 16                  # K rollouts per candidate
    generations: int = 1800
    eval_every: int = 25
    eval_rollouts: int = 1024
    eval_max_steps: int | None = None   # cap of a scoring episode (None: the game's full episode)
    l2: float = 0.0                     # weight penalty: fitness -= l2 * mean(x^2)
    max_steps: int | None = None        # cap of a training rollout (None: the game's full episode)
    early_stop: int = 0                 # end a training rollout after this many negative rewards in a row
    in_dream: bool = False
    tau: float = 1.15                   # the dream's temperature
    done_threshold: float = 0.5         # the dream ends where M's p(done) passes this
    inputs: str = "zh"                  # "zh": C sees z and M's state; "z": z alone
    separable: bool = False             # SepCMAES (diagonal C) instead of the full CMA-ES
    seed: int = 0
    task_timeout: float = 600.0         # a rollout running longer than this is treated as hung
    dream_rows: int | None = None       # dream rows per task (None: all of a generation's dreams in one task)

    def __post_init__(self):
        counts = ("popsize", "rollouts", "generations", "eval_every", "eval_rollouts") + (
            ("dream_rows",) if self.dream_rows is not None else ())
        bad = [f"{name} = {getattr(self, name)}" for name in counts
               if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1)]
        if self.popsize < 2:
            bad.append(f"popsize = {self.popsize} (CMA-ES needs at least 2)")
        for name in ("sigma0", "task_timeout"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                bad.append(f"{name} = {getattr(self, name)}")
        if not (math.isfinite(self.tau) and self.tau >= 0):
            bad.append(f"tau = {self.tau}")
        if not (math.isfinite(self.l2) and self.l2 >= 0) or not math.isfinite(self.x0):
            bad.append(f"l2 = {self.l2}, x0 = {self.x0}")
        for name in ("max_steps", "eval_max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad.append(f"{name} = {getattr(self, name)}")
        if self.early_stop < 0:
            bad.append(f"early_stop = {self.early_stop}")
        if not 0 < self.done_threshold < 1:
            bad.append(f"done_threshold = {self.done_threshold}")
        if self.inputs not in INPUT_MODES:
            bad.append(f"inputs = {self.inputs!r} (one of {', '.join(INPUT_MODES)})")
        if bad:
            raise ConfigError("C's settings are out of range: " + ", ".join(bad))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
                    ) -> "ControllerSettings":
        """Settings from a run's config.json "controller" section (None values mean "the default")."""
        return stage_settings(cls, config, STAGE, overrides)

    def rollout_steps(self, episode: int) -> int:
        """Steps of a training rollout in a game whose episodes last `episode` steps."""
        return min(int(self.max_steps or episode), episode)

    def eval_steps(self, episode: int) -> int:
        return min(int(self.eval_max_steps or episode), episode)


def episode_steps(config: Mapping[str, Any]) -> int:
    """The length of a full episode in the run's game (config "max_steps": CarRacing 1000, Doom 2100)."""
    return int(config.get("max_steps") or GAMES[config.get("env", "carracing")]["max_steps"])


@dataclass(frozen=True)
class ControllerSnapshot:
    step: ClassVar[str] = "controller"  # the step that makes it (wm_studio.core.stages)
    done: int                         # generations done
    total: int                        # generations wanted
    fitness: np.ndarray               # (lambda,) this generation's fitness per candidate (empty before the first)
    population: np.ndarray            # (lambda, n) the candidates
    rewards: np.ndarray               # (lambda, K) the reward of every rollout
    best: float                       # best / mean / worst fitness of this generation
    mean: float
    worst: float
    sigma: float                      # step size after the update
    axis_ratio: float                 # sqrt of C's condition number
    projection: Projection | None     # the population, m and sigma^2 C on C's two leading axes
    best_params: np.ndarray           # the generation's best candidate
    mean_params: np.ndarray           # the distribution mean m after the update
    eval_score: float | None          # the mean's score over eval_rollouts, in generations that scored it
    best_eval: float | None           # the best such score so far (the controller in models/controller.npz)
    best_eval_generation: int | None
    history: np.ndarray               # (generations, 8): HISTORY_COLUMNS
    evals: np.ndarray                 # (scorings, 2): generation, score of the mean
    steps_per_second: float           # game (or dream) steps per second of wall time in this generation
    in_dream: bool
    finished: bool = False
    note: str = field(default="", compare=False)

    def summary(self) -> str:
        if not len(self.fitness):
            return self.note or f"generation {self.done}/{self.total}"
        parts = [f"gen {self.done}/{self.total}", f"best {self.best:.1f}", f"mean {self.mean:.1f}",
                 f"worst {self.worst:.1f}", f"sigma {self.sigma:.4g}", f"{self.steps_per_second:.0f} steps/s"]
        if self.best_eval is not None:
            parts.append(f"best eval {self.best_eval:.1f} (gen {self.best_eval_generation})")
        return " ".join(parts)


@dataclass
class _State:
    es: Any
    rng: np.random.Generator
    elapsed: float = 0.0
    best_eval: float | None = None
    best_eval_generation: int | None = None
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    population: np.ndarray | None = None
    rewards: np.ndarray | None = None
    fitness: np.ndarray | None = None
    made_by: dict = field(default_factory=dict)   # fingerprints of the V and M this search is evolved with


def make_evaluator(run: Run, settings: ControllerSettings, runner):
    """The real-game or dream evaluator of the run (its models checked first)."""
    if settings.in_dream:
        spec = dream_spec(run, settings.inputs, settings.tau, settings.done_threshold)
        return DreamEvaluator(runner, spec, settings.dream_rows)
    return GameEvaluator(runner, game_spec(run, settings.inputs))


def train_controller(run: Run, settings: ControllerSettings | Mapping[str, Any] | None = None, runner=None,
                     backend: str | None = None, workers: int | None = None, cluster: str | None = None
                     ) -> Iterator[ControllerSnapshot]:
    """Evolve C with CMA-ES, yielding a snapshot after every generation; resumes from the newest checkpoint.

    runner: a wm_studio.core.parallel runner to use (left open), or None to make one from backend / workers /
    cluster (closed when the stage ends). The default backend: processes for the real game; for the dream,
    serial: one process steps all of a generation's dreams at once and its BLAS uses every core.
    """
    if not isinstance(settings, ControllerSettings):
        settings = ControllerSettings.from_config(run.config, settings)
    backend = backend or ("serial" if settings.in_dream and not cluster else "processes")
    if backend not in RUNNERS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(RUNNERS)}")
    episode = episode_steps(run.config)
    evaluator = make_evaluator(run, settings, None)      # checks the models before any worker starts
    shape = evaluator.shape
    state = _restore(run, settings, shape)
    own_runner = runner is None
    try:
        if own_runner:
            runner = make_runner(backend, workers, settings.task_timeout, cluster=cluster)
        evaluator.runner = runner
        yield _snapshot(settings, state, evaluator, None, 0.0,
                        note=f"resumed at generation {state.es.generation}" if state.es.generation else "")
        while state.es.generation < settings.generations:
            lost_before = len(getattr(runner, "losses", ()))
            eval_score, rate = _generation(run, settings, state, evaluator, episode)
            _checkpoint(run, settings, state, shape)
            # lost_workers: rollout workers that died or hung this generation (each re-run, and logged by the runner)
            run.append_metrics(STAGE, {name: value for name, value in zip(HISTORY_COLUMNS, state.history[-1])}
                               | {"steps_per_second": rate, "eval_score": eval_score,
                                  "lost_workers": len(getattr(runner, "losses", ())) - lost_before})
            write_csv(run, state.history)
            yield _snapshot(settings, state, evaluator, eval_score, rate,
                            finished=state.es.generation >= settings.generations)
    finally:
        if own_runner and runner is not None:
            runner.close()


def _generation(run: Run, settings: ControllerSettings, state: _State, evaluator, episode: int
                ) -> tuple[float | None, float]:
    """One CMA-ES generation (and the scoring of the mean when due): (eval score or None, steps per second)."""
    start = time.monotonic()
    es = state.es
    population = es.ask()
    seeds = state.rng.integers(0, SEED_LIMIT, settings.rollouts)
    rewards, steps = evaluator.evaluate(population, seeds, settings.rollout_steps(episode), settings.early_stop)
    fitness = rewards.mean(axis=1) - settings.l2 * np.mean(population ** 2, axis=1)
    es.tell_maximise(population, fitness)
    state.population, state.rewards, state.fitness = population, rewards, fitness
    total_steps = int(steps.sum())
    generation = es.generation
    eval_score = None
    if generation % settings.eval_every == 0 or generation >= settings.generations:
        eval_seeds = state.rng.integers(0, SEED_LIMIT, settings.eval_rollouts)
        eval_rewards, eval_steps = evaluator.evaluate(es.mean[None], eval_seeds, settings.eval_steps(episode))
        eval_score = float(np.mean(eval_rewards))
        total_steps += int(eval_steps.sum())
        state.evals.append([generation, eval_score])
        if math.isfinite(eval_score) and (state.best_eval is None or eval_score > state.best_eval):
            state.best_eval, state.best_eval_generation = eval_score, generation
            save_controller(run.model_path(STAGE), Controller(evaluator.shape, es.mean),
                            {"score": eval_score, "generation": generation, "eval_rollouts": settings.eval_rollouts,
                             "in_dream": settings.in_dream} | ({"tau": settings.tau} if settings.in_dream else {}))
    seconds = time.monotonic() - start
    state.elapsed += seconds
    finite = fitness[np.isfinite(fitness)]
    best, mean, worst = ((float(finite.max()), float(finite.mean()), float(finite.min())) if len(finite)
                         else (math.nan,) * 3)
    state.history.append([generation, round(state.elapsed, 3), best, mean, worst, es.sigma, es.axis_ratio,
                          total_steps])
    return eval_score, total_steps / max(seconds, 1e-9)


def _snapshot(settings: ControllerSettings, state: _State, evaluator, eval_score, rate, finished=False,
              note="") -> ControllerSnapshot:
    es = state.es
    history = np.asarray(state.history, dtype=np.float64).reshape(-1, len(HISTORY_COLUMNS))
    last = history[-1] if len(history) else np.full(len(HISTORY_COLUMNS), math.nan)
    fitness = np.empty(0) if state.fitness is None else state.fitness.copy()
    projection = None
    best_params = es.mean.copy()
    if state.population is not None:
        projection = project(state.population, es.mean, es.sigma ** 2 * es.C)
        finite = np.where(np.isfinite(fitness), fitness, -np.inf)
        best_params = state.population[int(np.argmax(finite))].copy()
    return ControllerSnapshot(
        done=es.generation, total=settings.generations, fitness=fitness,
        population=np.empty((0, es.n)) if state.population is None else state.population.copy(),
        rewards=np.empty((0, settings.rollouts)) if state.rewards is None else state.rewards.copy(),
        best=float(last[2]), mean=float(last[3]), worst=float(last[4]), sigma=es.sigma, axis_ratio=es.axis_ratio,
        projection=projection, best_params=best_params, mean_params=es.mean.copy(), eval_score=eval_score,
        best_eval=state.best_eval, best_eval_generation=state.best_eval_generation, history=history,
        evals=np.asarray(state.evals, dtype=np.float64).reshape(-1, 2), steps_per_second=float(rate),
        in_dream=settings.in_dream, finished=finished or es.generation >= settings.generations, note=note)


def csv_path(run: Run):
    return run.metrics_path(STAGE).with_suffix(".csv")


def write_csv(run: Run, history: list) -> None:
    """metrics/controller.csv with estool's columns, one row per generation, written atomically."""
    text = io.StringIO()
    text.write(",".join(CSV_COLUMNS) + "\n")
    for row in history:
        generation, seconds, best, mean, worst, sigma = row[:6]
        text.write(f"{int(generation)},{seconds:.3f},{best:.6g},{mean:.6g},{worst:.6g},{sigma:.6g}\n")
    data = text.getvalue().encode("utf-8")
    atomic_write(csv_path(run), lambda f: f.write(data))


# ---- checkpoints -----------------------------------------------------------------------------------------------

def _identity(settings: ControllerSettings, shape) -> dict:
    """What a checkpoint must agree on to be resumed by these settings."""
    return {"controller": shape.meta(), "popsize": settings.popsize, "rollouts": settings.rollouts,
            "in_dream": settings.in_dream, "separable": settings.separable}


def _checkpoint(run: Run, settings: ControllerSettings, state: _State, shape) -> None:
    es_arrays, es_meta = state.es.state()
    arrays = {f"es/{name}": value for name, value in es_arrays.items()}
    arrays["history"] = np.asarray(state.history, dtype=np.float64).reshape(-1, len(HISTORY_COLUMNS))
    arrays["evals"] = np.asarray(state.evals, dtype=np.float64).reshape(-1, 2)
    for name in ("population", "rewards", "fitness"):
        if getattr(state, name) is not None:
            arrays[name] = getattr(state, name)
    meta = {"es": es_meta, "rng": generator_state(state.rng), "elapsed": state.elapsed,
            "best_eval": state.best_eval, "best_eval_generation": state.best_eval_generation,
            "identity": _identity(settings, shape), "made_by": state.made_by}
    run.save_checkpoint(STAGE, state.es.generation, arrays, meta)


def models_made_by(run: Run) -> dict[str, str]:
    """Fingerprints of the V and M that C's rollouts use (those on disk)."""
    return {part: model_fingerprint(run.model_path(part)) for part in ("vae", "mdn")
            if run.model_path(part).is_file()}


def _restore(run: Run, settings: ControllerSettings, shape) -> _State:
    engine = SepCMAES if settings.separable else CMAES
    loaded = run.load_checkpoint(STAGE)
    if loaded is None:
        es = engine(np.full(shape.n_params, settings.x0), settings.sigma0, popsize=settings.popsize,
                    mu=settings.mu, seed=settings.seed)
        return _State(es=es, rng=np.random.default_rng([settings.seed, 1]), made_by=models_made_by(run))
    arrays, meta = loaded
    path = run.latest_checkpoint(STAGE)
    if meta.get("identity") != _identity(settings, shape):
        raise CheckpointError(f"{path} belongs to another controller training ({meta.get('identity')}) than these "
                              f"settings ({_identity(settings, shape)}); use another --run folder, or delete "
                              f"{run.checkpoints_dir(STAGE)} to start C over")
    made_by = models_made_by(run)
    changed = changed_parts(meta.get("made_by") or {}, made_by)
    if changed:
        folder = run.checkpoints_dir(STAGE)
        raise CheckpointError(f"{path} was evolved with another {' and '.join(changed)} than the run's now (trained "
                              f"again since): its search means nothing for them. Keep it and start C afresh: "
                              f"mv {folder} {folder}.old")
    try:
        es = engine.from_state(prefixed(arrays, "es/"), meta["es"], source=str(path), n=shape.n_params)
        state = _State(es=es, rng=restore_generator(meta["rng"]), elapsed=float(meta["elapsed"]),
                       best_eval=meta["best_eval"], best_eval_generation=meta["best_eval_generation"],
                       history=arrays["history"].tolist(), evals=arrays["evals"].tolist(),
                       population=arrays.get("population"), rewards=arrays.get("rewards"),
                       fitness=arrays.get("fitness"), made_by=made_by)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} lacks part of the training state ({exc}); delete it to start over") from None
    return state
