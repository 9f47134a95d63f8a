"""The studio's main window and its Evolution pane, offscreen; every check reads back what is drawn."""
import numpy as np
import pytest
from PyQt5.QtCore import QPoint, QPointF, Qt

from PyQt5.QtGui import QImage, QPainter

from wm_studio.core.es.demo import EsSettings, parse_vector
from wm_studio.core.export import read_animation, read_png, write_png
from wm_studio.gui.main_window import MainWindow
from wm_studio.gui.panes.evolution import DEFAULT_SPEED, SPEEDS
from wm_studio.gui.views.curves import set_heading
from wm_studio.gui.views.search_plot import OTHER, tick_texts

WAIT_MS = 20_000


def open_window(qtbot, persistent=True):
    # No run opened: the Evolution lab needs none, and loading the bundled model in the other panes only adds
    # seconds to every test's start and close.
    window = MainWindow(pane="evolution", persistent=persistent, open_at_start=False)
    qtbot.addWidget(window)
    window.show()
    pane = window.panes["evolution"]
    qtbot.waitUntil(lambda: drawn_generation(pane) == 0, timeout=WAIT_MS)
    return window, pane


def press(qtbot, pane, key):
    """A key press as a user makes it: the window active, the focus in the pane (shortcuts need both)."""
    pane.window().activateWindow()
    pane.figure.setFocus()
    qtbot.waitUntil(pane.figure.hasFocus, timeout=WAIT_MS)
    qtbot.keyClick(pane.figure, key)


def drawn_generation(pane):
    """The generation on screen; -1 while nothing is (just after a reset)."""
    return -1 if pane.drawn_snapshot is None else pane.drawn_snapshot.generation


def step_to(qtbot, pane, generation):
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 0, timeout=WAIT_MS)   # the start, after a reset
    while drawn_generation(pane) < generation:
        target = drawn_generation(pane) + 1
        pane.step()
        qtbot.waitUntil(lambda: drawn_generation(pane) == target, timeout=WAIT_MS)


def scatter_points(item):
    x, y = item.getData()
    return np.column_stack([x, y])


def choose(pane, function, dimension=None):
    pane.function_box.setCurrentIndex(pane.function_box.findData(function))
    if dimension is not None:
        pane.dimension_spin.setValue(dimension)


@pytest.fixture
def studio(qtbot):
    return open_window(qtbot)


def test_defaults_are_the_schaffer_demo(studio):
    window, pane = studio
    assert window.width() == 1400 and window.height() == 900
    assert pane.read_controls() == EsSettings()
    assert not pane.dimension_spin.isEnabled()          # Schaffer is 2-D only
    snapshot = pane.drawn_snapshot
    assert np.allclose(scatter_points(pane.figure.search.mean), [[0, 0]])
    assert np.allclose(scatter_points(pane.figure.search.solution), [[10, 10]])
    assert scatter_points(pane.figure.search.population).shape == (0, 2)
    assert snapshot.total == 0   # the pane runs until CMA-ES stops


def test_the_default_speed_can_be_followed_and_fast_is_one_click_away(qtbot, studio):
    _, pane = studio
    # Schaffer converges in about 36 generations: at 3 a second a person sees the ellipse adapt for 12 s
    assert pane.speed == DEFAULT_SPEED == 3 and pane.worker.rate == 3 and pane.speed_label.text() == "3 gen/s"
    pane.fast_button.click()
    assert pane.speed is None and pane.worker.rate is None and pane.speed_label.text() == "fast"
    press(qtbot, pane, Qt.Key_F)
    assert pane.worker.rate == 3 and not pane.fast_button.isChecked()


