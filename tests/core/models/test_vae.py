"""V: the paper's network (sizes, parameter counts), its loss against numpy, training, and the fast CPU layers."""
import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import gradient_check

from wm_studio.core import channels_last
from wm_studio.core.models.vae import KL_TOLERANCE, PAPER_PARAMETERS, ConvVAE, parameter_count, vae_loss


@pytest.fixture(scope="module")
def model():
    return ConvVAE(32, seed=0)


def images(count, seed=0):
    return np.random.default_rng(seed).random((count, 3, 64, 64), dtype=np.float32)


@pytest.mark.parametrize("z_size, expected", [(32, 4_348_547), (64, 4_446_915)])
def test_parameter_counts_are_the_papers(z_size, expected):
    assert PAPER_PARAMETERS[z_size] == expected
    assert parameter_count(ConvVAE(z_size, seed=0)) == expected


def test_layer_shapes_follow_the_paper(model):
    shapes = {name: param.shape for name, param in model.namedparams()}
    assert shapes["/enc_conv1/W"] == (32, 3, 4, 4)
    assert shapes["/enc_conv4/W"] == (256, 128, 4, 4)
    assert shapes["/enc_mu/W"] == (32, 1024)
    assert shapes["/dec_fc/W"] == (1024, 32)
    assert shapes["/dec_deconv1/W"] == (1024, 128, 5, 5)
    assert shapes["/dec_deconv3/W"] == (64, 32, 6, 6)
    assert shapes["/dec_deconv4/W"] == (32, 3, 6, 6)


def test_output_shapes_and_ranges(model):
    x = images(3)
    with chainer.no_backprop_mode():
        mu, logvar = model.encode(x)
        y = model.decode(mu)
        rec = model.reconstruct(x)
    assert mu.shape == logvar.shape == (3, 32)
    assert y.shape == rec.shape == (3, 3, 64, 64)
    assert y.dtype == np.float32
    assert 0.0 <= float(y.array.min()) and float(y.array.max()) <= 1.0
    np.testing.assert_allclose(rec.array, y.array, rtol=1e-6, atol=1e-7)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = ConvVAE(32, seed=3), ConvVAE(32, seed=3), ConvVAE(32, seed=4)
    np.testing.assert_array_equal(a.dec_deconv2.W.array, b.dec_deconv2.W.array)
    assert not np.array_equal(a.dec_deconv2.W.array, c.dec_deconv2.W.array)


def numpy_loss(x, y, mu, logvar, z_size):
    rec = ((x.astype(np.float64) - y) ** 2).reshape(len(x), -1).sum(axis=1)
    kl = -0.5 * (1 + logvar.astype(np.float64) - mu ** 2 - np.exp(logvar)).sum(axis=1)
    kl = np.maximum(kl, KL_TOLERANCE * z_size)
    return rec.mean() + kl.mean(), rec.mean(), kl.mean(), kl


def test_loss_equals_numpy_with_the_kl_floor_active_and_inactive():
    rng = np.random.default_rng(1)
    z_size = 8
    x = rng.random((4, 3, 64, 64), dtype=np.float32)
    y = rng.random((4, 3, 64, 64), dtype=np.float32)
    mu = np.zeros((4, z_size), np.float32)
    logvar = np.zeros((4, z_size), np.float32)
    mu[2:] = 3.0            # KL 0.5 * 8 * 9 = 36 > floor 4 for images 2 and 3; 0 < 4 (floored) for 0 and 1
    logvar[3] = -1.0
    total, rec, kl = vae_loss(x, y, mu, logvar, z_size)
    expected_total, expected_rec, expected_kl, per_image = numpy_loss(x, y, mu, logvar, z_size)
    assert per_image[0] == per_image[1] == KL_TOLERANCE * z_size          # floor active
    assert per_image[2] > KL_TOLERANCE * z_size and per_image[3] > per_image[2]   # floor inactive
    np.testing.assert_allclose(float(rec.array), expected_rec, rtol=1e-5)
    np.testing.assert_allclose(float(kl.array), expected_kl, rtol=1e-5)
    np.testing.assert_allclose(float(total.array), expected_total, rtol=1e-5)


def test_model_loss_is_the_numpy_loss_of_its_own_encoding(model):
    x = images(4, seed=2)
    total, rec, kl = model.loss(x, np.random.default_rng(7))
    with chainer.no_backprop_mode():
        mu, logvar = (v.array for v in model.encode(x))
        eps = np.random.default_rng(7).standard_normal(mu.shape, dtype=np.float32)
        y = model.decode(mu + np.exp(0.5 * logvar) * eps).array
    expected_total, expected_rec, expected_kl, _ = numpy_loss(x, y, mu, logvar, 32)
    np.testing.assert_allclose(float(rec.array), expected_rec, rtol=1e-4)
    np.testing.assert_allclose(float(kl.array), expected_kl, rtol=1e-4)
    np.testing.assert_allclose(float(total.array), expected_total, rtol=1e-4)


def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch():
    model = ConvVAE(32, seed=0)
    optimizer = chainer.optimizers.Adam(alpha=1e-3)
    optimizer.setup(model)
    x = np.full((8, 3, 64, 64), 0.2, np.float32)      # plain frames with a bright square: easy to learn
    for i in range(8):
        x[i, i % 3, 8 * i:8 * i + 16, 20:36] = 0.9

    def loss_value():
        with chainer.no_backprop_mode():
            return float(model.loss(x, np.random.default_rng(0))[0].array)

    before = loss_value()
    rng = np.random.default_rng(1)
    for _ in range(10):
        total, _, _ = model.loss(x, rng)
        model.cleargrads()
        total.backward()
        optimizer.update()
    assert loss_value() < 0.5 * before


