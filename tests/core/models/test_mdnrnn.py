"""M, the MDN-RNN: sizes, the loss against a numpy transcription, fitting a known mixture, sampling temperature."""
import math

import chainer
import chainer.functions as F
import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError
from wm_studio.core.models.mdnrnn import (DONE_POSITIVE_WEIGHT, MDNRNN, Mixture, load_mdn, mixture_mean,
                                          mixture_nll, sample, weighted_done_loss)
from wm_studio.core.models.serialization import save_model


def test_parameter_counts_match_the_paper():
    assert MDNRNN(32, 3, 256).count_params() == 422_368
    assert MDNRNN(64, 2, 512, predict_done=True).count_params() == 1_678_785


# ---- the loss, transcribed by hand in numpy --------------------------------------------------------------------
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_forward(model, z, actions):
    """The LSTM and head written out from the parameters (Chainer's gate layout: a, i, f, o interleaved)."""
    wu, bu = model.lstm.upward.W.array, model.lstm.upward.b.array
    wl = model.lstm.lateral.W.array
    wh, bh = model.head.W.array, model.head.b.array
    batch, steps, _ = z.shape
    h = np.zeros((batch, model.hidden))
    c = np.zeros((batch, model.hidden))
    outs = []
    for t in range(steps):
        x = np.concatenate([z[:, t], actions[:, t]], axis=1)
        gates = (x @ wu.T + bu + h @ wl.T).reshape(batch, model.hidden, 4)
        a, i, f, o = np.tanh(gates[..., 0]), _sigmoid(gates[..., 1]), _sigmoid(gates[..., 2]), _sigmoid(gates[..., 3])
        c = a * i + f * c
        h = o * np.tanh(c)
        outs.append(h @ wh.T + bh)
    return np.stack(outs, axis=1)   # (B, T, out)


