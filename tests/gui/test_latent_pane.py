"""The Latent pane offscreen: every check reads back the arrays the ImageItems show."""
import subprocess
import sys

import numpy as np
import pytest
from PyQt5.QtCore import QPointF, Qt

from wm_studio.core.envs.dream import decode_frames
from wm_studio.core.export import read_animation, read_png
from wm_studio.core.files import load_npz
from wm_studio.core.train.encode import encode_frames
from wm_studio.gui.main_window import MainWindow
from wm_studio.gui.panes.latent import LatentPane
from wm_studio.gui.views.latent_sliders import to_position

from tiny_run import Z, make_run, save_vae

WAIT_MS = 20_000


def decode(vae, z):
    return decode_frames(vae, np.asarray(z, np.float32)[None])[0]


def wait_shown(qtbot, pane, request_id=None):
    target = pane.request_id if request_id is None else request_id
    qtbot.waitUntil(lambda: pane.shown_id >= target, timeout=WAIT_MS)


def open_pane(qtbot, folder, poll_ms=1500):
    pane = LatentPane()
    pane.open_run._timer.setInterval(poll_ms)
    qtbot.addWidget(pane)
    pane.resize(1300, 760)
    pane.show()
    pane.open_run.open(folder)
    qtbot.waitUntil(lambda: pane.vae is not None and pane.shown_id > 0, timeout=WAIT_MS)
    return pane


@pytest.fixture
def pane(qtbot, tmp_path):
    pane = open_pane(qtbot, make_run(tmp_path / "run", rollouts=3, steps=12).root)
    yield pane
    pane.shutdown()


def test_dragging_a_slider_redecodes_the_image(qtbot, pane):
    assert pane.stack.currentIndex() == 1
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, np.zeros(Z)))
    before = pane.decoded_image().copy()
    dim = int(pane.sliders.order[0])
    slider = pane.sliders.sliders[dim]
    slider.setSliderDown(True)                 # a drag: the value follows the handle (tracking)
    for position in range(0, 301, 60):
        slider.setSliderPosition(position)
    slider.setSliderDown(False)
    wait_shown(qtbot, pane)
    assert pane.z[dim] == pytest.approx(3.0) and np.count_nonzero(pane.z) == 1
    shown = pane.decoded_image()
    assert shown.dtype == np.uint8 and shown.shape == (64, 64, 3)
    assert not np.array_equal(shown, before)
    np.testing.assert_array_equal(shown, decode(pane.vae, pane.z))
    assert pane.sliders.values[dim].text() == "+3.00"
    assert pane.decoded_view.caption.text == f"z = 0, with z{dim} = +3.00"     # not "z = 0" any more


def test_the_caption_names_every_dimension_moved_since_z_was_set(qtbot, pane):
    first, second = (int(d) for d in pane.sliders.order[:2])
    pane.sliders.sliders[first].setValue(150)
    pane.sliders.sliders[second].setValue(-50)
    wait_shown(qtbot, pane)
    assert pane.decoded_view.caption.text == f"z = 0, 2 dimensions moved (last z{second} = -0.50)"
    pane.set_end("A")
    assert f"z = 0, 2 dimensions moved" in pane.ends_label.text()
    pane.randomize()                     # a new z: what was moved before no longer applies
    wait_shown(qtbot, pane)
    assert pane.decoded_view.caption.text == "z ~ N(0, I)"


def test_many_rapid_changes_end_on_the_image_of_the_last_z(qtbot, pane):
    rng = np.random.default_rng(5)
    for _ in range(40):
        dim = int(rng.integers(Z))
        pane.sliders.sliders[dim].setValue(int(rng.integers(-300, 301)))
    final = pane.z.copy()
    wait_shown(qtbot, pane)
    assert pane.shown_id == pane.request_id
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, final))
    assert not pane.change_times                  # nothing left waiting


def test_sliders_are_ordered_by_kl_and_show_the_order(pane):
    latents = pane.open_run.latents
    kl = (0.5 * (latents.mu.astype(np.float64) ** 2 + np.exp(latents.logvar) - 1 - latents.logvar)).mean(axis=0)
    assert list(pane.sliders.order) == list(np.argsort(-kl, kind="stable"))
    top = int(pane.sliders.order[0])
    first_row = pane.sliders.grid.itemAtPosition(0, 0).widget().text()
    assert first_row.strip() == f"1. z{top}"
    assert "mean KL over 36 encoded frames" in pane.sliders.header.text()


def test_a_random_real_frame_shows_beside_its_reconstruction_and_sets_the_sliders(qtbot, pane):
    assert pane.random_real_frame()
    wait_shown(qtbot, pane)
    rollout, step = pane.rollout_spin.value() - 1, pane.step_spin.value()
    frames = load_npz(pane.open_run.rollouts[rollout])[0]["frames"]
    np.testing.assert_array_equal(pane.original_view.frame(), frames[step])
    mu = encode_frames(pane.vae, frames[step][None], np, 1)[0][0]
    np.testing.assert_allclose(pane.z, mu, rtol=1e-5, atol=1e-6)
    assert [s.value() for s in pane.sliders.sliders] == [to_position(v) for v in mu]
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, pane.z))
    assert f"step {step}" in pane.original_view.caption.text

    pane.randomize()
    wait_shown(qtbot, pane)
    assert not np.allclose(pane.z, mu)
    pane.reset_to_encoded()
    wait_shown(qtbot, pane)
    np.testing.assert_array_equal(pane.z, pane.encoded)
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, mu))


def test_a_frame_picked_from_a_rollout(qtbot, pane):
    pane.rollout_spin.setValue(2)
    pane.step_spin.setValue(7)
    pane.show_button.click()
    wait_shown(qtbot, pane)
    frames = load_npz(pane.open_run.rollouts[1])[0]["frames"]
    np.testing.assert_array_equal(pane.original_view.frame(), frames[7])
    assert pane.step_spin.maximum() == 11


