"""The Dream pane offscreen: who drives, the temperature, auto-restarts, real beside dream, export; every check
reads the DreamFrames the worker made and the arrays the views show."""
import subprocess
import sys

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from wm_studio.core.envs.dream import decode_frames
from wm_studio.core.export import read_animation, read_png
from wm_studio.core.envs.dream_session import BRAKE, keyboard_action
from wm_studio.gui.panes.dream import DreamPane

from tiny_run import make_run, save_mdn

WAIT_MS = 30_000


def open_pane(qtbot, folder, poll_ms=1500):
    pane = DreamPane()
    pane.open_run._timer.setInterval(poll_ms)
    qtbot.addWidget(pane)
    pane.resize(1200, 760)
    pane.show()
    pane.open_run.open(folder)
    qtbot.waitUntil(lambda: pane.drawn_frame is not None and not pane.worker.busy, timeout=WAIT_MS)
    return pane


@pytest.fixture
def pane(qtbot, tmp_path):
    pane = open_pane(qtbot, make_run(tmp_path / "run").root)
    yield pane
    pane.shutdown()


def step(qtbot, pane, count=1):
    """Pull `count` steps and wait until the last one is drawn; returns the frames made."""
    made, frames = pane.frames_made, []
    pane.worker.snapshots.connect(frames.extend)
    try:
        pane.worker.step(count)
        qtbot.waitUntil(lambda: pane.frames_made == made + count and pane.drawn_frame is pane.latest,
                        timeout=WAIT_MS)
    finally:
        pane.worker.snapshots.disconnect(frames.extend)
    return frames


def test_the_dream_starts_from_a_real_episode_and_v_draws_every_step(qtbot, pane):
    first = pane.drawn_frame
    assert first.step == 0 and first.start == "a real episode"
    assert pane.ready and pane.stack.currentIndex() == 1
    frames = step(qtbot, pane, 3)
    assert [f.step for f in frames] == [1, 2, 3]
    np.testing.assert_array_equal(pane.dream_view.frame(), frames[-1].dream)
    assert frames[-1].dream.dtype == np.uint8 and frames[-1].dream.shape == (64, 64, 3)
    assert "step <b>3</b>" in pane.readout.text()


def test_keyboard_input_drives_the_dream_and_shows_the_human_flag(qtbot, pane):
    pane.set_driver("random")
    assert not pane.human_flag.isVisible()
    pane.dream_view.setFocus()
    qtbot.keyPress(pane.dream_view, Qt.Key_Up)
    assert pane.driver_box.currentData() == "keyboard" and pane.human_flag.isVisible()
    np.testing.assert_array_equal(pane.controls.read().keys, [0, 1, 0])
    (frame,) = step(qtbot, pane)
    assert frame.driver == "keyboard"
    np.testing.assert_array_equal(frame.action, [0, 1, 0])           # Up: gas
    qtbot.keyPress(pane.dream_view, Qt.Key_Left)
    (frame,) = step(qtbot, pane)
    np.testing.assert_array_equal(frame.action, [-1, 1, 0])          # Left: steer -1, gas still held
    qtbot.keyRelease(pane.dream_view, Qt.Key_Up)
    qtbot.keyRelease(pane.dream_view, Qt.Key_Left)
    qtbot.keyPress(pane.dream_view, Qt.Key_S)
    (frame,) = step(qtbot, pane)
    np.testing.assert_allclose(frame.action, [0, 0, BRAKE])          # S: brake
    qtbot.keyRelease(pane.dream_view, Qt.Key_S)
    (frame,) = step(qtbot, pane)
    np.testing.assert_array_equal(frame.action, [0, 0, 0])
    assert "driven by you" in pane.readout.text()


def test_doom_keys_press_the_left_and_right_buttons():
    np.testing.assert_array_equal(keyboard_action("doom", {"left"}), [1, 0])
    np.testing.assert_array_equal(keyboard_action("doom", {"right", "gas"}), [0, 1])
    np.testing.assert_array_equal(keyboard_action("carracing", {"left", "right"}), [0, 0, 0])