def test_a_step_draws_the_new_population_mean_ellipses_and_curves(qtbot, studio):
    _, pane = studio
    search, figure = pane.figure.search, pane.figure
    step_to(qtbot, pane, 1)
    first = pane.drawn_snapshot
    assert np.allclose(scatter_points(search.population), first.population)
    step_to(qtbot, pane, 2)
    snapshot = pane.drawn_snapshot
    assert snapshot.population.shape == (64, 2)
    assert np.allclose(scatter_points(search.population), snapshot.population)
    assert not np.allclose(snapshot.population, first.population)
    # green marker = the distribution mean m, which is not the sample mean of the population
    mean = scatter_points(search.mean)[0]
    assert np.allclose(mean, snapshot.mean)
    assert not np.allclose(mean, snapshot.population.mean(axis=0), atol=1e-3)
    # the ellipses are the 1- and 2-sigma contours of sigma^2 C
    inverse = np.linalg.inv(snapshot.cov2)
    for item, radius in ((search.ellipse1, 1.0), (search.ellipse2, 2.0)):
        x, y = item.getData()
        d = np.column_stack([x, y]) - snapshot.mean
        assert np.allclose(np.einsum("ij,jk,ik->i", d, inverse, d), radius ** 2)
    assert np.allclose(scatter_points(search.best), [snapshot.best_so_far])
    # curves grow by one point per generation
    generations, best = figure.fitness.curve_data("best")
    assert list(generations) == [1, 2] and best[-1] == snapshot.generation_best
    assert list(figure.sigma_plot.curve_data("sigma")[1]) == [first.sigma, snapshot.sigma]
    step_to(qtbot, pane, 3)
    assert len(figure.fitness.curve_data("worst")[0]) == 3
    assert "generation <b>3</b>" in figure.title.text and "evaluations 192" in figure.title.text


def test_run_then_pause_stops_generations(qtbot, studio):
    _, pane = studio
    choose(pane, "rosenbrock", 10)
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and pane.drawn_snapshot.dimension == 10,
                    timeout=WAIT_MS)
    pane.speed_slider.setValue(SPEEDS.index(100))   # at full speed the run could end before the pause
    press(qtbot, pane, Qt.Key_Space)
    assert pane.run_button.isChecked() and pane.run_button.text() == "Pause"
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 5, timeout=WAIT_MS)
    press(qtbot, pane, Qt.Key_Space)
    assert not pane.run_button.isChecked()
    qtbot.waitUntil(lambda: not pane.worker.busy, timeout=WAIT_MS)
    qtbot.wait(100)
    paused_at = pane.latest.generation
    qtbot.wait(300)
    assert pane.latest.generation == paused_at and not pane.drawn_snapshot.stop
    press(qtbot, pane, Qt.Key_Right)
    qtbot.waitUntil(lambda: drawn_generation(pane) == paused_at + 1, timeout=WAIT_MS)


def test_reset_starts_again(qtbot, studio):
    _, pane = studio
    step_to(qtbot, pane, 3)
    before = pane.drawn_snapshot
    press(qtbot, pane, Qt.Key_R)
    qtbot.waitUntil(lambda: drawn_generation(pane) == 0, timeout=WAIT_MS)
    assert len(pane.history) == 0 and len(pane.store) == 1
    assert pane.figure.fitness.curve_data("best")[0].size == 0
    step_to(qtbot, pane, 3)
    assert np.allclose(pane.drawn_snapshot.population, before.population)   # same seed, same run


def test_clicking_the_plot_sets_x0(qtbot, studio):
    _, pane = studio
    view_box = pane.figure.search.getViewBox()
    scene_point = view_box.mapViewToScene(QPointF(2.0, 5.0))
    widget_point = pane.figure.mapFromScene(scene_point)
    qtbot.mouseClick(pane.figure.viewport(), Qt.LeftButton, pos=QPoint(widget_point.x(), widget_point.y()))
    x0 = parse_vector(pane.x0_edit.text())
    assert np.allclose(x0, [2.0, 5.0], atol=0.15)
    # nothing had run yet, so the run starts over from there
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and np.allclose(pane.drawn_snapshot.mean, x0),
                    timeout=WAIT_MS)
    assert np.allclose(scatter_points(pane.figure.search.start), [x0])


