"""The real games behind one API: CarRacing (gym, Box2D) and Doom Take Cover (vizdoom), headless."""
import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wm_studio.core.envs import make_env
from wm_studio.core.envs.carracing import clip_action
from wm_studio.core.envs.doom import buttons
from wm_studio.core.envs.preprocess import preprocess_carracing, preprocess_doom
from wm_studio.core.errors import ConfigError

from beside_blas import beside_blas

GAS = np.array([0.0, 1.0, 0.0], np.float32)


def play(env, actions, seed):
    obs, info = env.reset(seed=seed)
    observations, frames, rewards = [obs], [info["frame"]], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        frames.append(info["frame"])
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.stack(observations), np.stack(frames), np.array(rewards)


@contextlib.contextmanager
def opened(name, **options):
    env = make_env(name, **options)
    try:
        yield env
    finally:
        env.close()


def game_fixture(name):
    """A module-wide game, closed at the end."""
    @pytest.fixture(scope="module")
    def game():
        with opened(name) as env:
            yield env
    return game


car = game_fixture("carracing")
doom = game_fixture("doom")


def test_carracing_shapes_and_types(car):
    obs, info = car.reset(seed=3)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["frame"].shape == (96, 96, 3) and info["frame"].dtype == np.uint8
    assert car.action_size == 3 and car.max_steps == 1000
    obs, reward, terminated, truncated, info = car.step(GAS)
    assert obs.shape == (64, 64, 3) and isinstance(reward, float)
    assert terminated is False and truncated is False


def test_carracing_observation_is_the_frame_without_its_dashboard(car):
    car.reset(seed=4)
    for _ in range(60):  # past the zoom-in, driving: the dashboard shows speed
        obs, _, _, _, info = car.step(GAS)
    frame = info["frame"]
    np.testing.assert_array_equal(obs, preprocess_carracing(frame))
    dashboard = frame[84:]
    assert dashboard.reshape(-1, 3).mean(axis=0).max() < 60      # mostly black with coloured bars
    assert frame[:84].mean() > 2 * dashboard.mean()              # the road above is bright
    assert obs[-6:].mean() > 2 * dashboard.mean()                # and the bottom of the obs is road, not dashboard


def test_carracing_same_seed_same_episode(car):
    actions = [GAS, np.array([0.5, 0.5, 0.0])] * 10
    first = play(car, actions, seed=11)
    with opened("carracing") as other:
        second = play(other, actions, seed=11)
        different = play(other, actions, seed=12)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], different[1])


@pytest.mark.parametrize("seed", [3, 1234])
def test_carracing_draws_every_frame_as_gym_does_pixel_for_pixel(seed):
    """Our CarRacing draws the road from numpy arrays (faster); the frames must be gym's own, pixel for pixel, the
    zoom of the first second, tiles the car has touched (they change colour) and a spin off the road included."""
    from wm_studio.core.envs.carracing import fast_car_racing_class, gym_car_racing_class
    stock, fast = gym_car_racing_class()(verbose=False), fast_car_racing_class()(verbose=False)
    try:
        first, _ = stock.reset(seed=seed)
        np.testing.assert_array_equal(fast.reset(seed=seed)[0], first)
        rng = np.random.default_rng(seed)
        for step in range(160):
            steer = 1.0 if step > 120 else rng.uniform(-1, 1)
            action = np.array([steer, rng.uniform(0.3, 1), 0.0], np.float32)
            expected, reward, *_ = stock.step(action)
            frame, fast_reward, *_ = fast.step(action)
            assert np.array_equal(frame, expected), f"step {step}"
            assert fast_reward == reward
        assert stock.tile_visited_count > 5
    finally:
        stock.close()
        fast.close()


def test_make_env_seed_is_used_by_the_first_reset():
    with opened("carracing", seed=21) as a, opened("carracing", seed=21) as b:
        np.testing.assert_array_equal(a.reset()[1]["frame"], b.reset()[1]["frame"])
        np.testing.assert_array_equal(a.reset(seed=5)[1]["frame"], b.reset(seed=5)[1]["frame"])


def test_carracing_actions_are_clipped(car):
    np.testing.assert_array_equal(clip_action([5, -3, 9]), [1, 0, 1])
    np.testing.assert_array_equal(clip_action([np.nan, 0.5, -1]), [0, 0.5, 0])
    wild = play(car, [np.array([7.0, 3.0, -2.0])] * 15, seed=2)
    tame = play(car, [np.array([1.0, 1.0, 0.0])] * 15, seed=2)
    for a, b in zip(wild, tame):
        np.testing.assert_array_equal(a, b)


