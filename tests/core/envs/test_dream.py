"""The dream env over M (and V): batched steps, seeds, temperature, the done threshold, and the dream command."""
import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.errors import ConfigError
from wm_studio.core.export import read_animation
from wm_studio.core.files import save_npz
from wm_studio.core.envs.dream import DreamEnv, episode_starts
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.runs import Run

Z, A, H = 4, 3, 8


def counting(mdn):
    """Record the batch size of every LSTM call the dream makes."""
    calls = []
    step = mdn.step

    def counted(z, action, state=None):
        calls.append((len(z), len(action), None if state is None else state.h.shape[0]))
        return step(z, action, state)
    mdn.step = counted
    return calls


def test_a_batch_of_dreams_takes_one_lstm_call_per_step():
    mdn = MDNRNN(Z, A, H, seed=0)
    calls = counting(mdn)
    env = DreamEnv(mdn, batch=4, max_steps=50, seed=1)
    z, info = env.reset(np.zeros((4, Z), np.float32))
    assert z.shape == (4, Z) and info["h"].shape == info["c"].shape == (4, H)
    for _ in range(6):
        z, reward, terminated, truncated, info = env.step(np.zeros((4, A), np.float32))
    assert calls == [(4, 4, 4)] * 6
    assert z.shape == (4, Z) and reward.shape == terminated.shape == truncated.shape == (4,)
    assert info["h"].shape == (4, H) and np.abs(info["h"]).max() > 0
    assert len({tuple(row) for row in np.round(z, 5)}) == 4      # the rows dream apart from one start


def test_dreams_are_reproducible_from_the_seed():
    def trajectory(seed):
        env = DreamEnv(MDNRNN(Z, A, H, seed=0), batch=3, seed=seed, starts=np.eye(5, Z, dtype=np.float32))
        actions = np.random.default_rng(0).uniform(-1, 1, (10, 3, A))
        z, _ = env.reset()
        return np.stack([z] + [env.step(a)[0] for a in actions])
    np.testing.assert_array_equal(trajectory(7), trajectory(7))
    assert not np.allclose(trajectory(7), trajectory(8))


def test_temperature_widens_the_spread_of_the_next_latent():
    mdn = MDNRNN(Z, A, H, seed=0)
    spread = {}
    for tau in (0.0, 0.5, 1.0, 2.0):
        env = DreamEnv(mdn, tau=tau, batch=2000, seed=3)
        env.reset(np.full(Z, 0.3, np.float32))       # every row at the same start: the rows are iid draws
        z = env.step(np.zeros((2000, A), np.float32))[0]
        spread[tau] = z.std(axis=0).mean()
    assert spread[0.0] < 1e-5        # tau 0: the most likely component's mean, no noise
    assert spread[0.5] < spread[1.0] < spread[2.0]


def doom_mdn(done_logit):
    """An M with a done head whose p(done) is sigmoid(done_logit) whatever happens."""
    mdn = MDNRNN(Z, 2, H, predict_done=True, seed=0)
    mdn.head.W.array[-1] = 0.0
    mdn.head.b.array[-1] = done_logit
    return mdn