def test_the_controller_and_random_drivers(qtbot, pane):
    pane.set_driver("controller")
    frames = step(qtbot, pane, 3)
    assert {f.driver for f in frames} == {"controller"}
    actions = np.array([f.action for f in frames])
    assert np.all(np.abs(actions[:, 0]) <= 1) and np.all((actions[:, 1:] >= 0) & (actions[:, 1:] <= 1))
    pane.set_driver("random")
    frames = step(qtbot, pane, 3)
    assert {f.driver for f in frames} == {"random"} and len({tuple(f.action) for f in frames}) == 3


def test_the_temperature_slider_changes_the_running_dream(qtbot, pane):
    pane.tau_slider.setValue(250)
    assert pane.tau_label.text() == "τ = 2.50" and pane.controls.read().tau == 2.5
    (frame,) = step(qtbot, pane)
    assert frame.tau == 2.5 and "τ 2.50" in pane.readout.text()
    pane.tau_slider.setValue(10)
    (frame,) = step(qtbot, pane)
    assert frame.tau == pytest.approx(0.1)
    assert pane.tau_slider.minimum() == 10 and pane.tau_slider.maximum() == 300


def test_an_episode_restarts_at_the_cap(qtbot, pane):
    pane.cap_spin.setValue(3)
    step(qtbot, pane, 3)
    ended = pane.recorded[-1]
    assert ended.step == 3 and ended.ended == "the cap of 3 steps"
    frames = step(qtbot, pane, 2)
    assert (frames[0].episode, frames[0].step) == (ended.episode + 1, 0)
    assert pane.recorded[0].step == 0 and len(pane.recorded) == 2       # export keeps the current episode


def test_a_doom_dream_restarts_when_m_predicts_the_end(qtbot, tmp_path):
    made = make_run(tmp_path / "doom", game="doom")
    mdn = save_mdn(made, action_size=2, predict_done=True, seed=3)
    mdn.head.W.array[-1] = 0.0
    mdn.head.b.array[-1] = 3.0                   # p(done) = 0.95 after every step
    from wm_studio.core.models.serialization import save_model
    save_model(made.model_path("mdn"), mdn, mdn.meta())
    pane = open_pane(qtbot, made.root)
    try:
        frames = step(qtbot, pane, 2)
        assert frames[0].step == 1 and frames[0].ended == "M predicted the end of the episode"
        assert frames[0].done_prob == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
        assert (pane.latest.episode, pane.latest.step) == (1, 0)
        assert "Arrows or A / D" in pane.keys_label.text()
    finally:
        pane.shutdown()


def test_a_doom_dream_plots_p_done_and_counts_the_step_of_death(qtbot, tmp_path):
    """An M whose p(done) rises with every step (LSTM unit 0 counts steps; done logit 8 h0 - 6): the pane plots
    p(done) step by step, the dream ends on the step where it passes 0.5, and that step counts as survived."""
    made = make_run(tmp_path / "doom", game="doom")
    mdn = save_mdn(made, action_size=2, predict_done=True, seed=3)
    up, lateral, bias = mdn.lstm.upward.W.array, mdn.lstm.lateral.W.array, mdn.lstm.upward.b.array
    up[0:4], lateral[0:4], bias[0:4] = 0.0, 0.0, [0.1, 20.0, 20.0, 20.0]     # unit 0: c grows tanh(0.1) a step
    mdn.head.W.array[-1] = 0.0
    mdn.head.W.array[-1, 0] = 8.0
    mdn.head.b.array[-1] = -6.0
    from wm_studio.core.models.serialization import save_model
    save_model(made.model_path("mdn"), mdn, mdn.meta())
    pane = open_pane(qtbot, made.root)
    try:
        assert pane.done_widget.isVisibleTo(pane)
        frames = step(qtbot, pane, 12)
        end = next(f for f in frames if f.ended)
        assert end.ended == "M predicted the end of the episode" and end.score == end.step == 10
        probs = [f.done_prob for f in frames if f.episode == end.episode]
        assert probs == sorted(probs) and probs[-1] > 0.5 > probs[-2]
        pane.worker.step(0)
        x, y = pane.done_plot.curve_data("p(done)")
        steps_now = [f.step for f in frames if f.episode == pane.drawn_frame.episode and f.step > 0]
        assert list(x) == steps_now
        assert pane.done_plot.curve_data("threshold")[1].tolist() == [0.5, 0.5]
    finally:
        pane.shutdown()


