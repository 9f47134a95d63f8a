"""The Evolution pane: a CMA-ES lab on test functions (by default the shifted Schaffer demo of
docs/architecture.md, "CMA-ES").

CMA-ES runs on the pane's GeneratorWorker thread (wm_studio.core.es.demo.run_frames): one run, or two settings in
lockstep (Compare), on the same problem. Every frame goes into a ReplayStore and extends the curves; a ~30 Hz timer
draws the newest frame, or the generation the replay slider (or Left / Right / Home / End) points at: any
generation of the run, shown exactly as it was. Run continues from the live end. Any replayed range exports to a
GIF or MP4. A change to a setting starts the run again at once with it, so the plot always shows what the
controls say.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                             QPushButton, QSizePolicy, QSlider, QSpinBox, QVBoxLayout, QWidget)

from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.es.demo import (STRATEGIES, EsFrame, EsHistory, EsSettings, EsSnapshot, ReplayStore,
                                    format_vector, parse_mu, parse_vector, run_frames)
from wm_studio.core.es.problems import PROBLEMS, SCHAFFER_SHIFT, allows_any_dimension
from wm_studio.core.es.projection import lift
from wm_studio.core.export import Progress, write_animation
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.render import render_frames
from wm_studio.gui.settings import read
from wm_studio.gui.views.es_controls import StrategyRows
from wm_studio.gui.views.es_figure import EsFigure
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

SPEEDS = (1, 2, 3, 5, 10, 20, 50, 100, 200)   # generations per second; "Fast" runs as fast as possible
# The Schaffer demo converges in about 36 generations: 12 s at 3 a second, slow enough to watch the ellipse adapt.
DEFAULT_SPEED = 3
DRAW_INTERVAL_MS = 33                              # about 30 Hz
DEFAULT_SCREENSHOT_GENERATIONS = 30
EXPORT_SIZES = {"960 × 540": (960, 540), "1280 × 720": (1280, 720), "1920 × 1080": (1920, 1080),
                "640 × 360": (640, 360), "800 × 800": (800, 800)}
DEFAULTS = EsSettings()
OTHER_DEFAULTS = {"strategy": "full", "popsize": 64, "sigma0": 3.0, "seed": 2}   # run B: another seed


class EvolutionPane(Pane):
    name = "evolution"
    title = "Evolution"
    drawn = pyqtSignal(object)   # the frame just drawn

    def __init__(self, parent=None):
        super().__init__(parent)
        self.figure = EsFigure(self)
        self.figure.search.clicked.connect(self.set_x0_at)
        self.worker = GeneratorWorker("evolution", self, rate=DEFAULT_SPEED)
        self.worker.snapshots.connect(self.on_frames)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.worker.running_changed.connect(self._show_running)
        self.store = ReplayStore()
        self.history, self.other_history = EsHistory(), EsHistory()
        self.latest: EsFrame | None = None           # newest frame received
        self.drawn_frame: EsFrame | None = None
        self._drawn_key = None
        self.replay: int | None = None               # the generation replayed; None: the live end
        self.run_settings: EsSettings | None = None  # what the current run was started with
        self.other_settings: EsSettings | None = None
        self._problem = None
        self._x0 = None                              # the start point the controls hold now, (n,)
        self._view_target: int | None = None         # prepare_view(): generation to reach before view_ready
        self._dimension_memory = 10                  # n to restore when leaving a 2-D-only problem

        controls = self._scrolling(self._build_controls())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls)
        column = QVBoxLayout()
        column.addWidget(self.figure, 1)
        column.addLayout(self._build_replay_row())
        layout.addLayout(column, 1)
        self._add_shortcuts()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.draw)
        self._timer.start(DRAW_INTERVAL_MS)
        self._apply_settings(DEFAULTS, DEFAULT_SPEED)

    # --- building ---------------------------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel, column = self._panel()

        run = QGroupBox("Run")
        box = QVBoxLayout(run)
        self.run_button, self.step_button, self.reset_button, buttons = self._transport_buttons(
            ("Run", "Run / pause from the live end (Space)"), "One generation more (Right arrow at the live end)",
            ("Reset", "Start again (R)"))
        box.addLayout(buttons)
        speed_row = QHBoxLayout()
        self.speed_slider = QSlider(Qt.Horizontal)
        self.speed_slider.setRange(0, len(SPEEDS) - 1)
        self.speed_slider.setPageStep(1)
        self.speed_slider.setToolTip("Generations per second")
        self.speed_label = QLabel()
        self.speed_label.setMinimumWidth(self.speed_label.fontMetrics().horizontalAdvance("200 gen/s") + 4)
        self.fast_button = QPushButton("Fast")
        self.fast_button.setCheckable(True)
        self.fast_button.setToolTip("As fast as CMA-ES goes (F); again for the speed on the slider")
        speed_row.addWidget(QLabel("Speed"))
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(self.speed_label)
        speed_row.addWidget(self.fast_button)
        box.addLayout(speed_row)
        column.addWidget(run)

        problem = QGroupBox("Problem")
        form = QFormLayout(problem)
        self.function_box = QComboBox()
        for name in PROBLEMS:
            self.function_box.addItem(name.capitalize(), name)
        self.function_box.setToolTip("The function CMA-ES minimises (0 at the optimum)")
        self.dimension_spin = QSpinBox()
        self.dimension_spin.setRange(2, 200)
        self.dimension_spin.setToolTip("Dimension n of the search space. For n > 2 the plot shows the population "
                                       "projected on the plane of C's two leading principal axes.")
        self.x0_edit = QLineEdit()
        self.x0_edit.setToolTip("The start point m0: one number for every coordinate, or n numbers. "
                                "Click the plot to set it.")
        self.x0_edit.setPlaceholderText("e.g. 0 or 1, 2 (or click the plot)")
        self.shift_edit = QLineEdit()
        self.shift_edit.setToolTip("Where the Schaffer problem has its optimum (the classic demo: 10, 10)")
        form.addRow("Function", self.function_box)
        form.addRow("Dimension n", self.dimension_spin)
        form.addRow("x0", self.x0_edit)
        form.addRow("Optimum", self.shift_edit)
        column.addWidget(problem)

        strategy = QGroupBox("Strategy")
        form = QFormLayout(strategy)
        self.strategy_rows = StrategyRows(form, with_mu=True)
        self.strategy_box, self.popsize_spin, self.mu_edit, self.sigma_spin, self.seed_spin = self.strategy_rows.widgets
        column.addWidget(strategy)

        self.compare_group = QGroupBox("Compare with run B")
        self.compare_group.setCheckable(True)
        self.compare_group.setToolTip("Run a second setting in lockstep on the same problem, drawn in orange on the "
                                      "same plot (C)")
        form = QFormLayout(self.compare_group)
        self.other_rows = StrategyRows(form, with_mu=False)
        self.other_strategy_box, self.other_popsize_spin, self.other_sigma_spin, self.other_seed_spin = \
            self.other_rows.widgets
        column.addWidget(self.compare_group)

        export = QGroupBox("Export")
        form = QFormLayout(export)
        export_buttons = self._build_export_controls("the chosen generations", EXPORT_SIZES, fps=10,
                                                     view="the current view")
        self.export_from = QSpinBox()
        self.export_from.setToolTip("First generation to export")
        self.export_to = QSpinBox()
        self.export_to.setMinimum(-1)
        self.export_to.setSpecialValueText("end")
        self.export_to.setValue(-1)
        self.export_to.setToolTip("Last generation to export ('end': the newest)")
        range_row = QHBoxLayout()
        range_row.addWidget(self.export_from)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.export_to)
        form.addRow("Generations", range_row)
        frames_row = QHBoxLayout()
        frames_row.addWidget(self.fps_spin)
        frames_row.addWidget(self.size_box, 1)
        form.addRow("Frames", frames_row)
        form.addRow(export_buttons)
        self.export_progress = QProgressBar()
        self.export_progress.setFormat("encoding %v / %m")
        self.export_progress.hide()
        form.addRow(self.export_progress)
        column.addWidget(export)
        column.addStretch(1)

        for spin in (self.dimension_spin, self.popsize_spin, self.sigma_spin, self.seed_spin,
                     self.other_popsize_spin, self.other_sigma_spin, self.other_seed_spin):
            spin.setKeyboardTracking(False)  # react on Enter / arrows, not on every digit typed
            spin.valueChanged.connect(self._controls_changed)
        for box in (self.strategy_box, self.other_strategy_box):
            box.currentIndexChanged.connect(self._controls_changed)
        self.compare_group.toggled.connect(self._controls_changed)
        self.function_box.currentIndexChanged.connect(self._function_changed)
        for edit in (self.x0_edit, self.mu_edit, self.shift_edit):
            edit.editingFinished.connect(self._controls_changed)
        self.run_button.toggled.connect(self._run_toggled)
        self.step_button.clicked.connect(self.forward)
        self.reset_button.clicked.connect(self.reset)
        self.speed_slider.valueChanged.connect(self._speed_changed)
        self.fast_button.toggled.connect(lambda _: self._speed_changed(self.speed_slider.value()))
        panel.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        return panel

    def _build_replay_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.replay_slider = QSlider(Qt.Horizontal)
        self.replay_slider.setRange(0, 0)
        self.replay_slider.setPageStep(10)
        self.replay_slider.setToolTip("Replay any generation of the run (Left / Right, Home / End); at the right "
                                      "end the plot follows the run")
        self.replay_label = QLabel()
        self.replay_label.setMinimumWidth(self.replay_label.fontMetrics().horizontalAdvance(
            "generation 00000 of 00000 (replay)") + 4)
        row.addWidget(QLabel("Replay"))
        row.addWidget(self.replay_slider, 1)
        row.addWidget(self.replay_label)
        self.replay_slider.valueChanged.connect(self._slider_moved)
        return row

    def _add_shortcuts(self):
        self._bind_keys(((Qt.Key_Space, self.toggle_run), (Qt.Key_Right, self.forward), (Qt.Key_Left, self.back),
                         (Qt.Key_Home, self.to_first), (Qt.Key_End, self.to_live), (Qt.Key_R, self.reset),
                         (Qt.Key_F, self.fast_button.toggle),
                         (Qt.Key_C, lambda: self.compare_group.setChecked(not self.compare_group.isChecked()))))

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("Space", "run / pause the evolution (from the live end)"),
                ("Right", "replay the next generation; at the live end, one generation more"),
                ("Left", "replay the generation before"), ("Home / End", "the first generation / the live end"),
                ("R", "reset"), ("F", "fast / the slider's speed"), ("C", "compare with run B"),
                ("Click on the plot", "set x0 there")]

    # --- controls ---------------------------------------------------------------------------------------------
    def read_controls(self) -> EsSettings:
        """The controls as EsSettings of run A; ConfigError names what is wrong."""
        function = self.function_box.currentData()
        shift = parse_vector(self.shift_edit.text(), "the optimum") if function == "schaffer" else SCHAFFER_SHIFT
        settings = EsSettings(
            function=function,
            dimension=self.dimension_spin.value() if allows_any_dimension(function) else 2,
            x0=parse_vector(self.x0_edit.text()),
            shift=tuple(shift),
            **self.strategy_rows.values(),
        )
        settings.problem()
        settings.engine()
        return settings

    def read_other(self, settings: EsSettings) -> EsSettings | None:
        """Run B's settings (run A's but for variant, λ, σ0 and seed), or None when not comparing."""
        if not self.compare_group.isChecked():
            return None
        other = replace(settings, **self.other_rows.values())
        try:
            other.engine()
        except ConfigError as exc:
            raise ConfigError(f"run B: {exc}") from None
        return other

    def _apply_settings(self, settings: EsSettings, speed, fps=10, size_label=None, other=None, compare=False,
                        fast=False):
        """Put values into the controls (without reacting to each) and reset."""
        other = {**OTHER_DEFAULTS, **(other or {})}
        widgets = (self.function_box, self.dimension_spin, self.x0_edit, self.shift_edit, self.speed_slider,
                   self.fast_button, self.compare_group, *self.strategy_rows.widgets, *self.other_rows.widgets)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            index = self.function_box.findData(settings.function)
            self.function_box.setCurrentIndex(max(0, index))
            self._update_problem_controls()
            self.dimension_spin.setValue(settings.dimension)
            self.strategy_rows.show(settings.strategy, settings.popsize, settings.sigma0, settings.seed, settings.mu)
            self.x0_edit.setText(format_vector(settings.x0))
            self.shift_edit.setText(format_vector(settings.shift))
            self.speed_slider.setValue(SPEEDS.index(speed) if speed in SPEEDS else SPEEDS.index(DEFAULT_SPEED))
            self.fast_button.setChecked(fast)
            self.compare_group.setChecked(compare)
            self.other_rows.show(other["strategy"], other["popsize"], other["sigma0"], other["seed"])
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.fps_spin.setValue(fps)
        if size_label in EXPORT_SIZES:
            self.size_box.setCurrentText(size_label)
        self._speed_changed(self.speed_slider.value())
        self.reset()

    def _update_problem_controls(self):
        """n only for problems that have it; the optimum only for Schaffer's."""
        function = self.function_box.currentData()
        self.shift_edit.setEnabled(function == "schaffer")
        free = allows_any_dimension(function)
        if free == self.dimension_spin.isEnabled():
            return
        self.dimension_spin.blockSignals(True)
        if free:
            self.dimension_spin.setValue(self._dimension_memory)
        else:
            if self.dimension_spin.value() > 2:
                self._dimension_memory = self.dimension_spin.value()
            self.dimension_spin.setValue(2)
        self.dimension_spin.blockSignals(False)
        self.dimension_spin.setEnabled(free)
        self.dimension_spin.setToolTip("Dimension n of the search space" if free else
                                       f"{self.function_box.currentText()} is 2-dimensional only")

    def _function_changed(self):
        self._update_problem_controls()
        self._controls_changed()

    def _controls_changed(self):
        """A setting changed: start the run again with it at once (running on if it was running), so the plot
        never shows another run than the controls describe. Bad input is said in the status bar and the log."""
        self._fit_x0_to_dimension()
        try:
            self._x0 = self.read_controls().start()
        except WmStudioError as exc:
            log.error("Evolution: %s", exc)
            return
        running = self.worker.running
        if self.reset() and running:
            self.worker.run()

    def _fit_x0_to_dimension(self):
        """x0 must have 1 or n values; when n changed, keep its first value for every coordinate."""
        try:
            x0 = parse_vector(self.x0_edit.text())
        except ConfigError:
            return
        n = self.dimension_spin.value()
        if len(x0) not in (1, n):
            self.x0_edit.setText(format_vector(x0[:1]))

    def set_x0_at(self, x: float, y: float) -> None:
        """x0 from a click on the plot at (x, y): for n > 2 the point of the plotted plane (through m) there."""
        frame = self.drawn_frame
        n = 2 if not self.dimension_spin.isEnabled() else self.dimension_spin.value()
        plane = self.figure.to_plane(x, y)
        if frame is not None and frame.a.dimension == n:
            point = lift(frame.a.basis, frame.a.origin, plane)
        else:
            point = plane if n == 2 else plane[:1]
        self.x0_edit.setText(format_vector(point))
        self._controls_changed()

    def _speed_changed(self, index: int):
        fast = self.fast_button.isChecked()
        self.worker.set_rate(None if fast else SPEEDS[index])
        self.speed_label.setText("fast" if fast else f"{SPEEDS[index]} gen/s")

    @property
    def speed(self):
        """Generations per second while running; None: as fast as possible."""
        return None if self.fast_button.isChecked() else SPEEDS[self.speed_slider.value()]

    # --- run control ------------------------------------------------------------------------------------------
    def reset(self) -> bool:
        """Start a new run from the controls; shows generation 0 (the start) and waits for Run or Step."""
        try:
            settings = self.read_controls()
            other = self.read_other(settings)
        except WmStudioError as exc:
            log.error("Evolution: %s", exc)
            return False
        self.run_settings, self.other_settings = settings, other
        self._problem = settings.problem()
        self._x0 = settings.start()
        self.history, self.other_history = EsHistory(), EsHistory()
        self.store = ReplayStore()
        self.latest = None
        self.drawn_frame = self._drawn_key = None
        self.replay = None
        self.figure.reset_curves()
        self.export_from.setValue(0)
        self.export_to.setValue(-1)
        self.worker.load(lambda: run_frames(settings, other))
        self.worker.step()  # frame 0
        self._update_replay_controls()
        compared = "" if other is None else f" against B ({STRATEGIES[other.strategy][1]})"
        self.status.emit(f"Evolution: {settings.function} {settings.dimension}-D, "
                         f"{STRATEGIES[settings.strategy][1]}{compared}, ready")
        return True

    def toggle_run(self):
        self.run_button.toggle()

    def _run_toggled(self, checked: bool):
        if checked:
            if self.latest is not None and self.latest.stop:
                self.run_button.setChecked(False)
                self.status.emit("This run has ended; press Reset (R) to start again")
                return
            self.to_live()
            self.worker.run()
        else:
            self.worker.pause()

    def _show_running(self, running: bool):
        self._show_playing(self.run_button, running, "Run")

    def step(self):
        """One generation more, from the live end."""
        self.to_live()
        self.worker.step()

    def forward(self):
        """Right arrow: the next generation of the replay; at the live end, one generation more."""
        if self.replay is None:
            self.step()
        else:
            self.show_generation(self.replay + 1)

    def back(self):
        """Left arrow: the generation before (pauses a run, so the view stays)."""
        if self.latest is None:
            return
        if self.worker.running:
            self.run_button.setChecked(False)
        self.show_generation((self.latest.index if self.replay is None else self.replay) - 1)

    def to_first(self):
        self.show_generation(0)

    def to_live(self):
        self.show_generation(None)

    def show_generation(self, generation: int | None) -> None:
        """Replay `generation` (clipped to the run so far), or follow the live end (None, or the newest one)."""
        newest = self.latest.index if self.latest is not None else 0
        if generation is not None:
            generation = max(0, min(int(generation), newest))
            if generation >= newest:
                generation = None
        self.replay = generation
        self._update_replay_controls()

    def _slider_moved(self, value: int):
        self.show_generation(value)

    def prepare_view(self, steps: int | None) -> None:
        """Run `steps` generations (default 30) as fast as possible, then emit view_ready once they are drawn."""
        self._view_target = DEFAULT_SCREENSHOT_GENERATIONS if steps is None else int(steps)
        self.worker.step(self._view_target)

    # --- frames -----------------------------------------------------------------------------------------------
    def on_frames(self, batch: list[EsFrame]):
        for frame in batch:
            self.history.add(frame.a)
            self.other_history.add(frame.b)
            self.store.add(frame)
        self.latest = batch[-1]
        self._update_replay_controls()

    def on_finished(self):
        if self.latest is not None:
            reasons = ", ".join(self.latest.a.stop) or "done"
            message = f"CMA-ES stopped after {self.latest.a.generation} generations ({reasons})"
            log.info("Evolution: %s", message)
            self.status.emit(message)

    def on_failed(self, message: str):
        self.status.emit(f"Evolution failed: {message}")
        self._finish_view()

    @property
    def drawn_snapshot(self) -> EsSnapshot | None:
        """Run A's snapshot on screen."""
        return None if self.drawn_frame is None else self.drawn_frame.a

    def shown_frame(self) -> EsFrame | None:
        """The frame the view should show: the replayed generation's, or the newest."""
        if self.replay is None or self.latest is None:
            return self.latest
        return self.store.at(self.replay)

    def draw(self):
        """The timer's tick: draw the frame to show if it is not on screen yet."""
        frame = self.shown_frame()
        if frame is None:
            return
        end = self.latest.index
        key = (id(frame), self.replay, end)
        if key == self._drawn_key:
            return
        note = "" if self.replay is None else f"<b>replay</b> {self.replay} / {end} · "
        self.figure.show_frame(frame, self.history, self.other_history, self._problem, self._x0,
                               upto=frame.index if self.replay is None else self.replay, end=end, note=note)
        self.drawn_frame, self._drawn_key = frame, key
        self.drawn.emit(frame)
        if self._view_target is not None and (frame.index >= self._view_target or frame.stop):
            self._finish_view()  # a frame where every run stopped is the last

    def _finish_view(self):
        if self._view_target is not None:
            self._view_target = None
            self.view_ready.emit()

    def _update_replay_controls(self):
        newest = self.latest.index if self.latest is not None else 0
        shown = newest if self.replay is None else self.replay
        self.replay_slider.blockSignals(True)
        self.replay_slider.setRange(0, newest)
        self.replay_slider.setValue(shown)
        self.replay_slider.blockSignals(False)
        self.replay_label.setText(f"generation {shown} of {newest}" + (" (replay)" if self.replay is not None
                                                                         else ""))
        self.export_from.setMaximum(newest)
        self.export_to.setMaximum(newest)
        self.gif_button.setEnabled(len(self.store) > 0)
        self.mp4_button.setEnabled(len(self.store) > 0)

    # --- export -----------------------------------------------------------------------------------------------
    def view_frame(self):
        return grab_frame(self.figure)

    def can_export_animation(self) -> bool:
        return len(self.store) > 0

    def export_range(self) -> tuple[int, int]:
        newest = self.latest.index if self.latest is not None else 0
        last = newest if self.export_to.value() < 0 else self.export_to.value()
        return self.export_from.value(), last

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        """Render the chosen generations (from the replay store) offscreen at the chosen frame size and write a
        GIF or MP4; each frame looks as the studio showed it live."""
        first, last = self.export_range()
        frames = self.store.between(first, last)
        if not frames:
            raise ConfigError(f"no generation between {first} and {last} to export: run a few generations or "
                              f"choose another range")
        size = self.size_box.currentData()
        self.export_progress.setRange(0, len(frames))
        self.export_progress.setValue(0)
        self.export_progress.show()

        def report(done, total):
            self.export_progress.setValue(done)
            if progress:
                progress(done, total)

        try:
            images = render_frames(frames, self._problem, size, self.run_settings.start(),
                                   histories=(self.history, self.other_history))
            return write_animation(path, images, fps=self.fps_spin.value(), size=size, progress=report)
        finally:
            self.export_progress.hide()

    # --- settings and shutdown --------------------------------------------------------------------------------
    def load_settings(self, settings: QSettings) -> None:
        try:
            mu = parse_mu(read(settings, "mu", "0.25", str))
        except ConfigError:
            mu = DEFAULTS.mu
        vectors = {}
        for key, default in (("x0", DEFAULTS.x0), ("shift", DEFAULTS.shift)):
            try:
                vectors[key] = parse_vector(read(settings, key, format_vector(default), str))
            except ConfigError:
                vectors[key] = default
        function = read(settings, "function", DEFAULTS.function, str)
        strategy = read(settings, "strategy", DEFAULTS.strategy, str)
        other_strategy = read(settings, "other_strategy", OTHER_DEFAULTS["strategy"], str)
        restored = EsSettings(
            function=function if function in PROBLEMS else DEFAULTS.function,
            dimension=max(2, read(settings, "dimension", DEFAULTS.dimension, int)),
            popsize=read(settings, "popsize", DEFAULTS.popsize, int) or None,
            mu=mu,
            sigma0=read(settings, "sigma0", DEFAULTS.sigma0, float),
            seed=read(settings, "seed", DEFAULTS.seed, int),
            x0=vectors["x0"],
            strategy=strategy if strategy in STRATEGIES else DEFAULTS.strategy,
            shift=vectors["shift"] if len(vectors["shift"]) == 2 else DEFAULTS.shift,
        )
        other = {"strategy": other_strategy if other_strategy in STRATEGIES else OTHER_DEFAULTS["strategy"],
                 "popsize": read(settings, "other_popsize", OTHER_DEFAULTS["popsize"], int),
                 "sigma0": read(settings, "other_sigma0", OTHER_DEFAULTS["sigma0"], float),
                 "seed": read(settings, "other_seed", OTHER_DEFAULTS["seed"], int)}
        self._dimension_memory = max(2, read(settings, "dimension_memory", 10, int))
        speed = read(settings, "speed", DEFAULT_SPEED, int)
        self._apply_settings(restored, speed, fps=read(settings, "fps", 10, int),
                             size_label=read(settings, "size", "", str), other=other,
                             compare=read(settings, "compare", False, bool), fast=read(settings, "fast", False, bool))

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("function", self.function_box.currentData())
        settings.setValue("dimension", self.dimension_spin.value())
        settings.setValue("dimension_memory", self._dimension_memory)
        self.strategy_rows.save(settings)
        settings.setValue("x0", self.x0_edit.text())
        settings.setValue("shift", self.shift_edit.text())
        settings.setValue("speed", SPEEDS[self.speed_slider.value()])
        settings.setValue("fast", self.fast_button.isChecked())
        settings.setValue("compare", self.compare_group.isChecked())
        self.other_rows.save(settings, "other_")
        settings.setValue("fps", self.fps_spin.value())
        settings.setValue("size", self.size_box.currentText())

    def shutdown(self) -> None:
        self._timer.stop()
        self.figure.shutdown()
        self.worker.shutdown()
