"""Streaming datasets: every item once per epoch, shuffled across rollouts, deterministic, resumable mid-epoch,
and never more than a chunk of files in memory."""
import tracemalloc

import numpy as np
import pytest

from wm_studio.core.data import dataset as dataset_module
from wm_studio.core.data.dataset import (FrameDataset, SequenceDataset, array_shape, rollout_files,
                                         split_holdout)
from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import save_npz


def write_rollouts(folder, lengths):
    """Frame t of rollout r carries (r, t) in its first pixel, so a test can tell every frame apart."""
    for r, length in enumerate(lengths):
        frames = np.zeros((length, 64, 64, 3), np.uint8)
        frames[:, 0, 0, 0] = r
        frames[:, 0, 0, 1] = np.arange(length)
        save_npz(folder / f"rollout_{r:06d}.npz",
                 {"frames": frames, "actions": np.zeros((length, 3), np.float32),
                  "rewards": np.zeros(length, np.float32), "dones": np.zeros(length, bool)},
                 {"env": "carracing"}, compressed=True)
    return rollout_files(folder)


def write_latents(folder, lengths, z=4, actions=3):
    """mu[t] = 1000 r + t in every dimension; actions and rewards carry the same number."""
    folder.mkdir(parents=True, exist_ok=True)
    for r, length in enumerate(lengths):
        code = (1000 * r + np.arange(length)).astype(np.float32)
        dones = np.zeros(length, bool)
        dones[-1] = True
        save_npz(folder / f"rollout_{r:06d}.npz",
                 {"mu": np.repeat(code[:, None], z, 1), "logvar": -np.repeat(code[:, None], z, 1),
                  "actions": np.repeat(code[:, None], actions, 1), "rewards": code, "dones": dones})
    return rollout_files(folder)


def ids(batch):
    return [(int(f[0, 0, 0]), int(f[0, 0, 1])) for f in batch]


@pytest.fixture
def frame_files(tmp_path):
    return write_rollouts(tmp_path, [20, 7, 13, 20, 1, 9])


def test_every_frame_once_per_epoch_and_shuffled_across_rollouts(frame_files):
    data = FrameDataset(frame_files, batch_size=8, seed=3, chunk_rollouts=2)
    batches = list(data.epoch(0))
    assert data.frames == 70 and data.batches_per_epoch() == 9 == len(batches)
    assert [len(b) for b in batches] == [8] * 8 + [6]
    assert all(b.dtype == np.uint8 and b.shape[1:] == (64, 64, 3) for b in batches)
    seen = [pair for b in batches for pair in ids(b)]
    expected = [(r, t) for r, n in enumerate([20, 7, 13, 20, 1, 9]) for t in range(n)]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    assert max(len({r for r, _ in ids(b)}) for b in batches) >= 2   # rollouts mixed within a batch
    assert seen != sorted(seen)


def test_epochs_are_deterministic_per_seed_and_index(frame_files):
    a = FrameDataset(frame_files, 8, seed=3, chunk_rollouts=2)
    b = FrameDataset(frame_files, 8, seed=3, chunk_rollouts=2)
    other_seed = FrameDataset(frame_files, 8, seed=4, chunk_rollouts=2)
    first = [ids(x) for x in a.epoch(0)]
    assert first == [ids(x) for x in b.epoch(0)]
    assert first != [ids(x) for x in a.epoch(1)]
    assert first != [ids(x) for x in other_seed.epoch(0)]


def test_start_batch_equals_slicing(frame_files):
    data = FrameDataset(frame_files, 8, seed=5, chunk_rollouts=2)
    full = [ids(b) for b in data.epoch(2)]
    for start in range(len(full) + 1):
        assert [ids(b) for b in data.epoch(2, start_batch=start)] == full[start:]
    with pytest.raises(ValueError):
        list(data.epoch(2, start_batch=len(full) + 1))


def counting_loads(monkeypatch):
    loads = []
    real = dataset_module.load_npz

    def load(path, required=()):
        loads.append(path)
        return real(path, required)

    monkeypatch.setattr(dataset_module, "load_npz", load)
    return loads


def test_skipping_does_not_read_the_skipped_files(frame_files, monkeypatch):
    data = FrameDataset(frame_files, 8, seed=5, chunk_rollouts=2)
    loads = counting_loads(monkeypatch)
    last = list(data.epoch(0, start_batch=data.batches_per_epoch() - 1))
    assert len(last) == 1 and len(loads) <= 2  # only the last chunk of two files
    loads.clear()
    list(data.epoch(0))
    assert sorted(loads) == sorted(frame_files)  # a whole epoch reads each file exactly once


