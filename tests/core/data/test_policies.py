"""Random policies: valid game actions, reproducible from the rollout's generator."""
import numpy as np
import pytest

from wm_studio.core.data.policies import POLICIES, make_policy, thumbnail_features, to_game_action
from wm_studio.core.errors import ConfigError

OBS = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(60)]


def actions(name, env, seed):
    policy = make_policy(name, env, np.random.default_rng(seed))
    return np.stack([policy.act(obs) for obs in OBS])


@pytest.mark.parametrize("name", POLICIES)
def test_carracing_actions_are_valid_and_reproducible(name):
    a = actions(name, "carracing", 1)
    assert a.shape == (60, 3) and a.dtype == np.float32
    assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all()
    assert (a[:, 1:] >= 0).all() and (a[:, 1:] <= 1).all()
    np.testing.assert_array_equal(a, actions(name, "carracing", 1))
    assert not np.array_equal(a, actions(name, "carracing", 2))


@pytest.mark.parametrize("name", POLICIES)
def test_doom_actions_press_at_most_one_button(name):
    a = np.concatenate([actions(name, "doom", seed) for seed in range(5)])
    assert a.shape == (300, 2) and set(np.unique(a)) <= {0.0, 1.0}
    assert (a.sum(axis=1) <= 1).all()
    assert a[:, 0].any() and a[:, 1].any()


def test_the_mapping_is_the_papers_controller():
    np.testing.assert_allclose(to_game_action("carracing", np.array([-0.3, -1.0, -0.5])), [-0.3, 0.0, 0.0])
    np.testing.assert_allclose(to_game_action("carracing", np.array([0.2, 0.5, 0.7])), [0.2, 0.75, 0.7])
    assert to_game_action("doom", np.array([-0.5])).tolist() == [1, 0]
    assert to_game_action("doom", np.array([0.0])).tolist() == [0, 0]
    assert to_game_action("doom", np.array([0.9])).tolist() == [0, 1]


def test_brownian_moves_in_small_steps_and_sticky_holds():
    steer = actions("brownian", "carracing", 3)[:, 0]
    assert np.abs(np.diff(steer)).max() < 1.0 and np.abs(np.diff(steer)).mean() < 0.3
    held = actions("sticky", "carracing", 3)
    repeats = (np.abs(np.diff(held, axis=0)).sum(axis=1) == 0).mean()
    assert repeats > 0.5


def hold_lengths(name, seed, steps=20_000):
    policy = make_policy(name, "carracing", np.random.default_rng(seed))
    raw = np.stack([policy.act(OBS[0]) for _ in range(steps)])
    changes = np.flatnonzero(np.any(raw[1:] != raw[:-1], axis=1))
    return np.diff(changes)


def test_long_sticky_holds_for_hundreds_of_steps_as_early_controllers_do():
    short, long = hold_lengths("sticky", 0), hold_lengths("long-sticky", 0)
    assert short.max() <= 20
    assert long.max() <= 300 and (long >= 100).mean() > 0.15     # log-uniform on 1..300: about 19% of holds
    assert (long < 17).mean() > 0.35                                # and short holds as well


def test_random_weights_react_to_the_frame():
    policy = make_policy("random-weights", "carracing", np.random.default_rng(0))
    outputs = {tuple(policy.act(obs)) for obs in OBS[:10]}
    assert len(outputs) > 1  # a function of the frame, not a constant
    assert np.allclose(policy.act(OBS[0]), policy.act(OBS[0]))  # and of nothing else
    f = thumbnail_features(OBS[0])
    assert f.shape == (64,) and abs(f.mean()) < 1e-9


def test_unknown_policy_or_game():
    with pytest.raises(ConfigError, match="brownian"):
        make_policy("greedy", "carracing", np.random.default_rng(0))
    with pytest.raises(ConfigError):
        make_policy("sticky", "pong", np.random.default_rng(0))
