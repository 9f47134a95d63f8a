"""V's encoder and M's LSTM step for one frame at a time, in plain numpy: what every rollout step runs.

Why not the Chainer models: a controller rollout encodes ONE 64x64 frame and advances the LSTM by ONE step per
game step. At that size Chainer's per-call machinery (Variables, FunctionNodes, type checks; ~20 functions per
step) costs more than the arithmetic (about 15 M multiply-adds), and a rollout worker would also have to import
Chainer. Here each layer is one float32 GEMM on weights laid out once at load time. The outputs equal the Chainer
models' (tests/core/train/test_rollout.py holds them to it); benchmarks/bench_controller.py measures both.

- `LeanEncoder(arrays)`: V's mean latent mu of uint8 frames (B, 64, 64, 3) -> (B, z). Rollouts use mu, not a
  sample: the controller should react to the frame, not to V's noise, and mu keeps a rollout a deterministic
  function of its seed (the same fitness on every backend).
- `LeanLSTM(arrays)`: Chainer's StatelessLSTM step (upward Linear with bias, lateral Linear without; gates
  interleaved a, i, f, o per unit) on [z, action] and (h, c).
- `LeanMDN(arrays)`: the whole M step, LSTM and mixture head (and Doom's done logit): what the dream runs for
  thousands of rows at once while C trains in it.
All take the arrays of a model file (serialization.read_model), so they need numpy only.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from wm_studio.core.errors import CheckpointError

ENCODER_LAYERS = 4
KERNEL, STRIDE = 4, 2
LSTM_GATES = 4     # a (cell input), i, f, o


def _window_matrix(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """(B*oh*ow, k*k*C) windows of NHWC x for a k=4, stride 2 convolution, in (ki, kj, c) order."""
    batch, _, _, channels = x.shape
    sb, sh, sw, sc = x.strides
    windows = as_strided(x, (batch, oh, ow, KERNEL, KERNEL, channels),
                         (sb, sh * STRIDE, sw * STRIDE, sh, sw, sc), writeable=False)
    return np.ascontiguousarray(windows).reshape(batch * oh * ow, KERNEL * KERNEL * channels)


class LeanEncoder:
    def __init__(self, arrays):
        try:
            self.layers = []
            for i in range(1, ENCODER_LAYERS + 1):
                weight = arrays[f"enc_conv{i}/W"]                     # (out, in, k, k), Chainer's layout
                out, cin, kh, kw = weight.shape
                if (kh, kw) != (KERNEL, KERNEL):
                    raise CheckpointError(f"V's enc_conv{i} has a {kh}x{kw} kernel, not {KERNEL}x{KERNEL}")
                matrix = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(kh * kw * cin, out))
                self.layers.append((matrix.astype(np.float32), arrays[f"enc_conv{i}/b"].astype(np.float32)))
            mu_weight = arrays["enc_mu/W"]                              # (z, 1024) over NCHW-flattened features
            self.z_size = mu_weight.shape[0]
            channels = self.layers[-1][0].shape[1]
            side = int(round((mu_weight.shape[1] / channels) ** 0.5))
            # Reorder the columns once so that NHWC features can be flattened as they are.
            nhwc = mu_weight.reshape(self.z_size, channels, side, side).transpose(0, 2, 3, 1)
            self.mu_weight = np.ascontiguousarray(nhwc.reshape(self.z_size, -1).T, dtype=np.float32)
            self.mu_bias = arrays["enc_mu/b"].astype(np.float32)
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"V's weights do not form the World Models encoder ({exc})") from None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """mu, float32 (B, z), of uint8 frames (B, 64, 64, 3) (or one frame (64, 64, 3) -> (1, z))."""
        frames = np.asarray(frames)
        x = (frames[None] if frames.ndim == 3 else frames).astype(np.float32)
        x *= np.float32(1.0 / 255.0)
        for matrix, bias in self.layers:
            batch, height, width, _ = x.shape
            oh, ow = (height - KERNEL) // STRIDE + 1, (width - KERNEL) // STRIDE + 1
            y = _window_matrix(x, oh, ow) @ matrix
            y += bias
            np.maximum(y, 0.0, out=y)
            x = y.reshape(batch, oh, ow, -1)
        return x.reshape(len(x), -1) @ self.mu_weight + self.mu_bias


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5      # the same formula Chainer's sigmoid uses on the CPU


class LeanLSTM:
    def __init__(self, arrays):
        try:
            upward, lateral = arrays["lstm/upward/W"], arrays["lstm/lateral/W"]
            self.hidden = lateral.shape[1]
            inputs = upward.shape[1]
            # Chainer interleaves the gates per unit (row 4u + g); gather them into four blocks of `hidden` rows.
            def blocks(a):
                return a.reshape(self.hidden, LSTM_GATES, -1).transpose(1, 0, 2).reshape(LSTM_GATES * self.hidden, -1)
            joined = np.concatenate([blocks(upward), blocks(lateral)], axis=1)   # (4H, in + H) on [z, a, h]
            self.weight = np.ascontiguousarray(joined.T, dtype=np.float32)
            self.bias = blocks(arrays["lstm/upward/b"][:, None]).ravel().astype(np.float32)
            self.input_size = inputs
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"M's weights do not form an LSTM ({exc})") from None

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((batch, self.hidden), np.float32), np.zeros((batch, self.hidden), np.float32)

    def step(self, z, action, h, c) -> tuple[np.ndarray, np.ndarray]:
        """(h, c) after one step on z (B, z) and action (B, A) from (h, c) (B, hidden)."""
        x = np.concatenate([np.atleast_2d(z), np.atleast_2d(action), h], axis=1).astype(np.float32, copy=False)
        gates = x @ self.weight
        gates += self.bias
        H = self.hidden
        cell_input = np.tanh(gates[:, :H])
        c = cell_input * _sigmoid(gates[:, H:2 * H]) + _sigmoid(gates[:, 2 * H:3 * H]) * c
        h = _sigmoid(gates[:, 3 * H:]) * np.tanh(c)
        return h, c


class LeanMDN(LeanLSTM):
    """M's step in numpy: the LSTM, then the head read as per-dimension mixtures (and the done logit)."""

    def __init__(self, arrays, gaussians: int, predict_done: bool):
        super().__init__(arrays)
        try:
            weight, bias = arrays["head/W"], arrays["head/b"]          # (out, hidden): Chainer's Linear
        except KeyError as exc:
            raise CheckpointError(f"M's weights have no mixture head ({exc})") from None
        self.gaussians, self.predict_done = int(gaussians), bool(predict_done)
        mixture_width = weight.shape[0] - (1 if self.predict_done else 0)
        if mixture_width % (3 * self.gaussians) or weight.shape[1] != self.hidden:
            raise CheckpointError(f"M's head {weight.shape} does not fit {self.gaussians} Gaussians per dimension "
                                  f"on a hidden state of {self.hidden}")
        self.z_size = mixture_width // (3 * self.gaussians)
        self.action_size = self.input_size - self.z_size
        # Chainer's head writes (z, 3, K) per row; reorder its columns to (3, K, z), so that the sums and maxima
        # over the K components run over whole rows of z values (numpy is slow on axes of 5 in a row).
        z, k = self.z_size, self.gaussians
        part, component, dim = np.meshgrid(np.arange(3), np.arange(k), np.arange(z), indexing="ij")
        order = np.concatenate([(dim * 3 * k + part * k + component).ravel(), np.arange(mixture_width,
                                                                                         weight.shape[0])])
        self.head_weight = np.ascontiguousarray(weight[order].T, dtype=np.float32)
        self.head_bias = bias[order].astype(np.float32)

        width = 3 * k * z
        self.mixture_weight, self.mixture_bias = self.head_weight[:, :width].copy(), self.head_bias[:width]
        self.done_weight, self.done_bias = self.head_weight[:, width:].copy(), self.head_bias[width:]

    def head(self, h: np.ndarray):
        """(logits, mu, log_sigma), each (B, z, K) (views laid out K-major), and the done logit (B,) or None."""
        return (*self.mixture(h), self.done_logits(h) if self.predict_done else None)

    def mixture(self, h: np.ndarray):
        """(logits, mu, log_sigma), each (B, z, K), views of one (B, 3, K, z) array."""
        out = h @ self.mixture_weight
        out += self.mixture_bias
        params = out.reshape(len(h), 3, self.gaussians, self.z_size).transpose(0, 1, 3, 2)
        return params[:, 0], params[:, 1], params[:, 2]

    def done_logits(self, h: np.ndarray) -> np.ndarray:
        """The done logit (B,) of each hidden state (an M with a done head)."""
        return (h @ self.done_weight + self.done_bias)[:, 0]


def lean_mdn(path) -> LeanMDN:
    """LeanMDN of a model file (float16 or float32 on disk)."""
    from wm_studio.core.models.serialization import read_model
    arrays, meta = read_model(path, "mdn")
    return LeanMDN(arrays, int(meta.get("gaussians", 5)), bool(meta.get("predict_done")))
