"""The Training pane: start, pause, resume and stop each stage of the open run (collect, V then encoding, M, C),
with live curves, a progress bar with ETA, and the run's checkpoints.

Every stage runs on ONE long-lived training thread (a GeneratorWorker: CUDA state is per thread), on the GPU when
there is one (V, the encoding and M; collect and C play games in worker processes). The stages are the core
generators of wm_studio.core.pipeline, so the pane, `wm-studio pipeline` and each stage's command run the same
loop: Pause stops pulling snapshots (the generator stays open), Stop closes it (it checkpoints in its `finally`),
Start after Stop resumes from the checkpoint. The newest snapshot is drawn by a ~30 Hz timer; every snapshot
extends the curves.

The stage's settings come from the run's config.json; the fields shown are written back to it when a stage
starts, so a later resume (from here or the command line) uses them too. The V and M stages rewrite
models/<stage>.npz with every checkpoint and C with every better score: the open run (window.open_run) notices
and the Latent, Dream and Controller panes reload without a restart. What each stage has done so far is read
back from its newest checkpoint (wm_studio.core.train.history) on a loader thread when a run opens.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QEventLoop, QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QApplication, QComboBox, QDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                             QLabel, QPushButton, QSizePolicy, QStackedWidget, QTreeWidget, QTreeWidgetItem,
                             QVBoxLayout, QWidget)

from wm_studio.core.device import resolve_device
from wm_studio.core.errors import WmStudioError
from wm_studio.core.presets import preset
from wm_studio.core.runs import Run
from wm_studio.core.stages import (STAGE_BY_KEY, STAGES, Stage, check_settings, describe_files, run_stage,
                                   stage_progress, why_not_trainable)
from wm_studio.gui.mailbox import MailboxThread
from wm_studio.gui.new_run import NEW_RUN_PARENT_KEY, NewRunDialog, proposed_run_folder
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.settings import read, studio_settings
from wm_studio.gui.views.eta_bar import EtaBar
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.views.stage_form import StageForm
from wm_studio.gui.views.training_figures import CollectFigure, ControllerFigure, MdnFigure, VaeFigure
from wm_studio.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

DRAW_INTERVAL_MS = 33
FILES_INTERVAL_MS = 2000          # how often the checkpoint list looks at the disk
SHUTDOWN_SLICE_MS = 50            # closing: wait for the stage this long, then let the window repaint
CONTROLS_WIDTH = 420


DEVICES = {"auto": "GPU if there is one, else CPU", "cpu": "CPU", "gpu": "GPU"}


class TrainingPane(Pane):
    name = "training"
    title = "Training"
    drawn = pyqtSignal(object)            # the snapshot just drawn
    device_in_use = pyqtSignal(str)       # for the status bar
    histories_loaded = pyqtSignal()

    def __init__(self, parent=None, open_run=None):
        super().__init__(parent)
        self._use_open_run(open_run, parent, remember=False)
        self.backend = "processes"        # collect and C: worker processes (tests use "serial")
        self.workers: int | None = None   # None: every core
        self.worker = GeneratorWorker("training", self)   # THE training thread
        self.worker.snapshots.connect(self.on_snapshots)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.worker.running_changed.connect(lambda _: self._update_controls())
        self.loader = MailboxThread("training history", lambda request: stage_progress(*request), self)
        self.loader.done.connect(self._histories_loaded)
        self.active: Stage | None = None  # the stage loaded in the training thread
        self.active_run: Path | None = None
        self.paused = False
        self.latest: dict[str, Any] = {}  # newest snapshot (live or read back) per stage
        self.finished_stages: set[str] = set()
        self.errors: dict[str, str] = {}
        self.drawn_snapshot = None
        self.snapshot_count = 0
        self.collect_rewards: list[float] = []
        self._snapshot_step: str | None = None      # the step of the last snapshot (a new one restarts the ETA)
        self._files_seen: dict[str, tuple] = {}     # per stage: the files last seen on disk
        self._files_shown: tuple | None = None       # (stage, files) the list shows
        self._view_pending = False
        self._closing = False
        self.figures = {"collect": CollectFigure(self), "vae": VaeFigure(self), "mdn": MdnFigure(self),
                        "controller": ControllerFigure(self)}

        controls = self._scrolling(self._build_controls(), CONTROLS_WIDTH)
        self.figure_stack = QStackedWidget()
        for stage in STAGES:
            self.figure_stack.addWidget(self.figures[stage.key])
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.figure_stack, 1)
        files_box = QGroupBox("Checkpoints and model of this stage (newest first)")
        files_layout = QVBoxLayout(files_box)
        self.files = QTreeWidget()
        self.files.setHeaderLabels(["file", "step", "written"])
        self.files.setRootIsDecorated(False)
        self.files.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.files.setMaximumHeight(110)
        files_layout.addWidget(self.files)
        right.addWidget(files_box)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls)
        layout.addLayout(right, 1)
        self._add_shortcuts()
        self._draw_timer = QTimer(self)
        self._draw_timer.timeout.connect(self.draw)
        self._draw_timer.start(DRAW_INTERVAL_MS)
        self._files_timer = QTimer(self)
        self._files_timer.timeout.connect(self.refresh_files)
        self._files_timer.start(FILES_INTERVAL_MS)
        self.open_run.changed.connect(self.on_run_changed)
        self.select_stage("vae")
        self.on_run_changed("run")

    # --- building ---------------------------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        panel, column = self._panel()
        run_box = QGroupBox("Run")
        run_layout = QVBoxLayout(run_box)
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)
        self.run_label.setMinimumWidth(280)
        self.run_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        run_layout.addWidget(self.run_label)
        self.new_run_button = QPushButton("New run…")
        self.new_run_button.setToolTip("Make a run folder from a preset (quick, paper, tiny) and open it")
        self.new_run_button.clicked.connect(self.new_run_dialog)
        run_layout.addWidget(self.new_run_button)
        column.addWidget(run_box)

        stages = QGroupBox("Stages")
        stage_layout = QVBoxLayout(stages)
        self.stage_list = QTreeWidget()
        self.stage_list.setHeaderLabels(["stage", "status"])
        self.stage_list.setRootIsDecorated(False)
        self.stage_list.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.stage_items: dict[str, QTreeWidgetItem] = {}
        for stage in STAGES:
            item = QTreeWidgetItem([stage.label, ""])
            item.setData(0, Qt.UserRole, stage.key)
            self.stage_list.addTopLevelItem(item)
            self.stage_items[stage.key] = item
        self.stage_list.setFixedHeight(self.stage_list.sizeHintForRow(0) * (len(STAGES) + 1) + 12)
        self.stage_list.currentItemChanged.connect(
            lambda item, _: item is not None and self.select_stage(item.data(0, Qt.UserRole)))
        stage_layout.addWidget(self.stage_list)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start (or resume from its checkpoint) the selected stage (Ctrl+Return)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause: the stage waits where it is (Ctrl+P)")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Go on after a pause (Ctrl+P)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop: the stage saves a checkpoint; Start resumes it (Ctrl+.)")
        for button in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(button)
        stage_layout.addLayout(buttons)
        self.progress = EtaBar()
        stage_layout.addWidget(self.progress)
        self.stage_note = QLabel("")
        self.stage_note.setWordWrap(True)
        stage_layout.addWidget(self.stage_note)
        column.addWidget(stages)

        self.settings_box = QGroupBox("Settings")
        self.settings_box.setToolTip("Written to the run's config.json when the stage starts, so a resume (here "
                                     "or from the command line) uses them too")
        settings_layout = QVBoxLayout(self.settings_box)
        self.field_stack = QStackedWidget()
        self.forms = {stage.key: StageForm(stage) for stage in STAGES}
        for stage in STAGES:
            self.field_stack.addWidget(self.forms[stage.key])
        settings_layout.addWidget(self.field_stack)
        device_row = QFormLayout()
        self.device_box = QComboBox()
        for key, label in DEVICES.items():
            self.device_box.addItem(label, key)
        self.device_box.setToolTip("Where V and M train (collect and C play games in worker processes on the "
                                   "CPU)")
        device_row.addRow("Device", self.device_box)
        settings_layout.addLayout(device_row)
        column.addWidget(self.settings_box)
        column.addStretch(1)

        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        panel.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        return panel

    def _add_shortcuts(self):
        self._bind_keys((("Ctrl+Return", lambda: self.start()), ("Ctrl+P", self.toggle_pause),
                         ("Ctrl+.", self.stop)))

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("Ctrl+Return", "start / resume the selected stage"), ("Ctrl+P", "pause / resume"),
                ("Ctrl+.", "stop (the stage saves a checkpoint)")]

    # --- the open run -----------------------------------------------------------------------------------------
    @property
    def selected(self) -> Stage:
        item = self.stage_list.currentItem()
        return STAGE_BY_KEY[item.data(0, Qt.UserRole)] if item is not None else STAGES[1]

    def select_stage(self, key: str) -> None:
        stage = STAGE_BY_KEY[key]
        item = self.stage_items[key]
        if self.stage_list.currentItem() is not item:
            self.stage_list.setCurrentItem(item)   # comes back here through currentItemChanged
            return
        self.field_stack.setCurrentIndex(STAGES.index(stage))
        self.figure_stack.setCurrentIndex(STAGES.index(stage))
        self.settings_box.setTitle(f"Settings of {stage.label.split(':')[0]} (saved at Start)")
        self.drawn_snapshot = None
        self.refresh_files()
        self._update_controls()

    def why_not_trainable(self) -> str:
        """'' when the open run can be trained here; else why not."""
        return why_not_trainable(self.open_run.path)

    def on_run_changed(self, part: str) -> None:
        self.run_label.setText(self.open_run.describe())
        if part != "run":
            return
        if self.active is not None and self.open_run.path != self.active_run:
            log.warning("Training: %s goes on training in the background in %s (the studio now shows %s)",
                        self.active.label, self.active_run, self.open_run.path)
        live = self.active is not None and self.open_run.path == self.active_run
        self.latest = {self.active.key: self.latest[self.active.key]} if live and self.active.key in self.latest \
            else {}
        if not (live and self.active.key == "collect"):
            # The rewards drawn belong to the run that was open: a new run's collect must not extend them.
            self.collect_rewards = []
        self.finished_stages.clear()
        self.errors.clear()
        self._files_seen.clear()
        self._files_shown = None
        self.drawn_snapshot = None
        problem = self.why_not_trainable()
        for key, figure in self.figures.items():
            if key not in self.latest:
                figure.show_message(problem or "not started yet")
        self.figures["controller"].reset_path()
        self._fill_fields()
        self.reload_histories()
        self.refresh_files()
        self._update_controls()

    def _fill_fields(self) -> None:
        config: dict = preset("carracing", "quick")    # what a new run would get, until a run is open
        if self.open_run.path is not None and (self.open_run.path / "config.json").is_file():
            try:
                config = Run(self.open_run.path).config
            except WmStudioError as exc:
                log.error("Training: %s", exc)
        for stage in STAGES:
            section = config.get(stage.key, {}) if isinstance(config.get(stage.key), dict) else {}
            self.forms[stage.key].fill(section)

    def set_field(self, stage: str, key: str, value) -> None:
        """Put a value into a settings field (what a user types; tests use it)."""
        self.forms[stage].set_value(key, value)

    def new_run_dialog(self) -> None:
        dialog = NewRunDialog(self, str(proposed_run_folder()))
        if dialog.exec_() != QDialog.Accepted:
            return
        folder, game, preset_name = dialog.values()
        self.new_run(folder, game, preset_name)

    def new_run(self, folder, game: str = "carracing", preset_name: str = "quick") -> bool:
        if not str(folder):
            log.error("Training: choose a folder for the new run")
            return False
        try:
            Run.prepare(folder, game, preset_name)
            self.open_run.open(folder)
        except WmStudioError as exc:
            log.error("Training: cannot make a run in %s: %s", folder, exc)
            return False
        studio_settings().setValue(NEW_RUN_PARENT_KEY, str(Path(folder).expanduser().resolve().parent))
        log.info("Training: made a %s %s run in %s; start with Collect", preset_name, game, folder)
        self.select_stage("collect")
        return True

    def reload_histories(self, stages=None) -> None:
        if self.open_run.path is None or not (self.open_run.path / "config.json").is_file():
            return
        self.loader.post((self.open_run.path, tuple(stages or STAGE_BY_KEY)))

    def _histories_loaded(self, request, result: dict) -> None:
        root, _ = request
        if root != self.open_run.path:
            return
        for key, (snapshot, finished, error) in result.items():
            if self.active is not None and self.active.key == key and root == self.active_run:
                continue   # the live snapshots say more
            if error:
                self.errors[key] = error
            else:
                self.errors.pop(key, None)
            if finished:
                self.finished_stages.add(key)
            else:
                self.finished_stages.discard(key)
            if snapshot is not None:
                self.latest[key] = snapshot
                if key == "controller":
                    self.figures["controller"].reset_path()
                    self.figures["controller"].add_mean(snapshot.mean_params)
                if key == "collect":
                    self.collect_rewards = list(snapshot.rewards)
        self.drawn_snapshot = None
        self._update_controls()
        self.histories_loaded.emit()
        if self._view_pending:
            self._view_pending = False
            QTimer.singleShot(100, self.view_ready.emit)

    # --- run control ------------------------------------------------------------------------------------------
    def start(self, stage: str | Stage | None = None) -> bool:
        """Start (or resume from its checkpoint) a stage on the training thread with the fields' settings."""
        stage = STAGE_BY_KEY[stage] if isinstance(stage, str) else (stage or self.selected)
        if self.active is not None:
            log.error("Training: %s is %s; stop it before starting %s", self.active.label,
                      "paused" if self.paused else "running", stage.label)
            return False
        problem = self.why_not_trainable()
        if problem:
            log.error("Training: %s", problem)
            return False
        run = Run(self.open_run.path)
        try:
            values = self.forms[stage.key].values()
            section = {**run.config.get(stage.key, {}), **values}
            check_settings(stage.key, {**run.config, stage.key: section})   # nothing bad reaches config.json
            run.update_config(**{stage.key: section})
        except WmStudioError as exc:
            log.error("Training: %s", exc)
            return False
        device = resolve_device(self.device_box.currentData())
        if device.notice and stage.uses_device:
            level = logging.INFO if self.device_box.currentData() == "auto" else logging.WARNING
            log.log(level, "Training: %s", device.notice)
        backend, workers = self.backend, self.workers
        self.worker.load(lambda: run_stage(run, stage, device, backend, workers))
        self.worker.run()
        self.active, self.active_run, self.paused = stage, run.root, False
        self.finished_stages.discard(stage.key)
        self.errors.pop(stage.key, None)
        self.snapshot_count = 0
        self._snapshot_step = None
        if stage.key == "controller":
            self.figures["controller"].reset_path()
        self.progress.start(stage.unit)
        self.progress.setFormat(f"starting {stage.label}…")
        where = device.describe() if stage.uses_device else \
            f"CPU worker processes ({self.workers or os.cpu_count()})" if self.backend == "processes" else "CPU"
        self.device_in_use.emit(f"Training {stage.label.split(':')[0]} on {where}")
        log.info("Training: started %s in %s on %s (%s)", stage.label, run.root, where,
                 ", ".join(f"{k} {v}" for k, v in values.items()))
        self.select_stage(stage.key)
        self._update_controls()
        return True

    def pause(self) -> None:
        if self.active is None or self.paused:
            return
        self.worker.pause()
        self.paused = True
        log.info("Training: paused %s", self.active.label)
        self._update_controls()

    def resume(self) -> None:
        if self.active is None or not self.paused:
            return
        self.worker.run()
        self.paused = False
        log.info("Training: resumed %s", self.active.label)
        self._update_controls()

    def toggle_pause(self) -> None:
        if self.paused:
            self.resume()
        else:
            self.pause()

    def stop(self) -> None:
        """Close the stage's generator on the training thread: it writes a checkpoint; Start resumes it."""
        if self.active is None:
            return
        stage = self.active
        self.worker.stop()
        self._end_stage()
        self.progress.setFormat(f"stopped: {stage.label} saved its progress; Start resumes it")
        log.info("Training: stopped %s; its checkpoint lets Start resume it", stage.label)
        QTimer.singleShot(1500, lambda: self.reload_histories([stage.key]))

    def _end_stage(self) -> None:
        self.active, self.active_run, self.paused = None, None, False
        self.device_in_use.emit(resolve_device("auto").describe())
        self._update_controls()

    @property
    def training(self) -> bool:
        return self.active is not None

    def close_question(self) -> str:
        """What to ask before the window closes ('' when nothing is training)."""
        if self.active is None:
            return ""
        snapshot = self.latest.get(self.active.key)
        where = f" ({snapshot.done} / {snapshot.total} {self.active.unit})" if snapshot is not None else ""
        state = "paused" if self.paused else "training"
        return (f"{self.active.label} is {state}{where}. Stop it and quit? It saves a checkpoint first, and "
                f"Start resumes it next time.")

    def _update_controls(self) -> None:
        stage = self.selected
        problem = self.why_not_trainable()
        mine = self.active is not None and self.active.key == stage.key
        self.start_button.setEnabled(self.active is None and not problem)
        self.pause_button.setEnabled(mine and not self.paused)
        self.resume_button.setEnabled(mine and self.paused)
        self.stop_button.setEnabled(mine)
        self.new_run_button.setEnabled(self.active is None)
        self.forms[stage.key].set_editable(not mine)
        if problem:
            note = problem
        elif self.active is not None and not mine:
            note = f"{self.active.label} is {'paused' if self.paused else 'running'}: stop it to start this stage."
        elif stage.key in self.errors and not mine:
            note = self.errors[stage.key]
        else:
            note = ""
        self.stage_note.setText(note)
        for key, item in self.stage_items.items():
            item.setText(1, self._status_text(key))
        if self.active is None:
            snapshot = self.latest.get(stage.key)
            if snapshot is None:
                self.progress.reset_bar("not started" if not problem else "")
            else:
                self.progress.setRange(0, max(snapshot.total, 1))
                self.progress.setValue(min(snapshot.done, max(snapshot.total, 1)))
                self.progress.setFormat(f"{self._status_text(stage.key)}: {snapshot.done} / {snapshot.total} "
                                        f"{stage.unit}")

    def _status_text(self, key: str) -> str:
        snapshot = self.latest.get(key)
        if self.active is not None and self.active.key == key:
            state = "paused" if self.paused else "running"
        elif key in self.finished_stages:
            state = "done"
        elif key in self.errors:
            state = "cannot start"
        elif snapshot is not None and snapshot.done:
            state = "stopped"
        else:
            return "not started"
        if snapshot is not None and snapshot.total:
            return f"{state}, {snapshot.done / snapshot.total:.0%}"
        return state

    # --- snapshots --------------------------------------------------------------------------------------------
    def on_snapshots(self, batch: list) -> None:
        if self.active is None:
            return   # a stage stopped a moment ago: its last snapshots are of no use
        for snapshot in batch:
            if snapshot.step != self._snapshot_step:
                self._snapshot_step = snapshot.step
                self.progress.start("rollouts encoded" if snapshot.step == "encode" else self.active.unit)
            if snapshot.step == "collect" and snapshot.last_index is not None:
                self.collect_rewards.append(snapshot.reward)
            elif snapshot.step == "controller":
                self.figures["controller"].add_mean(snapshot.mean_params)
        self.snapshot_count += len(batch)
        snapshot = batch[-1]
        encoding = snapshot.step == "encode"
        self.latest["encode" if encoding else self.active.key] = snapshot
        self.progress.show_progress(snapshot.done, snapshot.total, "encoding the rollouts" if encoding else "")
        self.stage_items[self.active.key].setText(1, self._status_text(self.active.key))

    def on_finished(self) -> None:
        stage = self.active
        if stage is None:
            return
        snapshot = self.latest.get(stage.key)
        self.finished_stages.add(stage.key)
        self._end_stage()
        summary = snapshot.summary() if snapshot is not None else "nothing left to do"
        if self.snapshot_count == 0:
            summary = "already done: raise its numbers (epochs, generations, rollouts) to train more"
        log.info("Training: %s finished: %s", stage.label, summary)
        self.status.emit(f"{stage.label} finished")
        self.progress.setFormat(f"done: {summary}")
        self.reload_histories([stage.key])

    def on_failed(self, message: str) -> None:
        stage = self.active
        if stage is not None:
            self.errors[stage.key] = message
        self._end_stage()
        self.progress.reset_bar("failed")
        self.status.emit(f"Training failed: {message}")

    def draw(self) -> None:
        stage = self.selected
        snapshot = self.latest.get(stage.key)
        encoding = self.latest.get("encode") if stage.key == "vae" else None
        drawn = self.drawn_snapshot
        if snapshot is None or (drawn is not None and drawn[0] is snapshot and drawn[1] is encoding):
            return
        self.drawn_snapshot = (snapshot, encoding)
        heading = self._heading(stage, snapshot)
        figure = self.figures[stage.key]
        if stage.key == "collect":
            figure.draw(self.collect_rewards, heading)
        else:
            figure.draw(snapshot, heading)
        if encoding is not None and self.active is not None and self.active.key == "vae":
            figure.title.setText(f"{heading}<br>encoding: {encoding.summary()}")
        self.drawn.emit(snapshot)

    def _heading(self, stage: Stage, snapshot) -> str:
        live = self.active is not None and self.active.key == stage.key
        where = "live" if live else "from the newest checkpoint"
        if snapshot.step == "collect":
            where = "live" if live else "from metrics/collect.jsonl"
        return f"<b>{stage.label}</b> ({where})<br>{snapshot.summary()}"

    # --- files ------------------------------------------------------------------------------------------------
    def refresh_files(self) -> None:
        """The selected stage's checkpoints and model file; a stage that wrote new ones while not training here
        (another process, or a stop just now) has its history read again."""
        path = self.open_run.path
        stage = self.selected.key
        if path is None or not (path / "config.json").is_file():
            self.files.clear()
            return
        run = Run(path)
        rows = describe_files(run, stage)
        stamp = tuple((name, modified) for name, _, modified, _ in rows)
        if (stage, stamp) == self._files_shown:
            return
        changed = stage in self._files_seen and stamp != self._files_seen[stage]
        self._files_seen[stage] = stamp
        self._files_shown = (stage, stamp)
        self.files.clear()
        for name, step, modified, file_path in rows:
            item = QTreeWidgetItem([name, step, modified])
            item.setToolTip(0, str(file_path))
            self.files.addTopLevelItem(item)
        if changed and not (self.active is not None and self.active.key == stage):
            self.reload_histories([stage])

    # --- screenshots, export ----------------------------------------------------------------------------------
    def prepare_view(self, steps: int | None) -> None:
        """Show the open run's stages as far as they have gone (read back on the loader thread), then view_ready.
        Training is never started for a screenshot."""
        if self.open_run.path is None and not self.open_run.loading:
            QTimer.singleShot(0, self.view_ready.emit)
            return
        self._view_pending = True
        if not self.open_run.loading:
            self.reload_histories()

    def view_frame(self):
        return grab_frame(self.figure_stack.currentWidget())

    # --- settings and shutdown --------------------------------------------------------------------------------
    def load_settings(self, settings: QSettings) -> None:
        key = read(settings, "stage", "vae", str)
        self.select_stage(key if key in STAGE_BY_KEY else "vae")
        index = self.device_box.findData(read(settings, "device", "auto", str))
        self.device_box.setCurrentIndex(max(0, index))

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("stage", self.selected.key)
        settings.setValue("device", self.device_box.currentData())

    def shutdown(self) -> None:
        """Stop the stage (it checkpoints on the training thread) and wait for it, repainting meanwhile."""
        if self._closing:
            return
        self._closing = True
        self._draw_timer.stop()
        self._files_timer.stop()
        if self.active is not None:
            log.info("Training: stopping %s and saving its progress…", self.active.label)
        started = time.monotonic()
        while not self.worker.shutdown(SHUTDOWN_SLICE_MS):
            QApplication.processEvents(QEventLoop.ExcludeUserInputEvents)
        if self.active is not None:
            log.info("Training: %s saved in %.1f s", self.active.label, time.monotonic() - started)
            self.active = None
        self.loader.shutdown()
        self._end_own_run()
