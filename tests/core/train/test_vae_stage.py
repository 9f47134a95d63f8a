"""V's stage: training with held-out figures, resume after close and after kill -9, encoding, and the command."""
import os
import signal
import subprocess
import sys
import time

import chainer
import numpy as np
import pytest

from wm_studio import cli
from wm_studio.core.device import Device
from wm_studio.core.envs.preprocess import frames_to_input
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_npz, save_npz
from wm_studio.core.models.serialization import load_vae
from wm_studio.core.presets import preset
from wm_studio.core.runs import Run
from wm_studio.core.train.encode import encode_rollouts
from wm_studio.core.train.history import stage_history
from wm_studio.core.train.vae_stage import VaeSettings, train_vae

CPU = Device("cpu")


def make_run(root, rollouts=3, steps=24, **vae) -> Run:
    """A tiny CarRacing run with synthetic rollouts: plain backgrounds with one coloured square each frame."""
    config = preset("carracing", "tiny")
    config["vae"].update({"batch_size": 8, "checkpoint_every_s": 3600.0, **vae})
    run = Run.create(root, config)
    rng = np.random.default_rng(0)
    for index in range(rollouts):
        frames = np.empty((steps, 64, 64, 3), np.uint8)
        frames[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        for t in range(steps):
            top, left = rng.integers(0, 48, 2)
            frames[t, top:top + 16, left:left + 16] = rng.integers(0, 256, 3, dtype=np.uint8)
        save_npz(run.rollouts_dir / f"rollout_{index:06d}.npz",
                 {"frames": frames, "actions": rng.standard_normal((steps, 3)).astype(np.float32),
                  "rewards": rng.standard_normal(steps).astype(np.float32), "dones": np.arange(steps) == steps - 1},
                 {"env": "carracing", "seed": index, "policy": "brownian", "steps": steps}, compressed=True)
    return run


def weights_of(path):
    arrays, _ = load_npz(path)
    return arrays


def test_stage_trains_reports_heldout_error_and_writes_the_model(tmp_path):
    run = make_run(tmp_path / "run", epochs=2)
    snapshots = list(train_vae(run, None, CPU))
    last = snapshots[-1]
    # 3 rollouts, 5% held out -> 1 held out, 2 x 24 = 48 training frames, batches of 8 -> 6 per epoch.
    assert last.finished and last.total == 12 and last.done == 12 and last.epoch == 2
    assert [s.done for s in snapshots if not s.finished][:6] == [1, 2, 3, 4, 5, 6]
    assert last.history.shape == (12, 4) and list(last.history[:, 0]) == [1] * 6 + [2] * 6
    assert np.isfinite(last.loss) and last.kl >= 16.0 - 1e-4           # the floor: 0.5 * z_size
    assert last.inputs.shape == last.reconstructions.shape == (4, 64, 64, 3)
    assert last.inputs.dtype == last.reconstructions.dtype == np.uint8
    assert "held-out" in last.summary()

    records = run.read_metrics("vae")
    assert [r["epoch"] for r in records] == [1, 2] and records[0]["heldout_frames"] == 24
    # The held-out figure is what the saved model gives on the held-out rollout.
    model = load_vae(run.model_path("vae"))
    heldout_file = [f for f in sorted(run.rollouts_dir.glob("*.npz"))
                    if np.array_equal(load_npz(f)[0]["frames"][0], last.inputs[0])]
    assert len(heldout_file) == 1
    x = frames_to_input(load_npz(heldout_file[0])[0]["frames"])
    with chainer.no_backprop_mode():
        y = model.reconstruct(x).array
    per_image = float(((x - y) ** 2).sum()) / len(x)
    assert records[1]["heldout_rec"] == pytest.approx(per_image, rel=1e-4)
    assert records[1]["heldout_mse"] == pytest.approx(per_image / (64 * 64 * 3), rel=1e-4)
    assert last.heldout_rec == pytest.approx(records[1]["heldout_rec"])

    again = list(train_vae(run, None, CPU))     # finished: nothing more to do
    assert len(again) == 1 and again[0].finished and again[0].done == 12


@pytest.mark.slow
def test_resumed_stage_equals_the_uninterrupted_one(tmp_path):
    whole = make_run(tmp_path / "whole", epochs=2)
    list(train_vae(whole, None, CPU))

    parts = make_run(tmp_path / "parts", epochs=2)
    stage = train_vae(parts, None, CPU)
    for _ in range(4):          # stop in the middle of the first epoch
        snapshot = next(stage)
    stage.close()
    assert snapshot.done == 4 and parts.latest_checkpoint("vae").name == "ckpt-000000004.npz"
    resumed = list(train_vae(parts, None, CPU))
    assert resumed[0].done == 5

    expected, got = weights_of(whole.model_path("vae")), weights_of(parts.model_path("vae"))
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(resumed[-1].history, list(train_vae(whole, None, CPU))[-1].history, rtol=1e-5)


def test_settings_are_checked():
    config = preset("carracing", "tiny")
    assert VaeSettings.from_config(config).batch_size == config["vae"]["batch_size"]
    with pytest.raises(ConfigError, match="lr"):
        VaeSettings.from_config(config, {"lr": -1.0})
    with pytest.raises(ConfigError, match="unknown setting.*colour"):
        VaeSettings.from_config(config, {"colour": "blue"})


def test_a_run_without_rollouts_says_to_collect_first(tmp_path, capsys):
    run = Run.create(tmp_path / "empty", preset("carracing", "tiny"))
    with pytest.raises(CheckpointError, match="wm-studio collect --run"):
        next(train_vae(run, None, CPU))
    assert cli.main(["train-vae", "--run", str(tmp_path / "nothing")]) == 2
    assert "wm-studio collect --run" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_encode_writes_latents_for_every_rollout_and_skips_the_done_ones(tmp_path):
    run = make_run(tmp_path / "run", epochs=1)
    with pytest.raises(CheckpointError, match="train-vae"):
        next(encode_rollouts(run, CPU))
    list(train_vae(run, None, CPU))
    last = list(encode_rollouts(run, CPU, batch_size=10))[-1]
    assert (last.done, last.total, last.encoded, last.skipped, last.frames) == (3, 3, 3, 0, 72)
    model = load_vae(run.model_path("vae"))
    for source in sorted(run.rollouts_dir.glob("*.npz")):
        rollout, _ = load_npz(source)
        latents, meta = load_npz(run.latents_dir / source.name)
        assert latents["mu"].shape == latents["logvar"].shape == (24, 32)
        assert latents["mu"].dtype == np.float32 and meta["z_size"] == 32
        for name in ("actions", "rewards", "dones"):
            np.testing.assert_array_equal(latents[name], rollout[name])
        with chainer.no_backprop_mode():
            mu, logvar = model.encode(frames_to_input(rollout["frames"][:5]))
        np.testing.assert_allclose(latents["mu"][:5], mu.array, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(latents["logvar"][:5], logvar.array, rtol=1e-4, atol=1e-5)

    again = list(encode_rollouts(run, CPU))[-1]
    assert (again.encoded, again.skipped) == (0, 3)
    # Another V: every rollout is encoded again.
    run.update_config(vae={**run.config["vae"], "epochs": 2})
    list(train_vae(run, None, CPU))
    assert list(encode_rollouts(run, CPU))[-1].encoded == 3


def file_state(path):
    """What a rewrite would change: the bytes, the modification time and the inode (atomic writes replace it)."""
    stat = os.stat(path)
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def test_a_finished_stage_leaves_its_model_checkpoints_and_latents_alone(tmp_path):
    run = make_run(tmp_path / "run", rollouts=2, steps=16, epochs=1)
    last = list(train_vae(run, None, CPU))[-1]
    list(encode_rollouts(run, CPU))
    read_back = stage_history(run, "vae", preview=True)          # what the studio shows when it opens the run
    for name in ("done", "total", "epoch", "epochs", "finished", "loss", "heldout_rec", "heldout_mse"):
        assert getattr(read_back, name) == getattr(last, name), name
    np.testing.assert_array_equal(read_back.history, last.history)
    np.testing.assert_array_equal(read_back.heldout, last.heldout)
    np.testing.assert_array_equal(read_back.reconstructions, last.reconstructions)
    model_before = file_state(run.model_path("vae"))
    checkpoints_before = [file_state(path) for path in run.checkpoints("vae")]

    again = list(train_vae(run, None, CPU))
    assert len(again) == 1 and again[0].finished
    assert file_state(run.model_path("vae")) == model_before
    assert [file_state(path) for path in run.checkpoints("vae")] == checkpoints_before
    assert (list(encode_rollouts(run, CPU))[-1].encoded) == 0      # the latents still match this V

    # A model file gone missing is written again from the finished checkpoint, weights unchanged.
    weights = weights_of(run.model_path("vae"))
    run.model_path("vae").unlink()
    list(train_vae(run, None, CPU))
    for name, value in weights_of(run.model_path("vae")).items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)


def test_command_falls_back_to_the_cpu_with_a_notice_and_encodes(tmp_path, capsys):
    run = make_run(tmp_path / "run", epochs=1)
    assert cli.main(["train-vae", "--run", str(run.root), "--device", "gpu", "--batch-size", "16"]) == 0
    captured = capsys.readouterr()
    assert "no GPU" in captured.err and "running on the CPU" in captured.err
    assert run.config["vae"]["batch_size"] == 16
    assert run.read_metrics("vae")[-1]["epoch"] == 1
    assert sorted(p.name for p in run.latents_dir.glob("*.npz")) == sorted(p.name for p in
                                                                          run.rollouts_dir.glob("*.npz"))


@pytest.mark.slow
def test_kill_9_mid_training_resumes_from_the_checkpoint(tmp_path):
    run = make_run(tmp_path / "run", rollouts=3, steps=40, epochs=4, checkpoint_every_s=0.0)
    command = [sys.executable, "-m", "wm_studio", "train-vae", "--run", str(run.root), "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            found = run.latest_checkpoint("vae")
            if found is not None and int(found.stem.split("-")[1]) >= 3:
                break
            time.sleep(0.05)
        assert child.poll() is None, "training ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    total = 4 * 10      # 2 training rollouts x 40 frames / 8 per batch = 10 batches per epoch
    _, meta = run.load_checkpoint("vae")
    reached = meta["epoch"] * 10 + meta["batch"]
    assert 3 <= reached < total

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    first_progress = next(line for line in result.stderr.splitlines() if line.startswith("V ["))
    assert f"{reached + 1}/{total}" in first_progress            # went on from the checkpoint, not from zero
    _, meta = run.load_checkpoint("vae")
    assert (meta["epoch"], meta["batch"]) == (4, 0)
    # (A kill between an epoch's metrics line and its checkpoint may repeat that line, never lose one.)
    assert sorted({r["epoch"] for r in run.read_metrics("vae")}) == [1, 2, 3, 4]
    assert len(list(run.latents_dir.glob("*.npz"))) == 3
