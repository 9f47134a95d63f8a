"""Controller rollouts: the numpy V/M path equals the Chainer models, rollouts are functions of (params, seed), the
same generation gives the same fitness on every backend (a worker killed mid-generation included), the heavy
state is loaded once per worker, and missing or unfit models fail clearly."""
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.models.controller import Controller
from wm_studio.core.models.mdnrnn import MDNRNN, LSTMState
from wm_studio.core.models.serialization import model_arrays
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.parallel import make_runner
from wm_studio.core.train.inference import LeanEncoder, LeanLSTM
from wm_studio.core.train.rollout import (DreamEvaluator, GameEvaluator, GameSpec, RolloutTask, dream_spec,
                                          game_spec, play)


@pytest.mark.parametrize("fast_cpu", [True, False])
def test_the_numpy_encoder_gives_the_vaes_mean_latent(fast_cpu):
    import chainer
    from wm_studio.core.envs.preprocess import frames_to_input
    vae = ConvVAE(32, seed=4, fast_cpu=fast_cpu)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        mu, _ = vae.encode(frames_to_input(frames))
    lean = LeanEncoder(model_arrays(vae))
    np.testing.assert_allclose(lean(frames), mu.array, atol=1e-5)
    np.testing.assert_allclose(lean(frames[1]), mu.array[1:2], atol=1e-5)      # one frame -> (1, z)
    assert lean(frames).dtype == np.float32 and np.abs(mu.array).max() > 1e-2


@pytest.mark.parametrize("hidden", [5, 16])
def test_the_numpy_lstm_step_equals_the_mdn_rnns(hidden):
    mdn = MDNRNN(6, 3, hidden, seed=2)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 6)).astype(np.float32)
    lean = None
    state = LSTMState(*(rng.normal(size=(4, hidden)).astype(np.float32) for _ in range(2)))
    h, c = state
    for step in range(5):
        action = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
        _, _, state = mdn.step(z, action, state)
        lean = lean or LeanLSTM(model_arrays(mdn))
        h, c = lean.step(z, action, h, c)
        np.testing.assert_allclose(h, state.h, atol=1e-5)
        np.testing.assert_allclose(c, state.c, atol=1e-5)
    assert np.abs(state.c).max() > 0.1


def random_params(spec, count, seed=0, scale=0.5):
    return np.random.default_rng(seed).normal(0, scale, (count, spec.shape.n_params))


def test_a_rollout_depends_only_on_its_parameters_and_seed(tiny_run):
    spec = game_spec(tiny_run())
    world = spec.load()
    try:
        params = random_params(spec, 1)[0]
        first = play(world, RolloutTask(params, 11, 25))
        again = play(world, RolloutTask(params, 11, 25))
        other_track = play(world, RolloutTask(params, 12, 25))
        recorded = play(world, RolloutTask(params, 11, 25, record=True))
    finally:
        world.close()
    assert (first.reward, first.steps) == (again.reward, again.steps) == (recorded.reward, recorded.steps)
    assert first.steps == 25 and first.frames is None
    assert other_track.reward != first.reward
    assert recorded.frames.shape == (26, 96, 96, 3) and recorded.frames.dtype == np.uint8    # start + every step


def test_early_stopping_ends_a_rollout_that_goes_nowhere(tiny_run):
    spec = game_spec(tiny_run())
    standing = Controller(spec.shape)
    standing.bias[:] = [0.0, -20.0, 0.0]                   # gas (tanh(-20) + 1) / 2 = 0: the car never moves
    world = spec.load()
    try:
        full = play(world, RolloutTask(standing.params, 3, 120))
        stopped = play(world, RolloutTask(standing.params, 3, 120, early_stop=10))
        random_policy = play(world, RolloutTask(None, 3, 40))
    finally:
        world.close()
    assert full.steps == 120 and full.reward < 0
    assert 10 <= stopped.steps < 30 and stopped.reward > full.reward
    assert random_policy.steps == 40


@dataclass(frozen=True)
class CountingGameSpec(GameSpec):
    """A GameSpec that leaves a file per load(), named after the loading process."""
    folder: str = ""

    def load(self):
        Path(self.folder, f"load-{os.getpid()}-{time.monotonic_ns()}").touch()
        return super().load()


def counting_spec(run, folder) -> CountingGameSpec:
    spec = game_spec(run)
    return CountingGameSpec(**{name: getattr(spec, name) for name in spec.__dataclass_fields__}, folder=str(folder))


