"""The paper's temperature table for Doom: C's score in M's dream at each temperature tau, and in the real game.

    for snapshot in tau_table(run, taus=TAUS, dreams=1024, episodes=100):   # progress, then the table
        ...
    print("\n".join(snapshot.table.lines()))

Low tau makes the dream easier than the game (fewer fireballs, a calmer M), and a C trained there exploits it and
fails for real; high tau makes the dream harder than the game. Each row scores one C: the one trained at that
tau when `controllers` names it ({tau: path to a controller.npz}), else the run's own C (trained at the run's
tau). Every C plays the same `episodes` real episodes (seeds from `seed`, as `wm-studio evaluate`), and
`dreams` dreams at the row's tau (starts and noise from `seed`, as the Controller pane's dream score); the random
policy is scored the same way at every tau. Scores are steps survived (the cap is the game's 2,100).
The table goes to RUN/metrics/tau_table.json (not in a bundle, which is read-only) and to `out` when given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from wm_studio.core.errors import ConfigError
from wm_studio.core.files import save_json
from wm_studio.core.models.controller import Controller, load_controller
from wm_studio.core.parallel import make_runner
from wm_studio.core.runs import Run, output_file
from wm_studio.core.train.controller_stage import ControllerSettings, episode_steps
from wm_studio.core.train.evaluate import controller_path, evaluation_seeds
from wm_studio.core.train.rollout import GameEvaluator, dream, dream_spec, dream_tasks, game_spec

TAUS = (0.1, 0.5, 1.0, 1.15, 1.3)
TABLE_FILE = "tau_table.json"
DREAM_SEED_TAG = 11          # keeps the dreams' seeds apart from the real episodes'


@dataclass(frozen=True)
class Scores:
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values) -> "Scores":
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()), float(values.min()), float(values.max()))

    def text(self) -> str:
        return f"{self.mean:.0f} +- {self.std:.0f}"


@dataclass(frozen=True)
class TauRow:
    tau: float
    controller: str             # where the row's C comes from
    trained_tau: float | None   # the temperature it was trained at, when known
    dream: Scores
    real: Scores


@dataclass(frozen=True)
class TauTable:
    rows: tuple[TauRow, ...]
    random_dream: dict          # tau -> Scores of the random policy in the dream
    random_real: Scores
    dreams: int
    episodes: int
    seed: int

    def lines(self) -> list[str]:
        lines = [f"{'tau':>5}  {'C trained at':>12}  {'dream score':>14}  {'real score':>14}  "
                 f"{'real min-max':>12}  {'random in dream':>15}"]
        for row in self.rows:
            trained = "?" if row.trained_tau is None else f"{row.trained_tau:g}"
            lines.append(f"{row.tau:>5g}  {trained:>12}  {row.dream.text():>14}  {row.real.text():>14}  "
                         f"{f'{row.real.low:.0f}-{row.real.high:.0f}':>12}  "
                         f"{self.random_dream[row.tau].text():>15}")
        lines.append(f"random policy in the real game: {self.random_real.text()} (min {self.random_real.low:.0f}, "
                     f"max {self.random_real.high:.0f}); {self.episodes} real episodes and {self.dreams} dreams "
                     f"per score")
        return lines

    def record(self) -> dict:
        def scores(s: Scores) -> dict:
            return {"mean": s.mean, "std": s.std, "min": s.low, "max": s.high}
        return {"time": time.time(), "dreams": self.dreams, "episodes": self.episodes, "seed": self.seed,
                "rows": [{"tau": r.tau, "controller": r.controller, "trained_tau": r.trained_tau,
                          "dream": scores(r.dream), "real": scores(r.real),
                          "random_dream": scores(self.random_dream[r.tau])} for r in self.rows],
                "random_real": scores(self.random_real)}


@dataclass(frozen=True)
class TauTableSnapshot:
    done: int                   # scores finished (one per controller in the real game, one per dream set)
    total: int
    note: str = ""
    table: TauTable | None = None

    def summary(self) -> str:
        return self.note


def tau_table(run: Run, taus=TAUS, dreams: int = 1024, episodes: int = 100, seed: int = 0,
              controllers: Mapping[float, str] | None = None, out=None, backend: str | None = None,
              workers: int | None = None, cluster: str | None = None) -> Iterator[TauTableSnapshot]:
    """Score the run's C (or the Cs trained at each tau) in the dream and in the real game; see the module."""
    taus = tuple(float(t) for t in taus)
    if not taus or any(not (np.isfinite(t) and t >= 0) for t in taus):
        raise ConfigError(f"temperatures must be numbers >= 0, not {taus}")
    if dreams < 1 or episodes < 1:
        raise ConfigError(f"dreams and episodes must be at least 1 (got {dreams} and {episodes})")
    out = None if out is None else output_file(out)
    own_tau = ControllerSettings.from_config(run.config).tau
    chosen = {tau: _controller_for(run, tau, (controllers or {}).get(tau), own_tau) for tau in taus}
    sources = list(dict.fromkeys(source for source, _, _ in chosen.values()))
    total = len(sources) + 1 + 2 * len(taus)
    done = 0
    yield TauTableSnapshot(done, total, "real game")

    real_seeds = evaluation_seeds(seed, episodes)
    steps = episode_steps(run.config)
    real: dict[str, Scores] = {}
    controllers_by_source = {source: controller for source, _, controller in chosen.values()}
    some = next(iter(controllers_by_source.values()))
    with make_runner(backend or ("dask" if cluster else "processes"), workers, cluster=cluster) as runner:
        evaluator = GameEvaluator(runner, game_spec(run, some.shape.inputs))
        for source in sources:
            rewards, _ = evaluator.evaluate(controllers_by_source[source].params, real_seeds, steps)
            real[source] = Scores.of(rewards[0])
            done += 1
            yield TauTableSnapshot(done, total, f"real game: {source} {real[source].text()}")
        random_real = Scores.of(random_real_rewards(evaluator, real_seeds, steps))
    done += 1
    yield TauTableSnapshot(done, total, f"real game: random policy {random_real.text()}")

    dream_seeds = evaluation_seeds(seed + DREAM_SEED_TAG, dreams)
    rows, random_dream = [], {}
    for tau in taus:
        source, trained, controller = chosen[tau]
        world = dream_spec(run, controller.shape.inputs, tau).load()
        ours = Scores.of(dream_rewards(world, controller.params, dream_seeds, steps)[0])
        done += 1
        yield TauTableSnapshot(done, total, f"dream at tau {tau:g}: {ours.text()}")
        random_dream[tau] = Scores.of(dream_rewards(world, None, dream_seeds, steps)[0])
        done += 1
        rows.append(TauRow(tau, source, trained, ours, real[source]))
        yield TauTableSnapshot(done, total, f"dream at tau {tau:g}: random {random_dream[tau].text()}")

    table = TauTable(tuple(rows), random_dream, random_real, dreams, episodes, seed)
    if not run.read_only:
        save_json(table_path(run), table.record())
    if out is not None:
        save_json(out, table.record())
    yield TauTableSnapshot(total, total, "done", table)


