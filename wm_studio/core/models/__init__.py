"""V (ConvVAE), M (MDN-RNN) and C (controller): Chainer links and numpy controllers.

Names are exported lazily (PEP 562) so that importing a numpy-only module here (the controller, the model files)
does not pull Chainer into every rollout worker.
"""
import importlib

_EXPORTS = {
    "ConvVAE": "vae", "vae_loss": "vae", "parameter_count": "vae",
    "save_model": "serialization", "load_params": "serialization", "load_vae": "serialization",
    "read_model": "serialization", "model_arrays": "serialization",
    "optimizer_arrays": "serialization", "restore_optimizer": "serialization",
    "MDNRNN": "mdnrnn", "Mixture": "mdnrnn", "load_mdn": "mdnrnn", "mixture_nll": "mdnrnn", "sample": "mdnrnn",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
