"""Training M: the MDN-RNN learns p(z_{t+1} | z_t, a_t, h_t) on the latents that V wrote.

Each batch is a set of windows of seq_len transitions; every window starts from a zero LSTM state (truncated
backpropagation through time over the window, as in the paper's training on whole 999-step sequences). z is
redrawn from V's stored (mu, logvar) for every batch, z = mu + exp(logvar / 2) * eps, with eps from the stage's
own generator, so M sees V's uncertainty rather than one fixed code per frame. Adam with gradient-norm clipping.

At the end of each epoch the NLL on held-out rollouts (a fixed split of the latent files, a fixed noise seed) goes
to metrics/mdn.jsonl, and for Doom how well the done head predicts the held-out deaths (`done_prediction`: the
share of deaths caught within DONE_WINDOW steps, false alarms per 1,000 steps before that, the mean p(done) at
the final step), since a dream can only end, and C can only learn, where M predicts the end. Checkpoints (weights, Adam state, epoch, batch, generator, loss history) are written every
`checkpoint_every_s` seconds, at each epoch's end and when the generator is closed; each also refreshes
models/mdn.npz so the studio can load the newest M while training goes on (checkpointing.py).
"""
from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from wm_studio.core.device import Device, to_numpy
from wm_studio.core.data.dataset import SequenceDataset, run_data_files, split_holdout
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import read_meta
from wm_studio.core.models.mdnrnn import MDNRNN, Mixture, mixture_mean
from wm_studio.core.presets import stage_settings
from wm_studio.core.runs import Run
from wm_studio.core.train.checkpointing import (EpochProgress, EpochSnapshot, StageCheckpoints, descend,
                                                epoch_counts, train_epochs)

