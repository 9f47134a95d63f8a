"""The Controller pane, offscreen, on a tiny run (V and M from seeded weights, a controller that drives): the
episode view draws exactly the snapshot's frame, reconstruction, z, h, actions and rewards; an evaluation
completes with N scores per policy in the histograms; it can be cancelled; an episode exports; a new C on disk
is picked up."""
import numpy as np
import pytest

from wm_studio.core.export import read_animation
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.presets import preset
from wm_studio.core.runs import Run
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.panes.controller import ControllerPane

WAIT_MS = 60_000
HIDDEN = 16


def make_run(root, episode=12, bias=(0.0, 0.6, -1.0), seed=0) -> Run:
    """A CarRacing run with V, a small M and a controller that steps on the gas (episodes of `episode` steps)."""
    config = preset("carracing", "tiny")
    config.update(hidden=HIDDEN, max_steps=episode)
    run = Run.create(root, config)
    vae = ConvVAE(32, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    mdn = MDNRNN(32, 3, HIDDEN, seed=1)
    mdn.step(np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    write_controller(run, bias, seed)
    return run


def write_controller(run, bias, seed=0) -> Controller:
    controller = Controller.for_game("carracing", 32, HIDDEN)
    controller.set_params(np.random.default_rng(seed).normal(0, 0.3, controller.n_params))
    controller.bias[:] = bias
    save_controller(run.model_path("controller"), controller, {"score": 1.0})
    return controller


@pytest.fixture
def studio(qtbot, tmp_path):
    """(pane, open run, run) with the run opened and its first step drawn."""
    run = make_run(tmp_path / "run")
    open_run = OpenRun(None, poll_ms=200, remember=False)
    pane = ControllerPane(open_run=open_run)
    pane.evaluation_backend = "serial"
    qtbot.addWidget(pane)
    pane.resize(1300, 800)
    pane.show()
    open_run.open(run.root)
    qtbot.waitUntil(lambda: pane.drawn_step is not None, timeout=WAIT_MS)
    yield pane, open_run, run
    pane.shutdown()
    open_run.shutdown()


def test_the_episode_view_draws_the_snapshot(qtbot, studio):
    pane, _, _ = studio
    assert pane.drawn_step.done == 1 and pane.policy == "controller"
    pane.step()
    qtbot.waitUntil(lambda: pane.drawn_step.done == 2, timeout=WAIT_MS)
    step, figure = pane.drawn_step, pane.figure
    np.testing.assert_array_equal(figure.game.picture(), step.frame)
    np.testing.assert_array_equal(figure.seen.picture(), step.observation)
    np.testing.assert_array_equal(figure.reconstruction.picture(), step.reconstruction)
    np.testing.assert_allclose(figure.z_bars.values, step.z)
    np.testing.assert_allclose(figure.h_strip.values, step.h)
    np.testing.assert_allclose(figure.actions.values, step.action)
    x, y = figure.reward.curve_data("total")
    np.testing.assert_allclose(y, np.cumsum(step.rewards))
    assert step.frame.shape == (96, 96, 3) and step.z.shape == (32,) and step.h.shape == (HIDDEN,)
    assert np.abs(step.h).max() > 0 and step.action[1] > 0.5          # M's state moved; C steps on the gas
    assert "seed 0" in figure.title.text and "total" in figure.title.text
    assert len(pane.recorded) == 2


def test_playing_runs_the_episode_to_its_end_and_play_again_takes_the_next_seed(qtbot, studio):
    pane, _, _ = studio
    pane.speed_slider.setValue(pane.speed_slider.maximum())        # as fast as it goes
    pane.toggle_play()
    qtbot.waitUntil(lambda: pane.episode_over and pane.drawn_step.done == 12, timeout=WAIT_MS)
    # the last step can be drawn before the worker's end reaches the window: the button then turns to Play
    qtbot.waitUntil(lambda: pane.play_button.text() == "Play", timeout=WAIT_MS)
    assert not pane.episode_worker.busy
    assert [s.done for s in pane.recorded] == list(range(1, 13))
    pane.toggle_play()
    qtbot.waitUntil(lambda: pane.drawn_step is not None and pane.drawn_step.seed == 1, timeout=WAIT_MS)
    assert pane.seed_spin.value() == 1


def test_an_evaluation_completes_and_the_histograms_hold_n_values(qtbot, studio):
    pane, _, _ = studio
    with qtbot.waitSignal(pane.evaluation_worker.finished, timeout=WAIT_MS):
        assert pane.evaluate(episodes=3)
    qtbot.waitUntil(lambda: not pane.evaluating, timeout=WAIT_MS)
    scores = pane.last_scores
    assert scores.phase == "done" and scores.done == scores.total == 6
    histogram = pane.scores.real
    assert histogram.counts["controller"].sum() == 3 and histogram.counts["random"].sum() == 3
    np.testing.assert_allclose(np.sort(histogram.samples["controller"]), np.sort(scores.real.controller_rewards))
    mean, std = scores.real.controller_rewards.mean(), scores.real.controller_rewards.std()
    assert f"{mean:.1f} ± {std:.1f}" in pane.result_label.text()
    assert "M predicts no reward" in pane.result_label.text()                  # CarRacing: no dream score
    assert not pane.scores.shows_dream
    assert pane.evaluation_bar.value() == pane.evaluation_bar.maximum() == 6
    assert pane.evaluate_button.text() == "Evaluate"


def test_the_real_histogram_takes_the_column_unless_m_scores_dreams(qtbot, studio):
    """Issue 12: on CarRacing (an M without a done head) half the column was a dream histogram that stays empty."""
    pane, open_run, run = studio
    figure = pane.scores
    qtbot.waitUntil(lambda: figure.real.height() > 0.85 * figure.height(), timeout=WAIT_MS)
    assert not figure.shows_dream and figure.dream.scene() is None
    mdn = MDNRNN(32, 3, HIDDEN, seed=2, predict_done=True)            # an M that can end (and so score) dreams
    mdn.step(np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    qtbot.waitUntil(lambda: figure.shows_dream, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: 0.3 < figure.real.height() / figure.height() < 0.6, timeout=WAIT_MS)
    assert 0.3 < figure.dream.height() / figure.height() < 0.6


def test_an_evaluation_can_be_cancelled(qtbot, studio):
    pane, _, _ = studio
    pane.evaluate(episodes=200)
    qtbot.waitUntil(lambda: pane.last_scores is not None and pane.last_scores.done >= 1, timeout=WAIT_MS)
    assert pane.evaluate_button.text() == "Cancel"
    pane.toggle_evaluation()
    assert not pane.evaluating and pane.evaluate_button.text() == "Evaluate"
    qtbot.waitUntil(lambda: not pane.evaluation_worker.busy, timeout=WAIT_MS)
    assert pane.last_scores.done < 400


@pytest.mark.parametrize("game_only", [True, False])
def test_an_episode_exports_as_an_animation(qtbot, studio, tmp_path, game_only):
    pane, _, _ = studio
    pane.step()
    pane.step()
    qtbot.waitUntil(lambda: len(pane.recorded) == 3, timeout=WAIT_MS)
    pane.game_only_check.setChecked(game_only)
    pane.size_box.setCurrentText("640 × 360")
    path = pane.export_animation(tmp_path / "episode.gif")
    frames = read_animation(path)
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3)
    assert not np.array_equal(frames[0], frames[2])


def test_a_new_controller_on_disk_is_picked_up_by_a_paused_episode(qtbot, studio):
    pane, open_run, run = studio
    first = pane.drawn_step
    braking = write_controller(run, bias=(0.0, -5.0, 5.0), seed=3)     # no gas, full brake
    qtbot.waitUntil(lambda: pane.drawn_step is not None and pane.drawn_step is not first
                    and pane.drawn_step.action[2] > 0.9, timeout=WAIT_MS)
    step = pane.drawn_step
    np.testing.assert_allclose(step.raw_action, braking.raw_output(step.z[None], step.h[None])[0], atol=1e-5)


def test_a_hidden_pane_reloads_only_when_shown(qtbot, studio):
    pane, open_run, run = studio
    first = pane.drawn_step
    pane.hide()
    write_controller(run, bias=(0.0, -5.0, 5.0), seed=3)
    qtbot.waitUntil(lambda: pane._stale, timeout=WAIT_MS)      # the open run reloaded C; the pane waits
    assert pane.latest is first
    pane.show()
    qtbot.waitUntil(lambda: pane.drawn_step is not None and pane.drawn_step is not first
                    and pane.drawn_step.action[2] > 0.9,
                    timeout=WAIT_MS)


def test_without_a_controller_the_pane_says_what_to_train_and_the_random_policy_still_drives(qtbot, studio):
    pane, open_run, run = studio
    run.model_path("controller").unlink()
    open_run.reload()
    qtbot.waitUntil(lambda: "train-controller" in pane.figure.title.text, timeout=WAIT_MS)
    assert not pane.play_button.isEnabled() and not pane.evaluate_button.isEnabled()
    pane.policy_box.setCurrentIndex(pane.policy_box.findData("random"))
    qtbot.waitUntil(lambda: pane.drawn_step is not None and pane.drawn_step.policy == "random", timeout=WAIT_MS)
    assert pane.play_button.isEnabled()


def test_dream_scores_are_drawn_beside_the_real_ones(qtbot):
    """A Doom evaluation's snapshot: the dream histogram holds the dream scores of both policies."""
    from wm_studio.core.train.episode import ScoreSnapshot
    from wm_studio.core.train.evaluate import EvaluationReport
    from wm_studio.gui.views.episode_figure import ScoreFigure
    figure = ScoreFigure()
    qtbot.addWidget(figure)
    report = EvaluationReport("doom", np.arange(4), np.array([300.0, 420, 510, 380]), np.full(4, 300),
                              np.array([150.0, 180, 160, 170]), np.full(4, 150))
    ours, theirs = np.array([600.0, 700, 650, 2100]), np.array([90.0, 120, 80, 100])
    figure.show_scores(ScoreSnapshot(10, 10, "done", 402.5, 165.0, report, ours, theirs))
    assert figure.dream.counts["controller"].sum() == 4 and figure.dream.counts["random"].sum() == 4
    np.testing.assert_array_equal(figure.dream.samples["controller"], ours)
    assert "steps survived" in figure.dream.getAxis("bottom").labelText
    assert figure.real.counts["controller"].sum() == 4


def test_the_pane_settings_persist(qtbot, studio, tmp_path):
    from PyQt5.QtCore import QSettings
    pane, open_run, _ = studio
    pane.episodes_spin.setValue(25)
    pane.fps_spin.setValue(12)
    pane.game_only_check.setChecked(True)
    pane.speed_slider.setValue(1)
    settings = QSettings(str(tmp_path / "pane.ini"), QSettings.IniFormat)
    pane.save_settings(settings)
    other = ControllerPane(open_run=open_run)
    qtbot.addWidget(other)
    try:
        other.load_settings(settings)
        assert (other.episodes_spin.value(), other.fps_spin.value(), other.game_only_check.isChecked(),
                other.speed_slider.value()) == (25, 12, True, 1)
    finally:
        other.shutdown()


@pytest.mark.slow
def test_the_screenshot_flag_opens_the_controller_pane_on_a_run(tmp_path, studio_env):
    import subprocess
    import sys
    from wm_studio.core.export import read_png
    run = make_run(tmp_path / "run", episode=40)
    shot = tmp_path / "controller.png"
    result = subprocess.run([sys.executable, "-m", "wm_studio", "gui", "--pane", "controller", "--run", str(run.root),
                             "--generations", "20", "--screenshot", str(shot)], capture_output=True, text=True,
                            env=studio_env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    picture = read_png(shot)
    assert picture.shape == (900, 1400, 3) and picture.std() > 10
    assert "QThread" not in result.stderr and "Traceback" not in result.stderr


def test_with_no_run_open_the_pane_says_so_and_is_ready_for_a_screenshot(qtbot):
    open_run = OpenRun(None, remember=False)
    pane = ControllerPane(open_run=open_run)
    qtbot.addWidget(pane)
    pane.show()
    try:
        ready = []
        pane.view_ready.connect(lambda: ready.append(True))
        pane.prepare_view(10)
        assert not ready                                  # emitted later, once the caller listens
        qtbot.waitUntil(lambda: ready == [True], timeout=WAIT_MS)
        assert "No model open" in pane.figure.title.text and not pane.play_button.isEnabled()
    finally:
        pane.shutdown()
        open_run.shutdown()


def test_a_long_error_wraps_inside_the_figure(qtbot, studio):
    from PyQt5.QtGui import QFontMetricsF
    pane, _, run = studio
    figure = pane.figure
    width = figure.viewport().width()
    message = (f"{run.model_path('controller')} is a controller for another V and M than this run's; train C "
               f"again with `wm-studio train-controller --run {run.root}` ") * 3
    pane.episode_worker.failed.emit(message)
    qtbot.waitUntil(lambda: "train C again" in figure.title.text)
    assert figure.viewport().width() == width                           # the centre column kept its width
    qtbot.waitUntil(lambda: figure.ci.geometry().width() <= width)      # and the layout fits inside it
    plot = figure.reward.mapRectToScene(figure.reward.boundingRect())
    assert plot.right() <= width and figure.title.item.boundingRect().width() < width
    assert figure.title.item.document().documentLayout().documentSize().height() > 2 * QFontMetricsF(
        figure.title.item.font()).lineSpacing()                           # on several lines, all of it shown
