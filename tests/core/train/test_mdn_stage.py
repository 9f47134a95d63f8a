"""Training M: it learns structured latents, resumes exactly after a close or a kill -9, and fails clearly."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.device import resolve_device
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_npz, model_fingerprint, save_npz
from wm_studio.core.models.mdnrnn import load_mdn
from wm_studio.core.models.serialization import save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.runs import Run
from wm_studio.core.stages import make_step
from wm_studio.core.train.history import stage_history
from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn

Z, A = 3, 2


def make_run(root, rollouts=8, steps=48, predict_done=False, short=(), **mdn):
    """A run folder whose latents follow z_{t+1} = 0.9 z_t + W a_t + small noise (learnable structure)."""
    config = {"env": "doom" if predict_done else "carracing", "preset": "tiny", "seed": 0, "z_size": Z,
              "action_size": A, "hidden": 16, "predict_done": predict_done,
              "mdn": {"epochs": 4, "batch_size": 4, "seq_len": 11, "lr": 1e-2, "grad_clip": 1.0,
                      "holdout": 0.25, "checkpoint_every_s": 3600.0, **mdn}}
    run = Run.create(root, config)
    rng = np.random.default_rng(42)
    mixing = rng.normal(0, 0.6, (A, Z))
    for i in range(rollouts):
        length = short[i] if i < len(short) else steps
        actions = rng.uniform(-1, 1, (length, A)).astype(np.float32)
        mu = np.zeros((length, Z), np.float32)
        mu[0] = rng.normal(0, 1, Z)
        for t in range(length - 1):
            mu[t + 1] = 0.9 * mu[t] + actions[t] @ mixing + rng.normal(0, 0.05, Z)
        dones = np.zeros(length, bool)
        dones[-1] = predict_done
        save_npz(run.latents_dir / f"rollout_{i:06d}.npz",
                 {"mu": mu, "logvar": np.full((length, Z), 2 * np.log(0.02), np.float32), "actions": actions,
                  "rewards": np.ones(length, np.float32), "dones": dones})
    return run


def settings_of(run, **changes):
    config = run.config
    config["mdn"] = {**config["mdn"], **changes}
    return MdnSettings.from_config(config)


def final_weights(run):
    arrays, _ = load_npz(run.model_path("mdn"))
    return arrays


CPU = resolve_device("cpu")


def test_training_lowers_the_nll_on_structured_latents(tmp_path):
    run = make_run(tmp_path / "run")
    settings = settings_of(run, epochs=12)
    snapshots = list(train_mdn(run, settings, CPU))
    last = snapshots[-1]
    assert last.finished and last.done == last.total
    first_batches = last.history[:3, 1].mean()
    assert last.history[-3:, 1].mean() < first_batches - 1.0
    records = run.read_metrics("mdn")
    assert [r["epoch"] for r in records] == list(range(1, 13))
    heldout = [r["heldout_nll"] for r in records]
    assert heldout[-1] < heldout[0] - 0.5
    np.testing.assert_allclose(last.heldout[:, 1], heldout)
    # One-step predictions: the predicted mean tracks the true next z better than always predicting zero.
    error = np.abs(last.predicted_next - last.true_next).mean()
    assert last.true_next.shape == last.predicted_next.shape and last.true_next.shape[1] == Z
    assert 1 <= len(last.true_next) <= settings.seq_len
    assert error < 0.5 * np.abs(last.true_next).mean()
    model = load_mdn(run.model_path("mdn"))
    assert model.meta() == {"kind": "mdn", "z_size": Z, "action_size": A, "hidden": 16, "gaussians": 5,
                            "predict_done": False}
    assert "held-out" in last.summary()


def test_a_finished_stage_rewrites_nothing(tmp_path):
    run = make_run(tmp_path / "run", rollouts=3, steps=24, epochs=1)
    settings = settings_of(run)
    last = list(train_mdn(run, settings, CPU))[-1]
    read_back = stage_history(run, "mdn")            # what the studio shows when it opens the run
    for name in ("done", "total", "epoch", "epochs", "finished", "nll", "done_loss", "heldout_nll"):
        assert getattr(read_back, name) == getattr(last, name), name
    np.testing.assert_array_equal(read_back.history, last.history)
    np.testing.assert_array_equal(read_back.heldout, last.heldout)
    files = [run.model_path("mdn"), *run.checkpoints("mdn")]
    before = [(path.read_bytes(), os.stat(path).st_mtime_ns) for path in files]
    again = list(train_mdn(run, settings, CPU))
    assert len(again) == 1 and again[0].finished
    assert [run.model_path("mdn"), *run.checkpoints("mdn")] == files
    assert [(path.read_bytes(), os.stat(path).st_mtime_ns) for path in files] == before


def test_resume_after_close_equals_an_uninterrupted_run(tmp_path):
    straight = make_run(tmp_path / "straight")
    *_, straight_last = train_mdn(straight, settings_of(straight, epochs=2), CPU)
    resumed = make_run(tmp_path / "resumed")
    stage = train_mdn(resumed, settings_of(resumed, epochs=2), CPU)
    for _, snapshot in zip(range(5), stage):
        pass
    stage.close()           # checkpoints in its finally
    assert resumed.latest_checkpoint("mdn") is not None
    again = list(train_mdn(resumed, settings_of(resumed, epochs=2), CPU))
    assert again[0].done == snapshot.done + 1
    a, b = final_weights(straight), final_weights(resumed)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(again[-1].history, straight_last.history)
    np.testing.assert_array_equal(again[-1].heldout, straight_last.heldout)


def test_more_epochs_continue_a_finished_run(tmp_path):
    run = make_run(tmp_path / "run")
    first = list(train_mdn(run, settings_of(run, epochs=1), CPU))
    more = list(train_mdn(run, settings_of(run, epochs=2), CPU))
    assert more[0].done == first[-1].done + 1 and more[-1].epoch == 2
    assert [r["epoch"] for r in run.read_metrics("mdn")] == [1, 2]


def planted_end_run(root, rollouts=24):
    """Doom-like latents: z wanders near 0, and the step on which an episode ends shows a marker, z[0] = 3.
    Episode lengths cover every offset of the window length, so the ends fall anywhere in the windows."""
    config = {"env": "doom", "preset": "tiny", "seed": 0, "z_size": Z, "action_size": A, "hidden": 16,
              "predict_done": True, "mdn": {"epochs": 25, "batch_size": 4, "seq_len": 11, "lr": 1e-2,
                                            "grad_clip": 1.0, "holdout": 0.25, "checkpoint_every_s": 3600.0}}
    run = Run.create(root, config)
    rng = np.random.default_rng(7)
    for i in range(rollouts):
        length = 6 + i
        mu = rng.normal(0, 0.3, (length, Z)).astype(np.float32)
        mu[-1, 0] = 3.0
        dones = np.zeros(length, bool)
        dones[-1] = True
        save_npz(run.latents_dir / f"rollout_{i:06d}.npz",
                 {"mu": mu, "logvar": np.full((length, Z), 2 * np.log(0.02), np.float32),
                  "actions": (rng.random((length, A)) > 0.5).astype(np.float32),
                  "rewards": np.ones(length, np.float32), "dones": dones})
    return run


@pytest.mark.slow
def test_the_done_head_learns_a_planted_end_and_a_dream_with_it_ends(tmp_path):
    from wm_studio.core.envs.dream import DreamEnv
    run = planted_end_run(tmp_path / "run")
    last = list(train_mdn(run, MdnSettings.from_config(run.config), CPU))[-1]
    record = run.read_metrics("mdn")[-1]
    assert record["done_deaths"] == 6 and record["done_caught"] == 6 and record["done_recall"] == 1.0
    assert record["done_false_alarms_per_1000"] < 20 and record["done_p_at_end"] > 0.8
    np.testing.assert_allclose(last.heldout[-1, 2:], [1.0, record["done_false_alarms_per_1000"],
                                                      record["done_p_at_end"]])
    assert "deaths caught 100%" in last.summary()
    mdn = load_mdn(run.model_path("mdn"))
    starts = np.zeros((2, Z), np.float32)
    starts[0, 0] = 3.0                                   # the marker: M says the episode ends here
    env = DreamEnv(mdn, tau=0.0, batch=2, max_steps=50, seed=0)
    env.reset(starts)
    _, reward, terminated, _, info = env.step(np.zeros((2, A), np.float32))
    assert terminated.tolist() == [True, False] and reward.tolist() == [1.0, 1.0]
    assert info["done_prob"][0] > 0.5 > info["done_prob"][1]


def test_done_loss_is_recorded_and_short_rollouts_are_padded(tmp_path):
    run = make_run(tmp_path / "run", predict_done=True, short=(5, 7), steps=40)
    snapshots = list(train_mdn(run, settings_of(run, epochs=3), CPU))
    last = snapshots[-1]
    assert last.done_loss is not None and np.isfinite(last.history[:, 2]).all()
    assert "done_loss" in run.read_metrics("mdn")[-1] and "done_recall" in run.read_metrics("mdn")[-1]
    assert load_mdn(run.model_path("mdn")).predict_done


def test_missing_latents_say_which_stage_to_run(tmp_path, capsys):
    run = Run.create(tmp_path / "run", {"env": "carracing", "z_size": Z, "action_size": A, "hidden": 16})
    with pytest.raises(CheckpointError, match="train-vae"):
        next(train_mdn(run, MdnSettings(Z, A, 16, False), CPU))
    assert main(["train-mdn", "--run", str(tmp_path / "elsewhere")]) == 2
    assert "wm-studio train-vae --run" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()     # a failed command leaves no empty run behind


def test_latents_of_another_size_are_refused(tmp_path):
    run = make_run(tmp_path / "run")
    settings = MdnSettings(Z + 1, A, 16, False)
    with pytest.raises(CheckpointError, match="encode them again"):
        next(train_mdn(run, settings, CPU))


def encoded_by(run, vae_seed, files=None):
    """Write a V (seeded) as the run's model and mark the latents (all, or `files`) as encoded by it."""
    vae = ConvVAE(Z, seed=vae_seed)
    save_model(run.model_path("vae"), vae, vae.meta())
    fingerprint = model_fingerprint(run.model_path("vae"))
    for path in files if files is not None else sorted(run.latents_dir.glob("*.npz")):
        arrays, _ = load_npz(path)
        save_npz(path, arrays, {"vae": fingerprint})
    return fingerprint


