"""Training C: what a generation's snapshot carries, common random numbers, metrics files, the best mean kept,
resume after kill -9 equal to the run that was not killed, the dream for Doom, and clear errors."""
import csv
import dataclasses
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.models.controller import load_controller
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import save_model
from wm_studio.core.parallel import make_runner
from wm_studio.core.stages import make_step
from wm_studio.core.train.controller_stage import (CSV_COLUMNS, ControllerSettings, csv_path, train_controller)

TINY = dict(popsize=6, rollouts=2, generations=2, eval_every=2, eval_rollouts=2, max_steps=None,
            eval_max_steps=None)


class RecordingRunner:
    """A serial runner that remembers every task it ran, optionally turning some rewards into NaN."""

    def __init__(self, nan_tasks=()):
        self.runner = make_runner("serial")
        self.tasks, self.nan_tasks = [], set(nan_tasks)

    def run(self, function, tasks, context=None):
        tasks = list(tasks)
        self.tasks.append(tasks)
        for index, result in self.runner.run(function, tasks, context):
            if len(self.tasks) == 1 and index in self.nan_tasks:
                result = dataclasses.replace(result, reward=float("nan"))
            yield index, result


def test_a_generation_yields_fitness_statistics_projection_and_controllers(tiny_run):
    run = tiny_run(episode=12, **TINY, l2=0.5)
    runner = RecordingRunner()
    snapshots = list(train_controller(run, runner=runner))
    assert [s.done for s in snapshots] == [0, 1, 2] and snapshots[-1].finished and not snapshots[0].finished
    last = snapshots[-1]
    assert last.fitness.shape == (6,) and last.rewards.shape == (6, 2) and last.population.shape == (6, 3 * (32 + 16) + 3)
    penalty = 0.5 * np.mean(last.population ** 2, axis=1)
    np.testing.assert_allclose(last.fitness, last.rewards.mean(axis=1) - penalty)
    assert (last.best, last.mean, last.worst) == pytest.approx((last.fitness.max(), last.fitness.mean(),
                                                                last.fitness.min()))
    np.testing.assert_array_equal(last.best_params, last.population[np.argmax(last.fitness)])
    assert last.projection.points.shape == (6, 2) and last.projection.cov2.shape == (2, 2)
    np.testing.assert_allclose(last.projection.points, last.population @ last.projection.basis)
    assert last.sigma > 0 and last.axis_ratio >= 1 and last.steps_per_second > 0
    assert last.history.shape == (2, 8) and list(last.history[:, 0]) == [1, 2]

    # Common random numbers: every candidate of a generation plays the same K seeds; the seeds change each time.
    generations = [runner.tasks[0], runner.tasks[1]]
    for tasks in generations:
        seeds = [[t.seed for t in tasks[p * 2:(p + 1) * 2]] for p in range(6)]
        assert all(s == seeds[0] for s in seeds) and len(set(seeds[0])) == 2
        assert all(t.max_steps == 12 and t.early_stop == 0 for t in tasks)
    assert generations[0][0].seed != generations[1][0].seed
    scoring = runner.tasks[2]                           # generation 2 scores the mean on eval_rollouts
    assert len(scoring) == 2 and all(np.array_equal(t.params, last.mean_params) for t in scoring)

    assert snapshots[1].eval_score is None and last.eval_score is not None
    assert last.best_eval == last.eval_score and last.best_eval_generation == 2
    controller, meta = load_controller(run.model_path("controller"))
    np.testing.assert_allclose(controller.params, last.mean_params, rtol=1e-6, atol=1e-7)
    assert meta["score"] == pytest.approx(last.eval_score) and meta["generation"] == 2

    with open(csv_path(run), newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS == ("generation", "time", "best", "mean", "worst", "sigma")
    assert [int(r["generation"]) for r in rows] == [1, 2]
    assert float(rows[1]["best"]) == pytest.approx(last.best, rel=1e-5)
    assert float(rows[1]["sigma"]) == pytest.approx(last.sigma, rel=1e-5)
    assert float(rows[1]["time"]) >= float(rows[0]["time"]) > 0
    records = run.read_metrics("controller")
    assert [r["generation"] for r in records] == [1, 2] and records[1]["eval_score"] == last.eval_score
    assert "gen 2/2" in last.summary() and "best eval" in last.summary()


def test_nan_rewards_rank_last_and_training_goes_on(tiny_run):
    run = tiny_run(episode=10, **{**TINY, "generations": 1, "eval_every": 5})
    snapshots = list(train_controller(run, runner=RecordingRunner(nan_tasks={0, 1})))   # candidate 0's rollouts
    first = snapshots[1]
    assert np.isnan(first.fitness[0]) and np.isfinite(first.fitness[1:]).all()
    assert first.best == pytest.approx(np.max(first.fitness[1:]))


CHILD = textwrap.dedent("""
    import sys
    from wm_studio.core.runs import Run
    from wm_studio.core.train.controller_stage import train_controller
    for snapshot in train_controller(Run(sys.argv[1]), backend="serial"):
        print(snapshot.done, flush=True)
""")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_as_the_run_that_was_not_killed(tiny_run):
    settings = dict(popsize=4, rollouts=1, generations=6, eval_every=3, eval_rollouts=1)
    killed = tiny_run(name="killed", episode=15, **settings)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(killed.root)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (killed.checkpoints_dir("controller") / "ckpt-000000002.npz").exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    stopped_at = int(killed.latest_checkpoint("controller").stem[len("ckpt-"):])
    assert 2 <= stopped_at < 6

    resumed = list(train_controller(killed, backend="serial"))
    assert resumed[0].note == f"resumed at generation {stopped_at}"
    straight_run = tiny_run(name="straight", episode=15, **settings)
    straight = list(train_controller(straight_run, backend="serial"))
    a, b = resumed[-1], straight[-1]
    columns = [0, 2, 3, 4, 5, 6, 7]                          # all but the wall time
    np.testing.assert_array_equal(a.history[:, columns], b.history[:, columns])
    np.testing.assert_array_equal(a.mean_params, b.mean_params)
    np.testing.assert_array_equal(a.evals, b.evals)
    np.testing.assert_array_equal(load_controller(killed.model_path("controller"))[0].params,
                                  load_controller(straight_run.model_path("controller"))[0].params)
    with open(csv_path(killed)) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == [str(g) for g in range(1, 7)]


def test_doom_trains_in_the_dream(tiny_run):
    run = tiny_run("doom", episode=25, popsize=4, rollouts=2, generations=1, eval_every=1, eval_rollouts=3,
                   in_dream=True, max_steps=None)
    snapshots = list(train_controller(run, backend="serial"))
    last = snapshots[-1]
    assert last.in_dream and last.population.shape == (4, 1 * (4 + 8 + 8))     # one output over [z, h, c]
    assert np.isfinite(last.fitness).all() and (last.rewards >= 0).all() and (last.rewards <= 25).all()
    assert last.rewards.max() > 0
    controller, meta = load_controller(run.model_path("controller"))
    assert controller.shape.game == "doom" and meta["in_dream"] is True and meta["score"] == last.eval_score


def test_a_c_evolved_with_an_earlier_m_is_neither_done_nor_resumed(tiny_run):
    run = tiny_run("doom", episode=10, popsize=4, rollouts=1, generations=1, eval_every=1, eval_rollouts=1,
                   in_dream=True, max_steps=None)
    list(train_controller(run, backend="serial"))
    assert make_step(run, "controller").finished()
    config = run.config
    mdn = MDNRNN(config["z_size"], 2, config["hidden"], predict_done=True, seed=2)      # M trained again
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    assert not make_step(run, "controller").finished()
    run.update_config(controller={**config["controller"], "generations": 2})
    with pytest.raises(CheckpointError, match="evolved with another M .*mv .*checkpoints/controller"):
        next(train_controller(run, backend="serial"))


def test_missing_models_and_unpaid_dreams_are_clear_errors(tiny_run, capsys):
    run = tiny_run(**TINY)
    with pytest.raises(ConfigError, match="no reward or done head"):
        next(train_controller(run, {"in_dream": True}, backend="serial"))
    assert main(["train-controller", "--run", str(run.root), "--in-dream"]) == 2
    assert "leave out --in-dream" in capsys.readouterr().err
    assert "in_dream" not in run.config["controller"] or run.config["controller"]["in_dream"] is False
    run.model_path("vae").unlink()
    assert main(["train-controller", "--run", str(run.root), "--backend", "serial"]) == 2
    assert f"run `wm-studio train-vae --run {run.root}` first" in capsys.readouterr().err
    assert main(["train-controller", "--run", str(run.root / "nowhere")]) == 2
    assert "not a wm_studio run folder" in capsys.readouterr().err
    assert not (run.root / "nowhere").exists()


def test_settings_are_checked(tiny_run):
    with pytest.raises(ConfigError, match="unknown setting.*speed"):
        ControllerSettings.from_config({"controller": {"speed": 3}})
    with pytest.raises(ConfigError, match="popsize"):
        ControllerSettings(popsize=1)
    with pytest.raises(ConfigError, match="inputs"):
        ControllerSettings(inputs="zhc")
    run = tiny_run(episode=5, **{**TINY, "generations": 1, "eval_every": 9})
    list(train_controller(run, backend="serial"))
    with pytest.raises(CheckpointError, match="another controller training"):
        next(train_controller(run, {"inputs": "z", "generations": 2}, backend="serial"))


def test_the_command_trains_records_options_and_resumes(tiny_run, capsys):
    run = tiny_run(episode=8, **TINY)
    assert main(["train-controller", "--run", str(run.root), "--backend", "serial", "--generations", "1",
                 "--popsize", "4", "--mu", "0.5", "--early-stop", "50"]) == 0
    out = capsys.readouterr()
    assert "C (in the real game): gen 1/1" in out.out and "controller written to" in out.out
    assert run.config["controller"]["generations"] == 1 and run.config["controller"]["mu"] == 0.5
    assert main(["train-controller", "--run", str(run.root), "--backend", "serial", "--generations", "2"]) == 0
    assert "gen 2/2" in capsys.readouterr().out
    assert len(run.read_metrics("controller")) == 2


def test_doom_fitness_in_the_dream_differs_between_candidates_on_the_tiny_preset(tiny_run):
    """The tiny preset trains Doom's C in the dream without a step cap: candidates last different numbers of
    steps, so CMA-ES has something to rank (a cap every dream reached gave them all the same fitness)."""
    run = tiny_run("doom", episode=2100, generations=1, sigma0=2.0)   # candidates that act differently
    plant_left_kills(run)
    settings = ControllerSettings.from_config(run.config)
    assert settings.in_dream and settings.max_steps is None and settings.eval_max_steps is None
    last = list(train_controller(run, backend="serial"))[-1]
    assert len(np.unique(last.fitness)) > len(last.fitness) // 2
    assert last.rewards.max() > 1.5 * last.rewards.min()


def plant_left_kills(run):
    """Rewrite the run's M so that pressing left is what kills: LSTM unit 0 adds up the left presses (cell input
    tanh(0.05 left), gates open), and the done logit is 8 h0 - 6 (about 20 presses); the rest of M stays as it was."""
    from wm_studio.core.models.mdnrnn import load_mdn
    from wm_studio.core.models.serialization import save_model
    mdn = load_mdn(run.model_path("mdn"))
    up, lateral, bias = mdn.lstm.upward.W.array, mdn.lstm.lateral.W.array, mdn.lstm.upward.b.array
    up[0:4], lateral[0:4], bias[0:4] = 0.0, 0.0, [0.0, 20.0, 20.0, 20.0]   # unit 0: a, i, f, o
    up[0, mdn.z_size] = 0.05                                                # a = tanh(0.05 left)
    mdn.head.W.array[-1] = 0.0
    mdn.head.W.array[-1, 0] = 8.0
    mdn.head.b.array[-1] = -6.0
    save_model(run.model_path("mdn"), mdn, mdn.meta())


class LosingRunner(RecordingRunner):
    """Says that a worker died with task 0 of the second batch of rollouts (ProcessRunner's record of it)."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def run(self, function, tasks, context=None):
        from wm_studio.core.parallel import Loss
        for index, result in super().run(function, tasks, context):
            if len(self.tasks) == 2 and index == 0:
                self.losses.append(Loss(0, "its worker process died (process 1, exit code -9)", 1, "worker 2"))
            yield index, result


def test_lost_workers_are_counted_in_each_generations_metrics(tiny_run):
    run = tiny_run(episode=12, **{**TINY, "eval_every": 5, "generations": 3})
    list(train_controller(run, runner=LosingRunner()))
    assert [record["lost_workers"] for record in run.read_metrics("controller")] == [0, 1, 0]