def test_the_done_threshold_ends_doom_dreams():
    env = DreamEnv(doom_mdn(1.0), done_threshold=0.5, batch=2, max_steps=10, seed=0)   # p(done) = 0.73
    z0, _ = env.reset(np.zeros((2, Z), np.float32))
    z1, reward, terminated, truncated, info = env.step(np.zeros((2, 2), np.float32))
    assert terminated.all() and not truncated.any() and not info["alive"].any()
    np.testing.assert_allclose(info["done_prob"], 1 / (1 + np.exp(-1.0)), rtol=1e-5)
    np.testing.assert_array_equal(reward, 1.0)      # the step on which M predicts the end counts as survived
    # An ended dream stays ended and frozen.
    z2, reward, terminated, _, _ = env.step(np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(z2, z1)
    assert terminated.all() and reward.sum() == 0

    env = DreamEnv(doom_mdn(1.0), done_threshold=0.9, batch=2, max_steps=10, seed=0)   # below the threshold
    env.reset(np.zeros((2, Z), np.float32))
    total = np.zeros(2)
    for _ in range(10):
        _, reward, terminated, truncated, _ = env.step(np.zeros((2, 2), np.float32))
        total += reward
    assert truncated.all() and not terminated.any()
    np.testing.assert_array_equal(total, 10.0)     # Doom pays 1 per step survived


def test_carracing_dreams_pay_nothing_and_stop_at_the_step_cap():
    env = DreamEnv(MDNRNN(Z, A, H, seed=0), batch=2, max_steps=3, seed=0)
    env.reset(np.zeros(Z, np.float32))
    results = [env.step(np.zeros((2, A), np.float32)) for _ in range(3)]
    assert [r[3].all() for r in results] == [False, False, True]
    assert all(r[1].sum() == 0 for r in results)


def test_bad_input_is_refused():
    env = DreamEnv(MDNRNN(Z, A, H, seed=0), batch=2, seed=0)
    with pytest.raises(ConfigError, match="initial_z must have shape"):
        env.reset(np.zeros((3, Z), np.float32))
    with pytest.raises(ConfigError, match="starts from real latents"):
        env.reset()
    env.reset(np.zeros((2, Z), np.float32))
    with pytest.raises(ConfigError, match="actions of size 3"):
        env.step(np.zeros((2, 2), np.float32))
    with pytest.raises(ConfigError, match="needs V"):
        env.render()
    with pytest.raises(ConfigError, match="temperature"):
        DreamEnv(MDNRNN(Z, A, H), tau=-1)


# ---- with V, and the command ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder with random-weight V and M and a few latent files."""
    root = tmp_path_factory.mktemp("dream") / "run"
    run = Run.create(root, {"env": "carracing", "preset": "tiny", "seed": 0, "z_size": Z, "action_size": A,
                            "hidden": H, "predict_done": False})
    vae, mdn = ConvVAE(Z), MDNRNN(Z, A, H, seed=0)
    vae.dec_fc.W.array *= 30.0      # random weights barely react to z; make different latents look different
    save_model(run.model_path("vae"), vae, {"kind": "vae", "z_size": Z})
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    rng = np.random.default_rng(0)
    for i in range(2):
        save_npz(run.latents_dir / f"rollout_{i:06d}.npz",
                 {"mu": rng.normal(size=(10, Z)).astype(np.float32), "logvar": np.zeros((10, Z), np.float32),
                  "actions": np.zeros((10, A), np.float32), "rewards": np.zeros(10, np.float32),
                  "dones": np.zeros(10, bool)})
    return run, vae


def test_render_decodes_every_row(tiny_run):
    run, vae = tiny_run
    files = sorted(run.latents_dir.glob("*.npz"))
    real = np.concatenate([np.load(f)["mu"] for f in files])
    env = DreamEnv(MDNRNN(Z, A, H, seed=0), vae, batch=3, seed=0)
    env.reset(real[[0, 5, 13]])
    frames = env.render()
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


def test_the_dream_command_writes_an_animation_that_moves(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    out = tmp_path / "dream.gif"
    code = main(["dream", "--run", str(run.root), "--steps", "12", "--tau", "1.5", "--out", str(out),
                 "--size", "64", "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    frames = read_animation(out)
    assert len(frames) == 12 and frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])
    assert "wrote 12 frames" in capsys.readouterr().out


def test_the_dream_command_names_the_missing_stage(tmp_path, capsys):
    run = Run.create(tmp_path / "run", {"env": "carracing", "z_size": Z})
    assert main(["dream", "--run", str(run.root), "--out", str(tmp_path / "d.gif")]) == 2
    assert "wm-studio train-vae --run" in capsys.readouterr().err
    save_model(run.model_path("vae"), ConvVAE(Z), {"kind": "vae", "z_size": Z})
    assert main(["dream", "--run", str(run.root), "--out", str(tmp_path / "d.gif")]) == 2
    assert "wm-studio train-mdn --run" in capsys.readouterr().err


def test_the_dream_command_lets_the_controller_drive(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    random_out, driven_out = tmp_path / "random.gif", tmp_path / "driven.gif"
    args = ["dream", "--run", str(run.root), "--steps", "10", "--size", "64", "--seed", "3"]
    assert main([*args, "--driver", "controller", "--out", str(driven_out)]) == 2
    assert "wm-studio train-controller --run" in capsys.readouterr().err
    controller = Controller.for_game("carracing", Z, H)
    controller.set_params(np.random.default_rng(0).normal(0, 3.0, controller.n_params))
    save_controller(run.model_path("controller"), controller)
    try:
        assert main([*args, "--out", str(driven_out)]) == 0          # auto: the controller, since there is one
        assert "driven by the controller C" in capsys.readouterr().out
        assert main([*args, "--driver", "random", "--out", str(random_out)]) == 0
        assert "driven by random actions" in capsys.readouterr().out
    finally:
        run.model_path("controller").unlink()
    driven, random = read_animation(driven_out), read_animation(random_out)
    assert len(driven) == len(random) == 10
    np.testing.assert_array_equal(driven[0], random[0])              # the same start frame
    assert any(not np.array_equal(a, b) for a, b in zip(driven[1:], random[1:]))   # other actions, other dream


def test_a_dream_starts_from_an_episodes_first_frame_with_z_drawn_from_v(tiny_run):
    """As in the original code: the start is the first frame of a real episode, z ~ N(mu, exp(logvar)) of V's
    encoding of it, and M's state is zero."""
    run, _ = tiny_run
    files = sorted(run.latents_dir.glob("*.npz"))
    starts = episode_starts(files)
    assert starts.shape == (2, 2, Z)
    for start, path in zip(starts, files):
        np.testing.assert_array_equal(start, [np.load(path)["mu"][0], np.load(path)["logvar"][0]])
    np.testing.assert_array_equal(episode_starts(files, step=3)[1, 0], np.load(files[1])["mu"][3])
    np.testing.assert_array_equal(episode_starts(files, step=99)[0, 0], np.load(files[0])["mu"][-1])
    narrow = starts.copy()
    narrow[:, 1] = np.log(0.01 ** 2)                     # sigma 0.01
    env = DreamEnv(MDNRNN(Z, A, H, seed=0), batch=4000, seed=0, starts=narrow)
    z, info = env.reset()
    assert not info["h"].any() and not info["c"].any()
    nearest = np.abs(z[:, None, :] - narrow[None, :, 0]).max(axis=2).argmin(axis=1)
    offsets = z - narrow[nearest, 0]
    assert set(nearest.tolist()) == {0, 1}
    assert 0.009 < offsets.std() < 0.011 and abs(offsets.mean()) < 0.001


def test_a_restart_resets_ms_state():
    env = DreamEnv(doom_mdn(-5.0), batch=2, max_steps=100, seed=0)
    env.reset(np.zeros((2, Z), np.float32))
    for _ in range(5):
        _, _, _, _, info = env.step(np.ones((2, 2), np.float32))
    assert np.abs(info["h"]).max() > 0
    _, info = env.reset(np.zeros((2, Z), np.float32))
    assert not info["h"].any() and not info["c"].any() and env.alive.all() and env.steps == 0
