"""The Controller pane: C driving the real game, seen through V and M, and its score beside a random policy's.

An episode runs on the pane's episode worker (wm_studio.core.train.episode.play_episode, one snapshot per game
step); the pane keeps the newest snapshot and a ~30 Hz timer draws it: the game frame, what V saw and V's
reconstruction, z as bars, M's state h as a heat strip, the actions as gauges, the running reward. Every step of
the episode is kept (for GIF/MP4 export of the whole view or of the game frames alone).

Evaluate plays N episodes of C and of a random policy on the same seeds on a second worker
(core.train.episode.score_controller: the real game through worker processes, then the dream where M can score
it), with a cancellable progress bar, and shows mean +- std and histograms of both.

The models come from the studio's open run (window.open_run): when training rewrites V, M or C, the next episode
uses the new files, and an episode that has not got going yet (or is over) starts again with them at once.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                             QSizePolicy, QSlider, QSpinBox, QSplitter, QWidget)

from wm_studio.core.errors import ConfigError
from wm_studio.core.export import Progress, write_animation
from wm_studio.core.runs import Run
from wm_studio.core.train.episode import EpisodeStep, ScoreSnapshot, mean_and_std, play_episode, score_controller
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.render import render_hidden
from wm_studio.gui.settings import read
from wm_studio.gui.views.episode_figure import EpisodeFigure, ScoreFigure
from wm_studio.gui.views.eta_bar import EtaBar
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

SPEEDS = (5, 10, 25, 50, 100, None)     # game steps per second; None: as fast as possible
DEFAULT_SPEED = 50                      # CarRacing's own frame rate
DRAW_INTERVAL_MS = 33
MAX_RECORDED = 3000                     # steps kept for export (a Doom episode is at most 2100)
RECORDED_FRAME_WIDTH = 200              # wider game frames (Doom's 320) are kept at half size for export
DEFAULT_SCREENSHOT_STEPS = 120
EXPORT_SIZES = {"960 × 540": (960, 540), "1280 × 720": (1280, 720), "1920 × 1080": (1920, 1080),
                "640 × 360": (640, 360), "game frame × 4": None}
POLICY_LABELS = {"controller": "C, the trained controller", "random": "a random policy"}


def _light(step: EpisodeStep) -> EpisodeStep:
    """The step as kept for export: a wide game frame at half size."""
    if step.frame.shape[1] > RECORDED_FRAME_WIDTH:
        return dataclasses.replace(step, frame=np.ascontiguousarray(step.frame[::2, ::2]))
    return step


class ControllerPane(Pane):
    name = "controller"
    title = "Controller"
    drawn = pyqtSignal(object)          # the EpisodeStep just drawn
    scores_shown = pyqtSignal(object)   # the ScoreSnapshot just shown

    def __init__(self, parent=None, open_run=None):
        super().__init__(parent)
        self._use_open_run(open_run, parent, remember=False)
        self.evaluation_backend = "processes"   # tests use "serial"
        self.figure = EpisodeFigure(self)
        self.scores = ScoreFigure(self)
        self.episode_worker = GeneratorWorker("controller episode", self, rate=DEFAULT_SPEED)
        self.episode_worker.snapshots.connect(self.on_steps)
        self.episode_worker.failed.connect(self.on_episode_failed)
        self.episode_worker.finished.connect(self.on_episode_finished)
        self.episode_worker.running_changed.connect(self._show_running)
        self.evaluation_worker = GeneratorWorker("controller evaluation", self)
        self.evaluation_worker.snapshots.connect(self.on_scores)
        self.evaluation_worker.failed.connect(self.on_evaluation_failed)
        self.evaluation_worker.finished.connect(self.on_evaluation_finished)
        self.latest: EpisodeStep | None = None
        self.drawn_step: EpisodeStep | None = None
        self.recorded: list[EpisodeStep] = []
        self.episode_over = False
        self.last_scores: ScoreSnapshot | None = None
        self.evaluating = False
        self._view_target: int | None = None
        self._stale = False                 # the run changed while the pane was hidden

        controls = self._scrolling(self._build_controls())
        views = QSplitter(Qt.Horizontal)
        views.addWidget(self.figure)
        views.addWidget(self.scores)
        views.setStretchFactor(0, 3)
        views.setStretchFactor(1, 2)
        views.setChildrenCollapsible(False)
        views.setSizes([640, 360])
        self.splitter = views
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls)
        layout.addWidget(views, 1)
        self._add_shortcuts()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.draw)
        self._timer.start(DRAW_INTERVAL_MS)
        self.open_run.changed.connect(self.on_run_changed)
        self._speed_changed(self.speed_slider.value())
        self.on_run_changed("run")

    # --- building ---------------------------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel, column = self._panel()
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)
        self.run_label.setMinimumWidth(260)
        self.run_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        column.addWidget(self.run_label)

        episode = QGroupBox("Episode in the real game")
        form = QFormLayout(episode)
        self.policy_box = QComboBox()
        for key, label in POLICY_LABELS.items():
            self.policy_box.addItem(label, key)
        self.policy_box.setToolTip("Who drives: the trained controller C (models/controller.npz), or uniform "
                                   "random actions (the baseline)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        self.seed_spin.setToolTip("The game seed: the track (CarRacing) or the episode (Doom)")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 100_000)
        self.steps_spin.setSpecialValueText("full episode")
        self.steps_spin.setToolTip("Stop the episode after this many steps (full episode: the game's limit)")
        form.addRow("Driver", self.policy_box)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Steps", self.steps_spin)
        self.play_button, self.step_button, self.new_button, buttons = self._transport_buttons(
            ("Play", "Play / pause the episode (Space)"), "One game step (Right arrow)",
            ("New episode", "Start again with the next seed (N)"))
        form.addRow(buttons)
        speed_row = QHBoxLayout()
        self.speed_slider = QSlider(Qt.Horizontal)
        self.speed_slider.setRange(0, len(SPEEDS) - 1)
        self.speed_slider.setPageStep(1)
        self.speed_slider.setValue(SPEEDS.index(DEFAULT_SPEED))
        self.speed_slider.setToolTip("Game steps per second (CarRacing runs at 50 in real time)")
        self.speed_label = QLabel()
        self.speed_label.setMinimumWidth(70)
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(self.speed_label)
        form.addRow("Speed", speed_row)
        column.addWidget(episode)

        evaluation = QGroupBox("Evaluate C beside a random policy")
        form = QFormLayout(evaluation)
        self.episodes_spin = QSpinBox()
        self.episodes_spin.setRange(1, 1000)
        self.episodes_spin.setValue(10)
        self.episodes_spin.setToolTip("Episodes per policy; both play the same seeds, full episodes "
                                      "(the paper: 100)")
        self.eval_seed_spin = QSpinBox()
        self.eval_seed_spin.setRange(0, 2 ** 31 - 1)
        self.eval_seed_spin.setToolTip("Seed of the evaluation's game seeds")
        form.addRow("Episodes", self.episodes_spin)
        form.addRow("Seed", self.eval_seed_spin)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Score C and a random policy over N episodes each (E); press again "
                                        "to cancel")
        form.addRow(self.evaluate_button)
        self.evaluation_bar = EtaBar("episodes")
        form.addRow(self.evaluation_bar)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.result_label)
        column.addWidget(evaluation)

        export = QGroupBox("Export the episode")
        form = QFormLayout(export)
        self.recorded_label = QLabel("0 steps")
        self.game_only_check = QCheckBox("game frames only")
        self.game_only_check.setToolTip("Export the game's frames alone instead of the whole view")
        record_row = QHBoxLayout()
        record_row.addWidget(self.game_only_check)
        record_row.addWidget(self.recorded_label, 1, Qt.AlignRight)
        form.addRow(record_row)
        export_buttons = self._build_export_controls("the episode so far", EXPORT_SIZES, fps=25)
        frames_row = QHBoxLayout()
        frames_row.addWidget(self.fps_spin)
        frames_row.addWidget(self.size_box, 1)
        form.addRow("Frames", frames_row)
        form.addRow(export_buttons)
        self.export_bar = EtaBar("frames")
        self.export_bar.hide()
        form.addRow(self.export_bar)
        column.addWidget(export)
        column.addStretch(1)

        self.policy_box.currentIndexChanged.connect(lambda _: self.new_episode(same_seed=True))
        self.seed_spin.setKeyboardTracking(False)
        self.seed_spin.valueChanged.connect(lambda _: self.new_episode(same_seed=True))
        self.steps_spin.setKeyboardTracking(False)
        self.steps_spin.valueChanged.connect(lambda _: self.new_episode(same_seed=True))
        self.play_button.toggled.connect(self._play_toggled)
        self.step_button.clicked.connect(self.step)
        self.new_button.clicked.connect(lambda: self.new_episode())
        self.speed_slider.valueChanged.connect(self._speed_changed)
        self.evaluate_button.clicked.connect(self.toggle_evaluation)
        panel.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        return panel

    def _add_shortcuts(self):
        self._bind_keys(((Qt.Key_Space, self.toggle_play), (Qt.Key_Right, self.step),
                         (Qt.Key_N, lambda: self.new_episode()), (Qt.Key_E, self.toggle_evaluation)))

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("Space", "play / pause the episode"), ("Right", "one game step"),
                ("N", "new episode (next seed)"), ("E", "evaluate C beside a random policy / cancel")]

    # --- the open run -----------------------------------------------------------------------------------------
    @property
    def policy(self) -> str:
        return self.policy_box.currentData()

    @property
    def game(self) -> str:
        return self.open_run.game

    def missing(self) -> str:
        """'' when the chosen driver can play; else what is missing, in plain words."""
        parts = ("vae", "mdn", "controller") if self.policy == "controller" else ("vae",)
        return self.open_run.missing(*parts)

    def on_run_changed(self, part: str) -> None:
        self.run_label.setText(self.open_run.describe())
        if part == "run":
            self.cancel_evaluation()
            self.scores.real.show_note("press Evaluate to score C beside a random policy")
            self.scores.dream.show_note("")
            self.result_label.setText("")
            self.last_scores = None
        if part in ("run", "mdn"):   # only an M with a done head (Doom) scores dreams: else no empty histogram
            self.scores.show_dream(bool(getattr(self.open_run.mdn, "predict_done", False)))
        if part not in ("run", "vae", "mdn", "controller"):
            return
        if not self.isVisible():
            # Training rewrites V and M every minute: a hidden pane does not reload (a game and V's decoder
            # would be made for nothing while the CPUs train); it starts its episode again when shown.
            self._stale = True
            self._update_buttons()
            return
        under_way = self.latest is not None and self.latest.done > 1 and not self.episode_over
        if part != "run" and (self.episode_worker.running or under_way):
            self.status.emit(f"{part} changed on disk: the next episode uses the new model")
            return
        self.new_episode(same_seed=True)

    def showEvent(self, event):
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.new_episode(same_seed=True)

    def _update_buttons(self) -> None:
        ready = not self.missing()
        for widget in (self.play_button, self.step_button, self.new_button):
            widget.setEnabled(ready)
        can_evaluate = self.open_run.path is not None and not self.open_run.missing("vae", "mdn", "controller")
        self.evaluate_button.setEnabled(can_evaluate or self.evaluating)
        self.evaluate_button.setText("Cancel" if self.evaluating else "Evaluate")
        self._show_recorded(len(self.recorded), "step")

    # --- the episode ------------------------------------------------------------------------------------------
    def new_episode(self, same_seed: bool = False) -> bool:
        """Start an episode (the next seed unless same_seed) and show its first step; paused."""
        if not same_seed:
            self.seed_spin.blockSignals(True)
            self.seed_spin.setValue(self.seed_spin.value() + 1)
            self.seed_spin.blockSignals(False)
        self.latest = self.drawn_step = None
        self.recorded = []
        self.episode_over = False
        problem = self.missing()
        if problem:
            self.episode_worker.stop()
            self.figure.clear_view(problem)
            self._update_buttons()
            return False
        run = Run(self.open_run.path)
        seed, policy, limit = self.seed_spin.value(), self.policy, self.steps_spin.value() or None
        self.episode_worker.load(lambda: play_episode(run, seed, policy, limit))
        self.episode_worker.step()
        self.figure.clear_view(f"starting an episode (seed {seed})…")
        self._update_buttons()
        return True

    def toggle_play(self):
        if self.play_button.isEnabled():
            self.play_button.toggle()

    def _play_toggled(self, checked: bool):
        if checked:
            if self.episode_over or self.latest is None and not self.episode_worker.busy:
                if not self.new_episode(same_seed=not self.episode_over):
                    self.play_button.setChecked(False)
                    return
            self.episode_worker.run()
        else:
            self.episode_worker.pause()

    def _show_running(self, running: bool):
        self._show_playing(self.play_button, running, "Play")

    def step(self):
        if self.episode_over:
            self.status.emit("The episode is over: press New episode (N)")
            return
        self.episode_worker.step()

    def _speed_changed(self, index: int):
        speed = SPEEDS[index]
        self.episode_worker.set_rate(speed)
        self.speed_label.setText("max" if speed is None else f"{speed} steps/s")

    def on_steps(self, batch: list[EpisodeStep]):
        for step in batch:
            if len(self.recorded) < MAX_RECORDED:
                self.recorded.append(_light(step))
        self.latest = batch[-1]
        if self.latest.finished:
            self.episode_over = True
        self._update_buttons()

    def on_episode_finished(self):
        self.episode_over = True
        if self.latest is not None:
            message = (f"Episode over after {self.latest.done} steps: total reward "
                       f"{self.latest.total_reward:.1f} ({POLICY_LABELS[self.latest.policy]}, seed "
                       f"{self.latest.seed})")
            log.info("Controller: %s", message)
            self.status.emit(message)
        self._finish_view()

    def on_episode_failed(self, message: str):
        self.figure.clear_view(f"<span style='color:#b00000'>{message}</span>")
        self.status.emit(f"Controller: {message}")
        self._finish_view()

    def draw(self):
        step = self.latest
        if step is None or step is self.drawn_step:
            return
        self.figure.show_step(step, self.game)
        self.drawn_step = step
        self.drawn.emit(step)
        if self._view_target is not None and (step.done >= self._view_target or step.finished):
            self._finish_view()

    # --- evaluation -------------------------------------------------------------------------------------------
    def toggle_evaluation(self):
        if self.evaluating:
            self.cancel_evaluation()
        else:
            self.evaluate()

    def evaluate(self, episodes: int | None = None) -> bool:
        problem = self.open_run.missing("vae", "mdn", "controller")
        if problem:
            log.error("Controller: cannot evaluate: %s", problem)
            return False
        if episodes is not None:
            self.episodes_spin.setValue(int(episodes))
        run = Run(self.open_run.path)
        count, seed, backend = self.episodes_spin.value(), self.eval_seed_spin.value(), self.evaluation_backend
        self.last_scores = None
        self.evaluating = True
        self.evaluation_bar.start()
        self.evaluation_bar.show_progress(0, 2 * count)
        self.result_label.setText("")
        self.scores.real.show_note(f"playing {count} episodes per policy…")
        self.scores.dream.show_note("")
        self.evaluation_worker.load(lambda: score_controller(run, count, seed, backend=backend))
        self.evaluation_worker.run()
        self._update_buttons()
        log.info("Controller: evaluating C and a random policy over %d episodes each", count)
        return True

    def cancel_evaluation(self):
        if not self.evaluating:
            return
        self.evaluation_worker.stop()
        self.evaluating = False
        self.evaluation_bar.reset_bar("cancelled")
        self._update_buttons()
        self.status.emit("Evaluation cancelled")

    def on_scores(self, batch: list[ScoreSnapshot]):
        if not self.evaluating:
            return
        snapshot = batch[-1]
        self.last_scores = snapshot
        note = "dreaming" if snapshot.phase == "dream" else ""
        self.evaluation_bar.show_progress(snapshot.done, snapshot.total, note)
        self.scores.show_scores(snapshot)
        self.scores_shown.emit(snapshot)
        if snapshot.real is not None:
            self.result_label.setText(self._result_text(snapshot))

    def _result_text(self, snapshot: ScoreSnapshot) -> str:
        report = snapshot.real
        rows = []
        for name, values in (("C", report.controller_rewards), ("random", report.random_rewards)):
            mean, std = mean_and_std(values)
            rows.append(f"<b>{name}</b>: {mean:.1f} ± {std:.1f}")
        text = f"Real game, {report.episodes} episodes: " + ", ".join(rows)
        if snapshot.dream_controller is not None:
            ours, theirs = mean_and_std(snapshot.dream_controller), mean_and_std(snapshot.dream_random)
            text += (f"<br>Dream (steps survived): <b>C</b>: {ours[0]:.1f} ± {ours[1]:.1f}, "
                     f"<b>random</b>: {theirs[0]:.1f} ± {theirs[1]:.1f}")
        elif snapshot.dream_note:
            text += f"<br><i>{snapshot.dream_note}</i>"
        return text

    def on_evaluation_finished(self):
        self.evaluating = False
        self._update_buttons()
        snapshot = self.last_scores
        if snapshot is not None and snapshot.real is not None:
            self.evaluation_bar.show_progress(snapshot.total, snapshot.total, "done")
            for line in snapshot.real.lines():
                log.info("Controller evaluation: %s", line)
            self.status.emit("Evaluation done: " + snapshot.real.lines()[2])

    def on_evaluation_failed(self, message: str):
        self.evaluating = False
        self.evaluation_bar.reset_bar("failed")
        self.scores.real.show_note(message)
        self._update_buttons()
        self.status.emit(f"Evaluation failed: {message}")

    # --- screenshots, export ----------------------------------------------------------------------------------
    def prepare_view(self, steps: int | None) -> None:
        """Play `steps` game steps (default 120) as fast as possible, then emit view_ready once drawn."""
        self._view_target = DEFAULT_SCREENSHOT_STEPS if steps is None else int(steps)
        if self.missing() and not self.open_run.loading:
            self._finish_view()
            return
        if self.open_run.loading:
            self.open_run.changed.connect(self._prepare_when_loaded)
            return
        self.episode_worker.step(self._view_target)

    def _prepare_when_loaded(self, part: str):
        if part != "run":
            return
        self.open_run.changed.disconnect(self._prepare_when_loaded)
        if self.missing():
            self._finish_view()
        else:
            self.episode_worker.step(self._view_target)

    def _finish_view(self):
        if self._view_target is not None:
            self._view_target = None
            QTimer.singleShot(0, self.view_ready.emit)   # never inside prepare_view(): its caller connects first

    def view_frame(self):
        return grab_frame(self.splitter)

    def can_export_animation(self) -> bool:
        return bool(self.recorded)

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        """The episode so far as a GIF or MP4: the whole view re-drawn step by step, or the game frames only."""
        steps = list(self.recorded)
        if not steps:
            raise ConfigError("nothing to export yet: play an episode first")
        size = self.size_box.currentData()
        self.export_bar.show()
        self.export_bar.start()

        def report(done, total):
            self.export_bar.show_progress(done, len(steps))
            if progress:
                progress(done, total)

        try:
            if self.game_only_check.isChecked():
                frames = [step.frame for step in steps]
                if size is None:
                    height, width = steps[0].frame.shape[:2]
                    size = (width * 4, height * 4)
            else:
                frames = render_episode(steps, self.game, size or (960, 540))
            return write_animation(path, frames, fps=self.fps_spin.value(), size=size, progress=report)
        finally:
            self.export_bar.hide()

    # --- settings and shutdown --------------------------------------------------------------------------------
    def load_settings(self, settings: QSettings) -> None:
        widgets = (self.policy_box, self.seed_spin, self.steps_spin)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            index = self.policy_box.findData(read(settings, "policy", "controller", str))
            self.policy_box.setCurrentIndex(max(0, index))
            self.seed_spin.setValue(read(settings, "seed", 0, int))
            self.steps_spin.setValue(read(settings, "steps", 0, int))
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        speed = read(settings, "speed", DEFAULT_SPEED, int) or None
        self.speed_slider.setValue(SPEEDS.index(speed) if speed in SPEEDS else SPEEDS.index(DEFAULT_SPEED))
        self.episodes_spin.setValue(read(settings, "episodes", 10, int))
        self.eval_seed_spin.setValue(read(settings, "evaluation_seed", 0, int))
        self.fps_spin.setValue(read(settings, "fps", 25, int))
        self.game_only_check.setChecked(read(settings, "game_only", False, bool))
        label = read(settings, "size", "", str)
        if label in EXPORT_SIZES:
            self.size_box.setCurrentText(label)
        self.new_episode(same_seed=True)

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("policy", self.policy)
        settings.setValue("seed", self.seed_spin.value())
        settings.setValue("steps", self.steps_spin.value())
        settings.setValue("speed", SPEEDS[self.speed_slider.value()] or 0)
        settings.setValue("episodes", self.episodes_spin.value())
        settings.setValue("evaluation_seed", self.eval_seed_spin.value())
        settings.setValue("fps", self.fps_spin.value())
        settings.setValue("game_only", self.game_only_check.isChecked())
        settings.setValue("size", self.size_box.currentText())

    def shutdown(self) -> None:
        self._timer.stop()
        self.episode_worker.shutdown()
        self.evaluation_worker.shutdown()
        self._end_own_run()


def render_episode(steps: list[EpisodeStep], game: str, size: tuple[int, int]):
    """Draw each step on a hidden EpisodeFigure of `size` (width, height) and yield it as an RGB frame."""
    figure = EpisodeFigure()
    yield from render_hidden(figure, steps, lambda step: figure.show_step(step, game), size)
