"""Training M: the MDN-RNN learns p(z_{t+1} | z_t, a_t, h_t) on the latents that V wrote.

Each batch is a set of windows of seq_len transitions; every window starts from a zero LSTM state (truncated
backpropagation through time over the window, as in the paper's training on whole 999-step sequences). z is
redrawn from V's stored (mu, logvar) for every batch, z = mu + exp(logvar / 2) * eps, with eps from the stage's
own generator, so M sees V's uncertainty rather than one fixed code per frame. Adam with gradient-norm clipping.

At the end of each epoch the NLL on held-out rollouts (a fixed split of the latent files, a fixed noise seed) goes
to metrics/mdn.jsonl. Checkpoints (weights, Adam state, epoch, batch, generator, loss history) are written every
`checkpoint_every_s` seconds, at each epoch's end and when the generator is closed; each also refreshes
models/mdn.npz so the studio can load the newest M while training goes on.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from wm_studio.core.backend import Device, to_numpy
from wm_studio.core.data.dataset import SequenceDataset, rollout_files, split_holdout
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import check_shapes, generator_state, restore_generator
from wm_studio.core.models.mdnrnn import MDNRNN, Mixture, mixture_mean
from wm_studio.core.models.serialization import (copy_into_link, link_shapes, model_arrays, optimizer_arrays,
                                                 restore_optimizer, save_model)
from wm_studio.core.runs import Run

STAGE = "mdn"
RECENT = 20                 # batches in the snapshot's running NLL
PREDICTION_DIMS = 4         # latent dimensions shown in the one-step prediction plot
PREDICTION_STEPS = 100      # time steps shown in it


@dataclass(frozen=True)
class MdnSettings:
    z_size: int
    action_size: int
    hidden: int
    predict_done: bool
    gaussians: int = 5
    epochs: int = 10
    batch_size: int = 32
    seq_len: int = 100          # transitions per window (the paper: 999)
    lr: float = 1e-3
    grad_clip: float = 1.0
    holdout: float = 0.1        # fraction of latent files held out for the per-epoch NLL
    seed: int = 0
    checkpoint_every_s: float = 120.0

    def __post_init__(self):
        positive = {"z_size": self.z_size, "action_size": self.action_size, "hidden": self.hidden,
                    "gaussians": self.gaussians, "epochs": self.epochs, "batch_size": self.batch_size,
                    "seq_len": self.seq_len}
        bad = [f"{name} = {value}" for name, value in positive.items() if not value >= 1]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append(f"lr = {self.lr}")
        if not self.grad_clip > 0:
            bad.append(f"grad_clip = {self.grad_clip}")
        if not 0 <= self.holdout < 1:
            bad.append(f"holdout = {self.holdout} (must be in [0, 1))")
        if bad:
            raise ConfigError("M's settings are out of range: " + ", ".join(bad))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MdnSettings":
        """Settings from a run's config.json: the game's sizes at the top level, the rest in its "mdn" section."""
        section = dict(config.get("mdn", {}))
        section.setdefault("seed", config.get("seed", 0))     # the run's seed unless M has its own
        known = set(cls.__dataclass_fields__) - {"z_size", "action_size", "hidden", "predict_done"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) in the run's mdn section: {', '.join(unknown)}")
        try:
            return cls(z_size=int(config["z_size"]), action_size=int(config["action_size"]),
                       hidden=int(config["hidden"]), predict_done=bool(config.get("predict_done", False)),
                       **section)
        except KeyError as exc:
            raise ConfigError(f"the run's config.json lacks {exc.args[0]!r}; make the run from a preset") from None

    def model(self) -> MDNRNN:
        return MDNRNN(self.z_size, self.action_size, self.hidden, self.gaussians, self.predict_done,
                      seed=self.seed)


@dataclass(frozen=True)
class MdnSnapshot:
    done: int                       # batches done over the whole run
    total: int                      # batches in all epochs
    epoch: int                      # the epoch under way, counted from 1 (== epochs when finished)
    epochs: int
    nll: float                      # mean training NLL over the last RECENT batches (nats per latent dimension)
    done_loss: float | None         # the same for the done head (Doom), None without one
    heldout_nll: float | None       # after the latest finished epoch
    history: np.ndarray             # (batches, 3): epoch, NLL, done loss (NaN without a done head)
    heldout: np.ndarray             # (epochs finished, 2): epoch, held-out NLL
    true_next: np.ndarray           # (T, D) z_{t+1} of one training window, a few dimensions
    predicted_next: np.ndarray      # (T, D) the mixture mean M predicted for it from z_t, a_t, h_t
    finished: bool = False

    def summary(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}", f"nll {self.nll:.4f}"]
        if self.done_loss is not None:
            parts.append(f"done {self.done_loss:.4f}")
        if self.heldout_nll is not None:
            parts.append(f"held-out {self.heldout_nll:.4f}")
        return " ".join(parts)


@dataclass
class _Progress:
    """Where training stands; checkpointed as a whole so that a resumed run equals an uninterrupted one."""
    epoch: int
    batch: int
    rng: np.random.Generator
    history: list = field(default_factory=list)     # [epoch, nll, done loss] per batch
    heldout: list = field(default_factory=list)     # [epoch, held-out nll] per finished epoch


def latent_files_of(run: Run) -> list:
    files = rollout_files(run.latents_dir)
    if not files:
        raise CheckpointError(f"{run.root} has no latents in {run.latents_dir}: run "
                              f"`wm-studio train-vae --run {run.root}` first (it encodes the rollouts for M)")
    return files


def train_mdn(run: Run, settings: MdnSettings, device: Device) -> Iterator[MdnSnapshot]:
    """Train M on the run's latents, yielding a snapshot after every batch; resumes from the newest checkpoint."""
    train_files, heldout_files = split_holdout(latent_files_of(run), settings.holdout, settings.seed)
    # seq_len transitions need seq_len + 1 consecutive steps.
    data = SequenceDataset(train_files, settings.batch_size, settings.seq_len + 1, settings.seed)
    if (data.z_size, data.action_size) != (settings.z_size, settings.action_size):
        raise CheckpointError(f"the latents in {run.latents_dir} have z {data.z_size} and actions "
                              f"{data.action_size}, but this run's M expects z {settings.z_size} and actions "
                              f"{settings.action_size}: encode them again with this run's V")
    heldout = (SequenceDataset(heldout_files, settings.batch_size, settings.seq_len + 1, settings.seed)
               if heldout_files else None)

    import chainer
    model = settings.model()
    model.to_device(device.chainer_device)
    optimizer = chainer.optimizers.Adam(alpha=settings.lr)
    optimizer.setup(model)
    optimizer.add_hook(chainer.optimizer_hooks.GradientClipping(settings.grad_clip))
    per_epoch = data.batches_per_epoch()
    progress = _restore(run, model, optimizer, settings, per_epoch)
    xp = device.xp
    last_checkpoint = time.monotonic()
    window = (np.zeros((0, PREDICTION_DIMS), np.float32),) * 2
    try:
        while progress.epoch < settings.epochs:
            if progress.batch < per_epoch:
                for batch in data.epoch(progress.epoch, progress.batch):
                    nll, done_loss, window = _train_batch(model, optimizer, batch, progress, xp)
                    progress.batch += 1
                    progress.history.append([progress.epoch + 1, nll, np.nan if done_loss is None else done_loss])
                    if time.monotonic() - last_checkpoint >= settings.checkpoint_every_s:
                        _checkpoint(run, model, optimizer, settings, progress, per_epoch)
                        last_checkpoint = time.monotonic()
                    yield _snapshot(settings, progress, per_epoch, window)
            _finish_epoch(run, model, settings, progress, heldout, xp)
            _checkpoint(run, model, optimizer, settings, progress, per_epoch)
            last_checkpoint = time.monotonic()
            yield _snapshot(settings, progress, per_epoch, window)
        yield _snapshot(settings, progress, per_epoch, window, finished=True)
    finally:
        _checkpoint(run, model, optimizer, settings, progress, per_epoch)