@pytest.mark.slow
def test_same_fitness_serial_and_processes_and_one_load_per_worker(tiny_run, tmp_path):
    run = tiny_run()
    loads = tmp_path / "loads"
    loads.mkdir()
    spec = counting_spec(run, loads)
    params, seeds = random_params(spec, 4), [5, 6]
    with make_runner("serial") as serial:
        expected = GameEvaluator(serial, spec).evaluate(params, seeds, 20)
    serial_loads = len(list(loads.iterdir()))
    with make_runner("processes", workers=2) as runner:
        evaluator = GameEvaluator(runner, spec)
        first = evaluator.evaluate(params, seeds, 20)
        second = evaluator.evaluate(params[::-1], seeds, 20)
    worker_loads = {p.name.split("-")[1] for p in loads.iterdir()} - {str(os.getpid())}
    np.testing.assert_array_equal(first[0], expected[0])
    np.testing.assert_array_equal(first[1], expected[1])
    np.testing.assert_array_equal(second[0], expected[0][::-1])
    assert expected[0].shape == (4, 2) and (expected[1] == 20).all()
    assert len(set(expected[0].ravel())) > 1                         # candidates really differ
    assert serial_loads == 1
    assert len(list(loads.iterdir())) - serial_loads == len(worker_loads) <= 2   # once per worker, 2 generations


class KillWorkersAfterFirstResult:
    """Wraps a runner: once the first result of a run is in, SIGKILL the given processes (workers mid-task)."""

    def __init__(self, runner, victims):
        self.runner, self.victims, self.killed = runner, victims, []

    def run(self, function, tasks, context=None):
        for count, item in enumerate(self.runner.run(function, tasks, context)):
            if count == 0:
                for process in self.victims():
                    process.send_signal(signal.SIGKILL)
                    self.killed.append(process.pid)
            yield item


def worker_processes():
    """The runner's spawned workers (not multiprocessing's resource tracker, also a child of this process)."""
    return [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]


@pytest.mark.slow
def test_a_worker_killed_mid_generation_changes_nothing(tiny_run):
    spec = game_spec(tiny_run())
    params, seeds = random_params(spec, 4, seed=1), [8]
    with make_runner("serial") as serial:
        expected = GameEvaluator(serial, spec).evaluate(params, seeds, 40)
    with make_runner("processes", workers=2) as runner:
        killer = KillWorkersAfterFirstResult(runner, worker_processes)
        got = GameEvaluator(killer, spec).evaluate(params, seeds, 40)
        assert killer.killed and runner.restarts >= 1
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_missing_or_mismatched_models_are_named_with_the_command_that_makes_them(tiny_run):
    run = tiny_run()
    run.model_path("mdn").unlink()
    with pytest.raises(CheckpointError, match=r"mdn.npz does not exist: run `wm-studio train-mdn --run"):
        game_spec(run)
    assert game_spec(run, inputs="z").mdn_path is None              # a z-only controller never reads M
    run.model_path("vae").unlink()
    with pytest.raises(CheckpointError, match=r"vae.npz does not exist: run `wm-studio train-vae --run"):
        game_spec(run, inputs="z")
    other = tiny_run(name="other")
    from wm_studio.core.models.serialization import save_model
    wrong = MDNRNN(8, 3, 4)
    wrong.step(np.zeros((1, 8), np.float32), np.zeros((1, 3), np.float32))
    save_model(other.model_path("mdn"), wrong, wrong.meta())
    with pytest.raises(CheckpointError, match="trained on z 8"):
        game_spec(other)


def test_a_z_only_controller_plays_without_m(tiny_run):
    run = tiny_run()
    run.model_path("mdn").unlink()
    spec = game_spec(run, inputs="z")
    world = spec.load()
    try:
        result = play(world, RolloutTask(random_params(spec, 1)[0], 2, 10))
    finally:
        world.close()
    assert spec.shape.n_params == 99 and result.steps == 10


def test_a_carracing_dream_pays_nothing_and_is_refused(tiny_run):
    with pytest.raises(ConfigError, match="no reward or done head.*leave out --in-dream"):
        dream_spec(tiny_run())


@pytest.mark.slow
def test_doom_dreams_pay_one_per_step_and_match_on_every_backend_and_split(tiny_run):
    spec = dream_spec(tiny_run("doom"), tau=1.15)
    params = random_params(spec, 5, scale=1.0)
    with make_runner("serial") as serial:
        rewards, steps = DreamEvaluator(serial, spec).evaluate(params, [1, 2, 3], 30)        # one task
    with make_runner("processes", workers=2) as runner:
        again = DreamEvaluator(runner, spec, rows_per_task=4).evaluate(params, [1, 2, 3], 30)
    assert rewards.shape == steps.shape == (5, 3)
    # Doom's dream pays 1 per step survived, the step on which M ends the episode included (the original).
    np.testing.assert_array_equal(rewards, steps)
    assert (steps >= 1).all() and (steps <= 30).all() and len(set(steps.ravel())) > 2
    np.testing.assert_array_equal(again[0], rewards)