def test_an_m_trained_on_an_earlier_vs_latents_is_neither_done_nor_resumed(tmp_path):
    run = make_run(tmp_path / "run", epochs=1)
    first_v = encoded_by(run, vae_seed=0)
    list(train_mdn(run, settings_of(run), CPU))
    assert make_step(run, "mdn").finished()
    assert load_npz(run.model_path("mdn"))[1]["made_by"] == {"vae": first_v}

    encoded_by(run, vae_seed=1)          # V trained again, and the rollouts encoded again by it
    assert not make_step(run, "mdn").finished()
    with pytest.raises(CheckpointError, match="trained again since.*mv .*checkpoints/mdn .*mdn.old"):
        next(train_mdn(run, settings_of(run, epochs=2), CPU))


def test_latents_of_two_vs_at_once_are_refused(tmp_path):
    run = make_run(tmp_path / "run")
    files = sorted(run.latents_dir.glob("*.npz"))
    encoded_by(run, vae_seed=0, files=files[:3])
    encoded_by(run, vae_seed=1, files=files[3:])
    with pytest.raises(CheckpointError, match="2 different V's: finish encoding"):
        next(train_mdn(run, settings_of(run), CPU))


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="lr"):
        MdnSettings(Z, A, 16, False, lr=-1.0)
    with pytest.raises(ConfigError, match="unknown setting"):
        MdnSettings.from_config({"z_size": Z, "action_size": A, "hidden": 16, "mdn": {"epoch": 3}})