def test_files_are_read_a_chunk_at_a_time(tmp_path, monkeypatch):
    files = write_rollouts(tmp_path, [40] * 24)        # 24 x 40 frames x 12 KB = 11.8 MB, 12 chunks
    data = FrameDataset(files, 16, seed=0, chunk_rollouts=2)
    loads = counting_loads(monkeypatch)
    stream = data.epoch(0)
    next(stream)
    assert len(loads) == 2                              # the first batch needed only the first chunk
    tracemalloc.start()
    count = sum(len(b) for b in stream)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    chunk_bytes = 2 * 40 * 64 * 64 * 3
    assert count == 24 * 40 - 16
    assert peak < 4 * chunk_bytes                       # about three chunks (see the module), not all twelve


def test_bad_files_are_checkpoint_errors(tmp_path):
    save_npz(tmp_path / "rollout_000000.npz", {"frames": np.zeros((3, 32, 32, 3), np.uint8)})
    (tmp_path / "rollout_000001.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="expected uint8"):
        FrameDataset([tmp_path / "rollout_000000.npz"], 4, 0)
    with pytest.raises(CheckpointError, match="corrupt"):
        FrameDataset([tmp_path / "rollout_000001.npz"], 4, 0)
    with pytest.raises(ConfigError, match="empty"):
        FrameDataset([], 4, 0)


def test_array_shape_reads_headers_of_compressed_files(frame_files):
    assert array_shape(frame_files[0], "frames") == ((20, 64, 64, 3), np.dtype(np.uint8))
    with pytest.raises(CheckpointError, match="no 'mu' array"):
        array_shape(frame_files[0], "mu")


def test_rollout_files_ignore_temporary_files(tmp_path, frame_files):
    (tmp_path / ".rollout_000009.npz.abc123.tmp").write_bytes(b"half")
    assert rollout_files(tmp_path) == frame_files and len(frame_files) == 6
    assert rollout_files(tmp_path / "nowhere") == []


def test_split_holdout_is_deterministic_and_disjoint(frame_files):
    train, held = split_holdout(frame_files, 0.34, seed=1)
    assert len(held) == 2 and len(train) == 4
    assert sorted(train + held) == sorted(frame_files) and not set(train) & set(held)
    assert split_holdout(list(reversed(frame_files)), 0.34, seed=1) == (train, held)
    assert split_holdout(frame_files, 0.34, seed=2) != (train, held)
    assert split_holdout(frame_files[:2], 0.01, seed=0)[1] != []          # a positive fraction holds one out
    assert len(split_holdout(frame_files[:1], 0.5, seed=0)[0]) == 1       # and always leaves one to train on
    assert split_holdout(frame_files, 0.0, seed=0) == (sorted(frame_files), [])
    with pytest.raises(ConfigError):
        split_holdout(frame_files, 1.0, seed=0)


def real_windows(batches):
    """The unpadded mu codes of every window, and the batches' shapes checked on the way."""
    windows = []
    for batch in batches:
        assert batch.dones.dtype == bool and batch.mask.dtype == bool
        assert batch.mu.dtype == batch.logvar.dtype == batch.actions.dtype == batch.rewards.dtype == np.float32
        assert batch.mask[:, -1].any()                                           # no column of padding only
        for i in range(len(batch)):
            real = batch.mu[i, batch.mask[i], 0]
            assert batch.mask[i].tolist() == [True] * len(real) + [False] * (batch.mask.shape[1] - len(real))
            np.testing.assert_array_equal(np.diff(real), 1)                      # consecutive steps
            np.testing.assert_array_equal(batch.actions[i, batch.mask[i], 2], real)  # aligned columns
            np.testing.assert_array_equal(batch.logvar[i, batch.mask[i], 1], -real)
            np.testing.assert_array_equal(batch.rewards[i, batch.mask[i]], real)
            windows.append(real)
    return windows


def transitions(windows):
    return sorted((int(w[t]), int(w[t + 1])) for w in windows for t in range(len(w) - 1))


def test_sequence_windows_cover_every_transition_once(tmp_path):
    lengths = [25, 10, 31, 4]
    files = write_latents(tmp_path, lengths)
    data = SequenceDataset(files, batch_size=3, seq_len=5, seed=0, chunk_rollouts=2)
    assert data.windows == 6 + 3 + 8 + 1 and data.batches_per_epoch() == 6
    batches = list(data.epoch(0))
    assert all(b.mu.shape[1] <= 5 and b.mu.shape[2] == 4 and b.actions.shape[2] == 3 for b in batches)
    windows = real_windows(batches)
    assert len(windows) == 18
    expected = sorted((1000 * r + t, 1000 * r + t + 1) for r, n in enumerate(lengths) for t in range(n - 1))
    assert transitions(windows) == expected                  # every transition, once
    for r, n in enumerate(lengths):
        own = sorted((w for w in windows if w[0] // 1000 == r), key=lambda w: w[0])
        assert own[0][0] == 1000 * r and own[-1][-1] == 1000 * r + n - 1      # from the first step to the last
        assert all(len(w) == 5 for w in own[1:-1])                            # inner windows are whole
    short = next(w for w in windows if w[0] // 1000 == 3)
    np.testing.assert_array_equal(short, 3000 + np.arange(4))                    # padded, masked
    padded = next(b for b in batches for i in range(len(b)) if b.mask[i].sum() == 4 and b.mu[i, 0, 0] == 3000)
    row = int(np.flatnonzero((padded.mask.sum(1) == 4) & (padded.mu[:, 0, 0] == 3000))[0])
    assert padded.dones[row, :4].tolist() == [False, False, False, True]
    assert not padded.dones[row, 4:].any() and not padded.mu[row, 4:].any()


@pytest.mark.parametrize("seq_len", [6, 17])
def test_every_episode_end_is_in_every_epoch(tmp_path, seq_len):
    """Episodes whose ends fall at every offset of the window length: each end is trained in every epoch, as the
    last step of a window (the old non-overlapping windows at a random offset missed most of them)."""
    lengths = list(range(2, 3 * seq_len + 2))
    files = write_latents(tmp_path, lengths)
    data = SequenceDataset(files, batch_size=4, seq_len=seq_len, seed=3, chunk_rollouts=5)
    ends = {1000 * r + n - 1 for r, n in enumerate(lengths)}
    for epoch in range(3):
        batches = list(data.epoch(epoch))
        seen = set()
        for batch in batches:
            last = batch.mask.sum(axis=1) - 1
            rows = np.arange(len(batch))
            at_last = np.arange(batch.mask.shape[1])[None, :] == last[:, None]
            assert not (batch.dones & ~at_last).any()                # an end is always a window's last step
            seen |= {int(code) for code, done in zip(batch.mu[rows, last, 0], batch.dones[rows, last]) if done}
        assert seen == ends
        assert len(transitions(real_windows(batches))) == sum(n - 1 for n in lengths)


def test_sequence_batches_group_similar_lengths(tmp_path):
    """Windows are batched with others of about their length, so the padding a batch carries is small."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, 64).tolist()
    data = SequenceDataset(write_latents(tmp_path, lengths), batch_size=8, seq_len=200, seed=0)
    batches = list(data.epoch(0))
    padding = sum((~b.mask).sum() for b in batches) / sum(b.mask.size for b in batches)
    shuffled = np.array(lengths)[rng.permutation(64)].reshape(8, 8)
    padding_unsorted = 1 - shuffled.sum() / (shuffled.max(axis=1).sum() * 8)
    assert padding < 0.1 < padding_unsorted


def test_sequence_epochs_are_deterministic_and_resume_by_slicing(tmp_path):
    files = write_latents(tmp_path, [40, 33, 27, 50, 12])
    data = SequenceDataset(files, batch_size=2, seq_len=8, seed=4, chunk_rollouts=2)

    def codes(batches):
        return [b.mu[:, 0, 0].tolist() for b in batches]

    full = codes(data.epoch(1))
    assert full == codes(SequenceDataset(files, 2, 8, seed=4, chunk_rollouts=2).epoch(1))
    assert full != codes(data.epoch(2))                      # new shuffle and new window offsets per epoch
    for start in range(len(full) + 1):
        assert codes(data.epoch(1, start_batch=start)) == full[start:]


def test_sequence_files_must_agree(tmp_path):
    files = write_latents(tmp_path / "a", [10], z=4) + write_latents(tmp_path / "b", [10], z=8)
    with pytest.raises(CheckpointError, match="disagree"):
        SequenceDataset(files, 2, 4, 0)
    with pytest.raises(ConfigError):
        SequenceDataset(files[:1], 2, 1, 0)
