"""The stage table and its one runner of steps (wm_studio.core.stages), without training anything."""
import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import read_meta, save_npz
from wm_studio.core.runs import Run
from wm_studio.core.stages import (STAGE_BY_KEY, STEP_ORDER, Step, check_settings, describe_files, stage_progress,
                                   stage_steps, unfinished)


def test_the_steps_in_order_and_each_stage_names_its_own():
    assert STEP_ORDER == ("collect", "vae", "encode", "mdn", "controller")
    assert STAGE_BY_KEY["vae"].steps == ("vae", "encode")


def test_a_fresh_run_has_nothing_finished(tmp_path):
    run = Run.prepare(tmp_path / "run", "carracing", "tiny")
    steps = stage_steps(run, "vae")
    assert [step.label for step in steps] == ["V", "encode"]
    assert [step.name for step in unfinished(steps)] == ["vae", "encode"]
    progress = stage_progress(run.root, ("collect", "vae"))
    assert progress == {"collect": (None, False, ""), "vae": (None, False, "")}


def test_finished_steps_are_skipped_and_reported():
    done = Step("a", "A", lambda: True, lambda: iter(()))
    todo = Step("b", "B", lambda: False, lambda: iter(()))
    skipped = []
    assert list(unfinished([done, todo], skipped.append)) == [todo]
    assert skipped == [done]


def test_settings_the_stage_would_refuse_are_refused(tmp_path):
    config = Run.prepare(tmp_path / "run", "carracing", "tiny").config
    check_settings("vae", config)
    with pytest.raises(ConfigError):
        check_settings("collect", {**config, "collect": {**config["collect"], "policy": "no such policy"}})


def test_describe_files_lists_checkpoints_newest_first_then_the_model(tmp_path):
    run = Run.prepare(tmp_path / "run", "carracing", "tiny")
    run.save_checkpoint("vae", 3, {"w": np.zeros(2)}, {"epoch": 1})
    rows = describe_files(run, "vae")
    assert [(name, step) for name, step, _, _ in rows] == [("checkpoints/vae/ckpt-000000003.npz", "3")]
    assert describe_files(run, "collect") == []


def test_read_meta_reads_the_meta_alone(tmp_path):
    with_meta = save_npz(tmp_path / "a.npz", {"w": np.zeros(3)}, meta={"step": 7})
    without = save_npz(tmp_path / "b.npz", {"w": np.zeros(3)})
    assert read_meta(with_meta) == {"step": 7}
    assert read_meta(without) == {}
    with pytest.raises(CheckpointError, match="no metadata"):
        read_meta(without, required=True)
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_meta(tmp_path / "c.npz")


def test_why_a_folder_cannot_be_trained(tmp_path):
    from wm_studio.core.runs import DEFAULT_MODEL
    from wm_studio.core.stages import why_not_trainable
    assert "No run is open" in why_not_trainable(None)
    assert why_not_trainable(DEFAULT_MODEL).startswith("The bundled model is read-only")
    assert "has no config.json" in why_not_trainable(tmp_path)
    assert why_not_trainable(Run.prepare(tmp_path / "run", "carracing", "tiny").root) == ""