def test_carracing_max_steps_truncates():
    with opened("carracing", seed=1, max_steps=5) as env:
        env.reset()
        flags = [env.step(GAS)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_doom_shapes_reward_and_buttons(doom):
    obs, info = doom.reset(seed=7)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["frame"].shape == (240, 320, 3)
    np.testing.assert_array_equal(obs, preprocess_doom(info["frame"]))
    assert doom.action_size == 2 and doom.max_steps == 2100
    rewards = [doom.step([0, 0])[1] for _ in range(10)]
    assert rewards == [1.0] * 10  # paid per step alive
    np.testing.assert_array_equal(buttons([0.9, 0.1]), [1, 0])
    np.testing.assert_array_equal(buttons([np.nan, 1]), [0, 1])


def test_doom_same_seed_same_episode_and_buttons_move_the_player(doom):
    left = [np.array([1.0, 0.0])] * 20
    first = play(doom, left, seed=9)
    second = play(doom, left, seed=9)
    right = play(doom, [np.array([0.0, 1.0])] * 20, seed=9)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1][-1], right[1][-1])


def test_unknown_game():
    with pytest.raises(ConfigError, match="carracing, doom"):
        make_env("pong")


def run_python(script):
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER",
                                                             "PYGAME_HIDE_SUPPORT_PROMPT")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, timeout=120)


BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
"""


def run_blocked(blocked, script):
    """Run script in a fresh Python where importing any of `blocked` fails as if it were not installed."""
    return run_python(f"BLOCKED = {tuple(blocked)!r}\n" + BLOCKER + textwrap.dedent(script))


def test_a_missing_doom_extra_names_the_install_command(tmp_path):
    result = run_blocked(["vizdoom"], f"""
    from wm_studio.cli import main
    raise SystemExit(main(["collect", "--run", {str(tmp_path / "run")!r}, "--env", "doom", "--workers", "1"]))
    """)
    assert result.returncode == 2, result.stderr
    assert "Doom Take Cover needs the doom extra" in result.stderr
    assert 'pip install -e ".[doom]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_box2d_is_a_clear_error():
    result = run_blocked(["Box2D"], """
    from wm_studio.core.envs import make_env
    from wm_studio.core.errors import MissingDependencyError
    try:
        make_env("carracing")
    except MissingDependencyError as exc:
        print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "CarRacing needs gym 0.26.2 with Box2D" in result.stdout and "pip install" in result.stdout


def test_carracing_is_headless_and_quiet():
    result = run_python("""
    import os
    from wm_studio.core.envs import make_env
    env = make_env("carracing", seed=0)
    env.reset()
    env.step([0, 1, 0])
    env.close()
    print(os.environ["SDL_VIDEODRIVER"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dummy"]
    assert "unmaintained" not in result.stderr and "Warning" not in result.stderr, result.stderr


DOOM_BESIDE_BLAS = """
from wm_studio.core.envs import make_env

for seed in range(6):
    env = make_env("doom")
    env.reset(seed=seed)
    env.step(np.array([1, 0], np.float32))
    env.close()
print("done", type(env).__name__)
"""


@pytest.mark.slow
def test_a_doom_game_starts_beside_a_thread_in_blas(tmp_path):
    """vizdoom forks its engine; beside a thread inside a matrix product the fork hung for good (OpenBLAS's fork
    handler). make_env plays Doom in a spawned process of its own wherever that can happen."""
    pytest.importorskip("vizdoom")
    script = tmp_path / "doom_beside_blas.py"
    script.write_text(beside_blas(DOOM_BESIDE_BLAS, dump_after=100))
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    env.pop("OPENBLAS_NUM_THREADS", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0 and "done IsolatedGame" in done.stdout, done.stderr[-3000:]


@pytest.mark.slow
def test_an_isolated_doom_game_plays_the_same_episode_and_ends_its_process():
    pytest.importorskip("vizdoom")
    direct, isolated = make_env("doom", isolated=False), make_env("doom", isolated=True)
    try:
        assert (isolated.name, isolated.action_size, isolated.max_steps) == ("doom", 2, 2100)
        for env in (direct, isolated):
            env.reset(seed=11)
        for step in range(30):
            action = np.array([step % 10 < 5, step % 10 >= 5], np.float32)
            a, b = direct.step(action), isolated.step(action)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[4]["frame"], b[4]["frame"])
            assert a[1:4] == b[1:4]
    finally:
        direct.close()
        process = isolated._process
        isolated.close()
    assert not process.is_alive()