def test_a_click_mid_run_starts_again_from_there_at_once(qtbot, studio):
    _, pane = studio
    step_to(qtbot, pane, 2)
    pane.set_x0_at(-3.0, 4.0)
    assert parse_vector(pane.x0_edit.text()) == (-3.0, 4.0)
    qtbot.waitUntil(lambda: drawn_generation(pane) == 0 and np.allclose(pane.drawn_snapshot.mean, [-3, 4]),
                    timeout=WAIT_MS)
    assert np.allclose(scatter_points(pane.figure.search.start), [[-3, 4]])


def test_settings_persist_between_launches(qtbot):
    window, pane = open_window(qtbot)
    choose(pane, "sphere", 5)
    pane.popsize_spin.setValue(20)
    pane.mu_edit.setText("5")
    pane.mu_edit.editingFinished.emit()
    pane.sigma_spin.setValue(1.5)
    pane.seed_spin.setValue(7)
    pane.x0_edit.setText("1, 2, 3, 4, 5")
    pane.x0_edit.editingFinished.emit()
    pane.speed_slider.setValue(SPEEDS.index(50))
    pane.fps_spin.setValue(24)
    pane.strategy_box.setCurrentIndex(pane.strategy_box.findData("separable"))
    pane.compare_group.setChecked(True)
    pane.other_strategy_box.setCurrentIndex(pane.other_strategy_box.findData("full"))
    pane.other_seed_spin.setValue(9)
    window.close()
    assert not pane.worker.is_alive()

    _, again = open_window(qtbot)
    assert again.read_controls() == EsSettings(function="sphere", dimension=5, popsize=20, mu=5, sigma0=1.5,
                                               seed=7, x0=(1.0, 2.0, 3.0, 4.0, 5.0), strategy="separable")
    assert again.speed == 50 and again.fps_spin.value() == 24
    other = again.read_other(again.read_controls())
    assert again.compare_group.isChecked() and (other.strategy, other.seed) == ("full", 9)
    qtbot.waitUntil(lambda: again.drawn_snapshot.dimension == 5, timeout=WAIT_MS)
    # and a 2-D-only problem keeps the chosen dimension for later
    choose(again, "schaffer")
    assert again.dimension_spin.value() == 2 and not again.dimension_spin.isEnabled()
    choose(again, "sphere")
    assert again.dimension_spin.value() == 5


def test_many_dimensions_show_a_projected_population(qtbot, studio):
    _, pane = studio
    choose(pane, "rosenbrock", 10)
    pane.sigma_spin.setValue(0.5)
    pane.popsize_spin.setValue(0)        # "default"
    pane.mu_edit.setText("")             # lambda / 2
    pane.mu_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and pane.drawn_snapshot.dimension == 10,
                    timeout=WAIT_MS)
    step_to(qtbot, pane, 2)
    snapshot = pane.drawn_snapshot
    assert snapshot.population.shape == (10, 2) and snapshot.parents == 5   # lambda = 4 + 3 ln 10 = 10
    # drawn relative to m, so that the ticks stay short however far from 0 the distribution has gone
    assert np.allclose(scatter_points(pane.figure.search.population), snapshot.population - snapshot.mean)
    assert np.allclose(scatter_points(pane.figure.search.mean), [[0, 0]])
    assert np.allclose(scatter_points(pane.figure.search.solution), [np.ones(10) @ snapshot.basis - snapshot.mean])
    assert "leading axes" in pane.figure.search.getAxis("bottom").labelText
    # a click picks the point of the plotted plane, in all 10 dimensions: here m itself
    pane.set_x0_at(0.0, 0.0)
    assert np.allclose(parse_vector(pane.x0_edit.text()), snapshot.origin, atol=1e-3)


def test_bad_settings_are_shown_not_fatal(qtbot, studio):
    window, pane = studio
    pane.mu_edit.setText("2000")         # more parents than lambda = 64
    pane.mu_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: "parents" in window.log_dock.text(), timeout=WAIT_MS)
    assert "parents" in window.statusBar().currentMessage()
    pane.mu_edit.setText("0.25")
    pane.mu_edit.editingFinished.emit()
    pane.reset()
    qtbot.waitUntil(lambda: drawn_generation(pane) == 0, timeout=WAIT_MS)


