"""One generator per training stage (V, M, C) and the rollout evaluators.

Names are exported lazily (PEP 562): importing one stage does not import the others.
"""
import importlib

_EXPORTS = {
    "train_vae": "vae_stage", "VaeSettings": "vae_stage", "VaeSnapshot": "vae_stage",
    "encode_rollouts": "encode", "EncodeSnapshot": "encode",
    "train_mdn": "mdn_stage", "MdnSettings": "mdn_stage", "MdnSnapshot": "mdn_stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
