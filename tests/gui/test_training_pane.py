"""The Training pane, offscreen, on tiny runs: a stage started from the pane writes its checkpoint and model and the
Latent pane reloads V; pause stops progress and resume continues; stop then start resumes from the checkpoint;
closing the window mid-training asks, checkpoints and leaves a run that resumes where it stopped; C's CMA-ES is
drawn with the Evolution pane's views; the bundled model is never trained."""
import numpy as np
import pytest

from wm_studio.core.device import resolve_device
from wm_studio.core.files import save_npz
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.files import read_meta as checkpoint_meta
from wm_studio.core.presets import preset
from wm_studio.core.run_contents import DEFAULT_MODEL
from wm_studio.core.runs import Run
from wm_studio.core.train.vae_stage import train_vae
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.panes.training import TrainingPane

WAIT_MS = 120_000


def make_run(root, rollouts=3, frames=24, epochs=1, batch_size=8) -> Run:
    """A CarRacing run with a few synthetic rollouts (smooth random pictures) and V's settings for seconds."""
    config = preset("carracing", "tiny")
    config["vae"].update(epochs=epochs, batch_size=batch_size)
    run = Run.create(root, config)
    rng = np.random.default_rng(0)
    for index in range(rollouts):
        base = rng.integers(0, 256, (1, 8, 8, 3))
        noise = rng.integers(-20, 20, (frames, 8, 8, 3))
        pictures = np.clip(base + noise, 0, 255).astype(np.uint8).repeat(8, axis=1).repeat(8, axis=2)
        save_npz(run.rollouts_dir / f"rollout_{index:06d}.npz",
                 {"frames": pictures, "actions": rng.uniform(-1, 1, (frames, 3)).astype(np.float32),
                  "rewards": np.zeros(frames, np.float32), "dones": np.zeros(frames, bool)},
                 {"env": "carracing", "seed": index, "policy": "brownian", "steps": frames}, compressed=True)
    return run


@pytest.fixture
def studio(qtbot):
    """A Training pane and a Latent pane sharing one open run (as in the window)."""
    from wm_studio.gui.panes.latent import LatentPane
    open_run = OpenRun(None, poll_ms=200, remember=False)
    pane = TrainingPane(open_run=open_run)
    pane.backend = "serial"
    latent = LatentPane(open_run=open_run)
    for widget in (pane, latent):
        qtbot.addWidget(widget)
        widget.resize(1200, 800)
    pane.show()
    yield pane, latent, open_run
    pane.shutdown()
    latent.shutdown()
    open_run.shutdown()


def open_and_wait(qtbot, open_run, pane, root):
    with qtbot.waitSignal(pane.histories_loaded, timeout=WAIT_MS):
        open_run.open(root)
        qtbot.waitUntil(lambda: open_run.contents is not None, timeout=WAIT_MS)


def test_a_stage_started_from_the_pane_writes_a_checkpoint_and_the_latent_pane_reloads_it(qtbot, studio, tmp_path):
    pane, latent, open_run = studio
    run = make_run(tmp_path / "run")
    open_and_wait(qtbot, open_run, pane, run.root)
    assert open_run.vae is None and latent.vae is None and pane.start_button.isEnabled()
    pane.select_stage("vae")
    pane.set_field("vae", "epochs", 2)
    with qtbot.waitSignal(pane.worker.finished, timeout=WAIT_MS):
        assert pane.start("vae")
        assert pane.stop_button.isEnabled() and not pane.start_button.isEnabled()
    assert run.config["vae"]["epochs"] == 2                              # the field went to config.json
    meta = checkpoint_meta(run.latest_checkpoint("vae"))
    assert meta["epoch"] == 2 and run.model_path("vae").is_file()
    assert len(list(run.latents_dir.glob("rollout_*.npz"))) == 3         # V's stage ends by encoding
    qtbot.waitUntil(lambda: latent.vae is not None and latent.vae is open_run.vae, timeout=WAIT_MS)
    assert latent.vae.z_size == 32
    qtbot.waitUntil(lambda: pane.stage_items["vae"].text(1) == "done, 100%", timeout=WAIT_MS)
    snapshot = pane.latest["vae"]
    history = pane.figures["vae"].rec.curve_data("batch")[1]
    np.testing.assert_allclose(history, snapshot.history[:, 2])           # the curve is V's loss per batch
    assert pane.figures["vae"].pairs.picture() is not None
    qtbot.waitUntil(lambda: any("ckpt-" in pane.files.topLevelItem(i).text(0)      # the file list refreshes
                                for i in range(pane.files.topLevelItemCount())), timeout=WAIT_MS)


