"""C: the controller, a single linear layer on [z, h] (plus c for Doom), kept in numpy.

It runs inside every rollout worker thousands of times per generation, where a Chainer graph would only add
overhead, and CMA-ES sees it as one flat parameter vector.

CarRacing: a = tanh(W [z h] + b); steer = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1)   (867 parameters)
Doom:      a = tanh(w . [z h c]) without bias, split in thirds: left / none / right        (1,088 parameters)
The z-only variants drop h (and c): 99 and 64 parameters.

Model file (models/controller.npz, see serialization.py): `weight` (outputs, inputs) and, for CarRacing, `bias`
(outputs,), with ControllerShape.meta() plus whatever the trainer adds (its score, the generation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError

GAME_OUTPUTS = {"carracing": 3, "doom": 1}
INPUT_MODES = ("zh", "z")


@dataclass(frozen=True)
class ControllerShape:
    game: str           # "carracing" or "doom"
    z_size: int
    hidden: int
    inputs: str = "zh"  # "zh": z and the LSTM state; "z": z alone

    def __post_init__(self):
        if self.game not in GAME_OUTPUTS:
            raise ConfigError(f"no controller for game {self.game!r}")
        if self.inputs not in INPUT_MODES:
            raise ConfigError(f"controller inputs must be one of {INPUT_MODES}, not {self.inputs!r}")

    @property
    def input_size(self) -> int:
        if self.inputs == "z":
            return self.z_size
        # Doom's controller also sees the LSTM cell state c (the paper's [z, h, c]).
        return self.z_size + self.hidden * (2 if self.game == "doom" else 1)

    @property
    def outputs(self) -> int:
        return GAME_OUTPUTS[self.game]

    @property
    def has_bias(self) -> bool:
        return self.game == "carracing"

    @property
    def n_params(self) -> int:
        return self.outputs * self.input_size + (self.outputs if self.has_bias else 0)

    def meta(self) -> dict:
        return {"kind": "controller", "game": self.game, "z_size": self.z_size, "hidden": self.hidden,
                "inputs": self.inputs}

    def array_shapes(self) -> dict[str, tuple]:
        """The arrays of a model file of this shape, by name."""
        shapes = {"weight": (self.outputs, self.input_size)}
        if self.has_bias:
            shapes["bias"] = (self.outputs,)
        return shapes


class Controller:
    def __init__(self, shape: ControllerShape, params: np.ndarray | None = None):
        self.shape = shape
        self.set_params(np.zeros(shape.n_params) if params is None else params)

    @classmethod
    def for_game(cls, game: str, z_size: int, hidden: int, inputs: str = "zh", params=None) -> "Controller":
        return cls(ControllerShape(game, z_size, hidden, inputs), params)

    @property
    def n_params(self) -> int:
        return self.shape.n_params

    def set_params(self, params) -> None:
        flat = np.asarray(params, dtype=np.float64).ravel()
        if flat.size != self.shape.n_params:
            raise ConfigError(f"a {self.shape.game} controller on {self.shape.inputs} has "
                              f"{self.shape.n_params} parameters, got {flat.size}")
        if not np.all(np.isfinite(flat)):
            raise ConfigError("controller parameters contain NaN or infinity")
        outputs, inputs = self.shape.outputs, self.shape.input_size
        self.weight = flat[: outputs * inputs].reshape(outputs, inputs).astype(np.float32)
        self.bias = (flat[outputs * inputs:].astype(np.float32) if self.shape.has_bias
                     else np.zeros(outputs, np.float32))

    @property
    def params(self) -> np.ndarray:
        parts = [self.weight.ravel()] + ([self.bias] if self.shape.has_bias else [])
        return np.concatenate(parts).astype(np.float64)

    def features(self, z, h=None, c=None) -> np.ndarray:
        """The controller's input rows, (B, input_size), from batches of z, h and c."""
        parts = [np.atleast_2d(z)]
        if self.shape.inputs == "zh":
            if h is None or (self.shape.game == "doom" and c is None):
                raise ConfigError("this controller reads the MDN-RNN state: pass h (and c for Doom)")
            parts.append(np.atleast_2d(h))
            if self.shape.game == "doom":
                parts.append(np.atleast_2d(c))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def raw_output(self, z, h=None, c=None) -> np.ndarray:
        """tanh(W x + b): (B, outputs) in [-1, 1]."""
        return np.tanh(self.features(z, h, c) @ self.weight.T + self.bias)

    def act(self, z, h=None, c=None) -> np.ndarray:
        """Actions in the game's own form, (B, action_size) float32."""
        return to_game_action(self.shape.game, self.raw_output(z, h, c))

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"weight": self.weight}
        if self.shape.has_bias:
            arrays["bias"] = self.bias
        return arrays


