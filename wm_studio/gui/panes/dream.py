"""The Dream pane: M dreams, V draws the dream. Play / pause / step / restart, temperature, who drives.

The dream runs on the pane's GeneratorWorker thread: core's `dream_session` (a batch-1 DreamEnv over the open
run's M), each new z decoded by V in a DecoderProcess (so that training in the studio does not hold the decoding
up). The driver is the controller C (on the dream's z and h), the keyboard (arrows / WASD: steer, gas, brake; Doom:
left / right) or a random (brownian) policy. Keys are read on the GUI thread and handed to the worker as the
current action through DreamControls (a lock), as are the temperature, the driver and the step cap, so changing
them never restarts the dream. An episode restarts by itself when M predicts the end (Doom's done head; the pane
plots M's p(done) step by step) or at the cap.

Real beside dream: the real game starts too, the dream starts from V's encoding of the real first frame, and both
take the same actions; the pane shows both frames and the per-step pixel MSE between them, where M drifts.

The GUI keeps the newest snapshot and draws it on a ~30 Hz timer (docs/architecture.md, "Threading rules of the studio"); every snapshot of the
episode is kept for GIF/MP4 export.
"""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QEvent, QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy,
                             QSlider, QSpinBox, QVBoxLayout, QWidget)

from wm_studio.core.envs.dream_session import (DreamControls, DreamFrame, dream_session, export_frames,
                                              keyboard_action)
from wm_studio.core.errors import ConfigError
from wm_studio.core.export import Progress, write_animation
from wm_studio.gui.decoder_process import DecoderProcess
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.settings import read
from wm_studio.gui.views.curves import CurvesPlot
from wm_studio.gui.views.frame_view import FrameView
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

DRIVERS = {"controller": "Controller C", "keyboard": "Keyboard (human)", "random": "Random (brownian)"}
SPEEDS = (10, 15, 30, 50, None)          # dream steps per second; None: as fast as it goes
DEFAULT_SPEED = 30
TAU_RANGE = (0.1, 3.0)
DEFAULT_CAP = 1000
DRAW_INTERVAL_MS = 33
MAX_RECORDED = 3000
EXPORT_SIZES = (128, 256, 512)
DEFAULT_SCREENSHOT_STEPS = 60
ERROR_COLOUR = (214, 39, 40)
DONE_COLOUR = (148, 103, 189)
THRESHOLD_COLOUR = (127, 127, 127)

# Keys that drive: arrows and WASD.
DRIVE_KEYS = {Qt.Key_Left: "left", Qt.Key_A: "left", Qt.Key_Right: "right", Qt.Key_D: "right",
              Qt.Key_Up: "gas", Qt.Key_W: "gas", Qt.Key_Down: "brake", Qt.Key_S: "brake"}


