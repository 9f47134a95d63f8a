"""The GPU path: V and M train on CuPy as they do on numpy, and `--device gpu` trains end to end.

Every test here is marked `gpu` and skips without CuPy and a GPU (`pytest -m gpu` selects them;
benchmarks/gpu_check.sh runs them on a GPU machine). Same seed, same batches, same noise (drawn by numpy on the
host): the first losses on the GPU and the CPU agree to float32 rounding.
"""
import numpy as np
import pytest

from tiny_run import make_run
from wm_studio import cli
from wm_studio.core.device import gpu_probe, resolve_device, to_numpy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(gpu_probe()[0] == 0, reason="needs CuPy and a GPU")]


def _losses(snapshots) -> np.ndarray:
    last = None
    for last in snapshots:
        pass
    return np.asarray(last.history)[:, 1]


def test_chainer_uses_cupy_with_the_compat_fixes():
    from chainer.backends import cuda
    import cupy
    assert cuda.available
    device = resolve_device("gpu")
    assert device.kind == "gpu" and device.notice is None and device.xp is cupy
    updater = __import__("chainer.training.updaters.multiprocess_parallel_updater", fromlist=["_available"])
    assert updater._available == bool(cupy.cuda.nccl.available)
    x = cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
    np.testing.assert_array_equal(to_numpy(x.sum(axis=0)), np.arange(12, dtype=np.float32).reshape(3, 4).sum(0))


def test_v_trains_on_the_gpu_as_on_the_cpu(tmp_path):
    from wm_studio.core.train.vae_stage import VaeSettings, train_vae
    losses = {}
    for name in ("cpu", "gpu"):
        run = make_run(tmp_path / name, parts=("rollouts",), rollouts=3, steps=40)
        settings = VaeSettings.from_config(run.config, {"epochs": 1, "batch_size": 16, "holdout": 0.0})
        losses[name] = _losses(train_vae(run, settings, resolve_device(name)))
        assert run.model_path("vae").exists()
    assert len(losses["gpu"]) == len(losses["cpu"]) > 3
    assert np.isfinite(losses["gpu"]).all()
    np.testing.assert_allclose(losses["gpu"][0], losses["cpu"][0], rtol=1e-3)


def test_m_trains_on_the_gpu_as_on_the_cpu(tmp_path):
    from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn
    losses = {}
    for name in ("cpu", "gpu"):
        run = make_run(tmp_path / name, parts=("vae", "latents"), rollouts=3, steps=40)
        config = run.config
        config["mdn"].update(epochs=1, batch_size=2, seq_len=8)
        settings = MdnSettings.from_config(config)
        losses[name] = _losses(train_mdn(run, settings, resolve_device(name)))
        assert run.model_path("mdn").exists()
    assert len(losses["gpu"]) == len(losses["cpu"]) > 1
    assert np.isfinite(losses["gpu"]).all()
    np.testing.assert_allclose(losses["gpu"][0], losses["cpu"][0], rtol=1e-3)


def test_device_gpu_trains_v_then_m_end_to_end_from_the_command_line(tmp_path, capsys):
    run = make_run(tmp_path / "run", parts=("rollouts",), rollouts=3, steps=40)
    assert cli.main(["train-vae", "--run", str(run.root), "--device", "gpu", "--epochs", "1"]) == 0
    assert cli.main(["train-mdn", "--run", str(run.root), "--device", "gpu", "--epochs", "1", "--batch-size", "2",
                     "--seq-len", "8"]) == 0
    captured = capsys.readouterr()
    assert "no GPU" not in captured.err and "running on the CPU" not in captured.err
    assert run.model_path("vae").exists() and run.model_path("mdn").exists()
    assert sorted(p.name for p in run.latents_dir.glob("*.npz")) == sorted(p.name for p in
                                                                          run.rollouts_dir.glob("*.npz"))