def test_a_click_on_the_pca_map_decodes_that_point(qtbot, pane):
    view_box = pane.map.plot.getViewBox()
    (x_lo, x_hi), (y_lo, y_hi) = view_box.viewRange()
    target = QPointF(x_lo + 0.3 * (x_hi - x_lo), y_lo + 0.6 * (y_hi - y_lo))
    widget_point = pane.map.mapFromScene(view_box.mapViewToScene(target))
    with qtbot.waitSignal(pane.map.clicked, timeout=WAIT_MS) as clicked:
        qtbot.mouseClick(pane.map.viewport(), Qt.LeftButton, pos=widget_point)
    u, v = clicked.args
    assert u == pytest.approx(target.x(), abs=0.02 * (x_hi - x_lo))
    wait_shown(qtbot, pane)
    expected = pane.pca.mean + np.array([u, v]) @ pane.pca.components
    np.testing.assert_allclose(pane.z, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, pane.z))
    np.testing.assert_allclose(pane.map.current.getData()[0], [u], rtol=1e-4)


def test_interpolation_slider_and_gif_export(qtbot, pane, tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(Z).astype(np.float32) * 2
    pane.set_z(a, "A")
    pane.set_end("A")
    pane.set_z(-a, "B")
    pane.set_end("B")
    assert pane.can_export_animation() and pane.gif_button.isEnabled()
    pane.t_slider.setValue(250)
    wait_shown(qtbot, pane)
    np.testing.assert_allclose(pane.z, 0.75 * a - 0.25 * a, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pane.decoded_image(), decode(pane.vae, pane.z))

    sweep = pane.sweep_frames(6)
    for k, t in enumerate(np.linspace(0, 1, 6)):
        np.testing.assert_array_equal(sweep[k], decode(pane.vae, (1 - t) * a - t * a))
    pane.frames_spin.setValue(6)
    pane.size_box.setCurrentIndex(pane.size_box.findData(128))
    path = pane.export_animation(tmp_path / "sweep.gif")
    frames = read_animation(path)
    assert len(frames) == 6 and frames[0].shape == (128, 128, 3)
    expected = decode(pane.vae, a).repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(frames[0].astype(int) - expected).mean() < 6       # a GIF palette rounds the colours
    mp4 = read_animation(pane.export_animation(tmp_path / "sweep.mp4"))
    assert len(mp4) == 6


def test_a_new_v_on_disk_is_picked_up_without_a_restart(qtbot, tmp_path):
    made = make_run(tmp_path / "run")
    pane = open_pane(qtbot, made.root, poll_ms=100)
    try:
        old = pane.vae
        assert pane.random_real_frame()
        wait_shown(qtbot, pane)
        new = save_vae(made, seed=99)
        qtbot.waitUntil(lambda: pane.vae is not old, timeout=WAIT_MS)
        wait_shown(qtbot, pane)
        # the sliders still showed the frame's encoding: they follow it into the new V
        mu = encode_frames(new, pane.original[None], np, 1)[0][0]
        np.testing.assert_allclose(pane.z, mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pane.decoded_image(), decode(new, mu))
    finally:
        pane.shutdown()


def test_without_v_the_pane_says_what_is_missing(qtbot, tmp_path):
    pane = LatentPane()
    qtbot.addWidget(pane)
    try:
        assert pane.stack.currentIndex() == 0
        assert "No model open: File > Open run" in pane.message.text()
        pane.open_run.open(make_run(tmp_path / "run", parts=("mdn", "rollouts")).root)
        qtbot.waitUntil(lambda: "V is missing (models/vae.npz)" in pane.message.text(), timeout=WAIT_MS)
        assert "wm-studio train-vae" in pane.message.text()
        assert not pane.random_real_frame()
    finally:
        pane.shutdown()


def test_a_run_without_m_still_opens_the_latent_pane(qtbot, tmp_path):
    folder = make_run(tmp_path / "run", parts=("vae", "rollouts", "latents")).root
    window = MainWindow(pane="latent", persistent=False, run=folder)
    qtbot.addWidget(window)
    window.show()
    latent, dream = window.panes["latent"], window.panes["dream"]
    qtbot.waitUntil(lambda: latent.vae is not None and latent.shown_id > 0, timeout=WAIT_MS)
    assert latent.stack.currentIndex() == 1
    assert latent.random_real_frame()
    wait_shown(qtbot, latent)
    assert "M is missing (models/mdn.npz)" in dream.message.text() and dream.stack.currentIndex() == 0
    assert "M is missing" in latent.header.text()
    window.close()


@pytest.mark.slow
def test_screenshot_of_the_latent_pane(tmp_path, studio_env):
    folder = make_run(tmp_path / "run").root
    shot = tmp_path / "latent.png"
    result = subprocess.run([sys.executable, "-m", "wm_studio", "gui", "--pane", "latent", "--run", str(folder),
                             "--screenshot", str(shot)], capture_output=True, text=True, env=studio_env,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    picture = read_png(shot)
    assert picture.shape == (900, 1400, 3) and picture.std() > 10


@pytest.mark.slow
@pytest.mark.parametrize("pane", ["latent", "dream"])
def test_a_screenshot_with_nothing_to_show_still_ends(tmp_path, studio_env, pane):
    """No run and (in a checkout without one) no bundled model: the pane is ready at once and the studio exits."""
    shot = tmp_path / "empty.png"
    result = subprocess.run([sys.executable, "-m", "wm_studio", "gui", "--pane", pane, "--screenshot", str(shot)],
                            capture_output=True, text=True, env=studio_env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert read_png(shot).shape == (900, 1400, 3)