def test_restart_starts_a_new_episode(qtbot, pane):
    step(qtbot, pane, 2)
    episode = pane.latest.episode
    pane.restart()
    qtbot.waitUntil(lambda: pane.latest.episode == episode + 1 and pane.drawn_frame is pane.latest, timeout=WAIT_MS)
    assert pane.latest.step == 0


def test_play_and_pause(qtbot, pane):
    pane.speed_box.setCurrentIndex(pane.speed_box.findData(None))
    pane.play_button.click()
    assert pane.worker.running and pane.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: pane.latest.step >= 10, timeout=WAIT_MS)
    assert pane.steps_per_second() > 0 and "steps/s" in pane.rate_label.text()
    pane.play_button.click()
    assert not pane.worker.running and pane.play_button.text() == "Play"


def test_real_beside_dream_shows_both_frames_and_the_error_curve(qtbot, pane):
    pane.real_check.setChecked(True)
    assert pane.real_view.isVisible() and pane.error_widget.isVisible()
    qtbot.waitUntil(lambda: pane.latest is not None and pane.latest.real is not None, timeout=60_000)
    first = pane.latest
    assert first.start == "the real game after its intro (step 50)"         # CarRacing: after the zoom-in
    np.testing.assert_array_equal(first.dream, decode_frames(pane.open_run.vae,
                                                             _encoded(pane.open_run.vae, first.real))[0])
    frames = step(qtbot, pane, 5)
    assert [f.step for f in frames] == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(pane.real_view.frame(), frames[-1].real)
    np.testing.assert_array_equal(pane.dream_view.frame(), frames[-1].dream)
    steps, errors = pane.error_plot.curve_data("error")
    assert list(steps) == [0, 1, 2, 3, 4, 5]                       # one point per step: the curve grows
    last = frames[-1]
    expected = np.mean((last.real / 255.0 - last.dream / 255.0) ** 2)
    assert errors[-1] == pytest.approx(expected, rel=1e-4)
    more = step(qtbot, pane, 2)
    assert len(pane.error_plot.curve_data("error")[0]) == 8 and more[-1].real_score is not None
    out = pane.export_frames(128)
    assert out[0].shape == (16 + 128, 2 * 128 + 4, 3)              # labels over dream | gap | real, as in the pane


def test_an_export_beside_the_real_game_names_each_half(qtbot, pane):
    from wm_studio.core.envs.dream_session import EXPORT_LABELS, label_band
    pane.real_check.setChecked(True)
    qtbot.waitUntil(lambda: pane.latest is not None and pane.latest.real is not None, timeout=60_000)
    step(qtbot, pane, 2)
    frames = pane.export_frames(256)
    band = 32                                                       # a label band 1/8 of the half's width
    for out, recorded in zip(frames, pane.recorded):
        assert out.shape == (band + 256, 256 + 4 + 256, 3)
        left, right = out[:, :256], out[:, 260:]
        np.testing.assert_array_equal(left[band:], recorded.dream.repeat(4, 0).repeat(4, 1))
        np.testing.assert_array_equal(right[band:], recorded.real.repeat(4, 0).repeat(4, 1))
        np.testing.assert_array_equal(left[:band], label_band(256, band, "dream (M + V)"))
        np.testing.assert_array_equal(right[:band], label_band(256, band, "real game"))
    assert EXPORT_LABELS == ("dream (M + V)", "real game")
    labels = frames[0][:band]
    assert (labels < 128).any(axis=2).sum() > 100                    # dark text is there on the white band
    assert not np.array_equal(labels[:, :256], labels[:, 260:])     # and it says different things


def _encoded(vae, frame):
    from wm_studio.core.train.encode import encode_frames
    return encode_frames(vae, frame[None], np, 1)[0]


