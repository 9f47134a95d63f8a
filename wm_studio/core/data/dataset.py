"""Streaming datasets over a run's rollout and latent files: never the whole data set in memory.

Both datasets cut an epoch into one deterministic *stream* of items (frames for V, windows for M) and hand it
out in consecutive batches:

1. the epoch's generator (from `(seed, epoch)`) shuffles the order of the files;
2. the files are taken `chunk_rollouts` at a time; the items of one chunk are pooled and shuffled with a
   generator of their own (from `(seed, epoch, chunk)`), so items from different rollouts share a batch
   (windows for M are shuffled in groups of similar length, so that a batch carries little padding);
3. the shuffled chunks are laid end to end and sliced into batches of `batch_size` (a batch may straddle two
   chunks; only the last batch of an epoch may be smaller).

Item counts come from the npy headers inside each npz (read without decoding the arrays), so
`batches_per_epoch()` is known up front and `epoch(i, start_batch=k)` starts decoding at the chunk that holds
batch k: a resumed stage skips the batches it has done without reading their files, and gets exactly the batches
it would have had (`list(epoch(i, k)) == list(epoch(i))[k:]`).

Memory bound: about three chunks at the peak (the files being read, their shuffled copy, and the previous
chunk while the consumer still holds a batch of it), whatever the size of the data set. One chunk of frames is
`chunk_rollouts x T x 12,288` bytes (8 rollouts of 1000 frames: about 100 MB); of latents,
`chunk_rollouts x T x (2 z + A + 2) x 4` bytes (64 rollouts of 1000 steps at z 32: about 18 MB).
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_npz

FRAME_SHAPE = (64, 64, 3)
LATENT_ARRAYS = ("mu", "logvar", "actions", "rewards", "dones")


def rollout_files(folder) -> list[Path]:
    """The complete rollout (or latent) files of a folder, in name order.

    Files are written to a hidden temporary name and renamed when complete, so `rollout_*.npz` never matches a
    half-written one.
    """
    folder = Path(folder)
    return sorted(folder.glob("rollout_*.npz")) if folder.is_dir() else []


# what makes a run's data when it has none: the command, and why that one
MADE_BY = {"rollouts": ("collect", ""), "latents": ("train-vae", " (it encodes the rollouts for M)")}


def run_data_files(run, kind: str) -> list[Path]:
    """The run's rollout files (kind "rollouts") or latent files ("latents"); CheckpointError naming the command
    that makes them when there are none."""
    folder = run.rollouts_dir if kind == "rollouts" else run.latents_dir
    files = rollout_files(folder)
    if not files:
        command, why = MADE_BY[kind]
        raise CheckpointError(f"{run.root} has no {kind} in {folder}: run `wm-studio {command} --run {run.root}` "
                              f"first{why}")
    return files


def split_holdout(files: Sequence, fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Split files into (train, held out) at random but deterministically for (set of files, fraction, seed).

    At least one file stays for training; a positive fraction of two or more files holds out at least one.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"the held-out fraction must be in [0, 1), not {fraction}")
    files = sorted(Path(f) for f in files)
    held = int(round(fraction * len(files)))
    if fraction > 0 and len(files) > 1:
        held = min(max(held, 1), len(files) - 1)
    order = np.random.default_rng(seed).permutation(len(files))
    held_set = set(order[:held].tolist())
    train = [f for i, f in enumerate(files) if i not in held_set]
    heldout = [f for i, f in enumerate(files) if i in held_set]
    return train, heldout


def array_shape(path, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one array inside an npz, read from its npy header without decoding the data."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    except KeyError:
        raise CheckpointError(f"{path} has no {name!r} array: it is not a wm_studio data file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path} is corrupt or not an npz file: {exc}") from None
    return tuple(shape), dtype


def _check_batch_size(batch_size: int, chunk_rollouts: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    if chunk_rollouts < 1:
        raise ConfigError(f"chunk_rollouts must be at least 1, not {chunk_rollouts}")


class _ChunkedStream:
    """The epoch / chunk / batch bookkeeping shared by both datasets; subclasses say how a chunk is read."""

    def __init__(self, files: Sequence, item_counts: Sequence[int], batch_size: int, seed: int,
                 chunk_rollouts: int):
        _check_batch_size(batch_size, chunk_rollouts)
        self.files = [Path(f) for f in files]
        self.item_counts = np.asarray(item_counts, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.chunk_rollouts = int(chunk_rollouts)
        self.items = int(self.item_counts.sum())
        if self.items == 0:
            raise ConfigError("the data set is empty: collect rollouts (wm-studio collect) first")

    def batches_per_epoch(self) -> int:
        return math.ceil(self.items / self.batch_size)

    def _chunks(self, index: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, index]).permutation(len(self.files))
        return [order[i:i + self.chunk_rollouts] for i in range(0, len(order), self.chunk_rollouts)]

    def _chunk_items(self, index: int, chunk: int, file_indices: np.ndarray, phase: int):
        """The chunk's items (a tuple of arrays sharing the first axis), shuffled; two copies at most at a time.

        `phase` is the chunk-local position of its first batch boundary (the chunk's first `phase` items finish
        the batch that the previous chunk began)."""
        parts = [self._read_items(int(i), np.random.default_rng([self.seed, index, chunk, int(i)]))
                 for i in file_indices]
        pooled = [np.concatenate(column) for column in zip(*parts)]
        del parts
        order = self._order(pooled, np.random.default_rng([self.seed, index, chunk]), phase)
        shuffled = []
        while pooled:
            shuffled.append(pooled.pop(0)[order])
        return tuple(shuffled)

    def _read_items(self, file_index: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _order(self, pooled: list[np.ndarray], rng: np.random.Generator, phase: int) -> np.ndarray:
        """The order in which a chunk's pooled items are handed out: a plain shuffle unless a subclass knows
        better."""
        return rng.permutation(len(pooled[0]))

    def _batches(self, index: int, start_batch: int) -> Iterator[tuple[np.ndarray, ...]]:
        if index < 0:
            raise ValueError(f"epoch index must be >= 0, not {index}")
        start = start_batch * self.batch_size
        if not 0 <= start_batch <= self.batches_per_epoch():
            raise ValueError(f"start_batch {start_batch} is outside the epoch's {self.batches_per_epoch()} "
                             f"batches")
        pending: tuple[np.ndarray, ...] | None = None
        offset = 0  # stream position of the first item of the current chunk
        for chunk, file_indices in enumerate(self._chunks(index)):
            size = int(self.item_counts[file_indices].sum())
            if offset + size <= start:  # wholly before the first batch wanted: never read
                offset += size
                continue
            items = None  # let the previous chunk go before the next one is read
            items = self._chunk_items(index, chunk, file_indices, phase=-offset % self.batch_size)
            if offset < start:
                items = tuple(column[start - offset:] for column in items)
            offset += size
            if pending is not None and len(pending[0]):
                items = tuple(np.concatenate(pair) for pair in zip(pending, items))
            whole = len(items[0]) // self.batch_size * self.batch_size
            for lo in range(0, whole, self.batch_size):
                yield tuple(column[lo:lo + self.batch_size] for column in items)
            pending = tuple(column[whole:].copy() for column in items)
        if pending is not None and len(pending[0]):
            yield pending


class FrameDataset(_ChunkedStream):
    """Every frame of the rollout files once per epoch, as uint8 batches (B, 64, 64, 3), shuffled across rollouts.

    Use `split_holdout` on the files first for a held-out set; `frames_to_input` turns a batch into V's input.
    """

    def __init__(self, rollout_files: Sequence, batch_size: int, seed: int, chunk_rollouts: int = 8):
        counts = []
        for path in rollout_files:
            shape, dtype = array_shape(path, "frames")
            if len(shape) != 4 or shape[1:] != FRAME_SHAPE or dtype != np.uint8:
                raise CheckpointError(f"{path} holds frames of shape {shape} and type {dtype}; expected uint8 "
                                      f"(T, 64, 64, 3): it was not written by wm-studio collect")
            counts.append(shape[0])
        super().__init__(rollout_files, counts, batch_size, seed, chunk_rollouts)

    @property
    def frames(self) -> int:
        return self.items

    def _read_items(self, file_index, rng):
        arrays, _ = load_npz(self.files[file_index], required=("frames",))
        frames = arrays["frames"]
        if len(frames) != self.item_counts[file_index]:
            raise CheckpointError(f"{self.files[file_index]} changed while it was being read")
        return (frames,)

    def epoch(self, index: int, start_batch: int = 0) -> Iterator[np.ndarray]:
        for (frames,) in self._batches(index, start_batch):
            yield frames


@dataclass(frozen=True)
class SequenceBatch:
    """A batch of windows: mu, logvar (B, L, z); actions (B, L, A); rewards (B, L) float32; dones, mask (B, L) bool.

    `mask` is False on the padding after the end of a rollout shorter than the window (padding is zeros); it is
    all True when every rollout is at least L steps long.
    """
    mu: np.ndarray
    logvar: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.mu)


class SequenceDataset(_ChunkedStream):
    """Windows of at most `seq_len` consecutive steps from the latent files, shuffled across rollouts, such that
    every transition and every episode end is in exactly one window every epoch.

    A model that predicts step t+1 from step t gets the transitions inside a window, so consecutive windows of a
    rollout share one step: a rollout of T <= seq_len steps is one window; a longer one is cut into
    ceil((T - 1) / (seq_len - 1)) windows, the first starting at step 0 (where a dream starts, from a zero
    state) and the last ending at the rollout's final step (where a Doom episode ends). The inner windows have
    seq_len steps; where the first one ends is drawn anew every epoch, so window edges move between epochs.
    A window shorter than seq_len is padded with zeros (see SequenceBatch.mask). Pass seq_len + 1 for seq_len
    transitions per window (the paper: 999 transitions from 1000-step rollouts).

    Windows of similar length are batched together, and a batch is cut to its longest window, so little of
    the arithmetic is spent on padding.
    """

    def __init__(self, latent_files: Sequence, batch_size: int, seq_len: int, seed: int,
                 chunk_rollouts: int = 64):
        if seq_len < 2:
            raise ConfigError(f"sequence length must be at least 2, not {seq_len}")
        self.seq_len = int(seq_len)
        self.lengths = []
        sizes = set()
        kept = []
        for path in latent_files:
            mu_shape, _ = array_shape(path, "mu")
            action_shape, _ = array_shape(path, "actions")
            if len(mu_shape) != 2 or len(action_shape) != 2 or action_shape[0] != mu_shape[0]:
                raise CheckpointError(f"{path} holds mu {mu_shape} and actions {action_shape}; expected (T, z) "
                                      f"and (T, A): it was not written by the latent encoding step")
            sizes.add((mu_shape[1], action_shape[1]))
            if mu_shape[0]:  # an empty rollout has no window to give
                kept.append(path)
                self.lengths.append(mu_shape[0])
        if len(sizes) > 1:
            raise CheckpointError(f"the latent files disagree on (z size, action size): {sorted(sizes)}; "
                                  f"encode all rollouts with the same V")
        self.z_size, self.action_size = sizes.pop() if sizes else (0, 0)
        counts = [window_count(length, self.seq_len) for length in self.lengths]
        super().__init__(kept, counts, batch_size, seed, chunk_rollouts)

    @property
    def windows(self) -> int:
        return self.items

    def _read_items(self, file_index, rng):
        path = self.files[file_index]
        arrays, _ = load_npz(path, required=LATENT_ARRAYS)
        length = self.lengths[file_index]
        if len(arrays["mu"]) != length or any(len(arrays[k]) != length for k in LATENT_ARRAYS):
            raise CheckpointError(f"{path}: its arrays do not all have {length} steps")
        columns = {"mu": arrays["mu"].astype(np.float32, copy=False),
                   "logvar": arrays["logvar"].astype(np.float32, copy=False),
                   "actions": arrays["actions"].astype(np.float32, copy=False).reshape(length, -1),
                   "rewards": arrays["rewards"].astype(np.float32, copy=False).reshape(length),
                   "dones": arrays["dones"].astype(bool, copy=False).reshape(length),
                   "mask": np.ones(length, dtype=bool)}
        starts, sizes = window_bounds(length, self.seq_len, rng)
        # Index `length` is a padding row of zeros (mask False) appended to every column.
        steps = starts[:, None] + np.arange(self.seq_len)[None, :]
        steps = np.where(np.arange(self.seq_len)[None, :] < sizes[:, None], steps, length)
        return tuple(np.concatenate([column, np.zeros_like(column[:1])])[steps] for column in columns.values())

    def _order(self, pooled, rng, phase):
        """Shuffled, then sorted by window length into batch-sized groups whose order is shuffled again."""
        order = rng.permutation(len(pooled[0]))
        lengths = pooled[-1][order].sum(axis=1)                  # the mask is the last column
        order = order[np.argsort(-lengths, kind="stable")]
        head, rest = order[:phase], order[phase:]
        groups = [rest[i:i + self.batch_size] for i in range(0, len(rest), self.batch_size)]
        whole = [g for g in groups if len(g) == self.batch_size]
        tail = [g for g in groups if len(g) < self.batch_size]    # it joins the next chunk's first batch
        shuffled = [whole[i] for i in rng.permutation(len(whole))]
        return np.concatenate([head, *shuffled, *tail]).astype(np.int64)

    def epoch(self, index: int, start_batch: int = 0) -> Iterator[SequenceBatch]:
        for columns in self._batches(index, start_batch):
            used = int(columns[-1].any(axis=0).nonzero()[0].max()) + 1   # cut the padding every window shares
            yield SequenceBatch(*(column[:, :used] for column in columns))


def window_count(length: int, seq_len: int) -> int:
    """How many windows of at most seq_len steps, consecutive ones sharing a step, cover a rollout."""
    return 1 if length <= seq_len else math.ceil((length - 1) / (seq_len - 1))


def window_bounds(length: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(first step, steps) of each window of a rollout: the first window starts at step 0, the last one ends at
    the final step, the inner ones are seq_len long, and the first one's length is drawn from rng."""
    count = window_count(length, seq_len)
    if count == 1:
        return np.zeros(1, np.int64), np.array([length], np.int64)
    hop = seq_len - 1                                   # transitions in a full window
    spare = (length - 1) - (count - 2) * hop            # transitions the first and last windows share out
    first = int(rng.integers(max(1, spare - hop), min(hop, spare - 1) + 1))
    sizes = np.array([first + 1] + [seq_len] * (count - 2) + [spare - first + 1], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes[:-1] - 1)]).astype(np.int64)
    return starts, sizes