def test_an_exception_in_the_worker_is_shown_not_fatal(qtbot, studio, monkeypatch):
    from wm_studio.gui.panes import evolution
    window, pane = studio
    real_run = evolution.run_frames

    def breaks_after_one(settings, other=None):
        stage = real_run(settings, other)
        yield next(stage)
        yield next(stage)
        raise RuntimeError("the objective exploded")

    monkeypatch.setattr(evolution, "run_frames", breaks_after_one)
    pane.reset()
    pane.worker.step(3)
    qtbot.waitUntil(lambda: "the objective exploded" in window.log_dock.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "the objective exploded" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "Traceback" in window.log_dock.text()
    assert pane.worker.is_alive() and window.isVisible()
    monkeypatch.undo()
    pane.reset()
    step_to(qtbot, pane, 2)


def test_closing_mid_run_shuts_down_cleanly(qtbot, qtlog):
    window, pane = open_window(qtbot)
    choose(pane, "rosenbrock", 100)      # thousands of generations: still running when the window closes
    pane.fast_button.click()
    pane.run_button.click()
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 3, timeout=WAIT_MS)
    assert pane.worker.running
    window.close()
    assert not pane.worker.is_alive()
    assert not [r for r in qtlog.records if "QThread" in r.message or "destroyed" in r.message.lower()]


def test_export_gif_mp4_png_of_a_replayed_range(qtbot, studio, tmp_path):
    _, pane = studio
    step_to(qtbot, pane, 5)
    assert [frame.index for frame in pane.store.between(0, 5)] == [0, 1, 2, 3, 4, 5]
    pane.size_box.setCurrentText("640 × 360")
    pane.fps_spin.setValue(5)
    pane.export_from.setValue(2)
    pane.export_to.setValue(4)
    seen = []
    path = pane.export_animation(tmp_path / "run.gif", progress=lambda done, total: seen.append(done))
    frames = read_animation(path)
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3)
    assert all(np.abs(a.astype(int) - b).mean() > 0.5 for a, b in zip(frames, frames[1:]))
    assert seen == [1, 2, 3] and pane.export_progress.maximum() == 3 and pane.export_progress.isHidden()
    # the same generations rendered on their own, as es-animate would draw them, give the same pictures
    from wm_studio.gui.render import render_frames
    alone = list(render_frames(pane.store.between(2, 4), pane._problem, (640, 360), pane._x0,
                               histories=(pane.history, pane.other_history)))
    assert all(np.abs(a.astype(int) - b).mean() < 3 for a, b in zip(frames, alone))
    pane.export_to.setValue(-1)                           # "end": up to the newest generation
    mp4 = read_animation(pane.export_animation(tmp_path / "run.mp4"))
    assert len(mp4) == 4 and mp4[0].shape == (360, 640, 3)
    frame = pane.view_frame()
    assert frame.shape == (pane.figure.height(), pane.figure.width(), 3)
    assert np.array_equal(read_png(write_png(tmp_path / "view.png", frame)), frame)


def test_help_lists_the_shortcuts(studio):
    window, _ = studio
    text = window.shortcuts_text()
    for key in ("Space", "Right", "R", "Ctrl+S", "Ctrl+E"):
        assert key in text


def test_an_exception_escaping_a_slot_is_logged_and_shown(qtbot, studio, monkeypatch):
    import sys
    from wm_studio.gui.app import install_excepthook
    window, _ = studio
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)   # restored after the test
    install_excepthook()
    try:
        raise ValueError("a slot went wrong")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: "a slot went wrong" in window.log_dock.text(), timeout=WAIT_MS)
    assert "a slot went wrong" in window.statusBar().currentMessage()
    assert window.isVisible()