def test_pause_stops_progress_resume_continues_and_stop_then_start_resumes(qtbot, studio, tmp_path):
    pane, _, open_run = studio
    run = make_run(tmp_path / "run", rollouts=4, frames=40, epochs=5, batch_size=4)
    open_and_wait(qtbot, open_run, pane, run.root)
    pane.start("vae")
    qtbot.waitUntil(lambda: pane.snapshot_count >= 2, timeout=WAIT_MS)
    pane.pause()
    assert pane.resume_button.isEnabled() and not pane.pause_button.isEnabled()
    assert pane.stage_items["vae"].text(1).startswith("paused")
    qtbot.waitUntil(lambda: pane.worker.idle, timeout=WAIT_MS)   # the batch under way is done and delivered
    paused_at = pane.latest["vae"].done
    qtbot.wait(1500)
    assert pane.latest["vae"].done == paused_at          # nothing was pulled while paused
    pane.resume()
    qtbot.waitUntil(lambda: pane.latest["vae"].done >= paused_at + 2, timeout=WAIT_MS)
    pane.stop()
    assert pane.active is None and pane.start_button.isEnabled()
    stopped_at = pane.latest["vae"].done
    qtbot.waitUntil(lambda: run.latest_checkpoint("vae") is not None
                    and checkpoint_meta(run.latest_checkpoint("vae"))["batch"] >= stopped_at, timeout=WAIT_MS)
    pane.start("vae")
    qtbot.waitUntil(lambda: pane.snapshot_count >= 1, timeout=WAIT_MS)
    assert pane.latest["vae"].done > stopped_at          # resumed from the checkpoint, not from zero
    pane.stop()


def test_closing_the_window_mid_training_asks_checkpoints_and_leaves_a_resumable_run(qtbot, tmp_path, monkeypatch):
    from wm_studio.gui.main_window import MainWindow
    run = make_run(tmp_path / "run", rollouts=4, frames=40, epochs=5, batch_size=4)
    window = MainWindow(pane="training", persistent=False, run=run.root)
    qtbot.addWidget(window)
    window.show()
    pane = window.panes["training"]
    qtbot.waitUntil(lambda: pane.start_button.isEnabled(), timeout=WAIT_MS)
    asked = []
    monkeypatch.setattr(window, "confirm_close", lambda questions: asked.extend(questions) or False)
    pane.start("vae")
    qtbot.waitUntil(lambda: pane.snapshot_count >= 2, timeout=WAIT_MS)
    assert not window.close() and pane.training                    # "Cancel": the window stays, training goes on
    assert "V: the VAE, then encoding is training" in asked[0]
    monkeypatch.setattr(window, "confirm_close", lambda questions: True)
    assert window.close()
    assert not pane.worker.is_alive()
    meta = checkpoint_meta(run.latest_checkpoint("vae"))
    step = meta["epoch"] * meta["batches_per_epoch"] + meta["batch"]
    assert step >= 2
    resumed = next(train_vae(run, None, resolve_device("cpu")))
    assert resumed.done == step + 1                                 # it goes on from the checkpoint


