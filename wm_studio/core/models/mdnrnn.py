"""M: the MDN-RNN, an LSTM whose output is a mixture of Gaussians over the next latent vector.

Per latent dimension the head gives `gaussians` components (logit, mu, log sigma), and for Doom one more logit:
the probability that the episode ends. The LSTM is Chainer's (upward Linear with bias, lateral Linear without),
driven with an explicit (h, c) state so that many dreams step at once and a state can be cloned.

Head layout: the Linear output of width 3 * K * z (+1) is read as (z, 3, K): [:, 0] logits, [:, 1] mu,
[:, 2] log sigma; the done logit, if any, is the last column.

Parameter counts (tested): z 32, action 3, hidden 256 -> 422,368; z 64, action 2, hidden 512 + done -> 1,678,785.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers
import numpy as np

from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import load_npz

DONE_POSITIVE_WEIGHT = 10.0     # the paper weights the rare "episode ends" frames ten times
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class Mixture(NamedTuple):
    """Mixture parameters, each (..., z, K): unnormalised component logits, means and log standard deviations."""
    logits: object
    mu: object
    log_sigma: object


class LSTMState(NamedTuple):
    h: object   # (B, hidden)
    c: object   # (B, hidden)


class MDNRNN(chainer.Chain):
    def __init__(self, z_size: int, action_size: int, hidden: int, gaussians: int = 5,
                 predict_done: bool = False, seed: int | None = None):
        super().__init__()
        self.z_size, self.action_size, self.hidden = int(z_size), int(action_size), int(hidden)
        self.gaussians, self.predict_done = int(gaussians), bool(predict_done)
        out = 3 * self.gaussians * self.z_size + (1 if self.predict_done else 0)
        # Chainer's default initialisation (LeCun normal), drawn from our own generator, not numpy's global one.
        init = initializers.LeCunNormal(rng=np.random.default_rng(seed))
        with self.init_scope():
            # StatelessLSTM holds exactly L.LSTM's parameters (upward with bias, lateral without) but takes the
            # state as an argument instead of keeping it.
            self.lstm = L.StatelessLSTM(self.z_size + self.action_size, self.hidden, lateral_init=init,
                                        upward_init=init)
            self.head = L.Linear(self.hidden, out, initialW=init)

    def meta(self) -> dict:
        return {"kind": "mdn", "z_size": self.z_size, "action_size": self.action_size, "hidden": self.hidden,
                "gaussians": self.gaussians, "predict_done": self.predict_done}

    def count_params(self) -> int:
        return sum(p.size for p in self.params())

    # ---- state ---------------------------------------------------------------------------------------------
    def initial_state(self, batch: int) -> LSTMState:
        xp = self.xp
        zeros = xp.zeros((batch, self.hidden), dtype=np.float32)
        return LSTMState(zeros, zeros.copy())

    # ---- sequences (training) ----------------------------------------------------------------------------------
    def forward_sequence(self, z, actions, state: LSTMState | None = None):
        """Run the LSTM over (B, T, z) latents and (B, T, A) actions from `state` (zeros if None).

        Returns (mixture with (B, T, z, K) Variables, done logits (B, T) or None, final state). The upward
        projection of every time step is one matrix product; only the recurrence loops over time.
        """
        batch, steps = z.shape[:2]
        xp = self.xp
        inputs = xp.concatenate([xp.asarray(z, dtype=np.float32), xp.asarray(actions, dtype=np.float32)], axis=2)
        upward = self.lstm.upward(inputs.reshape(batch * steps, -1)).reshape(batch, steps, 4 * self.hidden)
        if state is None:
            state = self.initial_state(batch)
        h, c = state
        outputs = []
        # F.separate, not upward[:, t]: slicing would back-propagate a full-size zero array for every step.
        for upward_t in F.separate(upward, axis=1):
            c, h = F.lstm(c, upward_t + self.lstm.lateral(h))
            outputs.append(h)
        hs = F.stack(outputs, axis=1).reshape(batch * steps, self.hidden)
        mixture, done_logit = self._split(self.head(hs), (batch, steps))
        return mixture, done_logit, LSTMState(h, c)

    def _split(self, out, lead: tuple):
        # split_axis and separate rather than slicing: a sliced Variable back-propagates through numpy's slow
        # add.at into a full-size array of zeros.
        if self.predict_done:
            params, done_logit = F.split_axis(out, [3 * self.gaussians * self.z_size], axis=1)
            done_logit = done_logit.reshape(lead)
        else:
            params, done_logit = out, None
        params = params.reshape(*lead, self.z_size, 3, self.gaussians)
        return Mixture(*F.separate(params, axis=len(lead) + 1)), done_logit

    # ---- one step (the dream) --------------------------------------------------------------------------------
    def step(self, z, action, state: LSTMState | None = None):
        """One step for a batch: (z (B, z), action (B, A), state) -> (mixture of xp arrays (B, z, K),
        done probability (B,) or None, new state). No graph is built: this is inference only."""
        xp = self.xp
        z = xp.asarray(z, dtype=np.float32)
        action = xp.asarray(action, dtype=np.float32)
        if state is None:
            state = self.initial_state(len(z))
        with chainer.no_backprop_mode(), chainer.using_config("train", False):
            c, h = self.lstm(state.c, state.h, xp.concatenate([z, action], axis=1))
            mixture, done_logit = self._split(self.head(h), (len(z),))
        mixture = Mixture(*(v.array for v in mixture))
        done_prob = None if done_logit is None else 1.0 / (1.0 + xp.exp(-done_logit.array))
        return mixture, done_prob, LSTMState(h.array, c.array)

    # ---- loss ------------------------------------------------------------------------------------------------
    def loss(self, z, actions, dones=None, mask=None, state: LSTMState | None = None):
        """Teacher-forced loss on (B, T) sequences: inputs (z_t, a_t), targets z_{t+1} and dones[t].

        Returns (total, nll, done_loss, mixture); done_loss is None without a done head. The NLL covers the
        T - 1 steps that have a next latent; the done loss covers all T steps, so an episode's final step
        (which has no next frame) still teaches the done head. `mask` (B, T) marks real steps (False on the
        padding after a short rollout); padded steps count in neither loss.
        """
        xp = self.xp
        mixture, done_logit, _ = self.forward_sequence(z, actions, state)
        mask = xp.ones(z.shape[:2], dtype=np.float32) if mask is None else xp.asarray(mask, dtype=np.float32)
        # The last step has no next latent: it gets a dummy target and weight 0 (cheaper than slicing it off).
        z = xp.asarray(z, dtype=np.float32)
        target = xp.concatenate([z[:, 1:], xp.zeros_like(z[:, :1])], axis=1)
        nll_mask = xp.concatenate([mask[:, 1:], xp.zeros_like(mask[:, :1])], axis=1)
        nll = mixture_nll(mixture, target, nll_mask)
        if not self.predict_done or dones is None:
            return nll, nll, None, mixture
        done_loss = weighted_done_loss(done_logit, xp.asarray(dones, dtype=np.float32), mask)
        return nll + done_loss, nll, done_loss, mixture


def mixture_nll(mixture: Mixture, target, mask=None):
    """Mean over every latent dimension, time step and sequence of -log sum_k pi_k N(target | mu_k, sigma_k).

    The log-sum-exp runs over the K components of ONE dimension; dimensions are averaged afterwards (summing
    them inside the log was a defect of an earlier implementation). `mask` (B, T) weights the steps (0 or 1).
    """
    log_pi = F.log_softmax(mixture.logits, axis=-1)
    target = F.broadcast_to(F.expand_dims(target, -1), mixture.mu.shape)
    log_normal = -0.5 * ((target - mixture.mu) * F.exp(-mixture.log_sigma)) ** 2 - mixture.log_sigma - LOG_SQRT_2PI
    per_dim = -F.logsumexp(log_pi + log_normal, axis=-1)       # (B, T, z)
    if mask is None:
        return F.mean(per_dim)
    weights = F.broadcast_to(mask[..., None] / per_dim.shape[-1], per_dim.shape)
    return F.sum(per_dim * weights) / max(float(mask.sum()), 1.0)


def weighted_done_loss(done_logit, dones, mask=None):
    """Sigmoid cross-entropy with positive (episode ends) targets weighted DONE_POSITIVE_WEIGHT times, averaged
    over the (unmasked) steps."""
    # -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x), both stable for large |x|.
    per_step = DONE_POSITIVE_WEIGHT * dones * F.softplus(-done_logit) + (1.0 - dones) * F.softplus(done_logit)
    if mask is None:
        return F.mean(per_step)
    return F.sum(per_step * mask) / max(float(mask.sum()), 1.0)


# ---- sampling and summaries on plain arrays (numpy or CuPy) ---------------------------------------------------
def _array_module(a):
    return chainer.backend.get_array_module(a)


def softmax(logits, axis=-1):
    xp = _array_module(logits)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def mixture_weights(mixture: Mixture, tau: float = 1.0):
    """Component probabilities softmax(logits / tau); tau 0 puts all weight on the most likely component."""
    logits = mixture.logits
    xp = _array_module(logits)
    if tau <= 0:
        best = logits.argmax(axis=-1)
        return (xp.arange(logits.shape[-1]) == best[..., None]).astype(logits.dtype)
    return softmax(logits / tau)


def mixture_mean(mixture: Mixture):
    """The mean of each dimension's mixture (sum_k pi_k mu_k), (..., z)."""
    return (mixture_weights(mixture) * mixture.mu).sum(axis=-1)