def test_menus_offer_export_and_panes(studio):
    window, _ = studio
    titles = {action.text(): action for action in window.menuBar().actions()}
    assert set(titles) == {"&File", "&View", "&Help"}
    file_items = [a.text() for a in titles["&File"].menu().actions() if a.text()]
    assert any("PNG" in t for t in file_items) and any("GIF" in t for t in file_items)
    assert any("MP4" in t for t in file_items) and any("Quit" in t for t in file_items)
    view_items = [a.text() for a in titles["&View"].menu().actions()]
    assert "Evolution" in view_items and "Log" in view_items


def test_about_lists_the_versions(studio, monkeypatch):
    from wm_studio.gui import main_window
    window, _ = studio
    shown = []
    monkeypatch.setattr(main_window.QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window.show_about()
    assert len(shown) == 1
    for name in ("wm_studio", "Qt", "pyqtgraph", "numpy", "Chainer"):
        assert f"<b>{name}</b>" in shown[0]


def test_export_dialogs(qtbot, studio, tmp_path, monkeypatch):
    from wm_studio.gui.panes import base
    window, pane = studio
    chosen = []
    monkeypatch.setattr(base.QFileDialog, "getSaveFileName",
                        lambda parent, caption, start, filter_: (chosen.pop(0), filter_))
    chosen.append(str(tmp_path / "view"))               # the suffix is added when the user leaves it out
    assert pane.save_png_dialog() == tmp_path / "view.png"
    assert read_png(tmp_path / "view.png").shape[:2] == (pane.figure.height(), pane.figure.width())
    step_to(qtbot, pane, 2)
    chosen.append(str(tmp_path / "run.gif"))
    assert pane.export_animation_dialog(".gif") == tmp_path / "run.gif"
    assert len(read_animation(tmp_path / "run.gif")) == 3
    # a range with no generation in it: the log says so, no file is written
    pane.export_from.setValue(2)
    pane.export_to.setValue(1)
    chosen.append(str(tmp_path / "none.mp4"))
    assert pane.export_animation_dialog(".mp4") is None
    qtbot.waitUntil(lambda: "no generation between 2 and 1" in window.log_dock.text(), timeout=WAIT_MS)
    assert not (tmp_path / "none.mp4").exists()


def test_a_changed_setting_takes_effect_at_once_and_a_running_run_runs_on(qtbot, studio):
    """Issue 12 item 3: the plot kept running Schaffer under a "Rosenbrock 10-D" selector until Reset."""
    window, pane = studio
    step_to(qtbot, pane, 2)
    choose(pane, "rosenbrock", 10)                       # x0 "0" now means 10 zeros
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and pane.drawn_snapshot.dimension == 10,
                    timeout=WAIT_MS)
    assert pane.drawn_snapshot.problem == "rosenbrock" and pane.drawn_snapshot.generation == 0
    assert np.allclose(scatter_points(pane.figure.search.start), [np.zeros(10) @ pane.drawn_snapshot.basis])
    assert "Rosenbrock</b> 10-D" in pane.figure.title.text
    pane.dimension_spin.setValue(100)                    # thousands of generations: still running below
    pane.fast_button.click()
    pane.run_button.click()
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 3, timeout=WAIT_MS)
    pane.sigma_spin.setValue(0.25)                       # while running: a new run with it, still running
    assert pane.run_settings.sigma0 == 0.25 and pane.worker.running and pane.run_button.text() == "Pause"
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 2 and pane.store.first.a.sigma == 0.25, timeout=WAIT_MS)
    assert pane.drawn_snapshot.dimension == 100
    pane.run_button.click()