def test_the_controller_stage_drives_the_evolution_views(qtbot, studio, tmp_path):
    pane, _, open_run = studio
    config = preset("carracing", "tiny")
    config.update(hidden=8, max_steps=8)
    config["controller"].update(popsize=4, generations=2, eval_every=2, eval_rollouts=1, max_steps=8,
                                eval_max_steps=8)
    run = Run.create(tmp_path / "run", config)
    vae = ConvVAE(32, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    mdn = MDNRNN(32, 3, 8, seed=1)
    mdn.step(np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    open_and_wait(qtbot, open_run, pane, run.root)
    with qtbot.waitSignal(pane.worker.finished, timeout=WAIT_MS):
        pane.start("controller")
    live = pane.latest["controller"]
    assert live.done == 2 and run.model_path("controller").is_file()
    # After the stage, the pane reads the run back from its checkpoint: the same generation, drawn the same way.
    qtbot.waitUntil(lambda: pane.latest["controller"] is not live and pane.drawn_snapshot is not None
                    and pane.drawn_snapshot[0] is pane.latest["controller"], timeout=WAIT_MS)
    snapshot = pane.latest["controller"]
    np.testing.assert_allclose(snapshot.projection.points, live.projection.points)
    np.testing.assert_allclose(snapshot.projection.cov2, live.projection.cov2)
    np.testing.assert_array_equal(snapshot.history, live.history)
    figure = pane.figures["controller"]
    x, y = figure.search.population.getData()
    np.testing.assert_allclose(np.column_stack([x, y]), snapshot.projection.points)
    np.testing.assert_allclose(figure.fitness.curve_data("best")[1], snapshot.history[:, 2])
    np.testing.assert_allclose(figure.sigma.curve_data("sigma")[1], snapshot.history[:, 5])
    assert len(figure.search.ellipse1.getData()[0]) > 10
    assert snapshot.population.shape == (4, 3 * (32 + 8) + 3)        # 3 outputs on [z, h] with a bias


def test_the_bundled_model_and_a_missing_run_are_never_trained(qtbot, studio, tmp_path):
    pane, _, open_run = studio
    assert "No run is open" in pane.why_not_trainable() and not pane.start_button.isEnabled()
    assert not pane.start("vae")
    open_run.path = DEFAULT_MODEL            # what open() records for the bundled model
    assert "read-only" in pane.why_not_trainable()
    open_run.path = None
    assert pane.new_run(tmp_path / "fresh", "carracing", "tiny")
    qtbot.waitUntil(lambda: open_run.path == tmp_path / "fresh" and pane.start_button.isEnabled(), timeout=WAIT_MS)
    assert pane.selected.key == "collect" and Run.open(tmp_path / "fresh").config["preset"] == "tiny"
    assert pane.forms["collect"].values()["rollouts"] == 4


@pytest.mark.slow
def test_the_screenshot_flag_opens_the_training_pane_on_a_run_without_training(tmp_path, studio_env):
    import subprocess
    import sys
    from wm_studio.core.export import read_png
    run = make_run(tmp_path / "run")
    shot = tmp_path / "training.png"
    result = subprocess.run([sys.executable, "-m", "wm_studio", "gui", "--pane", "training", "--run", str(run.root),
                             "--screenshot", str(shot)], capture_output=True, text=True, env=studio_env,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert read_png(shot).shape == (900, 1400, 3)
    assert run.latest_checkpoint("vae") is None and not run.model_path("vae").exists()   # nothing was trained
    assert "Traceback" not in result.stderr


def test_with_no_run_open_the_pane_is_ready_for_a_screenshot_at_once(qtbot, studio):
    pane, _, _ = studio
    with qtbot.waitSignal(pane.view_ready, timeout=WAIT_MS):
        pane.prepare_view(None)
    assert "No run is open" in pane.stage_note.text()


def test_collect_from_a_new_run_draws_the_reward_of_every_rollout(qtbot, studio, tmp_path):
    pane, _, open_run = studio
    assert pane.new_run(tmp_path / "fresh", "carracing", "tiny")
    qtbot.waitUntil(lambda: pane.start_button.isEnabled() and open_run.contents is not None, timeout=WAIT_MS)
    pane.set_field("collect", "rollouts", 3)
    pane.set_field("collect", "steps", 12)
    with qtbot.waitSignal(pane.worker.finished, timeout=WAIT_MS):
        assert pane.start("collect")
    run = Run.open(tmp_path / "fresh")
    assert len(list(run.rollouts_dir.glob("rollout_*.npz"))) == 3
    written = [record["reward"] for record in run.read_metrics("collect")]
    np.testing.assert_allclose(pane.collect_rewards, written, atol=1e-4)
    qtbot.waitUntil(lambda: len(pane.figures["collect"].rewards.curve_data("reward")[1]) == 3, timeout=WAIT_MS)
    np.testing.assert_allclose(pane.figures["collect"].rewards.curve_data("reward")[1], written, atol=1e-4)
    assert pane.stage_items["collect"].text(1).startswith("done")


def test_a_new_runs_collect_chart_shows_only_its_own_rollouts(qtbot, studio, tmp_path):
    """Issue 12: after the bundled model (100 rollouts in its record), a new run's live chart plotted those 100
    with the new ones appended."""
    pane, _, open_run = studio
    open_and_wait(qtbot, open_run, pane, DEFAULT_MODEL)
    pane.select_stage("collect")
    qtbot.waitUntil(lambda: len(pane.figures["collect"].rewards.curve_data("reward")[1]) == 100, timeout=WAIT_MS)
    assert pane.new_run(tmp_path / "fresh", "carracing", "tiny")
    qtbot.waitUntil(lambda: pane.start_button.isEnabled() and open_run.contents is not None, timeout=WAIT_MS)
    pane.set_field("collect", "rollouts", 2)
    pane.set_field("collect", "steps", 12)
    with qtbot.waitSignal(pane.worker.finished, timeout=WAIT_MS):
        assert pane.start("collect")
    written = [record["reward"] for record in Run.open(tmp_path / "fresh").read_metrics("collect")]
    assert len(written) == 2
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and pane.drawn_snapshot[0] is pane.latest["collect"],
                    timeout=WAIT_MS)
    x, y = pane.figures["collect"].rewards.curve_data("reward")
    assert list(x) == [1, 2]
    np.testing.assert_allclose(y, written, atol=1e-4)


def test_new_run_proposes_a_folder_in_home_then_beside_the_last_new_run(qtbot, studio, tmp_path, monkeypatch):
    from wm_studio.gui.panes import training
    pane, _, open_run = studio
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    open_and_wait(qtbot, open_run, pane, DEFAULT_MODEL)        # the bundled model lies inside the package
    proposed = []
    monkeypatch.setattr(training.NewRunDialog, "exec_",
                        lambda dialog: proposed.append(dialog.folder_edit.text()) or training.QDialog.Rejected)
    pane.new_run_dialog()
    assert proposed[-1] == str(tmp_path / "home" / "wm-studio-runs" / "my-run")
    assert pane.new_run(tmp_path / "elsewhere" / "first", "carracing", "tiny")
    pane.new_run_dialog()
    assert proposed[-1] == str(tmp_path / "elsewhere" / "my-run")
    (tmp_path / "elsewhere" / "my-run").mkdir()
    pane.new_run_dialog()
    assert proposed[-1] == str(tmp_path / "elsewhere" / "my-run-2")     # never an existing folder


def test_the_new_run_dialog_shows_the_whole_proposed_path(qtbot, tmp_path):
    from wm_studio.gui.new_run import NewRunDialog
    folder = str(tmp_path / "a-rather-long-folder-name" / "wm-studio-runs" / "my-run")
    dialog = NewRunDialog(None, folder)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    edit = dialog.folder_edit
    assert edit.text() == folder
    assert edit.width() >= edit.fontMetrics().horizontalAdvance(folder) + 8     # nothing of it cut off
