"""`wm-studio evaluate`: the controller and a random policy on the same tracks, mean +- std, a recording with one
frame per step plus the start, and a clear error without a controller."""
import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.export import read_animation
from wm_studio.core.files import load_json
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.train.evaluate import evaluate, evaluation_seeds
from wm_studio.core.train.rollout import RolloutTask, game_spec, play


def with_controller(run):
    spec = game_spec(run)
    controller = Controller(spec.shape, np.random.default_rng(0).normal(0, 0.3, spec.shape.n_params))
    controller.bias[:] = [0.0, 0.6, -1.0]                  # some gas, no brake: it drives
    save_controller(run.model_path("controller"), controller, {"score": 1.0, "generation": 3})
    return spec, controller


def test_the_controller_and_the_random_policy_play_the_same_full_episodes(tiny_run):
    run = tiny_run(episode=15)
    spec, controller = with_controller(run)
    snapshots = list(evaluate(run, episodes=3, seed=4, backend="serial"))
    assert [s.done for s in snapshots] == [0, 1, 2, 3, 4, 5, 6, 6] and snapshots[-1].total == 6
    report = snapshots[-1].report
    seeds = evaluation_seeds(4, 3)
    np.testing.assert_array_equal(report.seeds, seeds)
    assert len(set(seeds)) == 3 and not np.array_equal(seeds, evaluation_seeds(5, 3))
    world = spec.load()
    try:
        expected = [play(world, RolloutTask(controller.params, int(s), 15)) for s in seeds]
        random = [play(world, RolloutTask(None, int(s), 15)) for s in seeds]
    finally:
        world.close()
    np.testing.assert_allclose(report.controller_rewards, [r.reward for r in expected], rtol=1e-6)
    np.testing.assert_allclose(report.random_rewards, [r.reward for r in random], rtol=1e-6)
    assert (report.controller_steps == 15).all() and (report.random_steps == 15).all()
    assert report.difference == pytest.approx(np.mean(report.controller_rewards) - np.mean(report.random_rewards))
    lines = report.lines()
    assert lines[0].startswith(f"controller: {report.controller_rewards.mean():.1f} +- "
                               f"{report.controller_rewards.std():.1f} over 3 episodes")
    assert lines[1].startswith("random policy: ") and lines[2] == f"difference: {report.difference:+.1f}"
    saved = load_json(run.root / "metrics" / "evaluation.json")
    assert saved["episodes"] == 3 and saved["seed"] == 4
    assert saved["controller_rewards"] == pytest.approx(report.controller_rewards.tolist())
    assert saved["random_mean"] == pytest.approx(report.random_rewards.mean())


@pytest.mark.slow
def test_the_command_prints_both_scores_and_records_a_playable_file(tiny_run, tmp_path, capsys):
    run = tiny_run(episode=12)
    with_controller(run)
    movie = tmp_path / "drive.mp4"
    assert main(["evaluate", "--run", str(run.root), "--episodes", "2", "--record", str(movie), "--scale", "2",
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "controller: " in out and "+- " in out and "random policy: " in out and "difference: " in out
    assert f"recorded the controller's first episode (13 frames) to {movie}" in out
    frames = read_animation(movie)
    assert len(frames) == 13 and frames[0].shape == (192, 192, 3)          # 12 steps + the start, 96x96 x 2
    gif = tmp_path / "drive.gif"
    assert main(["evaluate", "--run", str(run.root), "--episodes", "1", "--record", str(gif),
                 "--backend", "serial"]) == 0
    assert read_animation(gif)[0].shape == (288, 288, 3)


def test_without_a_controller_the_error_names_the_command(tiny_run, capsys):
    run = tiny_run()
    with pytest.raises(CheckpointError, match=f"run `wm-studio train-controller --run {run.root}` first"):
        next(evaluate(run, episodes=1))
    assert main(["evaluate", "--run", str(run.root)]) == 2
    assert "train-controller" in capsys.readouterr().err
    with_controller(run)
    with pytest.raises(ConfigError, match="gif or .mp4"):
        next(evaluate(run, episodes=1, record="out.avi"))
    with pytest.raises(ConfigError, match="episodes"):
        next(evaluate(run, episodes=0))


@pytest.mark.slow
def test_doom_is_evaluated_as_carracing_is_steps_survived_on_the_same_seeds(tmp_path, capsys):
    """The same command, flags and backends for Doom: the score is the steps survived in Take Cover (1 a step),
    the seeds pick the episodes, and processes and serial give the same scores."""
    pytest.importorskip("vizdoom")
    from tests.tiny_run import make_run
    run = make_run(tmp_path / "doom", game="doom", rollouts=1, steps=8)
    serial = list(evaluate(run, episodes=2, seed=5, backend="serial"))[-1].report
    assert serial.game == "doom" and (serial.controller_rewards == serial.controller_steps).all()
    assert (serial.random_rewards == serial.random_steps).all() and serial.random_steps.min() > 10
    movie = tmp_path / "doom.mp4"
    assert main(["evaluate", "--run", str(run.root), "--episodes", "2", "--seed", "5", "--workers", "2",
                 "--record", str(movie), "--scale", "1"]) == 0
    saved = load_json(run.root / "metrics" / "evaluation.json")
    assert saved["controller_rewards"] == serial.controller_rewards.tolist()
    assert saved["random_rewards"] == serial.random_rewards.tolist()
    frames = read_animation(movie)
    assert len(frames) == serial.controller_steps[0] + 1 and frames[0].shape == (240, 320, 3)