def test_after_reset_the_curves_start_from_fresh_ranges(qtbot, studio):
    """Issue 12 item 4: after Reset the charts kept the old run's axis ranges."""
    _, pane = studio
    pane.fast_button.click()
    pane.worker.step(30)                                 # of the 36 the demo takes
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 30, timeout=WAIT_MS)
    fitness = pane.figure.fitness
    qtbot.waitUntil(lambda: fitness.getViewBox().viewRange()[1][0] < -20, timeout=WAIT_MS)  # 1e-20 and below
    old = {plot: plot.getViewBox().viewRange() for plot in pane.figure.curve_plots()}
    assert old[fitness][0][1] > 29
    pane.reset()
    qtbot.waitUntil(lambda: drawn_generation(pane) == 0, timeout=WAIT_MS)
    for plot in pane.figure.curve_plots():
        (x_lo, x_hi), (y_lo, y_hi) = plot.getViewBox().viewRange()
        assert x_lo < 0.5 and 9.5 < x_hi < 11 and (y_lo, y_hi) == (0, 1) != tuple(old[plot][1])
    step_to(qtbot, pane, 2)
    generations, best = fitness.curve_data("best")
    assert list(generations) == [1, 2]
    qtbot.waitUntil(lambda: fitness.getViewBox().viewRange()[1][0] > -10, timeout=WAIT_MS)   # the new run's
    (x_lo, x_hi), (y_lo, y_hi) = fitness.getViewBox().viewRange()
    assert 9.5 < x_hi < 11 and y_lo <= np.log10(best.min()) and np.log10(best.max()) <= y_hi


def drawn_tick_texts(axis):
    """The tick labels an axis draws now (pyqtgraph leaves out those that do not fit)."""
    image = QImage(400, 400, QImage.Format_RGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts]


def test_every_plot_has_short_readable_ticks(qtbot, studio):
    """Issue 12 item 5: Rosenbrock 10-D showed x ticks like "-1.701514" and a y axis without tick labels."""
    assert tick_texts([-1.7016, -1.7015, -1.7014], 1e-4) == ["-1.7016", "-1.7015", "-1.7014"]
    assert tick_texts([0.0, 0.25, 0.5], 0.25) == ["0", "0.25", "0.50"]
    assert tick_texts([-2e-6, 0.0, 2e-6], 2e-6) == ["-2e-06", "0", "2e-06"]
    assert tick_texts([1e5, 2e5], 1e5) == ["1e+05", "2e+05"]
    _, pane = studio
    choose(pane, "rosenbrock", 10)
    pane.popsize_spin.setValue(0)
    pane.mu_edit.setText("")
    pane.mu_edit.editingFinished.emit()
    pane.sigma_spin.setValue(0.5)
    pane.fast_button.click()
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and pane.drawn_snapshot.sigma == 0.5, timeout=WAIT_MS)
    pane.worker.step(2000)           # to its end: sigma about 1e-6 around m = (-2.3, -2.0), where the ticks
    qtbot.waitUntil(lambda: pane.drawn_frame is not None and pane.drawn_frame.stop, timeout=60_000)  # read
    assert pane.drawn_snapshot.sigma < 1e-5 and np.abs(pane.drawn_snapshot.mean).max() > 1   # -2.325168 and none
    qtbot.waitUntil(lambda: len(drawn_tick_texts(pane.figure.search.getAxis("left"))) >= 2, timeout=WAIT_MS)
    search = pane.figure.search
    for plot, sides in ((search, ("left", "bottom")),) + tuple((p, ("left", "bottom"))
                                                               for p in pane.figure.curve_plots()):
        for side in sides:
            texts = drawn_tick_texts(plot.getAxis(side))
            assert len(texts) >= 2, (side, texts)
            assert all(len(text) <= 6 for text in texts), (side, texts)


def test_the_legend_is_out_of_the_data(qtbot, studio):
    """Issue 12 item 6: the legend covered the top-left of the contour plot."""
    _, pane = studio
    step_to(qtbot, pane, 1)
    legend = pane.figure.search.legend
    data = pane.figure.search.getViewBox().sceneBoundingRect()
    assert legend.isVisible() and legend.sceneBoundingRect().height() > 10
    assert not legend.sceneBoundingRect().intersects(data)
    texts = [label.text for _, label in legend.items]
    assert "population" in texts and "optimum" in texts


