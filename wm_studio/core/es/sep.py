"""sep-CMA-ES (Ros & Hansen 2008): CMA-ES with a diagonal covariance matrix, O(n) memory and time per sample.

Same updates as the full engine (wm_studio.core.es.cmaes) with C restricted to its diagonal `diagC`, B = I and
D = sqrt(diagC), so no eigendecomposition is ever needed. The learning rates c_1 and c_mu are multiplied by
(n + 2) / 3 (c_mu capped at 1 - c_1), as in sep-CMA-ES; the negative weights are scaled with these rates.
"""
from __future__ import annotations

import numpy as np

from wm_studio.core.device import to_numpy
from wm_studio.core.es.cmaes import _CMABase, read_only


class SepCMAES(_CMABase):
    """Separable CMA-ES for large n. `diagC` (n,) is the covariance; `C` builds the n x n diagonal matrix only
    when asked for, `B` is the identity."""

    _KIND = "wm_studio.sepcmaes"
    _SEPARABLE = True

    def _init_covariance(self):
        self._diag_c = self.xp.ones(self.n)
        self._D = self.xp.ones(self.n)

    diagC = property(lambda self: read_only(self._diag_c))
    eigen_gap = property(lambda self: 1)  # nothing to decompose: D = sqrt(diagC) is exact every generation

    @property
    def C(self) -> np.ndarray:
        return np.diag(to_numpy(self._diag_c))

    @property
    def B(self) -> np.ndarray:
        return np.eye(self.n)

    def _after_generation(self):
        self._D = self.xp.sqrt(self._diag_c)

    def _scale_samples(self, z):
        return z * self._D

    def _whiten(self, y):
        return y / self._D

    def _whitened_to_coordinates(self, u):
        return u

    def _update_covariance(self, decay, c1, coefficients, vectors):
        self._diag_c = decay * self._diag_c + c1 * self._pc ** 2 + coefficients @ vectors ** 2

    def _axis_lengths(self):
        return self._D

    def _coordinate_stds(self):
        return self._D

    def _principal_axis(self, index):
        axis = np.zeros(self.n)
        axis[index] = float(self._D[index])
        return axis

    def _covariance_arrays(self):
        return {"diag_c": self._diag_c}

    def _covariance_meta(self):
        return {}

    @classmethod
    def _covariance_shapes(cls, n):
        return {"diag_c": (n,)}

    def _restore_covariance(self, arrays, meta):
        self._diag_c = self.xp.asarray(arrays["diag_c"]).copy()
        self._D = self.xp.sqrt(self._diag_c)
