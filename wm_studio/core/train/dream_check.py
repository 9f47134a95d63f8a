"""Does M's dream rank policies as the real game does? The check to run before training C in the dream.

    check = dream_check(run, dreams=256, episodes=12)
    print("\\n".join(check.lines()))          # one row a policy: dream score beside real score
    check.rank_agreement                      # Spearman's rank correlation of the two columns

A C trained in the dream learns whatever the dream rewards. If M's dream keeps a policy alive that the game kills
quickly, CMA-ES finds that policy within a few generations and the C it returns fails in the game. The simplest
policies show it before any C is trained: standing still, holding left, holding right (C's output held at 0, -1
or +1, read in thirds as none / left / right), the random policy, and the run's own C when it has one. All
policies meet the same dreams (the same starts and random numbers) and the same real episodes. Each scores `dreams` dreams at the temperature tau (the run's C's by default) and `episodes`
real episodes. A dream fit to train C in ranks them as the game does (rank agreement near 1); Doom's first M
scored "hold right" at 1,302 steps in the dream and 161 in the game. Needs an M with a done head (Doom).
The check goes to RUN/metrics/dream_check.json (not in a bundle, which is read-only).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wm_studio.core.errors import ConfigError
from wm_studio.core.files import save_json
from wm_studio.core.envs import make_env
from wm_studio.core.models.controller import ControllerShape, load_controller, to_game_action
from wm_studio.core.parallel import make_runner
from wm_studio.core.runs import Run
from wm_studio.core.train.controller_stage import ControllerSettings, episode_steps
from wm_studio.core.train.evaluate import evaluation_seeds
from wm_studio.core.train.rollout import GameEvaluator, dream_spec, dream_tasks, dream_with, game_spec
from wm_studio.core.train.tau_table import Scores, dream_rewards, random_real_rewards

CHECK_FILE = "dream_check.json"
FIXED_POLICIES = (("stand still", 0.0), ("hold left", -1.0), ("hold right", 1.0))   # C's output
RANDOM = "random policy"
DREAM_SEED_TAG = 13          # keeps the dreams' seeds apart from the real episodes'


@dataclass(frozen=True)
class CheckRow:
    policy: str
    dream: Scores
    real: Scores


@dataclass(frozen=True)
class DreamCheck:
    rows: tuple[CheckRow, ...]
    tau: float
    dreams: int
    episodes: int

    @property
    def rank_agreement(self) -> float:
        """Spearman's rank correlation between the dream's and the game's mean scores (1: the same order)."""
        dream = np.argsort(np.argsort([row.dream.mean for row in self.rows]))
        real = np.argsort(np.argsort([row.real.mean for row in self.rows]))
        return float(np.corrcoef(dream, real)[0, 1])

    def lines(self) -> list[str]:
        lines = [f"{'policy':<16}  {'dream score':>14}  {'real score':>14}  {'dream / real':>12}"]
        lines += [f"{row.policy:<16}  {row.dream.text():>14}  {row.real.text():>14}  "
                  f"{row.dream.mean / max(row.real.mean, 1e-9):>12.2f}" for row in self.rows]
        lines.append(f"rank agreement {self.rank_agreement:+.2f} (1: the dream orders the policies as the game "
                     f"does); tau {self.tau:g}, {self.dreams} dreams and {self.episodes} real episodes a policy")
        return lines

    def record(self) -> dict:
        return {"time": time.time(), "tau": self.tau, "dreams": self.dreams, "episodes": self.episodes,
                "rank_agreement": self.rank_agreement,
                "rows": [{"policy": row.policy,
                          "dream": {"mean": row.dream.mean, "std": row.dream.std},
                          "real": {"mean": row.real.mean, "std": row.real.std}} for row in self.rows]}


class FixedActor:
    """Every row plays the same action, whatever it sees (run_dreams' actor)."""

    def __init__(self, action: np.ndarray, rows: int):
        self.action, self.rows = np.asarray(action, dtype=np.float32), rows

    def act(self, z, h=None, c=None) -> np.ndarray:
        return np.tile(self.action, (self.rows, 1))

    def keep(self, mask) -> None:
        self.rows = int(np.count_nonzero(mask))


def fixed_action(game: str, output: float) -> np.ndarray:
    """The game's action when C's every output is `output`."""
    outputs = ControllerShape(game, 1, 1).outputs
    return to_game_action(game, np.full((1, outputs), output))[0]


def dream_check(run: Run, dreams: int = 256, episodes: int = 12, seed: int = 0, tau: float | None = None,
                backend: str | None = None, workers: int | None = None) -> DreamCheck:
    """Score the fixed policies, the random policy and the run's C (when it has one) in the dream and the game."""
    if dreams < 1 or episodes < 1:
        raise ConfigError(f"dreams and episodes must be at least 1 (got {dreams} and {episodes})")
    game = run.config.get("env", "carracing")
    tau = ControllerSettings.from_config(run.config).tau if tau is None else float(tau)
    controller = _trained_controller(run)
    inputs = controller.shape.inputs if controller is not None else "zh"
    world = dream_spec(run, inputs, tau).load()       # refuses an M without a done head, in one line
    steps = episode_steps(run.config)
    dream_seeds, real_seeds = evaluation_seeds(seed + DREAM_SEED_TAG, dreams), evaluation_seeds(seed, episodes)
    (task,) = dream_tasks(None, dream_seeds, steps)          # the dreams every policy meets
    rows = []
    for name, output in FIXED_POLICIES:
        action = fixed_action(game, output)
        dreamt = dream_with(world, task, FixedActor(action, dreams))
        rows.append(CheckRow(name, Scores.of(dreamt), Scores.of(_play_fixed(game, action, real_seeds, steps))))
    with make_runner(backend or "processes", workers) as runner:
        evaluator = GameEvaluator(runner, game_spec(run, inputs))
        rows.append(CheckRow(RANDOM, Scores.of(dream_rewards(world, None, dream_seeds, steps)[0]),
                             Scores.of(random_real_rewards(evaluator, real_seeds, steps))))
        if controller is not None:
            rows.append(CheckRow("the run's C", Scores.of(dream_rewards(world, controller.params, dream_seeds,
                                                                         steps)[0]),
                                 Scores.of(evaluator.evaluate(controller.params, real_seeds, steps)[0][0])))
    check = DreamCheck(tuple(rows), tau, dreams, episodes)
    if not run.read_only:
        save_json(check_path(run), check.record())
    return check


def _trained_controller(run: Run):
    path = run.model_path("controller")
    return load_controller(path)[0] if path.is_file() else None


def _play_fixed(game: str, action: np.ndarray, seeds, steps: int) -> np.ndarray:
    """Total reward of each real episode of `seeds` played with one action throughout."""
    env = make_env(game, max_steps=steps)
    try:
        totals = []
        for seed in seeds:
            env.reset(seed=int(seed))
            total, over = 0.0, False
            while not over:
                _, reward, terminated, truncated, _ = env.step(action)
                total += reward
                over = terminated or truncated
            totals.append(total)
        return np.asarray(totals)
    finally:
        env.close()


def check_path(run: Run) -> Path:
    return run.root / "metrics" / CHECK_FILE
