"""V: the convolutional VAE of World Models (Ha & Schmidhuber 2018), exactly the paper's network.

Encoder: 64x64x3 -> conv 32, 64, 128, 256 (kernel 4, stride 2, ReLU) -> 2x2x256 = 1024 -> mu, logvar (z each).
Decoder: z -> dense 1024 -> (1024, 1, 1) -> deconv 128 k5, 64 k5, 32 k6 (stride 2, ReLU), 3 k6 (stride 2, sigmoid).
Loss per image: sum of squared error over all pixels + max(KL, 0.5 * z_size), each averaged over the batch.
4,348,547 parameters at z 32 (CarRacing) and 4,446,915 at z 64 (Doom).

Input is float32 NCHW in [0, 1] (wm_studio.core.envs.preprocess.frames_to_input). On the CPU the convolutions
run through wm_studio.core.channels_last (one float32 GEMM per layer instead of Chainer's im2col loops); on a GPU
they run through Chainer's stock cuDNN path. Both compute the same function with the same parameters.
"""
from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers
import numpy as np

from wm_studio.core import channels_last

PAPER_PARAMETERS = {32: 4_348_547, 64: 4_446_915}
KL_TOLERANCE = 0.5   # the KL term is floored at KL_TOLERANCE * z_size per image: no pressure below it

_ENCODER = ((3, 32), (32, 64), (64, 128), (128, 256))           # kernel 4, stride 2
_DECODER = ((1024, 128, 5), (128, 64, 5), (64, 32, 6), (32, 3, 6))  # stride 2


class ConvVAE(chainer.Chain):
    def __init__(self, z_size: int = 32, seed: int | None = None, fast_cpu: bool = True):
        super().__init__()
        self.z_size = int(z_size)
        # Chainer's own layers on the CPU stay selectable: the benchmark and the tests compare both.
        self.fast_cpu = fast_cpu
        # Chainer's default initialiser (LeCun normal), drawn from the model's own generator, not global state.
        init = initializers.LeCunNormal(rng=np.random.default_rng(seed))
        with self.init_scope():
            for i, (cin, cout) in enumerate(_ENCODER, 1):
                setattr(self, f"enc_conv{i}", L.Convolution2D(cin, cout, ksize=4, stride=2, initialW=init))
            self.enc_mu = L.Linear(1024, self.z_size, initialW=init)
            self.enc_logvar = L.Linear(1024, self.z_size, initialW=init)
            self.dec_fc = L.Linear(self.z_size, 1024, initialW=init)
            for i, (cin, cout, k) in enumerate(_DECODER, 1):
                setattr(self, f"dec_deconv{i}", L.Deconvolution2D(cin, cout, ksize=k, stride=2, initialW=init))

    def meta(self) -> dict:
        """What a model file records to rebuild this network (see serialization.save_model)."""
        return {"kind": "vae", "z_size": self.z_size}

    def _use_fast(self, x) -> bool:
        return self.fast_cpu and isinstance(chainer.as_array(x), np.ndarray)

    def encode(self, x):
        """(mu, logvar), each (B, z), of images x: float32 (B, 3, 64, 64) in [0, 1]."""
        convs = [getattr(self, f"enc_conv{i}") for i in range(1, 5)]
        if self._use_fast(x):
            h = F.transpose(x, (0, 2, 3, 1))
            for conv in convs:
                h = F.relu(channels_last.convolution_2d(h, conv.W, conv.b, stride=2))
            h = F.transpose(h, (0, 3, 1, 2))   # flatten in NCHW order, as the stock layers do
        else:
            h = x
            for conv in convs:
                h = F.relu(conv(h))
        h = F.reshape(h, (h.shape[0], 1024))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z):
        """Images (B, 3, 64, 64) in [0, 1] from latents z (B, z_size)."""
        deconvs = [getattr(self, f"dec_deconv{i}") for i in range(1, 5)]
        h = self.dec_fc(z)
        if self._use_fast(h):
            h = F.reshape(h, (h.shape[0], 1, 1, 1024))
            for i, deconv in enumerate(deconvs):
                h = channels_last.deconvolution_2d(h, deconv.W, deconv.b, stride=2)
                h = F.relu(h) if i < 3 else F.sigmoid(h)
            return F.transpose(h, (0, 3, 1, 2))
        h = F.reshape(h, (h.shape[0], 1024, 1, 1))
        for i, deconv in enumerate(deconvs):
            h = deconv(h)
            h = F.relu(h) if i < 3 else F.sigmoid(h)
        return h

    def sample(self, mu, logvar, rng: np.random.Generator):
        """The reparameterised draw z = mu + exp(logvar / 2) * eps, with eps from the caller's generator."""
        eps = rng.standard_normal(mu.shape, dtype=np.float32)
        eps = chainer.backend.get_device_from_array(chainer.as_array(mu)).send(eps)
        return mu + F.exp(logvar * 0.5) * eps

    def reconstruct(self, x):
        """The decoder's image of each input's mean latent (no sampling)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def loss(self, x, rng: np.random.Generator):
        """(total, rec, kl): per-image sum of squared error and floored KL, each a mean over the batch."""
        mu, logvar = self.encode(x)
        y = self.decode(self.sample(mu, logvar, rng))
        return vae_loss(x, y, mu, logvar, self.z_size)


def vae_loss(x, y, mu, logvar, z_size: int):
    batch = x.shape[0]
    rec = F.sum(F.squared_difference(x, y)) / batch
    kl_per_image = -0.5 * F.sum(1.0 + logvar - mu * mu - F.exp(logvar), axis=1)
    floor = chainer.backend.get_array_module(kl_per_image).full(
        kl_per_image.shape, KL_TOLERANCE * z_size, dtype=kl_per_image.dtype)
    kl = F.sum(F.maximum(kl_per_image, floor)) / batch
    return rec + kl, rec, kl


def parameter_count(model: chainer.Link) -> int:
    return int(sum(param.size for param in model.params()))