def _controller_for(run: Run, tau: float, path, own_tau: float) -> tuple[str, float | None, Controller]:
    if path is None:
        path = controller_path(run)
        controller, meta = load_controller(path)
        return "the run's C", meta.get("tau", own_tau), controller
    controller, meta = load_controller(path)
    return str(path), meta.get("tau", tau), controller


def random_real_rewards(evaluator: GameEvaluator, seeds, steps: int) -> np.ndarray:
    """The random policy's total reward in each real episode of `seeds`."""
    from wm_studio.core.train.rollout import RolloutTask, play
    tasks = [RolloutTask(None, int(s), steps) for s in seeds]
    rewards = np.full(len(tasks), np.nan)
    for index, result in evaluator.runner.run(play, tasks, evaluator.spec):
        rewards[index] = result.reward
    return rewards


def dream_rewards(world, params, seeds, steps: int) -> np.ndarray:
    """(P, K) steps survived by P controllers (rows of params; one: a flat vector; None: the random policy) in
    the K dreams of `seeds`, all in one batch."""
    rows = None if params is None else np.atleast_2d(np.asarray(params, dtype=np.float64))
    (task,) = dream_tasks(rows, seeds, steps)
    return dream(world, task)[0].reshape(-1, len(seeds))


def table_path(run: Run) -> Path:
    return run.root / "metrics" / TABLE_FILE