class DreamPane(Pane):
    name = "dream"
    title = "Dream (M + V)"
    drawn = pyqtSignal(object)       # the DreamFrame just drawn

    def __init__(self, parent=None, open_run: OpenRun | None = None, seed: int = 0):
        super().__init__(parent)
        self._use_open_run(open_run, parent)
        self.seed = seed
        self.sessions = 0                              # sessions started: each gets its own seed
        self.game = "carracing"
        self.held: set[str] = set()
        self.controls = DreamControls(1.0, "random", keyboard_action("carracing", ()), DEFAULT_CAP)
        self.latest: DreamFrame | None = None
        self.drawn_frame: DreamFrame | None = None
        self.recorded: list[DreamFrame] = []           # the current episode, for export
        self.errors: list[tuple[int, float]] = []      # (step, pixel MSE) of the current episode
        self.done_probs: list[tuple[int, float]] = []  # (step, M's p(done)) of the current episode (Doom)
        self.done_threshold = 0.5
        self.episodes = 0                              # episodes begun since the session started
        self.frames_made = 0                           # snapshots received, all sessions together
        self.step_times: collections.deque = collections.deque(maxlen=60)
        self.draw_times: collections.deque = collections.deque(maxlen=60)
        self.ready = False                             # V and M are loaded
        self._view_target: int | None = None           # prepare_view(): the step to reach before view_ready
        self._tried_real = False
        self.decoder_process = DecoderProcess()        # V's decoding away from a training thread's BLAS pool
        self.worker = GeneratorWorker("dream", self, rate=DEFAULT_SPEED)
        self.worker.snapshots.connect(self.on_snapshots)
        self.worker.failed.connect(self.on_failed)
        self.worker.running_changed.connect(self._show_running)

        self._build_message_page(self._build_content())
        self._add_shortcuts()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.draw)
        self._timer.start(DRAW_INTERVAL_MS)
        self._follow_open_run()

    # --- building ---------------------------------------------------------------------------------------------
    def _build_content(self) -> QWidget:
        content, row = self._panel(QHBoxLayout)
        centre = QVBoxLayout()
        frames = QHBoxLayout()
        self.dream_view = FrameView("dream: M predicts z, V draws it")
        self.real_view = FrameView("the real game, same actions")
        for view in (self.dream_view, self.real_view):
            view.setMinimumSize(300, 320)
            frames.addWidget(view)
        self.dream_view.installEventFilter(self)
        self.real_view.installEventFilter(self)
        self.real_view.setFocusPolicy(Qt.ClickFocus)
        self.real_view.hide()
        centre.addLayout(frames, 3)
        readout_row = QHBoxLayout()
        self.human_flag = QLabel("HUMAN")
        self.human_flag.setStyleSheet("background: #d62728; color: white; font-weight: bold; padding: 2px 8px; "
                                      "border-radius: 3px;")
        self.human_flag.setToolTip("The keyboard drives (arrows / WASD)")
        self.human_flag.hide()
        self.readout = QLabel("–")
        self.readout.setTextFormat(Qt.RichText)
        self.readout.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)   # long lines never widen the pane
        self.readout.setWordWrap(True)          # a narrow window wraps the readout rather than cutting it off
        self.readout.setToolTip("step, score (Doom: steps survived in the dream; CarRacing: the real game's), "
                                "temperature, driver, the action, M's p(done), the error real vs dream")
        self.rate_label = QLabel("")
        self.rate_label.setStyleSheet("color: #555")
        self.rate_label.setMinimumWidth(self.rate_label.fontMetrics().horizontalAdvance("888 steps/s · drawn 88 fps")
                                        + 8)
        self.rate_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        readout_row.addWidget(self.human_flag)
        readout_row.addWidget(self.readout, 1)
        readout_row.addWidget(self.rate_label)
        centre.addLayout(readout_row)
        self.error_widget = pg.GraphicsLayoutWidget()
        self.error_plot = CurvesPlot("per-step error between the real and the dream frame (pixel MSE)",
                                     log_y=False, x_label="step")
        self.error_plot.add_curve("error", ERROR_COLOUR)
        self.error_widget.addItem(self.error_plot)
        self.error_widget.setMinimumHeight(150)
        self.error_widget.hide()
        centre.addWidget(self.error_widget, 1)
        # Doom: M's probability that the episode ends, step by step; the dream ends where it crosses the line.
        self.done_widget = pg.GraphicsLayoutWidget()
        self.done_plot = CurvesPlot("M's p(done) this episode: the dream ends where it crosses the threshold",
                                    log_y=False, x_label="step")
        self.done_plot.add_curve("threshold", THRESHOLD_COLOUR, Qt.DashLine)
        self.done_plot.add_curve("p(done)", DONE_COLOUR)
        self.done_plot.setYRange(0.0, 1.0, padding=0.02)
        self.done_widget.addItem(self.done_plot)
        self.done_widget.setMinimumHeight(150)
        self.done_widget.hide()
        centre.addWidget(self.done_widget, 1)
        row.addLayout(centre, 1)
        row.addWidget(self._build_controls())
        self.views = content
        return content

    def _build_controls(self) -> QWidget:
        panel, column = self._panel()
        panel.setFixedWidth(320)

        run = QGroupBox("Play")
        box = QVBoxLayout(run)
        self.play_button, self.step_button, self.restart_button, buttons = self._transport_buttons(
            ("Play", "Play / pause (Space)"), "One step of the dream (.)",
            ("Restart", "A new episode from a new real frame (R)"))
        box.addLayout(buttons)
        form = QFormLayout()
        self.speed_box = QComboBox()
        for speed in SPEEDS:
            self.speed_box.addItem("as fast as it goes" if speed is None else f"{speed} steps/s", speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(DEFAULT_SPEED))
        self.speed_box.setToolTip("Dream steps per second")
        form.addRow("Speed", self.speed_box)
        box.addLayout(form)
        column.addWidget(run)

        dream = QGroupBox("Dream")
        form = QFormLayout(dream)
        tau_row = QHBoxLayout()
        self.tau_slider = QSlider(Qt.Horizontal)
        self.tau_slider.setRange(int(TAU_RANGE[0] * 100), int(TAU_RANGE[1] * 100))
        self.tau_slider.setValue(100)
        self.tau_slider.setToolTip("Temperature τ of M's sampling: above 1 wilder dreams, below 1 tamer ones "
                                   "(+ / − keys)")
        self.tau_label = QLabel("τ = 1.00")
        self.tau_label.setMinimumWidth(self.tau_label.fontMetrics().horizontalAdvance("τ = 3.00") + 4)
        tau_row.addWidget(self.tau_slider, 1)
        tau_row.addWidget(self.tau_label)
        form.addRow("Temperature", tau_row)
        self.cap_spin = QSpinBox()
        self.cap_spin.setRange(1, 100_000)
        self.cap_spin.setValue(DEFAULT_CAP)
        self.cap_spin.setSuffix(" steps")
        self.cap_spin.setToolTip("An episode restarts after this many steps (or when M predicts the end)")
        form.addRow("Cap", self.cap_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        self.seed_spin.setValue(self.seed)
        self.seed_spin.setToolTip("Seed of the dream's sampling, start frames and random driver")
        form.addRow("Seed", self.seed_spin)
        column.addWidget(dream)

        drive = QGroupBox("Who drives")
        box = QVBoxLayout(drive)
        self.driver_box = QComboBox()
        for key, label in DRIVERS.items():
            self.driver_box.addItem(label, key)
        self.driver_box.setToolTip("C: the controller, on the dream's z and h (C key); keyboard (H); random (N)")
        box.addWidget(self.driver_box)
        self.keys_label = QLabel()
        self.keys_label.setWordWrap(True)
        self.keys_label.setStyleSheet("color: #555")
        box.addWidget(self.keys_label)
        column.addWidget(drive)

        compare = QGroupBox("Where M drifts")
        box = QVBoxLayout(compare)
        self.real_check = QCheckBox("Real game beside the dream")
        self.real_check.setToolTip("Start both from the same real frame, drive both with the same actions and "
                                   "plot the per-step error: where M drifts")
        box.addWidget(self.real_check)
        column.addWidget(compare)

        export = QGroupBox("Export")
        form = QFormLayout(export)
        self.recorded_label = QLabel("0 frames")
        form.addRow("Episode", self.recorded_label)
        buttons = self._build_export_controls(
            "this episode", {f"{size} × {size}": size for size in EXPORT_SIZES}, fps=30, size="256 × 256",
            size_tip="Size of each frame (with the real game: the dream and the game side by side, each "
                     "labelled)")
        sizes = QHBoxLayout()
        sizes.addWidget(self.size_box)
        sizes.addWidget(self.fps_spin)
        form.addRow("Frames", sizes)
        form.addRow(buttons)
        column.addWidget(export)
        column.addStretch(1)

        # Only the dream view takes the keyboard, so arrows and WASD always drive (never move a slider).
        for widget in (self.play_button, self.step_button, self.restart_button, self.speed_box, self.tau_slider,
                       self.driver_box, self.real_check, self.size_box, self.gif_button, self.mp4_button,
                       self.png_button):
            widget.setFocusPolicy(Qt.NoFocus)
        self.play_button.toggled.connect(self._play_toggled)
        self.step_button.clicked.connect(self.step)
        self.restart_button.clicked.connect(self.restart)
        self.speed_box.currentIndexChanged.connect(lambda _: self.worker.set_rate(self.speed_box.currentData()))
        self.tau_slider.valueChanged.connect(self._tau_changed)
        self.cap_spin.valueChanged.connect(lambda value: self.controls.update(cap=int(value)))
        self.seed_spin.valueChanged.connect(lambda _: self.start_session(keep_running=self.worker.running))
        self.driver_box.currentIndexChanged.connect(self._driver_changed)
        self.real_check.toggled.connect(self._real_toggled)
        return panel

    def _add_shortcuts(self):
        keys = ((Qt.Key_Space, self.toggle_play), (Qt.Key_Period, self.step), (Qt.Key_R, self.restart),
                (Qt.Key_C, lambda: self.set_driver("controller")), (Qt.Key_H, lambda: self.set_driver("keyboard")),
                (Qt.Key_N, lambda: self.set_driver("random")), (Qt.Key_Plus, lambda: self._nudge_tau(10)),
                (Qt.Key_Equal, lambda: self._nudge_tau(10)), (Qt.Key_Minus, lambda: self._nudge_tau(-10)))
        self._bind_keys(keys)

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("Space", "play / pause the dream"), (".", "one step"), ("R", "restart from a new real frame"),
                ("Arrows / WASD", "drive by hand (steer, gas, brake; Doom: left, right)"),
                ("C / H / N", "controller / human keyboard / random drives"), ("+ / −", "temperature ± 0.1")]

    # --- the open run ---------------------------------------------------------------------------------------------
    def on_run_changed(self, part: str) -> None:
        if part in ("run", "vae", "mdn", "latents", "rollouts", "controller"):
            self._update_header()
        if part == "controller":
            self._take_controller()
        elif part in ("run", "vae", "mdn") or not self.ready:
            self._take_models()     # new latents or rollouts of a running dream serve the next session

    def _update_header(self) -> None:
        self._show_run_header(self.open_run, self.ready)

    def _take_models(self) -> None:
        missing = self.open_run.missing("vae", "mdn")
        was_running = self.worker.running
        if missing:
            self.ready = False
            self.worker.stop()
            self.message.setText(f"<p><b>The Dream pane needs V and M.</b></p><p>{missing}</p>")
            self.stack.setCurrentIndex(0)
            self._finish_view()
            return
        self.ready = True
        self.game = self.open_run.game
        self.done_widget.setVisible(bool(self.open_run.mdn.predict_done))
        config = self.open_run.contents.config if self.open_run.contents is not None else {}
        self.done_threshold = float(config.get("controller", {}).get("done_threshold", 0.5))
        self.stack.setCurrentIndex(1)
        self.keys_label.setText("Arrows or WASD: ← → steer, ↑ gas, ↓ brake" if self.game == "carracing" else
                                "Arrows or A / D: move left / right")
        self._take_controller()
        self.start_session(keep_running=was_running)

    def _take_controller(self) -> None:
        usable = self.ready and not self.open_run.missing("controller") and self.open_run.controller is not None
        index = self.driver_box.findData("controller")
        self.driver_box.model().item(index).setEnabled(usable)
        self.driver_box.setItemData(index, "" if usable else self.open_run.missing("controller"), Qt.ToolTipRole)
        self.controls.update(controller=self.open_run.controller if usable else None)
        if not usable and self.driver_box.currentData() == "controller":
            self.set_driver("random")
        self._driver_changed()

    def start_session(self, keep_running: bool = False) -> None:
        """A new dream session from the current models and controls (a new episode 0)."""
        if not self.ready:
            return
        vae, mdn, game = self.open_run.vae, self.open_run.mdn, self.game
        latents = self.open_run.latents
        latent_files = latents.files if latents is not None and latents.mu.shape[1] == vae.z_size else ()
        start_frames = tuple(self.open_run.rollouts)
        seed = [self.seed_spin.value(), self.sessions]
        self.sessions += 1
        real = self.real_check.isChecked()
        self.controls.update(keys=keyboard_action(game, self.held))
        self.latest = self.drawn_frame = None
        self.recorded, self.errors, self.done_probs = [], [], []
        self.episodes = 0
        self.step_times.clear()
        session_seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        decode = self.decoder_process.decode
        self.worker.load(lambda: dream_session(vae, mdn, game, self.controls, session_seed, None, start_frames,
                                               real, decode, latent_files))
        if keep_running:
            self.worker.run()
        else:
            self.worker.step()     # show the start

    # --- controls ---------------------------------------------------------------------------------------------
    def toggle_play(self):
        self.play_button.toggle()

    def _play_toggled(self, checked: bool):
        if not self.ready:
            self.play_button.setChecked(False)
            return
        if checked:
            self.worker.run()
            self.dream_view.setFocus()
        else:
            self.worker.pause()

    def _show_running(self, running: bool):
        self._show_playing(self.play_button, running, "Play")

    def step(self):
        if self.ready:
            self.worker.step()

    def restart(self):
        """End this episode; the next one starts from a new real frame (a paused dream shows its start)."""
        if not self.ready:
            return
        self.controls.request_restart()
        if not self.worker.running:
            self.worker.step()

    def _tau_changed(self, position: int):
        tau = position / 100
        self.tau_label.setText(f"τ = {tau:.2f}")
        self.controls.update(tau=tau)

    def _nudge_tau(self, delta: int):
        self.tau_slider.setValue(self.tau_slider.value() + delta)

    @property
    def tau(self) -> float:
        return self.tau_slider.value() / 100

    def set_driver(self, driver: str) -> None:
        index = self.driver_box.findData(driver)
        if driver == "controller" and not self.driver_box.model().item(index).isEnabled():
            self.status.emit(f"No controller to drive: {self.open_run.missing('controller')}")
            return
        self.driver_box.setCurrentIndex(index)

    def _driver_changed(self, *_):
        driver = self.driver_box.currentData()
        self.controls.update(driver=driver)
        self.human_flag.setVisible(driver == "keyboard")

    def _real_toggled(self, checked: bool):
        self.real_view.setVisible(checked)
        self.error_widget.setVisible(checked)
        self.start_session(keep_running=self.worker.running)

    # --- the keyboard -----------------------------------------------------------------------------------------
    def eventFilter(self, watched, event):
        if event.type() == QEvent.FocusOut:
            self._release_keys()
        elif event.type() in (QEvent.KeyPress, QEvent.KeyRelease) and event.key() in DRIVE_KEYS:
            if not event.isAutoRepeat():
                self.drive_key(DRIVE_KEYS[event.key()], event.type() == QEvent.KeyPress)
            return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event):
        if event.key() in DRIVE_KEYS and not event.isAutoRepeat():
            self.drive_key(DRIVE_KEYS[event.key()], True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() in DRIVE_KEYS and not event.isAutoRepeat():
            self.drive_key(DRIVE_KEYS[event.key()], False)
            return
        super().keyReleaseEvent(event)

    def drive_key(self, what: str, pressed: bool) -> None:
        """A driving key went down or up: the human takes over and the worker gets the new action."""
        if pressed:
            self.held.add(what)
            if self.driver_box.currentData() != "keyboard":
                self.set_driver("keyboard")
        else:
            self.held.discard(what)
        self.controls.update(keys=keyboard_action(self.game, self.held))

    def hideEvent(self, event):
        self._release_keys()
        self.worker.pause()
        super().hideEvent(event)

    def showEvent(self, event):
        super().showEvent(event)
        self.dream_view.setFocus()

    def _release_keys(self):
        """Keys released while another window had the focus never report it: let go of them all."""
        if self.held:
            self.held.clear()
            self.controls.update(keys=keyboard_action(self.game, self.held))

    # --- snapshots --------------------------------------------------------------------------------------------
    def on_snapshots(self, batch: list[DreamFrame]):
        self.frames_made += len(batch)
        for frame in batch:
            if frame.step == 0:
                self.recorded, self.errors, self.done_probs = [], [], []
                self.episodes += 1
            if len(self.recorded) < MAX_RECORDED:
                self.recorded.append(frame)
            if frame.error is not None:
                self.errors.append((frame.step, frame.error))
            if frame.done_prob is not None:
                self.done_probs.append((frame.step, frame.done_prob))
            self.step_times.append(frame.time)
            if frame.ended:
                log.info("Dream: episode %d ended after %d steps (%s); restarting", frame.episode + 1, frame.step,
                         frame.ended)
        self.latest = batch[-1]

    def on_failed(self, message: str):
        """The session raised (a game that is not installed, a broken file): say so; without the real game the
        dream itself may still run."""
        self.status.emit(f"The dream stopped: {message}")
        if self.real_check.isChecked():
            self.real_check.setChecked(False)      # starts a session of the dream alone
            if self._view_target is not None:
                self._continue_view()
            return
        self._finish_view()

    def steps_per_second(self) -> float | None:
        """The dream's rate over its last steps (None until there are two)."""
        times = list(self.step_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def draw(self):
        frame = self.latest
        if frame is None or frame is self.drawn_frame:
            return
        self.dream_view.set_frame(frame.dream)
        self.dream_view.set_caption(f"episode {frame.episode + 1}, started from {frame.start}")
        if frame.real is not None:
            self.real_view.set_frame(frame.real)
            self.real_view.set_caption(f"real score {frame.real_score:.1f}")
            steps, errors = zip(*self.errors) if self.errors else ((), ())
            self.error_plot.set_curve("error", steps, errors)
        if self.done_widget.isVisible() or self.game == "doom":
            steps, probs = zip(*self.done_probs) if self.done_probs else ((), ())
            self.done_plot.set_curve("p(done)", steps, probs)
            self.done_plot.set_curve("threshold", [0, max(frame.step, 1)], [self.done_threshold] * 2)
        self.readout.setText(self._readout(frame))
        now = time.perf_counter()
        self.draw_times.append(now)
        rate = self.steps_per_second()
        shown = (len(self.draw_times) - 1) / (now - self.draw_times[0]) if len(self.draw_times) > 1 else None
        self.rate_label.setText("" if rate is None else
                                f"{rate:.0f} steps/s · drawn {shown or 0:.0f} fps" if self.worker.running else
                                "paused")
        self.recorded_label.setText(f"{len(self.recorded)} frames")
        self.drawn_frame = frame
        self.drawn.emit(frame)
        if self._view_target is not None and frame.step >= self._view_target:
            self.worker.pause()
            self._finish_view()

    def _readout(self, frame: DreamFrame) -> str:
        parts = [f"step <b>{frame.step}</b>"]
        if self.game == "doom":                  # a CarRacing M predicts no reward: only the real game scores
            parts.append(f"score <b>{frame.score:.0f}</b>")
        if frame.real_score is not None:
            parts.append(f"real score <b>{frame.real_score:.1f}</b>")
        parts += [f"τ {frame.tau:.2f}",
                 f"driven by {DRIVERS[frame.driver].split(' ')[0].lower() if frame.driver != 'keyboard' else 'you'}"]
        action = ", ".join(f"{value:+.2f}" for value in frame.action)
        parts.append(f"action ({action})")
        if frame.done_prob is not None:
            parts.append(f"p(done) {frame.done_prob:.2f}")
        if frame.error is not None:
            parts.append(f"error {frame.error:.4f} (z {frame.z_error:.3f})")
        if frame.ended:
            parts.append(f"<span style='color:#b00000'>ends: {frame.ended}</span>")
        return " · ".join(parts)

    # --- export -----------------------------------------------------------------------------------------------
    def view_frame(self) -> np.ndarray:
        return grab_frame(self.views if self.stack.currentIndex() == 1 else self.message)

    def can_export_animation(self) -> bool:
        return bool(self.recorded)

    def export_frames(self, size: int) -> list[np.ndarray]:
        return export_frames(self.recorded, size)

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        if not self.recorded:
            raise ConfigError("nothing to export yet: play the dream first")
        return write_animation(path, self.export_frames(int(self.size_box.currentData())),
                               fps=self.fps_spin.value(), progress=progress)

    # --- screenshots, settings, shutdown -------------------------------------------------------------------------
    def prepare_view(self, steps: int | None) -> None:
        """Dream `steps` steps (default 60) as fast as possible, then view_ready."""
        self._view_target = DEFAULT_SCREENSHOT_STEPS if steps is None else int(steps)
        self._tried_real = False
        QTimer.singleShot(0, self._continue_view)   # never before the event loop runs (the window may close)

    def _continue_view(self):
        if self._view_target is None:
            return
        if self.open_run.loading:
            QTimer.singleShot(100, self._continue_view)
            return
        if not self.ready:
            self._finish_view()
            return
        if self.driver_box.model().item(self.driver_box.findData("controller")).isEnabled():
            self.set_driver("controller")
        if not self._tried_real:       # the richest picture: the real game beside the dream, the error curve
            self._tried_real = True
            self.real_check.setChecked(True)
        self.worker.set_rate(None)
        self.worker.run()

    def _finish_view(self):
        if self._view_target is not None:
            self._view_target = None
            self.worker.set_rate(self.speed_box.currentData())
            self.view_ready.emit()

    def load_settings(self, settings: QSettings) -> None:
        self.tau_slider.setValue(int(round(100 * read(settings, "tau", 1.0, float))))
        self.cap_spin.setValue(read(settings, "cap", DEFAULT_CAP, int))
        speed = read(settings, "speed", DEFAULT_SPEED, int) or None
        self.speed_box.setCurrentIndex(SPEEDS.index(speed) if speed in SPEEDS else SPEEDS.index(DEFAULT_SPEED))
        driver = read(settings, "driver", "random", str)
        if driver in DRIVERS:
            self.set_driver(driver)
        self.fps_spin.setValue(read(settings, "fps", 30, int))
        size = read(settings, "size", 256, int)
        if size in EXPORT_SIZES:
            self.size_box.setCurrentIndex(EXPORT_SIZES.index(size))

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("tau", self.tau)
        settings.setValue("cap", self.cap_spin.value())
        settings.setValue("speed", self.speed_box.currentData() or 0)
        settings.setValue("driver", self.driver_box.currentData())
        settings.setValue("fps", self.fps_spin.value())
        settings.setValue("size", int(self.size_box.currentData()))

    def shutdown(self) -> None:
        self._timer.stop()
        self.worker.shutdown()
        self.decoder_process.close()
        self._end_own_run()
