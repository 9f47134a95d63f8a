import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.runs import Run


def test_create_and_reopen(tmp_path):
    run = Run.create(tmp_path / "r", {"env": "carracing", "z_size": 32})
    assert Run.open(tmp_path / "r").config == {"env": "carracing", "z_size": 32}
    # the same settings, or new keys, reopen it; a clash is refused
    Run.create(tmp_path / "r", {"env": "carracing", "seed": 1})
    assert run.config["seed"] == 1
    with pytest.raises(ConfigError, match="z_size"):
        Run.create(tmp_path / "r", {"z_size": 64})


def test_open_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not a wm_studio run"):
        Run.open(tmp_path)


def test_checkpoints_keep_the_newest(tmp_path):
    run = Run.create(tmp_path, {})
    for step in (5, 10, 15, 20):
        run.save_checkpoint("vae", step, {"w": np.full(2, step)}, {"lr": 1e-4}, keep=2)
    assert [p.name for p in run.checkpoints("vae")] == ["ckpt-000000015.npz", "ckpt-000000020.npz"]
    arrays, meta = run.load_checkpoint("vae", required=("w",))
    assert meta["step"] == 20 and meta["lr"] == 1e-4
    np.testing.assert_array_equal(arrays["w"], [20, 20])
    assert run.load_checkpoint("mdn") is None


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    run = Run.create(tmp_path, {})
    path = run.save_checkpoint("vae", 1, {"w": np.zeros(1)})
    with pytest.raises(CheckpointError, match="stage 'mdn'"):
        run.load_checkpoint("mdn", path=path)


def test_metrics_skip_a_torn_line(tmp_path):
    run = Run.create(tmp_path, {})
    run.append_metrics("controller", {"generation": 1, "best": np.float32(2.5)})
    with open(run.metrics_path("controller"), "a") as f:
        f.write('{"generation": 2, "be')  # killed mid-line
    run.append_metrics("controller", {"generation": 3})
    assert run.read_metrics("controller") == [{"generation": 1, "best": 2.5}, {"generation": 3}]


def test_prepare_creates_from_a_preset_and_keeps_overrides(tmp_path):
    run = Run.prepare(tmp_path / "r", "carracing", "tiny", {"vae": {"epochs": 3, "lr": None}})
    config = run.config
    assert config["env"] == "carracing" and config["preset"] == "tiny" and config["z_size"] == 32
    assert config["vae"]["epochs"] == 3 and config["vae"]["lr"] == 1e-4
    # reopening without flags keeps the recorded settings; a different game is refused
    assert Run.prepare(tmp_path / "r").config["vae"]["epochs"] == 3
    with pytest.raises(ConfigError, match="carracing"):
        Run.prepare(tmp_path / "r", env="doom")
