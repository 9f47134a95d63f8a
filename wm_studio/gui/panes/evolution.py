"""The Evolution pane: CMA-ES live on a test function (the Schaffer demo of design.md section 5).

CMA-ES runs on the pane's GeneratorWorker thread (wm_studio.core.es.demo.run_es); the pane keeps the newest
snapshot and a ~30 Hz timer draws it, while every snapshot extends the curves and, when recording, the list of
frames that File > Export renders to a GIF or MP4.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                             QLineEdit, QProgressBar, QSizePolicy, QSlider, QSpinBox, QVBoxLayout,
                             QWidget)

from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.es.demo import EsHistory, EsSettings, EsSnapshot, parse_mu, parse_vector
from wm_studio.core.es.problems import PROBLEMS, get_problem
from wm_studio.core.es.projection import lift
from wm_studio.core.export import Progress, write_animation
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.render import render_frames
from wm_studio.gui.settings import read
from wm_studio.gui.views.es_figure import EsFigure
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, None)    # generations per second; None: as fast as possible
DEFAULT_SPEED = 10
DRAW_INTERVAL_MS = 33                              # about 30 Hz
MAX_RECORDED = 2000                                # generations kept for export
DEFAULT_SCREENSHOT_GENERATIONS = 30
EXPORT_SIZES = {"960 × 540": (960, 540), "1280 × 720": (1280, 720), "1920 × 1080": (1920, 1080),
                "640 × 360": (640, 360), "800 × 800": (800, 800)}
DEFAULTS = EsSettings()


def format_vector(values) -> str:
    return ", ".join(f"{float(v):.4g}" for v in values)


def allows_any_dimension(function: str) -> bool:
    """Whether the problem exists beyond 2-D (Schaffer does not)."""
    try:
        get_problem(function, 3)
    except ConfigError:
        return False
    return True


class EvolutionPane(Pane):
    name = "evolution"
    title = "Evolution"
    drawn = pyqtSignal(object)   # the snapshot just drawn

    def __init__(self, parent=None):
        super().__init__(parent)
        self.figure = EsFigure(self)
        self.figure.search.clicked.connect(self.set_x0_at)
        self.worker = GeneratorWorker("evolution", self, rate=DEFAULT_SPEED)
        self.worker.snapshots.connect(self.on_snapshots)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.worker.running_changed.connect(self._show_running)
        self.history = EsHistory()
        self.recorded: list[EsSnapshot] = []
        self.latest: EsSnapshot | None = None        # newest snapshot received
        self.drawn_snapshot: EsSnapshot | None = None
        self.run_settings: EsSettings | None = None  # what the current run was started with
        self._problem = None
        self._x0 = None                              # the start point the controls hold now, (n,)
        self._view_target: int | None = None         # prepare_view(): generation to reach before view_ready
        self._dimension_memory = 10                  # n to restore when leaving a 2-D-only problem

        controls = self._scrolling(self._build_controls())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls)
        layout.addWidget(self.figure, 1)
        self._add_shortcuts()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.draw)
        self._timer.start(DRAW_INTERVAL_MS)
        self._apply_settings(DEFAULTS, DEFAULT_SPEED)

    # --- building ---------------------------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)

        problem = QGroupBox("Problem")
        form = QFormLayout(problem)
        self.function_box = QComboBox()
        for name in PROBLEMS:
            self.function_box.addItem(name.capitalize(), name)
        self.function_box.setToolTip("The function CMA-ES minimises (0 at the optimum)")
        self.dimension_spin = QSpinBox()
        self.dimension_spin.setRange(2, 200)
        self.dimension_spin.setToolTip("Dimension n of the search space. For n > 2 the plot shows the population "
                                       "projected on the two leading principal axes of C.")
        self.x0_edit = QLineEdit()
        self.x0_edit.setToolTip("The start point m0: one number for every coordinate, or n numbers. "
                                "Click the plot to set it.")
        form.addRow("Function", self.function_box)
        form.addRow("Dimension n", self.dimension_spin)
        form.addRow("x0", self.x0_edit)
        self.x0_edit.setPlaceholderText("e.g. 0 or 1, 2 (or click the plot)")
        column.addWidget(problem)

        strategy = QGroupBox("Strategy")
        form = QFormLayout(strategy)
        self.popsize_spin = QSpinBox()
        self.popsize_spin.setRange(0, 100000)
        self.popsize_spin.setSpecialValueText("default")
        self.popsize_spin.setToolTip("Population size λ; 'default' is 4 + ⌊3 ln n⌋")
        self.mu_edit = QLineEdit()
        self.mu_edit.setToolTip("Parents μ: a count (16) or a fraction of λ (0.25); empty: λ/2")
        self.sigma_spin = QDoubleSpinBox()
        self.sigma_spin.setDecimals(4)
        self.sigma_spin.setRange(1e-4, 1e4)
        self.sigma_spin.setToolTip("Initial step size σ0. The Schaffer demo needs about 3 to escape the rings.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        self.seed_spin.setToolTip("Seed of the engine's random generator")
        form.addRow("λ (popsize)", self.popsize_spin)
        form.addRow("μ (parents)", self.mu_edit)
        form.addRow("σ0", self.sigma_spin)
        form.addRow("Seed", self.seed_spin)
        column.addWidget(strategy)

        run = QGroupBox("Run")
        box = QVBoxLayout(run)
        self.run_button, self.step_button, self.reset_button, buttons = self._transport_buttons(
            ("Run", "Run / pause (Space)"), "One generation (Right arrow)",
            ("Reset", "Start again with the settings above (R)"))
        box.addLayout(buttons)
        speed_row = QHBoxLayout()
        self.speed_slider = QSlider(Qt.Horizontal)
        self.speed_slider.setRange(0, len(SPEEDS) - 1)
        self.speed_slider.setPageStep(1)
        self.speed_slider.setToolTip("Generations per second")
        self.speed_label = QLabel()
        self.speed_label.setMinimumWidth(70)
        speed_row.addWidget(QLabel("Speed"))
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(self.speed_label)
        box.addLayout(speed_row)
        column.addWidget(run)

        export = QGroupBox("Export")
        form = QFormLayout(export)
        self.record_check = QCheckBox("Record")
        self.record_check.setToolTip(f"Keep every generation (up to {MAX_RECORDED}) since Reset for GIF/MP4 export")
        self.recorded_label = QLabel()
        self.recorded_label.setMinimumWidth(self.recorded_label.fontMetrics().horizontalAdvance(
            f"{MAX_RECORDED} frames") + 4)
        export_buttons = self._build_export_controls("the recorded generations", EXPORT_SIZES, fps=10,
                                                     view="the current view")
        record_row = QHBoxLayout()
        record_row.addWidget(self.record_check)
        record_row.addWidget(self.recorded_label, 1, Qt.AlignRight)
        form.addRow(record_row)
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

        for spin in (self.dimension_spin, self.popsize_spin, self.sigma_spin, self.seed_spin):
            spin.setKeyboardTracking(False)  # react on Enter / arrows, not on every digit typed
            spin.valueChanged.connect(self._controls_changed)
        self.function_box.currentIndexChanged.connect(self._function_changed)
        self.x0_edit.editingFinished.connect(self._controls_changed)
        self.mu_edit.editingFinished.connect(self._controls_changed)
        self.run_button.toggled.connect(self._run_toggled)
        self.step_button.clicked.connect(self.step)
        self.reset_button.clicked.connect(self.reset)
        self.speed_slider.valueChanged.connect(self._speed_changed)
        panel.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        return panel

    def _add_shortcuts(self):
        self._bind_keys(((Qt.Key_Space, self.toggle_run), (Qt.Key_Right, self.step), (Qt.Key_R, self.reset)))

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("Space", "run / pause the evolution"), ("Right", "one generation"), ("R", "reset"),
                ("Click on the plot", "set x0 there")]

    # --- controls ---------------------------------------------------------------------------------------------
    def read_controls(self) -> EsSettings:
        """The controls as EsSettings; ConfigError names what is wrong."""
        function = self.function_box.currentData()
        settings = EsSettings(
            function=function,
            dimension=self.dimension_spin.value() if allows_any_dimension(function) else 2,
            popsize=self.popsize_spin.value() or None,
            mu=parse_mu(self.mu_edit.text()),
            sigma0=float(self.sigma_spin.value()),
            seed=int(self.seed_spin.value()),
            x0=parse_vector(self.x0_edit.text()),
        )
        settings.problem()
        settings.start()
        return settings

    def _apply_settings(self, settings: EsSettings, speed, record=True, fps=10, size_label=None):
        """Put values into the controls (without reacting to each) and reset."""
        widgets = (self.function_box, self.dimension_spin, self.popsize_spin, self.mu_edit, self.sigma_spin,
                   self.seed_spin, self.x0_edit, self.speed_slider)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            index = self.function_box.findData(settings.function)
            self.function_box.setCurrentIndex(max(0, index))
            self._update_dimension_control()
            self.dimension_spin.setValue(settings.dimension)
            self.popsize_spin.setValue(settings.popsize or 0)
            self.mu_edit.setText("" if settings.mu is None else str(settings.mu))
            self.sigma_spin.setValue(settings.sigma0)
            self.seed_spin.setValue(settings.seed or 0)
            self.x0_edit.setText(format_vector(settings.x0))
            self.speed_slider.setValue(SPEEDS.index(speed) if speed in SPEEDS else SPEEDS.index(DEFAULT_SPEED))
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.record_check.setChecked(record)
        self.fps_spin.setValue(fps)
        if size_label in EXPORT_SIZES:
            self.size_box.setCurrentText(size_label)
        self._speed_changed(self.speed_slider.value())
        self.reset()

    def _update_dimension_control(self):
        free = allows_any_dimension(self.function_box.currentData())
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
        self._update_dimension_control()
        self._controls_changed()

    def _controls_changed(self):
        """Start over at once while nothing has run yet; otherwise the settings wait for Reset."""
        self._fit_x0_to_dimension()
        try:
            self._x0 = self.read_controls().start()
        except WmStudioError as exc:
            self.status.emit(str(exc))
            return
        self.drawn_snapshot = None  # redraw the x0 marker
        if self.latest is None or (self.latest.generation == 0 and not self.worker.running):
            self.reset()
        else:
            self.status.emit("The new settings apply at the next Reset (R)")

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
        snapshot = self.latest
        n = 2 if not self.dimension_spin.isEnabled() else self.dimension_spin.value()
        if snapshot is not None and snapshot.dimension == n:
            point = lift(snapshot.basis, snapshot.origin, [x, y])
        else:
            point = [x, y] if n == 2 else [x]
        self.x0_edit.setText(format_vector(point))
        self._controls_changed()

    def _speed_changed(self, index: int):
        speed = SPEEDS[index]
        self.worker.set_rate(speed)
        self.speed_label.setText("max" if speed is None else f"{speed} gen/s")

    @property
    def speed(self):
        return SPEEDS[self.speed_slider.value()]

    # --- run control ------------------------------------------------------------------------------------------
    def reset(self) -> bool:
        """Start a new run from the controls; shows generation 0 (the start) and waits for Run or Step."""
        try:
            settings = self.read_controls()
        except WmStudioError as exc:
            log.error("Evolution: %s", exc)
            return False
        self.run_settings = settings
        self._problem = settings.problem()
        self._x0 = settings.start()
        self.history = EsHistory()
        self.recorded = []
        self.latest = None
        self.drawn_snapshot = None
        self.worker.load(settings.run)
        self.worker.step()  # snapshot 0
        self._update_recorded_label()
        self.status.emit(f"Evolution: {settings.function} {settings.dimension}-D, ready")
        return True

    def toggle_run(self):
        self.run_button.toggle()

    def _run_toggled(self, checked: bool):
        if checked:
            if self.latest is not None and self.latest.stop:
                self.run_button.setChecked(False)
                self.status.emit("This run has ended; press Reset (R) to start again")
                return
            self.worker.run()
        else:
            self.worker.pause()

    def _show_running(self, running: bool):
        self._show_playing(self.run_button, running, "Run")

    def step(self):
        self.worker.step()

    def prepare_view(self, steps: int | None) -> None:
        """Run `steps` generations (default 30) as fast as possible, then emit view_ready once they are drawn."""
        self._view_target = DEFAULT_SCREENSHOT_GENERATIONS if steps is None else int(steps)
        self.worker.step(self._view_target)

    # --- snapshots --------------------------------------------------------------------------------------------
    def on_snapshots(self, batch: list[EsSnapshot]):
        for snapshot in batch:
            self.history.add(snapshot)
            if self.record_check.isChecked():
                if len(self.recorded) < MAX_RECORDED:
                    self.recorded.append(snapshot)
                elif len(self.recorded) == MAX_RECORDED and snapshot is batch[-1]:
                    log.info("Evolution: recording stopped at %d generations", MAX_RECORDED)
        self.latest = batch[-1]
        self._update_recorded_label()

    def on_finished(self):
        if self.latest is not None:
            reasons = ", ".join(self.latest.stop) or "done"
            message = f"CMA-ES stopped after {self.latest.generation} generations ({reasons})"
            log.info("Evolution: %s", message)
            self.status.emit(message)

    def on_failed(self, message: str):
        self.status.emit(f"Evolution failed: {message}")
        self._finish_view()

    def draw(self):
        """The timer's tick: draw the newest snapshot if it is not on screen yet."""
        snapshot = self.latest
        if snapshot is None or snapshot is self.drawn_snapshot:
            return
        self.figure.show_snapshot(snapshot, self.history, self._problem, self._x0)
        self.drawn_snapshot = snapshot
        self.drawn.emit(snapshot)
        if self._view_target is not None and (snapshot.generation >= self._view_target or snapshot.stop):
            self._finish_view()  # a snapshot with stop reasons is the run's last

    def _finish_view(self):
        if self._view_target is not None:
            self._view_target = None
            self.view_ready.emit()

    def _update_recorded_label(self):
        self._show_recorded(len(self.recorded), "frame")

    # --- export -----------------------------------------------------------------------------------------------
    def view_frame(self):
        return grab_frame(self.figure)

    def can_export_animation(self) -> bool:
        return bool(self.recorded)

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        """Render the recorded generations offscreen at the chosen frame size and write a GIF or MP4."""
        snapshots = list(self.recorded)
        if not snapshots:
            raise ConfigError("nothing is recorded yet: tick 'Record', press Reset and run a few "
                              "generations")
        size = self.size_box.currentData()
        self.export_progress.setRange(0, len(snapshots))
        self.export_progress.setValue(0)
        self.export_progress.show()

        def report(done, total):
            self.export_progress.setValue(done)
            if progress:
                progress(done, total)

        try:
            frames = render_frames(snapshots, self._problem, size, self.run_settings.start())
            return write_animation(path, frames, fps=self.fps_spin.value(), size=size, progress=report)
        finally:
            self.export_progress.hide()

    # --- settings and shutdown --------------------------------------------------------------------------------
    def load_settings(self, settings: QSettings) -> None:
        try:
            mu = parse_mu(read(settings, "mu", "0.25", str))
        except ConfigError:
            mu = DEFAULTS.mu
        try:
            x0 = parse_vector(read(settings, "x0", "0", str))
        except ConfigError:
            x0 = DEFAULTS.x0
        function = read(settings, "function", DEFAULTS.function, str)
        restored = EsSettings(
            function=function if function in PROBLEMS else DEFAULTS.function,
            dimension=max(2, read(settings, "dimension", DEFAULTS.dimension, int)),
            popsize=read(settings, "popsize", DEFAULTS.popsize, int) or None,
            mu=mu,
            sigma0=read(settings, "sigma0", DEFAULTS.sigma0, float),
            seed=read(settings, "seed", DEFAULTS.seed, int),
            x0=x0,
        )
        self._dimension_memory = max(2, read(settings, "dimension_memory", 10, int))
        speed = read(settings, "speed", DEFAULT_SPEED, int) or None
        self._apply_settings(restored, speed, record=read(settings, "record", True, bool),
                             fps=read(settings, "fps", 10, int), size_label=read(settings, "size", "", str))

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("function", self.function_box.currentData())
        settings.setValue("dimension", self.dimension_spin.value())
        settings.setValue("dimension_memory", self._dimension_memory)
        settings.setValue("popsize", self.popsize_spin.value())
        settings.setValue("mu", self.mu_edit.text())
        settings.setValue("sigma0", self.sigma_spin.value())
        settings.setValue("seed", self.seed_spin.value())
        settings.setValue("x0", self.x0_edit.text())
        settings.setValue("speed", self.speed or 0)
        settings.setValue("record", self.record_check.isChecked())
        settings.setValue("fps", self.fps_spin.value())
        settings.setValue("size", self.size_box.currentText())

    def shutdown(self) -> None:
        self._timer.stop()
        self.figure.shutdown()
        self.worker.shutdown()