def test_the_dream_exports_the_episode(qtbot, pane, tmp_path):
    step(qtbot, pane, 4)
    pane.size_box.setCurrentIndex(pane.size_box.findData(128))
    frames = read_animation(pane.export_animation(tmp_path / "dream.mp4"))
    assert len(frames) == 5 and frames[0].shape == (128, 128, 3)
    assert pane.can_export_animation()
    assert pane.view_frame().shape[0] > 100


def test_a_new_m_on_disk_restarts_the_dream_with_it(qtbot, tmp_path):
    made = make_run(tmp_path / "run")
    pane = open_pane(qtbot, made.root, poll_ms=100)
    try:
        old, sessions = pane.open_run.mdn, pane.sessions
        save_mdn(made, seed=11)
        qtbot.waitUntil(lambda: pane.open_run.mdn is not old and pane.sessions == sessions + 1, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: pane.drawn_frame is not None and pane.drawn_frame.step == 0, timeout=WAIT_MS)
    finally:
        pane.shutdown()


def test_without_m_the_pane_says_what_is_missing(qtbot, tmp_path):
    pane = DreamPane()
    qtbot.addWidget(pane)
    try:
        pane.open_run.open(make_run(tmp_path / "run", parts=("vae", "rollouts")).root)
        qtbot.waitUntil(lambda: "M is missing (models/mdn.npz)" in pane.message.text(), timeout=WAIT_MS)
        assert pane.stack.currentIndex() == 0 and not pane.ready
        pane.play_button.click()
        assert not pane.worker.running
    finally:
        pane.shutdown()


def test_without_c_the_controller_cannot_drive(qtbot, tmp_path):
    pane = open_pane(qtbot, make_run(tmp_path / "run", parts=("vae", "mdn", "latents")).root)
    try:
        index = pane.driver_box.findData("controller")
        assert not pane.driver_box.model().item(index).isEnabled()
        pane.set_driver("controller")
        assert pane.driver_box.currentData() != "controller"
        assert "C is missing" in pane.driver_box.itemData(index, Qt.ToolTipRole)
        (frame,) = step(qtbot, pane)
        assert frame.start == "a real episode"
    finally:
        pane.shutdown()


def test_the_controls_persist_across_sessions(qtbot, tmp_path, monkeypatch):
    from wm_studio.gui import open_run as open_run_module
    from wm_studio.gui.main_window import MainWindow
    monkeypatch.setattr(open_run_module, "DEFAULT_MODEL", tmp_path / "no_default_model")
    window = MainWindow(pane="dream", persistent=True)
    qtbot.addWidget(window)
    dream, latent = window.panes["dream"], window.panes["latent"]
    dream.tau_slider.setValue(175)
    dream.cap_spin.setValue(400)
    dream.set_driver("keyboard")
    dream.size_box.setCurrentIndex(dream.size_box.findData(512))
    latent.frames_spin.setValue(90)
    latent.fps_spin.setValue(12)
    window.close()
    again = MainWindow(pane="dream", persistent=True)
    qtbot.addWidget(again)
    dream, latent = again.panes["dream"], again.panes["latent"]
    assert dream.tau == 1.75 and dream.controls.read().tau == 1.75 and dream.cap_spin.value() == 400
    assert dream.driver_box.currentData() == "keyboard" and dream.size_box.currentData() == 512
    assert (latent.frames_spin.value(), latent.fps_spin.value()) == (90, 12)
    text = again.shortcuts_text()
    assert "Dream (M + V): drive by hand" in text and "Latent (V): a random real frame" in text
    again.close()


@pytest.mark.slow
def test_screenshot_of_the_dream_pane(tmp_path, studio_env):
    folder = make_run(tmp_path / "run").root
    shot = tmp_path / "dream.png"
    result = subprocess.run([sys.executable, "-m", "wm_studio", "gui", "--pane", "dream", "--run", str(folder),
                             "--generations", "20", "--screenshot", str(shot)], capture_output=True, text=True,
                            env=studio_env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    picture = read_png(shot)
    assert picture.shape == (900, 1400, 3) and picture.std() > 10