def _train_batch(model, optimizer, batch, progress: _Progress, xp):
    eps = progress.rng.standard_normal(batch.mu.shape, dtype=np.float32)
    z = xp.asarray(batch.mu + np.exp(0.5 * batch.logvar) * eps)
    total, nll, done_loss, mixture = model.loss(z, xp.asarray(batch.actions), xp.asarray(batch.dones),
                                                xp.asarray(batch.mask))
    value = float(total.array)
    if not math.isfinite(value):
        # Stop before the update so that the weights (and the final checkpoint) stay finite.
        raise ConfigError(f"M's loss became {value} in epoch {progress.epoch + 1}, batch {progress.batch + 1}; "
                          f"lower the learning rate (--lr) and run the same command again to resume")
    model.cleargrads()
    total.backward()
    optimizer.update()
    window = _prediction_window(z, mixture)
    return float(nll.array), (None if done_loss is None else float(done_loss.array)), window


def _prediction_window(z, mixture: Mixture):
    """True z_{t+1} and M's predicted mixture mean for the first window of the batch, a few dimensions."""
    steps, dims = min(PREDICTION_STEPS, z.shape[1] - 1), min(PREDICTION_DIMS, z.shape[2])
    first = Mixture(*(to_numpy(v.array[0, :steps, :dims]) for v in mixture))
    return to_numpy(z[0, 1:steps + 1, :dims]).copy(), mixture_mean(first).astype(np.float32)