STAGE = "mdn"
RECENT = 20                 # batches in the snapshot's running NLL
# One row per finished epoch; the done columns are NaN for an M without a done head.
HELDOUT_COLUMNS = ("epoch", "nll", "done_recall", "false_alarms_per_1000", "p_done_at_end")
DONE_WINDOW = 5             # a death counts as caught when p(done) passes the threshold within its last 5 steps
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
    def from_config(cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> "MdnSettings":
        """Settings from a run's config.json: the game's sizes at the top level, the rest in its "mdn" section."""
        try:
            game = {"z_size": int(config["z_size"]), "action_size": int(config["action_size"]),
                    "hidden": int(config["hidden"]), "predict_done": bool(config.get("predict_done", False))}
        except KeyError as exc:
            raise ConfigError(f"the run's config.json lacks {exc.args[0]!r}; make the run from a preset") from None
        return stage_settings(cls, config, "mdn", overrides, **game)

    def model(self) -> MDNRNN:
        return MDNRNN(self.z_size, self.action_size, self.hidden, self.gaussians, self.predict_done,
                      seed=self.seed)


@dataclass(frozen=True)
class MdnSnapshot(EpochSnapshot):
    step: ClassVar[str] = "mdn"  # the step that makes it (wm_studio.core.stages)
    nll: float                      # mean training NLL over the last RECENT batches (nats per latent dimension)
    done_loss: float | None         # the same for the done head (Doom), None without one
    heldout_nll: float | None       # after the latest finished epoch
    history: np.ndarray             # (batches, 3): epoch, NLL, done loss (NaN without a done head)
    heldout: np.ndarray             # (epochs finished, 5): HELDOUT_COLUMNS
    true_next: np.ndarray           # (T, D) z_{t+1} of one training window, a few dimensions
    predicted_next: np.ndarray      # (T, D) the mixture mean M predicted for it from z_t, a_t, h_t
    finished: bool = False

    def summary(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}", f"nll {self.nll:.4f}"]
        if self.done_loss is not None:
            parts.append(f"done {self.done_loss:.4f}")
        if self.heldout_nll is not None:
            parts.append(f"held-out {self.heldout_nll:.4f}")
        if len(self.heldout) and np.isfinite(self.heldout[-1, 2]):
            parts.append(f"deaths caught {self.heldout[-1, 2]:.0%}, false alarms "
                         f"{self.heldout[-1, 3]:.2f}/1000 steps")
        return " ".join(parts)


def latent_files_of(run: Run) -> list:
    return run_data_files(run, "latents")


def latents_made_by(run: Run, files) -> dict[str, str]:
    """{"vae": fingerprint} of the V that encoded every latent file ({} for latents that do not say); latents of
    two V's at once (an encoding left half done after V trained again) are refused."""
    fingerprints = {read_meta(path).get("vae") for path in files} - {None}
    if len(fingerprints) > 1:
        raise CheckpointError(f"the latents in {run.latents_dir} were encoded by {len(fingerprints)} different V's: "
                              f"finish encoding with the newest V first (`wm-studio train-vae --run {run.root}`)")
    return {"vae": fingerprints.pop()} if fingerprints else {}


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
    checkpoints = StageCheckpoints(run, STAGE, model, optimizer, data.batches_per_epoch(),
                                   {"batch_size": settings.batch_size, "seq_len": settings.seq_len},
                                   (3, len(HELDOUT_COLUMNS)), settings.checkpoint_every_s,
                                   made_by=latents_made_by(run, train_files + heldout_files))
    progress = checkpoints.restore(settings.seed, "an M")
    xp = device.xp
    window = (np.zeros((0, PREDICTION_DIMS), np.float32),) * 2
    with closing(train_epochs(progress, settings.epochs, checkpoints, data.epoch,
                              lambda batch: _train_batch(model, optimizer, batch, progress, xp),
                              lambda: _finish_epoch(run, model, settings, progress, heldout, xp))) as steps:
        for trained in steps:
            window = window if trained is None else trained
            yield _snapshot(settings, progress, checkpoints.per_epoch, window)
    yield _snapshot(settings, progress, checkpoints.per_epoch, window, finished=True)


def _train_batch(model, optimizer, batch, progress: EpochProgress, xp):
    eps = progress.rng.standard_normal(batch.mu.shape, dtype=np.float32)
    z = xp.asarray(batch.mu + np.exp(0.5 * batch.logvar) * eps)
    total, nll, done_loss, mixture = model.loss(z, xp.asarray(batch.actions), xp.asarray(batch.dones),
                                                xp.asarray(batch.mask))
    descend(model, optimizer, total, progress, "M")
    progress.history.append([progress.epoch + 1, float(nll.array),
                             np.nan if done_loss is None else float(done_loss.array)])
    return _prediction_window(z, mixture, batch.mask)


def _prediction_window(z, mixture: Mixture, mask: np.ndarray):
    """True z_{t+1} and M's predicted mixture mean for the longest window of the batch, a few dimensions."""
    row = int(np.argmax(mask.sum(axis=1)))
    steps = min(PREDICTION_STEPS, int(mask[row].sum()) - 1)
    dims = min(PREDICTION_DIMS, z.shape[2])
    window = Mixture(*(to_numpy(v.array[row, :steps, :dims]) for v in mixture))
    return to_numpy(z[row, 1:steps + 1, :dims]).copy(), mixture_mean(window).astype(np.float32)


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


def _finish_epoch(run: Run, model, settings: MdnSettings, progress: EpochProgress, heldout, xp) -> None:
    epoch = progress.epoch + 1
    history = progress.history.view()
    rows = history[history[:, 0] == epoch]
    record = {"epoch": epoch, "nll": float(rows[:, 1].mean()) if len(rows) else None}
    if settings.predict_done and len(rows):
        record["done_loss"] = float(rows[:, 2].mean())
    if heldout is not None:
        value = heldout_nll(model, heldout, settings.seed, xp)
        row = [epoch, value, math.nan, math.nan, math.nan]
        record["heldout_nll"] = value
        if settings.predict_done:
            prediction = done_prediction(model, heldout.files, xp)
            row[2:] = [prediction.recall, prediction.false_alarms_per_1000, prediction.p_done_at_end]
            record.update(prediction.record())
        progress.heldout.append(row)
    run.append_metrics(STAGE, record)


@dataclass(frozen=True)
class DonePrediction:
    """How M's done head does on whole held-out episodes, teacher-forced on V's mean latents from a zero state."""
    deaths: int                 # episodes that end in a death
    caught: int                 # deaths with p(done) > threshold within the last `window` steps
    false_alarm_steps: int      # steps before that window (or anywhere in an episode that did not end) above it
    steps: int                  # steps looked at
    p_done_at_end: float        # mean p(done) on the step of death
    window: int = DONE_WINDOW

    @property
    def recall(self) -> float:
        return self.caught / self.deaths if self.deaths else math.nan

    @property
    def false_alarms_per_1000(self) -> float:
        return 1000.0 * self.false_alarm_steps / max(self.steps, 1)

    def record(self) -> dict:
        return {"done_deaths": self.deaths, "done_caught": self.caught, "done_recall": self.recall,
                "done_false_alarms": self.false_alarm_steps, "done_false_alarms_per_1000": self.false_alarms_per_1000,
                "done_p_at_end": self.p_done_at_end, "done_window": self.window}


def done_probabilities(model: MDNRNN, mu: np.ndarray, actions: np.ndarray, xp) -> np.ndarray:
    """p(done) at every step of one episode, M run over V's mean latents from a zero state."""
    import chainer
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        _, done_logit, _ = model.forward_sequence(xp.asarray(mu[None]), xp.asarray(actions[None]))
    return 1.0 / (1.0 + np.exp(-to_numpy(done_logit.array)[0].astype(np.float64)))


def done_prediction(model: MDNRNN, files, xp, threshold: float = 0.5, window: int = DONE_WINDOW) -> DonePrediction:
    """DonePrediction over the episodes in `files` (latent files)."""
    from wm_studio.core.files import load_npz
    deaths = caught = false_alarms = steps = 0
    at_end = []
    for path in files:
        arrays, _ = load_npz(path, required=("mu", "actions", "dones"))
        if not len(arrays["mu"]):
            continue
        p = done_probabilities(model, arrays["mu"].astype(np.float32), arrays["actions"].astype(np.float32), xp)
        died = bool(arrays["dones"][-1])
        early = p[:-window] if died else p
        false_alarms += int((early > threshold).sum())
        steps += len(p)
        if died:
            deaths += 1
            caught += int((p[-window:] > threshold).any())
            at_end.append(float(p[-1]))
    return DonePrediction(deaths, caught, false_alarms, steps, float(np.mean(at_end)) if at_end else math.nan,
                          window)


def _snapshot(settings: MdnSettings, progress: EpochProgress, per_epoch: int, window, finished=False) -> MdnSnapshot:
    history, heldout = progress.history.view(), progress.heldout.view()
    recent = history[-RECENT:]
    return MdnSnapshot(
        **epoch_counts(progress.epoch, progress.batch, per_epoch, settings.epochs),
        nll=float(recent[:, 1].mean()) if len(recent) else math.nan,
        done_loss=float(recent[:, 2].mean()) if len(recent) and settings.predict_done else None,
        heldout_nll=float(heldout[-1, 1]) if len(heldout) else None,
        history=history, heldout=heldout, true_next=window[0], predicted_next=window[1], finished=finished)