# ---- the fast CPU layers ----------------------------------------------------------------------------------------
def test_fast_path_matches_chainers_own_layers_in_outputs_and_gradients():
    fast, stock = ConvVAE(32, seed=5), ConvVAE(32, seed=5, fast_cpu=False)
    x = images(3, seed=4)
    results = []
    for model in (fast, stock):
        model.cleargrads()
        total, rec, kl = model.loss(x, np.random.default_rng(2))
        total.backward()
        grads = {name: param.grad.copy() for name, param in model.namedparams()}
        results.append((float(total.array), grads))
    (fast_total, fast_grads), (stock_total, stock_grads) = results
    np.testing.assert_allclose(fast_total, stock_total, rtol=1e-5)
    for name, grad in stock_grads.items():
        scale = np.abs(grad).max() + 1e-12
        np.testing.assert_allclose(fast_grads[name] / scale, grad / scale, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("layer, size, in_c, out_c, ksize, stride",
                         [("convolution_2d", 9, 3, 4, 4, 2), ("convolution_2d", 8, 2, 3, 3, 1),
                          ("convolution_2d", 7, 3, 2, 4, 2), ("deconvolution_2d", 1, 5, 3, 5, 2),
                          ("deconvolution_2d", 3, 4, 2, 5, 2), ("deconvolution_2d", 4, 3, 2, 6, 2),
                          ("deconvolution_2d", 3, 2, 3, 3, 1)])
def test_fast_layers_equal_chainer_and_their_gradients_check(layer, size, in_c, out_c, ksize, stride):
    fast, stock = getattr(channels_last, layer), getattr(F, layer)
    # Chainer's weight layouts: (out, in, kh, kw) for a convolution, (in, out, kh, kw) for a deconvolution.
    W_channels = (out_c, in_c) if layer == "convolution_2d" else (in_c, out_c)
    rng = np.random.default_rng(size + ksize)
    x = rng.standard_normal((2, in_c, size, size)).astype(np.float64)
    W = rng.standard_normal((*W_channels, ksize, ksize)).astype(np.float64)
    b = rng.standard_normal(out_c).astype(np.float64)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = fast(nhwc, W, b, stride=stride).array
    expected = stock(x, W, b, stride=stride).array.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    gradient_check.check_backward(lambda *a: fast(*a, stride=stride), (nhwc, W, b), gy,
                                  dtype=np.float64, atol=1e-6, rtol=1e-6)


def test_fast_layers_work_in_batch_chunks_and_on_strided_inputs(monkeypatch):
    """Batches cut into several chunks and an NCHW array seen as NHWC (a view) give Chainer's own results."""
    monkeypatch.setattr(channels_last, "CHUNK_FLOATS", 500)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 10, 10)).astype(np.float32)
    W = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    assert len(channels_last.batch_chunks(5, 4 * 4 * 4 * 4 * 3)) == 5
    y = channels_last.convolution_2d(x.transpose(0, 2, 3, 1), W, None, stride=2)
    np.testing.assert_allclose(y.array, F.convolution_2d(x, W, stride=2).array.transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-5)
    Wd = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    xv = chainer.Variable(x)
    yd = channels_last.deconvolution_2d(F.transpose(xv, (0, 2, 3, 1)), Wd, None, stride=2)
    gy = rng.standard_normal(yd.shape).astype(np.float32)
    yd.grad = gy
    yd.backward()
    xs = chainer.Variable(x)
    ys = F.deconvolution_2d(xs, Wd, stride=2)
    ys.grad = gy.transpose(0, 3, 1, 2).copy()
    ys.backward()
    np.testing.assert_allclose(yd.array, ys.array.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(xv.grad, xs.grad, rtol=1e-4, atol=1e-4)


def test_double_backpropagation_through_fast_layers_says_what_to_use():
    x = chainer.Variable(np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32))
    W = chainer.Variable(np.ones((3, 2, 2, 2), np.float32))
    y = F.sum(channels_last.convolution_2d(x, W, stride=2) ** 2)
    gx, = chainer.grad([y], [x], enable_double_backprop=True)
    with pytest.raises(NotImplementedError, match="Chainer's own layers"):
        F.sum(gx).backward()


def test_in_place_adam_takes_chainers_adam_steps():
    rng = np.random.default_rng(0)
    initial = rng.standard_normal((6, 5)).astype(np.float32)
    links = [chainer.links.Linear(5, 6, initialW=initial) for _ in range(2)]
    optimizers = [chainer.optimizers.Adam(alpha=1e-3), channels_last.Adam(alpha=1e-3)]
    for link, optimizer in zip(links, optimizers):
        optimizer.setup(link)
    for _ in range(4):
        # Gradients over six orders of magnitude, so that eps and the bias correction matter.
        grad = (rng.standard_normal((6, 5)) * 10.0 ** rng.integers(-6, 1, (6, 5))).astype(np.float32)
        for link, optimizer in zip(links, optimizers):
            link.W.grad, link.b.grad = grad.copy(), grad[:, 0].copy()
            optimizer.update()
    assert optimizers[1].t == 4
    np.testing.assert_allclose(links[1].W.array, links[0].W.array, rtol=1e-6, atol=1e-7)
    for key in ("m", "v"):
        np.testing.assert_allclose(links[1].W.update_rule.state[key], links[0].W.update_rule.state[key],
                                   rtol=1e-6, atol=1e-12)