class ControllerBatch:
    """Many controllers of one shape, one per row: row r acts on row r of z, h and c (a batched dream)."""

    def __init__(self, shape: ControllerShape, params: np.ndarray):
        params = np.asarray(params, dtype=np.float64)
        if params.ndim != 2 or params.shape[1] != shape.n_params:
            raise ConfigError(f"expected one row of {shape.n_params} parameters per controller, got {params.shape}")
        if not np.all(np.isfinite(params)):
            raise ConfigError("controller parameters contain NaN or infinity")
        self.shape = shape
        outputs, inputs = shape.outputs, shape.input_size
        self.weight = params[:, : outputs * inputs].reshape(len(params), outputs, inputs).astype(np.float32)
        self.bias = (params[:, outputs * inputs:].astype(np.float32) if shape.has_bias
                     else np.zeros((len(params), outputs), np.float32))
        self._single = Controller(shape)      # reuses its feature assembly and checks

    def act(self, z, h=None, c=None) -> np.ndarray:
        features = self._single.features(z, h, c)
        raw = np.tanh(np.einsum("roi,ri->ro", self.weight, features) + self.bias)
        return to_game_action(self.shape.game, raw)

    def keep(self, mask) -> None:
        """Keep only the rows where mask is True (a batched dream drops the rows whose episode ended)."""
        self.weight, self.bias = self.weight[mask], self.bias[mask]


def save_controller(path, controller: Controller, extra_meta: dict | None = None):
    """Write models/controller.npz (float32, atomic); extra_meta (score, generation...) goes into its meta."""
    from wm_studio.core.models.serialization import save_model
    return save_model(path, controller.arrays(), {**(extra_meta or {}), **controller.shape.meta()})


def load_controller(path) -> tuple[Controller, dict]:
    """(controller, meta) from a file written by save_controller; CheckpointError for anything that does not fit."""
    from wm_studio.core.models.serialization import check_names, read_model
    arrays, meta = read_model(path, "controller")
    try:
        shape = ControllerShape(meta["game"], int(meta["z_size"]), int(meta["hidden"]), meta.get("inputs", "zh"))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path} does not describe a controller ({exc}); it was not written by "
                              f"wm_studio's save_controller") from None
    check_names(path, arrays, shape.array_shapes())
    flat = np.concatenate([arrays["weight"].ravel()] + ([arrays["bias"]] if shape.has_bias else []))
    return Controller(shape, flat), meta


def to_game_action(game: str, raw: np.ndarray) -> np.ndarray:
    raw = np.atleast_2d(raw)
    if game == "carracing":
        steer, gas, brake = raw[:, 0], (raw[:, 1] + 1.0) / 2.0, np.clip(raw[:, 2], 0.0, 1.0)
        return np.stack([steer, gas, brake], axis=1).astype(np.float32)
    # Doom: one output in thirds; the buttons are (left, right), "none" presses neither.
    left = raw[:, 0] < -1.0 / 3.0
    right = raw[:, 0] > 1.0 / 3.0
    return np.stack([left, right], axis=1).astype(np.float32)