def sample(mixture: Mixture, tau: float, rng: np.random.Generator):
    """Draw one latent per batch row from the mixture at temperature tau.

    The component is drawn from softmax(logits / tau); the value is mu + exp(log sigma) * sqrt(tau) * noise:
    exp(log sigma) is the standard deviation (using the variance there was an earlier defect). tau 0 gives the
    most likely component's mean. Random numbers come from the numpy `rng` and are moved to the mixture's device.
    """
    xp = _array_module(mixture.mu)
    shape = mixture.mu.shape[:-1]
    uniform = xp.asarray(rng.random(shape, dtype=np.float32))
    normal = xp.asarray(rng.standard_normal(shape, dtype=np.float32))
    return sample_with_noise(mixture, tau, uniform, normal)


def sample_with_noise(mixture: Mixture, tau: float, uniform, normal):
    """`sample` with its random numbers given: uniform picks each dimension's component (inverse CDF), normal
    (same shape, (..., z)) is the Gaussian noise. Dreams that share noise share their randomness."""
    if tau < 0:
        raise ValueError(f"temperature must be >= 0, got {tau}")
    xp = _array_module(mixture.mu)
    logits = mixture.logits
    if tau <= 0:
        chosen = logits.argmax(axis=-1)
    else:
        # Inverse CDF on the unnormalised weights exp((logits - max) / tau): the first component whose running
        # sum passes uniform * total.
        weights = xp.exp((logits - logits.max(axis=-1, keepdims=True)) * (1.0 / tau))
        cumulative = xp.cumsum(weights, axis=-1)
        chosen = (cumulative < (uniform * cumulative[..., -1])[..., None]).sum(axis=-1)
        chosen = xp.minimum(chosen, logits.shape[-1] - 1)
    index = chosen[..., None]
    mu = xp.take_along_axis(mixture.mu, index, axis=-1)[..., 0]
    sigma = xp.exp(xp.take_along_axis(mixture.log_sigma, index, axis=-1)[..., 0])
    return (mu + sigma * normal * math.sqrt(tau)).astype(np.float32)


def load_mdn(path, device=None) -> MDNRNN:
    """An MDNRNN rebuilt from a model file's meta with its weights loaded (on `device`, a device.Device)."""
    from wm_studio.core.models.serialization import load_params
    _, meta = load_npz(path)
    if meta.get("kind") != "mdn":
        raise CheckpointError(f"{path} holds a {meta.get('kind') or 'unknown'} model, not an mdn model")
    sizes = {key: meta.get(key) for key in ("z_size", "action_size", "hidden", "gaussians")}
    if not all(isinstance(v, int) and v > 0 for v in sizes.values()) or not isinstance(meta.get("predict_done"),
                                                                                         bool):
        raise CheckpointError(f"{path} does not say the MDN-RNN's sizes ({sizes}); it was not written by "
                              f"wm_studio's save_model")
    model = MDNRNN(**sizes, predict_done=meta["predict_done"])
    load_params(path, model, "mdn")
    if device is not None:
        model.to_device(device.chainer_device)
    return model