def test_replay_any_generation_by_keys_and_slider_and_run_on_from_the_live_end(qtbot, studio):
    _, pane = studio
    step_to(qtbot, pane, 6)
    frames = {frame.index: frame for frame in pane.store.between(0, 6)}
    press(qtbot, pane, Qt.Key_Left)
    press(qtbot, pane, Qt.Key_Left)
    qtbot.waitUntil(lambda: pane.drawn_frame is frames[4], timeout=WAIT_MS)
    search, fitness = pane.figure.search, pane.figure.fitness
    assert np.allclose(scatter_points(search.population), frames[4].a.population)
    assert np.allclose(scatter_points(search.mean), [frames[4].a.mean])
    assert list(fitness.curve_data("best")[0]) == [1, 2, 3, 4] and fitness.cursor() == 4
    assert pane.replay_slider.value() == 4 and "4 of 6 (replay)" in pane.replay_label.text()
    assert pane.latest.index == 6                         # replaying computes nothing
    press(qtbot, pane, Qt.Key_Home)
    qtbot.waitUntil(lambda: pane.drawn_frame is frames[0], timeout=WAIT_MS)
    assert scatter_points(search.population).shape == (0, 2) and fitness.curve_data("best")[0].size == 0
    pane.replay_slider.setValue(3)
    qtbot.waitUntil(lambda: pane.drawn_frame is frames[3], timeout=WAIT_MS)
    press(qtbot, pane, Qt.Key_Right)
    qtbot.waitUntil(lambda: pane.drawn_frame is frames[4], timeout=WAIT_MS)
    assert pane.latest.index == 6
    press(qtbot, pane, Qt.Key_End)
    qtbot.waitUntil(lambda: pane.drawn_frame is frames[6] and pane.replay is None, timeout=WAIT_MS)
    assert fitness.cursor() is None
    press(qtbot, pane, Qt.Key_Right)                      # at the live end: one generation more
    qtbot.waitUntil(lambda: drawn_generation(pane) == 7, timeout=WAIT_MS)
    pane.replay_slider.setValue(2)
    pane.speed_slider.setValue(SPEEDS.index(100))
    press(qtbot, pane, Qt.Key_Space)                      # Run goes on from the live end
    qtbot.waitUntil(lambda: drawn_generation(pane) >= 9, timeout=WAIT_MS)
    assert pane.replay is None and pane.replay_slider.value() == pane.replay_slider.maximum()
    press(qtbot, pane, Qt.Key_Space)


def test_compare_two_settings_on_one_plot_with_curves_overlaid(qtbot, studio):
    window, pane = studio
    choose(pane, "rosenbrock", 6)
    pane.popsize_spin.setValue(12)
    pane.sigma_spin.setValue(0.5)
    pane.compare_group.setChecked(True)
    pane.other_strategy_box.setCurrentIndex(pane.other_strategy_box.findData("separable"))
    pane.other_popsize_spin.setValue(20)
    pane.other_sigma_spin.setValue(0.5)
    qtbot.waitUntil(lambda: pane.drawn_frame is not None and pane.drawn_frame.b is not None, timeout=WAIT_MS)
    step_to(qtbot, pane, 4)
    frame = pane.drawn_frame
    a, b = frame.a, frame.b
    assert (a.strategy, a.popsize, b.strategy, b.popsize) == ("full", 12, "separable", 20)
    assert np.array_equal(b.basis, a.basis)               # B drawn on A's plane
    search, figure = pane.figure.search, pane.figure
    offset = a.mean
    assert np.allclose(scatter_points(search.population), a.population - offset)
    assert np.allclose(scatter_points(search.other.population), b.population - offset)
    assert np.allclose(scatter_points(search.other.mean), [b.mean - offset])
    assert search.other.population.isVisible()
    assert search.other.population.opts["brush"].color().getRgb()[:3] == OTHER
    assert search.population.opts["brush"].color().getRgb()[:3] != OTHER
    for key in ("best", "median", "worst", "best_so_far"):
        assert list(figure.fitness.curve_data("b_" + key)[0]) == [1, 2, 3, 4]
    assert list(figure.sigma_plot.curve_data("b_sigma")[1]) == list(pane.other_history.arrays()["sigma"])
    assert list(figure.sigma_plot.curve_data("sigma")[1]) != list(figure.sigma_plot.curve_data("b_sigma")[1])
    assert "<b>B</b>: sep-CMA-ES" in figure.title.text
    assert any("B (sep-CMA-ES)" in label.text for _, label in search.legend.items)
    pane.compare_group.setChecked(False)                  # back to one run: B's items and curves go
    qtbot.waitUntil(lambda: pane.drawn_frame is not None and pane.drawn_frame.b is None, timeout=WAIT_MS)
    assert not search.other.population.isVisible() and figure.fitness.curve_data("b_best")[0].size == 0


