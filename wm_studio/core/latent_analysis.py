"""What a sample of latents says about V: how much each dimension of z carries (mean KL to the prior) and a 2-D
map of the latents (their first two principal components). The Latent pane orders its sliders and draws its map
with these; wm_studio.core.run_contents.load_latents draws the sample."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_studio.core.errors import ConfigError


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean KL(N(mu, exp(logvar)) || N(0, 1)) of each latent dimension over the frames: (z,).

    A dimension V does not use sits at mu 0, logvar 0 (KL 0); the ones that carry the picture have large KL."""
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return (0.5 * (mu * mu + np.exp(logvar) - 1.0 - logvar)).mean(axis=0)


def dimension_order(mu: np.ndarray, logvar: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(order, score, what): dimensions sorted by how much they matter, most first.

    By mean KL when logvar is known, else by the variance of mu over the frames."""
    if logvar is not None:
        score, what = kl_per_dimension(mu, logvar), "KL"
    else:
        score, what = np.asarray(mu, np.float64).var(axis=0), "var"
    return np.argsort(-score, kind="stable"), score, what


@dataclass(frozen=True)
class PcaMap:
    mean: np.ndarray            # (z,)
    components: np.ndarray      # (2, z), orthonormal rows
    points: np.ndarray          # (N, 2): the sample projected
    explained: np.ndarray       # (2,): share of the total variance on each axis

    def project(self, z) -> np.ndarray:
        return (np.asarray(z, np.float64) - self.mean) @ self.components.T

    def lift(self, uv) -> np.ndarray:
        """The latent at plot point uv: mean + uv . components (float32, (z,))."""
        return (self.mean + np.asarray(uv, np.float64) @ self.components).astype(np.float32)


def pca_map(mu: np.ndarray) -> PcaMap:
    """The latents' first two principal components (a 1-D set gets a zero second axis)."""
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2 or len(mu) < 2:
        raise ConfigError("a PCA map needs at least two latents")
    mean = mu.mean(axis=0)
    centred = mu - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = np.zeros((2, mu.shape[1]))
    count = min(2, len(vt))
    components[:count] = vt[:count]
    # A fixed sign per axis (largest coordinate positive): the map does not flip when the data grow.
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular ** 2
    explained = np.zeros(2)
    explained[:count] = variance[:count] / max(variance.sum(), 1e-300)
    return PcaMap(mean, components, centred @ components.T, explained)