def _numpy_loss(model, z, actions, dones, mask):
    out = _numpy_forward(model, z.astype(np.float64), actions.astype(np.float64))
    k, zs = model.gaussians, model.z_size
    params = out[..., :3 * k * zs].reshape(*out.shape[:2], zs, 3, k)
    logits, mu, sigma = params[..., 0, :], params[..., 1, :], np.exp(params[..., 2, :])
    pi = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    target = z[:, 1:, :, None]
    pi, mu, sigma = pi[:, :-1], mu[:, :-1], sigma[:, :-1]      # the last step has no next latent
    density = pi * np.exp(-0.5 * ((target - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    per_dim = -np.log(density.sum(-1))                         # (B, T-1, z)
    step_mask = mask[:, 1:]
    nll = (per_dim.mean(-1) * step_mask).sum() / step_mask.sum()
    p = _sigmoid(out[..., -1])
    per_step = -(DONE_POSITIVE_WEIGHT * dones * np.log(p) + (1 - dones) * np.log(1 - p))
    done = (per_step * mask).sum() / mask.sum()
    return nll, done


def _fixed_batch(rng, batch=3, steps=6, z_size=4, action_size=2):
    z = rng.standard_normal((batch, steps, z_size)).astype(np.float32)
    actions = rng.uniform(-1, 1, (batch, steps, action_size)).astype(np.float32)
    dones = np.zeros((batch, steps), dtype=np.float32)
    dones[0, -1] = 1.0
    mask = np.ones((batch, steps), dtype=np.float32)
    mask[2, 4:] = 0.0      # a rollout that ended early: its padding must not count
    return z, actions, dones, mask


def test_loss_equals_a_numpy_transcription():
    rng = np.random.default_rng(0)
    model = MDNRNN(4, 2, 8, gaussians=3, predict_done=True, seed=0)
    z, actions, dones, mask = _fixed_batch(rng)
    total, nll, done_loss, _ = model.loss(z, actions, dones, mask)
    want_nll, want_done = _numpy_loss(model, z, actions, dones, mask)
    assert float(nll.array) == pytest.approx(want_nll, abs=1e-5)
    assert float(done_loss.array) == pytest.approx(want_done, abs=1e-5)
    assert float(total.array) == pytest.approx(want_nll + want_done, abs=1e-5)


def test_nll_is_averaged_per_dimension_not_summed_inside_the_log():
    """Two independent dimensions with the same mixture: the loss is each dimension's NLL, not their sum."""
    logits = np.zeros((1, 1, 2, 2), dtype=np.float32)
    mu = np.array([[[[0.0, 1.0], [0.0, 1.0]]]], dtype=np.float32)
    log_sigma = np.zeros_like(mu)
    target = np.array([[[0.3, 0.3]]], dtype=np.float32)
    one_dim = -math.log(0.5 * math.exp(-0.5 * 0.09) / math.sqrt(2 * math.pi)
                        + 0.5 * math.exp(-0.5 * 0.49) / math.sqrt(2 * math.pi))
    assert float(mixture_nll(Mixture(logits, mu, log_sigma), target).array) == pytest.approx(one_dim, abs=1e-6)


def test_nll_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5)
    inputs = [rng.standard_normal(shape), rng.standard_normal(shape), rng.uniform(-0.5, 0.5, shape)]
    target = rng.standard_normal(shape[:3])
    variables = [chainer.Variable(a.copy()) for a in inputs]
    mixture_nll(Mixture(*variables), target).backward()

    def loss(arrays):
        return float(mixture_nll(Mixture(*arrays), target).array)
    eps = 1e-6
    for which, variable in enumerate(variables):
        for index in zip(*(rng.integers(0, n, 6) for n in shape)):
            up = [a.copy() for a in inputs]
            down = [a.copy() for a in inputs]
            up[which][index] += eps
            down[which][index] -= eps
            numeric = (loss(up) - loss(down)) / (2 * eps)
            assert variable.grad[index] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (which, index)


def test_every_parameter_gets_a_gradient():
    rng = np.random.default_rng(2)
    model = MDNRNN(4, 2, 8, gaussians=3, predict_done=True, seed=0)
    z, actions, dones, mask = _fixed_batch(rng)
    total, *_ = model.loss(z, actions, dones, mask)
    model.cleargrads()
    total.backward()
    for name, param in model.namedparams():
        assert np.isfinite(param.grad).all(), name
        assert np.abs(param.grad).max() > 0, name


def test_done_positives_weigh_ten_times():
    logit = np.zeros(4, dtype=np.float32)
    positive = float(weighted_done_loss(logit, np.ones(4, dtype=np.float32)).array)
    negative = float(weighted_done_loss(logit, np.zeros(4, dtype=np.float32)).array)
    assert negative == pytest.approx(math.log(2), abs=1e-6)
    assert positive == pytest.approx(DONE_POSITIVE_WEIGHT * math.log(2), abs=1e-5)
    # The gradient that a positive pushes on its logit is ten times a negative's pull, in the other direction.
    x = chainer.Variable(np.zeros(2, dtype=np.float32))
    F.sum(weighted_done_loss(x, np.array([1.0, 0.0], dtype=np.float32))).backward()
    assert x.grad[0] == pytest.approx(-DONE_POSITIVE_WEIGHT * x.grad[1])


def test_padding_does_not_change_the_loss():
    rng = np.random.default_rng(3)
    model = MDNRNN(4, 2, 8, gaussians=3, predict_done=True, seed=0)
    z, actions, dones, mask = _fixed_batch(rng)
    _, nll, done, _ = model.loss(z, actions, dones, mask)
    z2 = z.copy()
    z2[2, 4:] = 100.0       # garbage in the padding
    dones2 = dones.copy()
    dones2[2, 4:] = 1.0
    _, nll2, done2, _ = model.loss(z2, actions, dones2, mask)
    assert float(nll2.array) == pytest.approx(float(nll.array), abs=1e-6)
    assert float(done2.array) == pytest.approx(float(done.array), abs=1e-6)


# ---- fitting a known mixture ------------------------------------------------------------------------------------
def test_fitting_recovers_a_known_two_component_mixture():
    """With a constant (zero) input the MDN's output is one mixture; fit it to samples of a known one."""
    rng = np.random.default_rng(4)
    weights, means, sigmas = np.array([0.3, 0.7]), np.array([-2.0, 1.5]), np.array([0.5, 0.3])
    n = 4000
    component = rng.choice(2, size=n, p=weights)
    target = (means[component] + sigmas[component] * rng.standard_normal(n)).astype(np.float32).reshape(n, 1, 1)
    model = MDNRNN(1, 1, hidden=4, gaussians=2, seed=0)
    optimizer = chainer.optimizers.Adam(alpha=0.05)
    optimizer.setup(model)
    zeros = np.zeros((1, 1, 1), dtype=np.float32)
    for _ in range(400):
        mixture, _, _ = model.forward_sequence(zeros, zeros)
        mixture = Mixture(*(F.broadcast_to(v, (n, 1, 1, 2)) for v in mixture))
        loss = mixture_nll(mixture, target)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    fitted, _, _ = model.step(zeros[0], zeros[0])
    order = np.argsort(fitted.mu[0, 0])
    pi = np.exp(fitted.logits[0, 0]) / np.exp(fitted.logits[0, 0]).sum()
    np.testing.assert_allclose(pi[order], weights, atol=0.04)
    np.testing.assert_allclose(fitted.mu[0, 0][order], means, atol=0.06)
    np.testing.assert_allclose(np.exp(fitted.log_sigma[0, 0][order]), sigmas, atol=0.04)


# ---- sampling --------------------------------------------------------------------------------------------------
def _single_gaussian(batch, mu=0.5, sigma=0.2):
    shape = (batch, 1, 1)
    return Mixture(np.zeros(shape, np.float32), np.full(shape, mu, np.float32),
                   np.full(shape, math.log(sigma), np.float32))


@pytest.mark.parametrize("tau", [0.25, 1.0, 2.0])
def test_sampled_spread_scales_with_the_square_root_of_tau(tau):
    draws = sample(_single_gaussian(40_000), tau, np.random.default_rng(5))[:, 0]
    assert draws.mean() == pytest.approx(0.5, abs=0.01)
    # exp(log sigma) is the standard deviation: 0.2 * sqrt(tau), not the variance 0.04 * sqrt(tau).
    assert draws.std() == pytest.approx(0.2 * math.sqrt(tau), rel=0.03)


def test_low_temperature_sharpens_the_choice_of_component():
    batch = 20_000
    shape = (batch, 1, 2)
    mixture = Mixture(np.broadcast_to(np.log([0.7, 0.3]).astype(np.float32), shape),
                      np.broadcast_to(np.array([-5.0, 5.0], np.float32), shape),
                      np.full(shape, math.log(0.1), np.float32))
    share = {tau: float((sample(mixture, tau, np.random.default_rng(6)) < 0).mean()) for tau in (2.0, 1.0, 0.1)}
    assert share[1.0] == pytest.approx(0.7, abs=0.015)
    assert share[2.0] == pytest.approx(math.sqrt(0.7) / (math.sqrt(0.7) + math.sqrt(0.3)), abs=0.015)
    assert share[0.1] > 0.999
    np.testing.assert_array_equal(sample(mixture, 0.0, np.random.default_rng(7)), -5.0)


def test_sampling_is_reproducible_from_the_generator():
    mixture = _single_gaussian(8)
    a = sample(mixture, 1.0, np.random.default_rng(8))
    b = sample(mixture, 1.0, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 1) and a.dtype == np.float32


def test_mixture_mean_weights_the_component_means():
    mixture = Mixture(np.log(np.array([[[0.25, 0.75]]], np.float32)), np.array([[[-1.0, 3.0]]], np.float32),
                      np.zeros((1, 1, 2), np.float32))
    assert float(mixture_mean(mixture)[0, 0]) == pytest.approx(2.0, abs=1e-6)


# ---- stepping with an explicit state -----------------------------------------------------------------------------
def test_stepping_equals_the_sequence_forward_and_rows_are_independent():
    rng = np.random.default_rng(9)
    model = MDNRNN(4, 2, 8, gaussians=3, predict_done=True, seed=0)
    z, actions, _, _ = _fixed_batch(rng)
    seq_mixture, seq_done, _ = model.forward_sequence(z, actions)
    state = None
    for t in range(z.shape[1]):
        mixture, done_prob, state = model.step(z[:, t], actions[:, t], state)
        np.testing.assert_allclose(mixture.mu, seq_mixture.mu.array[:, t], atol=1e-5)
        np.testing.assert_allclose(done_prob, _sigmoid(seq_done.array[:, t]), atol=1e-5)
    # One row alone, from its own slice of the state, gives that row of the batch.
    single, _, _ = model.step(z[1:2, 0], actions[1:2, 0])
    batched, _, _ = model.step(z[:, 0], actions[:, 0])
    np.testing.assert_allclose(single.log_sigma[0], batched.log_sigma[1], atol=1e-6)


# ---- model files ---------------------------------------------------------------------------------------------
def test_model_file_round_trip_and_mismatch(tmp_path):
    model = MDNRNN(4, 2, 8, gaussians=3, predict_done=True, seed=0)
    path = save_model(tmp_path / "mdn.npz", model, model.meta())
    loaded = load_mdn(path)
    assert loaded.meta() == model.meta()
    for (name, a), (_, b) in zip(sorted(model.namedparams()), sorted(loaded.namedparams())):
        np.testing.assert_array_equal(a.array, b.array, err_msg=name)
    other = MDNRNN(4, 2, 16)
    save_model(tmp_path / "other.npz", other, {**model.meta(), "hidden": 8, "predict_done": False})
    with pytest.raises(CheckpointError, match="does not match"):
        load_mdn(tmp_path / "other.npz")
    save_model(tmp_path / "vae.npz", {"w": np.zeros(2)}, {"kind": "vae"})
    with pytest.raises(CheckpointError, match="not an mdn model"):
        load_mdn(tmp_path / "vae.npz")
