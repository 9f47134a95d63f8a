"""The Controller pane's core: an episode step by step equals rollout.play() (controller and random policy), its
snapshots carry what the pane draws, and the scores hold N values per policy (dream scores where M can give
them, a clear note where it cannot)."""
import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.train.episode import dream_note, dream_scores, play_episode, score_controller
from wm_studio.core.train.rollout import RolloutTask, dream_spec, game_spec, play


def with_controller(run, inputs="zh"):
    spec = game_spec(run, inputs)
    controller = Controller(spec.shape, np.random.default_rng(0).normal(0, 0.3, spec.shape.n_params))
    if spec.shape.game == "carracing":
        controller.bias[:] = [0.0, 0.6, -1.0]                  # some gas, no brake: it drives
    save_controller(run.model_path("controller"), controller, {"score": 1.0})
    return spec, controller


@pytest.mark.parametrize("policy", ["controller", "random"])
def test_an_episode_step_by_step_is_the_rollout_the_trainer_plays(tiny_run, policy):
    run = tiny_run(episode=12)
    spec, controller = with_controller(run)
    steps = list(play_episode(run, seed=5, policy=policy))
    world = spec.load()
    try:
        expected = play(world, RolloutTask(controller.params if policy == "controller" else None, 5, 12))
    finally:
        world.close()
    assert len(steps) == expected.steps == 12
    assert steps[-1].total_reward == pytest.approx(expected.reward, rel=1e-6)
    np.testing.assert_allclose(np.cumsum(steps[-1].rewards)[-1], expected.reward, rtol=1e-6)
    last = steps[-1]
    assert [s.done for s in steps] == list(range(1, 13)) and last.total == 12 and last.finished
    assert last.frame.shape == (96, 96, 3) and last.observation.shape == (64, 64, 3)
    assert last.reconstruction.shape == (64, 64, 3) and last.reconstruction.dtype == np.uint8
    assert last.z.shape == (32,) and last.h.shape == (16,) and last.action.shape == (3,)
    assert np.abs(steps[0].h).max() == 0 and np.abs(last.h).max() > 0          # M's state moves from zero
    assert 0 <= last.action[1] <= 1 and 0 <= last.action[2] <= 1               # gas and brake in [0, 1]
    if policy == "controller":
        np.testing.assert_allclose(last.raw_action, controller.raw_output(last.z[None], last.h[None])[0], atol=1e-6)
    assert len({s.frame.tobytes() for s in steps}) > 1                          # the game moves


def test_an_episode_can_be_cut_short_and_without_reconstructions(tiny_run):
    run = tiny_run(episode=30)
    with_controller(run)
    steps = list(play_episode(run, seed=1, max_steps=4, reconstruct=False))
    assert len(steps) == 4 and steps[-1].total == 4 and steps[0].reconstruction is None


def test_the_controller_policy_needs_a_controller_and_names_the_command(tiny_run):
    run = tiny_run()
    with pytest.raises(CheckpointError, match="train-controller"):
        next(play_episode(run, seed=0))
    with pytest.raises(ConfigError, match="unknown policy"):
        next(play_episode(run, seed=0, policy="greedy"))
    assert next(play_episode(run, seed=0, policy="random")).h is not None      # the random drive needs no C


def test_scores_hold_n_values_per_policy_and_say_why_carracing_has_no_dream_score(tiny_run):
    run = tiny_run(episode=6)
    with_controller(run)
    snapshots = list(score_controller(run, episodes=3, seed=2, backend="serial"))
    assert [s.done for s in snapshots] == [0, 1, 2, 3, 4, 5, 6, 6] and snapshots[0].total == 6
    last = snapshots[-1]
    assert last.phase == "done" and len(last.real.controller_rewards) == 3 and len(last.real.random_rewards) == 3
    assert last.dream_controller is None and "M predicts no reward" in last.dream_note
    assert "dream score not defined for carracing" in dream_note(run)


def test_doom_dream_scores_are_steps_survived_per_policy(tiny_run):
    run = tiny_run("doom", episode=25)
    spec = dream_spec(run, "zh", 1.15)
    params = np.random.default_rng(3).normal(0, 1.0, spec.shape.n_params)
    assert dream_note(run) == ""
    seeds = np.array([11, 12, 13, 14])
    ours = dream_scores(run, params, "zh", seeds, tau=1.15)
    again = dream_scores(run, params, "zh", seeds, tau=1.15)
    np.testing.assert_array_equal(ours, again)                                   # a function of the seeds
    assert ours.shape == (4,) and ((ours >= 0) & (ours <= 25)).all() and (ours == np.round(ours)).all()
    assert not np.array_equal(ours, dream_scores(run, params, "zh", seeds + 1, tau=1.15)) or ours.min() == 25
    theirs = dream_scores(run, None, "zh", seeds, tau=1.15)
    assert theirs.shape == (4,) and ((theirs >= 0) & (theirs <= 25)).all()
