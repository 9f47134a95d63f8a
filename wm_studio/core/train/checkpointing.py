"""What V's and M's stages share: the training position, the loop over epochs of batches, its checkpoints and the
gradient step.

A checkpoint holds the model's weights ("model/<name>"), the optimiser's state ("optimizer/<name>"), the loss
history ("history": one row per batch, the epoch first), the held-out figures ("heldout": one row per finished
epoch) and in its meta the position (epoch, batch, the sampling generator), the model's meta and the stage's batch
layout. Each checkpoint also refreshes models/<stage>.npz, so the studio can load the newest model while training
goes on. The loop writes one every `every_s` seconds, at each epoch's end and when it is closed; a call that
trained nothing writes nothing (unless the model file is missing), so a finished stage leaves its model file, and
with it the fingerprint of V that the latents carry, alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import check_shapes, generator_state, restore_generator
from wm_studio.core.models.serialization import (copy_into_link, link_shapes, model_arrays, optimizer_arrays,
                                                 restore_optimizer, save_model)
from wm_studio.core.runs import Run

PART_NAMES = {"vae": "V", "mdn": "M"}    # made_by keys, as messages name them


def changed_parts(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The names (V, M) of the parts whose fingerprint now differs from the recorded one; a record that lacks a
    part (written before these records) counts it as unchanged."""
    return [PART_NAMES.get(part, part) for part, value in current.items() if recorded.get(part, value) != value]

MODEL, OPTIMIZER = "model/", "optimizer/"


class Rows:
    """A table that grows by rows; `view()` is a read-only view of the rows so far, made in constant time.

    Snapshots carry the whole loss history after every batch (a million rows in the paper's run): copying it
    each time would cost more than the batch. Rows never change once written, so a view stays valid.
    """

    def __init__(self, width: int, rows=None):
        rows = widen(rows if rows is not None else np.zeros((0, width)), width)
        self._data = np.zeros((max(256, 2 * len(rows)), width))
        self._data[:len(rows)] = rows
        self.count = len(rows)

    def append(self, row) -> None:
        if self.count == len(self._data):
            grown = np.zeros((2 * len(self._data), self._data.shape[1]))
            grown[:self.count] = self._data
            self._data = grown
        self._data[self.count] = row
        self.count += 1

    def view(self) -> np.ndarray:
        rows = self._data[:self.count]
        rows.flags.writeable = False
        return rows


def widen(rows, width: int) -> np.ndarray:
    """Rows (N, w) as (N, width) float64: columns a table gained since the rows were written are NaN."""
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows.reshape(-1, width) if rows.ndim != 2 else rows
    if rows.shape[1] < width:
        rows = np.concatenate([rows, np.full((len(rows), width - rows.shape[1]), np.nan)], axis=1)
    return rows


@dataclass(frozen=True)
class EpochSnapshot:
    """What the snapshots of V's and M's stages share: where training stands in batches and epochs."""
    done: int                       # batches done over the whole run
    total: int                      # batches in all epochs
    epoch: int                      # the epoch under way, counted from 1 (== epochs when finished)
    epochs: int


@dataclass
class EpochProgress:
    """Where training stands; checkpointed whole so that a resumed run equals an uninterrupted one."""
    epoch: int          # epochs finished
    batch: int          # batches done in the epoch under way
    rng: np.random.Generator
    history: Rows       # one row per batch, the epoch (from 1) first
    heldout: Rows       # one row per finished epoch, the epoch first


def epoch_counts(epoch: int, batch: int, per_epoch: int, epochs: int) -> dict[str, int]:
    """The snapshot fields of a position: batches done and in all epochs, the epoch under way (from 1)."""
    total = epochs * per_epoch
    return {"done": min(epoch * per_epoch + batch, total), "total": total, "epoch": min(epoch + 1, epochs),
            "epochs": epochs}