def test_a_restart_is_an_event_on_the_curves_with_its_new_lambda(qtbot, studio):
    _, pane = studio
    choose(pane, "rastrigin", 2)
    pane.strategy_box.setCurrentIndex(pane.strategy_box.findData("ipop"))
    pane.popsize_spin.setValue(6)
    pane.sigma_spin.setValue(0.2)
    pane.x0_edit.setText("2.5, 2.5")                     # on a ridge between local optima
    pane.x0_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: pane.run_settings.strategy == "ipop" and drawn_generation(pane) == 0, timeout=WAIT_MS)
    pane.fast_button.click()
    pane.run_button.click()
    qtbot.waitUntil(lambda: len(pane.history.restarts) >= 1, timeout=WAIT_MS)
    pane.run_button.click()
    qtbot.waitUntil(lambda: pane.worker.idle, timeout=WAIT_MS)
    generation, popsize = pane.history.restarts[0]
    assert popsize == 12
    first = pane.store.at(generation).a
    before = pane.store.at(generation - 1).a
    assert first.restarted and first.popsize == 12 and before.popsize == 6 and first.restarts == 1
    # the population jumps: the new run starts from x0 with sigma0
    assert np.allclose(first.mean, [2.5, 2.5]) and np.linalg.norm(before.mean - [2.5, 2.5]) > 0.3
    assert first.sigma == 0.2 and before.sigma < 0.01
    qtbot.waitUntil(lambda: pane.drawn_frame is pane.latest, timeout=WAIT_MS)
    assert (generation, "λ=12") in pane.figure.fitness.markers("restarts")
    assert (generation, None) in pane.figure.sigma_plot.markers("restarts")
    assert "restarts" in pane.figure.title.text


def test_the_curves_stay_inside_the_figure_whatever_the_heading(qtbot, studio):
    _, pane = studio
    figure = pane.figure
    step_to(qtbot, pane, 2)
    figure.setFixedWidth(900)
    qtbot.waitUntil(lambda: figure.range.width() == 900, timeout=WAIT_MS)
    long_heading = "a heading far wider than the figure " * 10
    set_heading(figure, figure.title, long_heading)
    step_to(qtbot, pane, 3)                               # the readout replaces it
    for plot in (figure.fitness, figure.sigma_plot, figure.ratio_plot):
        assert plot.geometry().right() <= figure.range.right() + 0.5
    assert figure.ci.geometry().width() == figure.range.width()


def test_the_schaffer_optimum_moves_with_its_field(qtbot, studio):
    window, pane = studio
    pane.shift_edit.setText("-3, 4.5")
    pane.shift_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: pane.drawn_snapshot is not None and np.allclose(pane.drawn_snapshot.solution,
                                                                            [-3, 4.5]), timeout=WAIT_MS)
    assert np.allclose(scatter_points(pane.figure.search.solution), [[-3, 4.5]])
    (x_lo, x_hi), (y_lo, y_hi) = pane.figure.search.getViewBox().viewRange()
    assert x_lo <= -11 and x_hi >= 8 and y_lo <= -8 and y_hi >= 12.5
    pane.shift_edit.setText("here")
    pane.shift_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: "the optimum must be numbers" in window.log_dock.text(), timeout=WAIT_MS)
    choose(pane, "sphere", 3)
    assert not pane.shift_edit.isEnabled()
