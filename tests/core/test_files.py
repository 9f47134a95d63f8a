import json
import os

import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError
from wm_studio.core.files import (atomic_write, check_shapes, generator_state, load_json, load_npz,
                                  restore_generator, save_json, save_npz)


def test_npz_round_trip_with_meta(tmp_path):
    path = save_npz(tmp_path / "a.npz", {"w": np.arange(6.0).reshape(2, 3)}, meta={"step": 3, "name": "x"})
    arrays, meta = load_npz(path, required=("w",))
    np.testing.assert_array_equal(arrays["w"], np.arange(6.0).reshape(2, 3))
    assert meta == {"step": 3, "name": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary file left behind


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    save_json(path, {"v": 1})

    def explode(f):
        f.write(b"{half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert load_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04garbage"])
def test_corrupt_npz_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_npz(path)


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        load_npz(path)


def test_missing_file_and_missing_keys(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_npz(tmp_path / "none.npz")
    save_npz(tmp_path / "a.npz", {"w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="lacks b"):
        load_npz(tmp_path / "a.npz", required=("w", "b"))


def test_check_shapes_names_every_mismatch(tmp_path):
    arrays = {"w": np.zeros((2, 3)), "b": np.zeros(3)}
    check_shapes("f", arrays, {"w": (2, 3), "b": (3,)})
    with pytest.raises(CheckpointError, match=r"w is \(2, 3\), expected \(4, 3\).*c is missing|c is missing.*w is"):
        check_shapes("f", arrays, {"w": (4, 3), "c": (1,)})


def test_corrupt_json(tmp_path):
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_json(tmp_path / "c.json")


def test_generator_state_survives_json(tmp_path):
    rng = np.random.default_rng(123)
    rng.normal(size=7)
    text = json.dumps(generator_state(rng))
    expected = rng.normal(size=5)
    restored = restore_generator(json.loads(text))
    np.testing.assert_array_equal(restored.normal(size=5), expected)


def test_bad_generator_state():
    with pytest.raises(CheckpointError):
        restore_generator({"bit_generator": "os.system"})


def test_written_files_have_ordinary_permissions(tmp_path):
    path = save_json(tmp_path / "p.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
