"""Model files and optimiser state shared by V, M and C: named arrays in npz plus a JSON meta dict, never pickle.

A model file holds one array per parameter, named by its path in the link (`enc_conv1/W`, ...) or by the keys of
a plain mapping (the numpy controller), and a meta dict with at least `kind` ("vae", "mdn", "controller"), the
sizes needed to rebuild the model and `format`. Weights may be stored as float16 for compact bundles; loading
always yields float32. Chainer is imported lazily so that numpy-only workers (the controller) never pay for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wm_studio.core.device import to_numpy
from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import check_shapes, load_npz, save_npz

MODEL_FORMAT = 1


def model_arrays(model) -> dict[str, np.ndarray]:
    """Host copies of a model's parameters by name: a chainer.Link's namedparams, or a mapping name -> array."""
    if isinstance(model, Mapping):
        return {str(name): to_numpy(value) for name, value in model.items()}
    import chainer
    if isinstance(model, chainer.Link):
        arrays = {}
        for name, param in model.namedparams():
            if param.array is None:
                raise ValueError(f"parameter {name} is not initialised; run the model once before saving it")
            arrays[name.lstrip("/")] = to_numpy(param.array)
        return arrays
    raise TypeError(f"cannot save a {type(model).__name__}: pass a chainer.Link or a mapping name -> array")


def save_model(path, model, meta: Mapping[str, Any], dtype=np.float32) -> Path:
    """Write a model file atomically: its parameters (floats cast to dtype) and meta (must name the `kind`)."""
    if "kind" not in meta:
        raise ValueError("meta must say which kind of model this is (meta['kind'])")
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32):
        raise ValueError(f"model files hold float16 or float32 weights, not {dtype}")
    arrays = {name: value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value
              for name, value in model_arrays(model).items()}
    return save_npz(path, arrays, {**meta, "format": MODEL_FORMAT, "dtype": dtype.name})


def read_model(path, kind: str, expected: Mapping[str, tuple] | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(float32 arrays, meta) of a model file of the given kind; with `expected` {name: shape}, check them all.

    Any mismatch (another kind, a missing, extra or misshapen array, NaN) is one CheckpointError naming it.
    """
    arrays, meta = load_npz(path)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {meta.get('kind') or 'unknown'} model, not a {kind} model")
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is model format {meta.get('format')!r}; this version reads format "
                              f"{MODEL_FORMAT}")
    if expected is not None:
        check_names(path, arrays, expected)
    arrays = {name: value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
              for name, value in arrays.items()}
    bad = [name for name, value in arrays.items()
           if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all()]
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite weights in {', '.join(bad)}: the training that "
                              f"wrote it diverged; retrain or use an earlier model")
    return arrays, meta


def check_names(path, arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple]) -> None:
    """CheckpointError unless arrays has exactly the expected names, each with its expected shape."""
    check_shapes(path, arrays, expected)
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise CheckpointError(f"{path} does not match this model: unexpected {', '.join(extra)}")


def link_shapes(link) -> dict[str, tuple]:
    return {name.lstrip("/"): tuple(param.shape) for name, param in link.namedparams()}


def copy_into_link(link, arrays: Mapping[str, np.ndarray]) -> None:
    """Copy host arrays into the link's parameters, wherever (CPU or GPU) the link lives."""
    for name, param in link.namedparams():
        value = arrays[name.lstrip("/")]
        if param.array is None:
            param.initialize(value.shape)
        xp = param.device.xp
        param.array[...] = xp.asarray(value, dtype=param.array.dtype)


def load_params(path, model, kind: str) -> dict[str, Any]:
    """Check the file (kind, every name and shape) and copy its weights into the link; return the meta."""
    arrays, meta = read_model(path, kind, link_shapes(model))
    copy_into_link(model, arrays)
    return meta


def load_vae(path, device=None):
    """A ConvVAE rebuilt from a model file's meta, with its weights loaded; on `device` (a device.Device)."""
    from wm_studio.core.models.vae import ConvVAE
    arrays, meta = read_model(path, "vae")
    z_size = meta.get("z_size")
    if not isinstance(z_size, int) or z_size < 1:
        raise CheckpointError(f"{path} does not say its z_size; it was not written by wm_studio's save_model")
    model = ConvVAE(z_size)
    check_names(path, arrays, link_shapes(model))
    copy_into_link(model, arrays)
    if device is not None:
        model.to_device(device.chainer_device)
    return model


def optimizer_arrays(optimizer) -> dict[str, np.ndarray]:
    """The optimiser's whole state (Adam: t, epoch and every parameter's m and v) as host arrays by name."""
    from chainer.serializers import DictionarySerializer
    serializer = DictionarySerializer()
    serializer.save(optimizer)
    # Chainer writes None (an object array) for a state that does not exist yet; it cannot go into a safe npz.
    return {name: np.asarray(value) for name, value in serializer.target.items()
            if np.asarray(value).dtype != object}


def restore_optimizer(optimizer, arrays: Mapping[str, np.ndarray], source="checkpoint") -> None:
    """Put back the state that optimizer_arrays() took; the optimiser must already be set up on its model."""
    from chainer.serializers import NpzDeserializer
    try:
        # Copies: Adam updates its state in place and must not write into the caller's arrays.
        NpzDeserializer({name: np.array(value) for name, value in arrays.items()}).load(optimizer)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source} does not hold this optimiser's state ({exc}); it belongs to another "
                              f"model or setting") from None