def heldout_nll(model: MDNRNN, data: SequenceDataset, seed: int, xp) -> float:
    """Mean NLL per transition and dimension over every held-out window, with z drawn from a fixed seed so
    that the figure changes only when the model does."""
    import chainer
    rng = np.random.default_rng([seed, 1])
    weighted, count = 0.0, 0.0
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        for batch in data.epoch(0):
            eps = rng.standard_normal(batch.mu.shape, dtype=np.float32)
            z = xp.asarray(batch.mu + np.exp(0.5 * batch.logvar) * eps)
            _, nll, _, _ = model.loss(z, xp.asarray(batch.actions), None, xp.asarray(batch.mask))
            transitions = float(batch.mask[:, 1:].sum())
            weighted += float(nll.array) * transitions
            count += transitions
    return weighted / max(count, 1.0)


def _finish_epoch(run: Run, model, settings: MdnSettings, progress: _Progress, heldout, xp) -> None:
    epoch = progress.epoch + 1
    rows = [row for row in progress.history if row[0] == epoch]
    record = {"epoch": epoch, "nll": float(np.mean([r[1] for r in rows])) if rows else None}
    if settings.predict_done and rows:
        record["done_loss"] = float(np.mean([r[2] for r in rows]))
    if heldout is not None:
        value = heldout_nll(model, heldout, settings.seed, xp)
        progress.heldout.append([epoch, value])
        record["heldout_nll"] = value
    run.append_metrics(STAGE, record)
    progress.epoch, progress.batch = epoch, 0


def _snapshot(settings: MdnSettings, progress: _Progress, per_epoch: int, window, finished=False) -> MdnSnapshot:
    recent = progress.history[-RECENT:]
    history = np.array(progress.history, dtype=np.float64).reshape(-1, 3)
    heldout = np.array(progress.heldout, dtype=np.float64).reshape(-1, 2)
    done = min(progress.epoch * per_epoch + progress.batch, settings.epochs * per_epoch)
    return MdnSnapshot(
        done=done, total=settings.epochs * per_epoch,
        epoch=min(progress.epoch + 1, settings.epochs), epochs=settings.epochs,
        nll=float(np.mean([r[1] for r in recent])) if recent else math.nan,
        done_loss=float(np.mean([r[2] for r in recent])) if recent and settings.predict_done else None,
        heldout_nll=float(heldout[-1, 1]) if len(heldout) else None,
        history=history, heldout=heldout, true_next=window[0], predicted_next=window[1], finished=finished)


# ---- checkpoints -----------------------------------------------------------------------------------------------
def _checkpoint(run: Run, model, optimizer, settings: MdnSettings, progress: _Progress, per_epoch: int) -> None:
    arrays = {f"model/{name}": value for name, value in model_arrays(model).items()}
    arrays.update({f"optimizer/{name}": value for name, value in optimizer_arrays(optimizer).items()})
    arrays["history"] = np.array(progress.history, dtype=np.float64).reshape(-1, 3)
    arrays["heldout"] = np.array(progress.heldout, dtype=np.float64).reshape(-1, 2)
    meta = {"epoch": progress.epoch, "batch": progress.batch, "batches_per_epoch": per_epoch,
            "rng": generator_state(progress.rng), "model": model.meta(),
            "batch_size": settings.batch_size, "seq_len": settings.seq_len}
    run.save_checkpoint(STAGE, progress.epoch * per_epoch + progress.batch, arrays, meta)
    save_model(run.model_path(STAGE), model, model.meta())


def _restore(run: Run, model, optimizer, settings: MdnSettings, per_epoch: int) -> _Progress:
    loaded = run.load_checkpoint(STAGE)
    if loaded is None:
        return _Progress(epoch=0, batch=0, rng=np.random.default_rng([settings.seed, 0]))
    arrays, meta = loaded
    path = run.latest_checkpoint(STAGE)
    if meta.get("model") != model.meta():
        raise CheckpointError(f"{path} holds an M of another shape ({meta.get('model')}) than this run's "
                              f"settings ({model.meta()}); use another --run folder")
    weights = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    check_shapes(path, weights, link_shapes(model))
    copy_into_link(model, weights)
    restore_optimizer(optimizer, {name[len("optimizer/"):]: value for name, value in arrays.items()
                                  if name.startswith("optimizer/")}, source=path)
    progress = _Progress(epoch=int(meta["epoch"]), batch=int(meta["batch"]), rng=restore_generator(meta["rng"]),
                         history=arrays.get("history", np.zeros((0, 3))).tolist(),
                         heldout=arrays.get("heldout", np.zeros((0, 2))).tolist())
    same_batches = (meta.get("batches_per_epoch"), meta.get("batch_size"), meta.get("seq_len")) == \
        (per_epoch, settings.batch_size, settings.seq_len)
    if not same_batches:
        # The epoch is cut differently now (other batch size, window or data): its batch index means nothing,
        # so the epoch starts over with the trained weights.
        progress.batch = 0
    return progress
