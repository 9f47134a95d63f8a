"""`wm-studio pipeline`: collect, V, M and C in order on the tiny preset; a second call skips every finished step
and a step whose work is gone runs again alone."""
import shutil

import pytest

from wm_studio.cli import main
from wm_studio.core.models.controller import load_controller
from wm_studio.core.runs import Run


@pytest.mark.slow
def test_the_pipeline_runs_every_stage_then_skips_what_is_done(tmp_path, capsys):
    root = tmp_path / "run"
    assert main(["pipeline", "--run", str(root), "--env", "carracing", "--preset", "tiny", "--workers", "2",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for label in ("collect", "V", "encode", "M", "C"):
        assert f"\n{label}: done in " in "\n" + out, label
    assert "pipeline: 5 of 5 steps run (collect, V, encode, M, C)" in out
    run = Run.open(root)
    assert len(list(run.rollouts_dir.glob("rollout_*.npz"))) == 4
    assert len(list(run.latents_dir.glob("rollout_*.npz"))) == 4
    controller, meta = load_controller(run.model_path("controller"))
    assert controller.n_params == 867 and meta["generation"] == 2
    models = {p.name: p.stat().st_mtime_ns for p in (root / "models").iterdir()}
    assert set(models) == {"vae.npz", "mdn.npz", "controller.npz"}

    assert main(["pipeline", "--run", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("already done, skipped") == 5 and "pipeline: 0 of 5 steps run (none)" in out
    assert {p.name: p.stat().st_mtime_ns for p in (root / "models").iterdir()} == models

    shutil.rmtree(run.checkpoints_dir("controller"))
    run.model_path("controller").unlink()
    assert main(["pipeline", "--run", str(root), "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert out.count("already done, skipped") == 4 and "\nC: done in " in out
    assert run.model_path("controller").is_file()


def test_a_run_of_another_game_is_refused(tmp_path, capsys):
    root = tmp_path / "run"
    Run.prepare(root, "carracing", "tiny")
    assert main(["pipeline", "--run", str(root), "--env", "doom"]) == 2
    assert "is a env 'carracing' run" in capsys.readouterr().err
