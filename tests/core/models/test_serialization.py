"""Model files and optimiser state: round trips, float16 bundles, and one clear error for every mismatch."""
import chainer
import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import load_npz, save_npz
from wm_studio.core.models.serialization import (load_params, load_vae, optimizer_arrays, read_model,
                                                 restore_optimizer, save_model)
from wm_studio.core.models.vae import ConvVAE


@pytest.fixture(scope="module")
def vae32():
    return ConvVAE(32, seed=1)


def frames(count=2):
    return np.random.default_rng(0).random((count, 3, 64, 64), dtype=np.float32)


def test_vae_round_trip_gives_identical_outputs(tmp_path, vae32):
    path = save_model(tmp_path / "vae.npz", vae32, vae32.meta())
    arrays, meta = load_npz(path)
    assert meta["kind"] == "vae" and meta["z_size"] == 32 and meta["dtype"] == "float32"
    assert "enc_conv1/W" in arrays and len(arrays) == len(list(vae32.params()))
    loaded = load_vae(path)
    x = frames()
    with chainer.no_backprop_mode():
        np.testing.assert_array_equal(loaded.encode(x)[0].array, vae32.encode(x)[0].array)
        np.testing.assert_array_equal(loaded.reconstruct(x).array, vae32.reconstruct(x).array)


def test_float16_bundle_is_half_the_size_and_loads_as_float32(tmp_path, vae32):
    full = save_model(tmp_path / "full.npz", vae32, vae32.meta())
    half = save_model(tmp_path / "half.npz", vae32, vae32.meta(), dtype=np.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_vae(half)
    assert loaded.dec_deconv1.W.dtype == np.float32
    np.testing.assert_allclose(loaded.dec_deconv1.W.array, vae32.dec_deconv1.W.array, rtol=1e-3, atol=1e-4)
    with chainer.no_backprop_mode():
        np.testing.assert_allclose(loaded.reconstruct(frames()).array, vae32.reconstruct(frames()).array,
                                   atol=5e-3)


def test_a_z64_file_into_a_z32_model_names_the_mismatch(tmp_path, vae32):
    path = save_model(tmp_path / "vae64.npz", ConvVAE(64, seed=0), {"kind": "vae", "z_size": 64})
    before = vae32.enc_conv1.W.array.copy()
    with pytest.raises(CheckpointError, match=r"enc_mu/W is \(64, 1024\), expected \(32, 1024\)"):
        load_params(path, vae32, "vae")
    np.testing.assert_array_equal(vae32.enc_conv1.W.array, before)     # checked before anything is copied


def test_missing_extra_and_wrong_kind_are_checkpoint_errors(tmp_path, vae32):
    good = save_model(tmp_path / "good.npz", vae32, vae32.meta())
    arrays, meta = load_npz(good)
    with pytest.raises(CheckpointError, match="not a mdn model"):
        load_params(good, vae32, "mdn")
    save_npz(tmp_path / "missing.npz", {k: v for k, v in arrays.items() if k != "dec_fc/b"}, meta)
    with pytest.raises(CheckpointError, match="dec_fc/b is missing"):
        load_vae(tmp_path / "missing.npz")
    save_npz(tmp_path / "extra.npz", {**arrays, "stray/W": np.zeros(3, np.float32)}, meta)
    with pytest.raises(CheckpointError, match="unexpected stray/W"):
        load_vae(tmp_path / "extra.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_vae(tmp_path / "corrupt.npz")


def test_nan_weights_are_refused(tmp_path, vae32):
    arrays, meta = load_npz(save_model(tmp_path / "good.npz", vae32, vae32.meta()))
    arrays["enc_conv2/b"][0] = np.nan
    save_npz(tmp_path / "nan.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="NaN or infinite weights in enc_conv2/b"):
        load_vae(tmp_path / "nan.npz")


def test_a_plain_mapping_saves_and_reads_back(tmp_path):
    """The numpy controller is no Chainer link: a mapping name -> array works the same way."""
    params = {"W": np.arange(12, dtype=np.float64).reshape(3, 4), "b": np.ones(3)}
    path = save_model(tmp_path / "controller.npz", params, {"kind": "controller", "inputs": 4})
    arrays, meta = read_model(path, "controller", {"W": (3, 4), "b": (3,)})
    assert meta["inputs"] == 4 and arrays["W"].dtype == np.float32
    np.testing.assert_array_equal(arrays["W"], params["W"])
    with pytest.raises(CheckpointError, match=r"W is \(3, 4\), expected \(4, 4\)"):
        read_model(path, "controller", {"W": (4, 4), "b": (3,)})
    with pytest.raises(ValueError, match="kind"):
        save_model(tmp_path / "x.npz", params, {"inputs": 4})


def _train_steps(model, optimizer, steps, seed):
    rng = np.random.default_rng(seed)
    x = np.random.default_rng(99).random((2, 3, 64, 64), dtype=np.float32)
    for _ in range(steps):
        total, _, _ = model.loss(x, rng)
        model.cleargrads()
        total.backward()
        optimizer.update()


def test_adam_state_round_trip_continues_the_same_run(tmp_path):
    model = ConvVAE(32, seed=2)
    optimizer = chainer.optimizers.Adam(alpha=1e-3)
    optimizer.setup(model)
    _train_steps(model, optimizer, 2, seed=0)
    state = optimizer_arrays(optimizer)
    assert state["t"] == 2 and "enc_conv1/W/m" in state and "enc_conv1/W/v" in state
    save_npz(tmp_path / "state.npz", state)
    save_model(tmp_path / "weights.npz", model, model.meta())

    clone = load_vae(tmp_path / "weights.npz")
    clone_optimizer = chainer.optimizers.Adam(alpha=1e-3)
    clone_optimizer.setup(clone)
    restore_optimizer(clone_optimizer, load_npz(tmp_path / "state.npz")[0])
    assert clone_optimizer.t == 2
    _train_steps(model, optimizer, 1, seed=5)
    _train_steps(clone, clone_optimizer, 1, seed=5)
    for (name, a), (_, b) in zip(sorted(model.namedparams()), sorted(clone.namedparams())):
        np.testing.assert_array_equal(a.array, b.array, err_msg=name)


def test_optimizer_state_of_another_model_is_a_checkpoint_error():
    model = ConvVAE(32, seed=0)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    _train_steps(model, optimizer, 1, seed=0)
    other = chainer.links.Linear(3, 2)
    other_optimizer = chainer.optimizers.Adam()
    other_optimizer.setup(other)
    with pytest.raises(CheckpointError, match="optimiser"):
        restore_optimizer(other_optimizer, optimizer_arrays(optimizer))