def test_the_numpy_mdn_step_equals_the_mdn_rnns_with_its_done_head():
    from wm_studio.core.train.inference import LeanMDN
    mdn = MDNRNN(6, 2, 16, predict_done=True, seed=3)
    lean = LeanMDN(model_arrays(mdn), gaussians=5, predict_done=True)
    assert (lean.z_size, lean.action_size, lean.hidden) == (6, 2, 16)
    rng = np.random.default_rng(0)
    z, action = rng.normal(size=(4, 6)).astype(np.float32), rng.uniform(0, 1, (4, 2)).astype(np.float32)
    mixture, done_prob, state = mdn.step(z, action)
    h, c = lean.step(z, action, *lean.initial_state(4))
    logits, mu, log_sigma, done_logit = lean.head(h)
    for ours, theirs in zip((logits, mu, log_sigma), mixture):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-done_logit)), done_prob, atol=1e-6)


class CountdownMDN:
    """A stand-in M whose dream of a row lasts exactly start_mu[0] steps: h[:, 0] counts the steps, h[:, 1] keeps
    the lifetime, and the next z is always the start (sigma 0). It records the batch of every step."""
    z_size, predict_done, gaussians = 2, True, 1

    def __init__(self):
        self.batches = []

    def initial_state(self, rows):
        return np.zeros((rows, 2), np.float32), np.zeros((rows, 2), np.float32)

    def step(self, z, action, h, c):
        self.batches.append(len(z))
        return np.stack([h[:, 0] + 1, z[:, 0]], axis=1), c

    def mixture(self, h):
        mu = np.repeat(h[:, 1:2], 2, axis=1)[..., None]
        return np.zeros_like(mu), mu, np.full_like(mu, -np.inf)

    def done_logits(self, h):
        return np.where(h[:, 0] >= h[:, 1], 10.0, -10.0).astype(np.float32)


def test_a_batched_dream_drops_rows_whose_episode_ended():
    from wm_studio.core.envs.dream import RandomActor, run_dreams
    lifetimes = np.array([3, 7, 1, 5], np.float32)
    starts = np.stack([np.stack([lifetimes, lifetimes], 1), np.full((4, 2), -np.inf, np.float32)], axis=1)
    mdn = CountdownMDN()
    actor = RandomActor("doom", 1, 4, np.random.default_rng(0))
    survived = run_dreams(mdn, actor, starts, np.arange(4), 1.15, 0.5, max_steps=100, seed=0)
    np.testing.assert_array_equal(survived, lifetimes)             # the step M ends the episode on counts
    assert mdn.batches == [4, 3, 3, 2, 2, 1, 1] and actor.rows == 0
    capped = run_dreams(CountdownMDN(), RandomActor("doom", 1, 4, np.random.default_rng(0)), starts,
                        np.arange(4), 1.15, 0.5, max_steps=4, seed=0)
    np.testing.assert_array_equal(capped, [3, 4, 1, 4])


def test_rows_of_one_lane_share_their_luck_and_never_depend_on_other_rows(tiny_run):
    from wm_studio.core.envs.dream import episode_starts, run_dreams
    from wm_studio.core.models.controller import ControllerBatch
    from wm_studio.core.train.inference import lean_mdn
    run = tiny_run("doom")
    mdn = lean_mdn(run.model_path("mdn"))
    mdn.done_weight *= 20.0                  # p(done) swings with the state: dreams end at different steps
    mdn.done_bias[:] = -2.0
    starts = episode_starts(sorted(run.latents_dir.glob("*.npz")))
    spec = dream_spec(run)
    params = random_params(spec, 3, scale=1.0)

    def survived(rows, lanes):
        batch = ControllerBatch(spec.shape, params[rows])
        return run_dreams(mdn, batch, starts[np.asarray(lanes) % len(starts)], lanes, 1.15, 0.5, 200, seed=5)
    together = survived([0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1])
    assert len(set(together.tolist())) > 2
    for row, lane, steps in zip([0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1], together):
        assert survived([row], [lane]) == steps                     # alone, the same dream
    np.testing.assert_array_equal(survived([1, 1, 1], [2, 2, 2]), survived([1], [2]).repeat(3))
