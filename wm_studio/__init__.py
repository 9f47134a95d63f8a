"""World Models Studio: V (VAE), M (MDN-RNN) and C (controller, evolved with CMA-ES), end to end."""

__version__ = "0.1.0"

# Before anything imports Chainer: on Python 3.12, numpy 1.26 has no numpy.distutils, which Chainer 7.8.1 imports
# at startup for a macOS-only check; this stubs it there (and does nothing on 3.11). See core/cupy_compat.py.
from wm_studio.core.cupy_compat import prepare_chainer_import as _prepare_chainer_import  # noqa: E402

_prepare_chainer_import()