def test_the_command_trains_and_records_overrides(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    code = main(["train-mdn", "--run", str(run.root), "--epochs", "1", "--seq-len", "7", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert run.config["mdn"]["seq_len"] == 7 and run.config["mdn"]["epochs"] == 1
    assert load_mdn(run.model_path("mdn")).hidden == 16
    assert "held-out" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_process_resumes_from_its_checkpoint(tmp_path):
    straight = make_run(tmp_path / "straight", checkpoint_every_s=0.0)
    *_, straight_last = train_mdn(straight, settings_of(straight, epochs=3), CPU)
    killed = make_run(tmp_path / "killed", checkpoint_every_s=0.0)
    script = textwrap.dedent(f"""
        import time
        from wm_studio.core.device import resolve_device
        from wm_studio.core.runs import Run
        from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn
        run = Run.open({str(killed.root)!r})
        settings = MdnSettings.from_config({{**run.config, "mdn": {{**run.config["mdn"], "epochs": 3}}}})
        for snapshot in train_mdn(run, settings, resolve_device("cpu")):
            print(snapshot.done, flush=True)
            time.sleep(0.05)     # leave the parent time to kill it mid-training
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in child.stdout:
            if int(line) >= 7:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    step = int(killed.latest_checkpoint("mdn").stem.split("-")[1])
    assert 7 <= step < straight_last.total
    resumed = list(train_mdn(killed, settings_of(killed, epochs=3), CPU))
    assert resumed[0].done == step + 1
    a, b = final_weights(straight), final_weights(killed)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