def prefixed(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with prefix, by the rest of their names."""
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}


class StageCheckpoints:
    """Writes and restores one stage's checkpoints for its model and optimiser.

    layout: the settings that decide how an epoch is cut into batches (batch size, window length). A checkpoint
    written under another layout or other data resumes at the start of its epoch: its batch index means nothing.
    made_by: what made the training data ({"vae": fingerprint} for M's latents), recorded in every checkpoint. A
    checkpoint made from other data (V trained again since) is refused: resuming would mix two latent spaces.
    """

    def __init__(self, run: Run, stage: str, model, optimizer, per_epoch: int, layout: Mapping[str, Any],
                 widths: tuple[int, int], every_s: float, made_by: Mapping[str, Any] | None = None):
        self.run, self.stage, self.model, self.optimizer = run, stage, model, optimizer
        self.per_epoch, self.layout, self.every_s = per_epoch, dict(layout), every_s
        self.made_by = dict(made_by or {})
        self.history_width, self.heldout_width = widths
        self._written = None        # the (epoch, batch) of the newest checkpoint on disk, once known

    def restore(self, seed: int, model_name: str) -> EpochProgress:
        """The position of the newest checkpoint, its weights and optimiser state put back; or a fresh start.

        model_name: how the error names a model of another shape ("a V", "an M")."""
        loaded = self.run.load_checkpoint(self.stage)
        if loaded is None:
            return EpochProgress(epoch=0, batch=0, rng=np.random.default_rng([seed, 0]),
                                 history=Rows(self.history_width), heldout=Rows(self.heldout_width))
        arrays, meta = loaded
        path = self.run.latest_checkpoint(self.stage)
        model = self.model
        if meta.get("model") != model.meta():
            raise CheckpointError(f"{path} holds {model_name} of another shape ({meta.get('model')}) than this "
                                  f"run's settings ({model.meta()}); use another --run folder")
        self._check_made_by(path, meta.get("made_by") or {}, model_name)
        weights = prefixed(arrays, MODEL)
        check_shapes(path, weights, link_shapes(model))
        copy_into_link(model, weights)
        restore_optimizer(self.optimizer, prefixed(arrays, OPTIMIZER), source=path)
        try:
            progress = EpochProgress(epoch=int(meta["epoch"]), batch=int(meta["batch"]),
                                     rng=restore_generator(meta["rng"]),
                                     history=Rows(self.history_width, arrays.get("history")),
                                     heldout=Rows(self.heldout_width, arrays.get("heldout")))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path} lacks its training position ({exc}); delete it to start over") from None
        self._written = (progress.epoch, progress.batch)
        if meta.get("batches_per_epoch") != self.per_epoch or any(
                meta.get(name) != value for name, value in self.layout.items()):
            progress.batch = 0
        return progress

    def _check_made_by(self, path, recorded: Mapping[str, Any], model_name: str) -> None:
        """A checkpoint from before this record (no made_by) is taken as it is."""
        changed = changed_parts(recorded, self.made_by)
        if changed:
            parts = ", ".join(f"another {name}" for name in changed)
            folder = self.run.checkpoints_dir(self.stage)
            model_path = self.run.model_path(self.stage)
            raise CheckpointError(
                f"{path} holds {model_name} trained on data made by {parts} than the run's data now "
                f"(it was trained again since): resuming would mix the two. Keep the old one and start afresh: "
                f"mv {folder} {folder}.old && mv {model_path} {model_path}.old")

    def write(self, progress: EpochProgress) -> None:
        model = self.model
        arrays = {f"{MODEL}{name}": value for name, value in model_arrays(model).items()}
        arrays.update({f"{OPTIMIZER}{name}": value for name, value in optimizer_arrays(self.optimizer).items()})
        arrays["history"] = progress.history.view()
        arrays["heldout"] = progress.heldout.view()
        meta = {"epoch": progress.epoch, "batch": progress.batch, "batches_per_epoch": self.per_epoch,
                **self.layout, "rng": generator_state(progress.rng), "model": model.meta(),
                "made_by": self.made_by}
        self.run.save_checkpoint(self.stage, progress.epoch * self.per_epoch + progress.batch, arrays, meta)
        save_model(self.run.model_path(self.stage), model, {**model.meta(), "made_by": self.made_by})
        self._written = (progress.epoch, progress.batch)

    def write_if_changed(self, progress: EpochProgress) -> None:
        """Write unless the newest checkpoint already holds this position and the model file is there."""
        if (progress.epoch, progress.batch) != self._written or not self.run.model_path(self.stage).is_file():
            self.write(progress)


def train_epochs(progress: EpochProgress, epochs: int, checkpoints: StageCheckpoints,
                 batches: Callable[[int, int], Iterable], train: Callable[[Any], Any],
                 finish_epoch: Callable[[], None]) -> Iterator[Any]:
    """Train from where progress stands to the end of the last epoch, checkpointing as the module says.

    batches(epoch, start): the batches of an epoch from index start. train(batch) trains on one; what it returns
    is yielded after the batch. finish_epoch() records the epoch's figures; then the next epoch starts and None
    is yielded.
    """
    last_write = time.monotonic()
    try:
        while progress.epoch < epochs:
            if progress.batch < checkpoints.per_epoch:
                for batch in batches(progress.epoch, progress.batch):
                    trained = train(batch)
                    progress.batch += 1
                    if time.monotonic() - last_write >= checkpoints.every_s:
                        checkpoints.write(progress)
                        last_write = time.monotonic()
                    yield trained
            finish_epoch()
            progress.epoch, progress.batch = progress.epoch + 1, 0
            checkpoints.write(progress)
            last_write = time.monotonic()
            yield None
    finally:
        checkpoints.write_if_changed(progress)


def descend(model, optimizer, loss, progress: EpochProgress, model_name: str) -> float:
    """One optimiser step on the loss variable; its value. A loss that is not finite stops before the update,
    so that the weights (and the final checkpoint) stay finite. model_name: "V" or "M" in the message."""
    value = float(loss.array)
    if not math.isfinite(value):
        raise ConfigError(f"{model_name}'s loss became {value} in epoch {progress.epoch + 1}, batch "
                          f"{progress.batch + 1}; lower the learning rate (--lr) and run the same command again "
                          f"to resume")
    model.cleargrads()
    loss.backward()
    optimizer.update()
    return value
