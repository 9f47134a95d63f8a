"""The studio's main window: one tab per pane, a log dock, a status bar with the compute device, and menus.

Panes are listed in PANE_TYPES; each is a wm_studio.gui.panes.base.Pane. Closing the window shuts every pane's
workers down (and waits for them), then saves the window's and the panes' settings.
"""
from __future__ import annotations

import gc
import html
import logging
import re
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget

from wm_studio.core.device import resolve_device
from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.export import write_png
from wm_studio.core.runs import BUNDLED_MODELS
from wm_studio.gui.log_dock import LogDock
from wm_studio.gui.open_run import OpenRun, recent_runs
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.panes.controller import ControllerPane
from wm_studio.gui.panes.dream import DreamPane
from wm_studio.gui.panes.evolution import EvolutionPane
from wm_studio.gui.panes.latent import LatentPane
from wm_studio.gui.panes.training import TrainingPane
from wm_studio.gui.settings import APPLICATION_NAME, studio_settings
from wm_studio.gui.style import studio_icon
from wm_studio.gui.views.grab import grab_frame

log = logging.getLogger(__name__)

PANE_TYPES: list[type[Pane]] = [EvolutionPane, LatentPane, DreamPane, ControllerPane, TrainingPane]
WINDOW_SIZE = (1400, 900)
SCREENSHOT_TIMEOUT_MS = 120_000
ERROR_STYLE = "QStatusBar { color: #b00000; }"


class MainWindow(QMainWindow):
    screenshot_saved = pyqtSignal(str)

    def __init__(self, pane: str | None = None, persistent: bool = True, run=None, open_at_start: bool = True):
        """pane: the name of the pane to show first. persistent=False (screenshots, tests of defaults) neither
        reads nor writes settings. run: a run folder to open; otherwise the last run (persistent only), else the
        bundled default model (open_at_start=False: none)."""
        names = [pane_type.name for pane_type in PANE_TYPES]
        if pane is not None and pane not in names:
            raise ConfigError(f"unknown pane {pane!r}: choose one of {', '.join(names)}")
        super().__init__()
        self.persistent = persistent
        self.setWindowTitle(APPLICATION_NAME)
        self.setWindowIcon(studio_icon())
        self.setObjectName("main-window")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.log_dock = LogDock(self)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.log_dock)
        self.log_dock.error_logged.connect(self.show_error)
        self.panes: dict[str, Pane] = {}
        self.open_run = OpenRun(self, remember=persistent)   # before the panes: they find it as parent.open_run
        self.open_run.changed.connect(self._show_run)
        try:
            for pane_type in PANE_TYPES:
                instance = pane_type(self)
                self.panes[instance.name] = instance
                self.tabs.addTab(instance, instance.title)
                instance.status.connect(self.show_status)
        except BaseException:
            self._shutdown_panes()  # no worker thread may outlive a window that failed to build
            raise
        device = resolve_device("auto")
        self.device_label = QLabel(device.describe())
        self.device_label.setToolTip("Where training runs (wm-studio --info lists the whole stack)"
                                     + (f"\n{device.notice}" if device.notice else ""))
        self.statusBar().addPermanentWidget(self.device_label)
        for instance in self.panes.values():   # the Training pane says what it trains on while it does
            if hasattr(instance, "device_in_use"):
                instance.device_in_use.connect(self.device_label.setText)
        self._build_menus()
        self.resize(*WINDOW_SIZE)
        self.resizeDocks([self.log_dock], [110], Qt.Vertical)
        self.screenshot_result: int | None = None
        if persistent:
            self._restore()
        if pane is not None:
            self.select_pane(pane)
        if open_at_start:
            self.open_run.open_at_start(run, restore=persistent)
        # The tens of thousands of objects made so far (Qt wrappers, pyqtgraph, Chainer, numpy) live as long as
        # the window: keep them out of the garbage collector's full passes, which otherwise stall the GUI thread
        # for ~45 ms now and then (benchmarks/bench_studio_responsiveness.py measures it).
        gc.freeze()
        log.info("World Models Studio ready (%s)", self.device_label.text())

    # --- panes ------------------------------------------------------------------------------------------------
    def select_pane(self, name: str) -> Pane:
        if name not in self.panes:
            raise ConfigError(f"unknown pane {name!r}: choose one of {', '.join(self.panes)}")
        self.tabs.setCurrentWidget(self.panes[name])
        return self.panes[name]

    def current_pane(self) -> Pane:
        return self.tabs.currentWidget()

    # --- menus ------------------------------------------------------------------------------------------------
    def _action(self, menu, text, slot, shortcut=None, tip=None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self):
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open run…", self.open_run_dialog, QKeySequence.Open,
                     "Open a run folder (its models, rollouts and latents)")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action(file_menu, "Open the bundled &CarRacing model", lambda: self._open_default("carracing"),
                     tip="Open the CarRacing model that comes with the studio (resources/default_model)")
        self._action(file_menu, "Open the bundled &Doom model", lambda: self._open_default("doom"),
                     tip="Open the Doom Take Cover model that comes with the studio, its C trained only in M's "
                         "dream (resources/doom_model)")
        file_menu.addSeparator()
        self._action(file_menu, "Save &PNG of the view…", lambda: self.current_pane().save_png_dialog(),
                     "Ctrl+S", "Save a picture of the current pane's view")
        self._action(file_menu, "Export &GIF…", lambda: self.current_pane().export_animation_dialog(".gif"),
                     "Ctrl+E", "Export what the current pane recorded as a GIF animation")
        self._action(file_menu, "Export &MP4…", lambda: self.current_pane().export_animation_dialog(".mp4"),
                     "Ctrl+Shift+E", "Export what the current pane recorded as an MP4 video")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        view_menu = self.menuBar().addMenu("&View")
        for index, pane in enumerate(self.panes.values(), start=1):
            self._action(view_menu, pane.title, lambda _=False, p=pane: self.tabs.setCurrentWidget(p),
                         f"Ctrl+{index}")
        view_menu.addSeparator()
        log_action = self.log_dock.toggleViewAction()
        log_action.setShortcut(QKeySequence("Ctrl+L"))
        view_menu.addAction(log_action)

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, QKeySequence.HelpContents)
        self._action(help_menu, "&About World Models Studio", self.show_about)

    def open_run_dialog(self):
        start = str(self.open_run.path.parent) if self.open_run.path else str(Path.cwd())
        folder = QFileDialog.getExistingDirectory(self, "Open a run folder", start)
        if folder:
            self.open_run_folder(folder)

    def open_run_folder(self, folder) -> bool:
        try:
            self.open_run.open(folder)
        except WmStudioError as exc:
            log.error("Cannot open %s: %s", folder, exc)
            return False
        return True

    def _open_default(self, game: str):
        if not self.open_run.open_default(game):
            log.error("This installation has no bundled %s model (resources/%s); open a run folder",
                      "CarRacing" if game == "carracing" else "Doom", BUNDLED_MODELS[game].name)

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        runs = recent_runs()
        for path in runs:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_run_folder(p))
        if not runs:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def _show_run(self, part: str):
        if part == "run":
            # The run first and the studio's name last: Qt appends the application's display name to a title
            # that does not already end with it (on X11, Wayland, Windows), which doubled it.
            self.setWindowTitle(f"{self.open_run.path.name} — {APPLICATION_NAME}" if self.open_run.path
                                else APPLICATION_NAME)

    def shortcuts_text(self) -> str:
        rows = [("Ctrl+O", "open a run folder"), ("Ctrl+S", "save a PNG of the view"),
                ("Ctrl+E / Ctrl+Shift+E", "export what the pane recorded as GIF / MP4"),
                ("Ctrl+1…", "switch pane"), ("Ctrl+L", "show / hide the log"), ("F1", "this list"),
                ("Ctrl+Q", "quit")]
        for pane in self.panes.values():
            rows += [(key, f"{pane.title}: {what}") for key, what in pane.shortcuts()]
        return "\n".join(f"{key:<24} {what}" for key, what in rows)

    def show_shortcuts(self):
        box = QMessageBox(QMessageBox.Information, "Keyboard shortcuts", "Keyboard shortcuts", parent=self)
        box.setInformativeText(f"<pre>{html.escape(self.shortcuts_text())}</pre>")
        box.exec_()

    def about_html(self) -> str:
        from wm_studio.info import versions
        rows = "".join(f"<tr><td><b>{html.escape(name)}</b></td>"
                       f"<td>{keep_commands_whole(html.escape(value))}</td></tr>" for name, value in versions().items())
        return ("<p><b>World Models Studio</b>: Ha &amp; Schmidhuber's World Models (V, M, C) end to end, "
                f"with CMA-ES of our own.</p><table cellspacing='6'>{rows}</table>")

    def show_about(self):
        QMessageBox.about(self, f"About {APPLICATION_NAME}", self.about_html())

    # --- status -----------------------------------------------------------------------------------------------
    def show_status(self, message: str):
        self.statusBar().setStyleSheet("")
        self.statusBar().showMessage(message, 8000)

    def show_error(self, message: str):
        """Errors are logged (the log dock shows the details) and repeated in red in the status bar."""
        self.statusBar().setStyleSheet(ERROR_STYLE)
        self.statusBar().showMessage(message, 15000)
        self.log_dock.show()

    # --- screenshots ------------------------------------------------------------------------------------------
    def capture_when_ready(self, path, steps: int | None) -> None:
        """Let the current pane prepare its view (e.g. run `steps` generations), save a PNG of the whole window
        to path, and close the window. screenshot_result becomes 0 (saved) or 1 (failed)."""
        pane = self.current_pane()
        timeout = QTimer(self)
        timeout.setSingleShot(True)

        def capture():
            timeout.stop()
            pane.view_ready.disconnect(capture)
            self.screenshot_result = self._save_screenshot(Path(path))
            self.close()

        def give_up():
            log.error("The %s pane was not ready after %d s; saving the window as it is", pane.title,
                      SCREENSHOT_TIMEOUT_MS // 1000)
            capture()

        pane.view_ready.connect(capture)
        timeout.timeout.connect(give_up)
        timeout.start(SCREENSHOT_TIMEOUT_MS)
        pane.prepare_view(steps)

    def _save_screenshot(self, path: Path) -> int:
        try:
            write_png(path, grab_frame(self))
        except (OSError, WmStudioError) as exc:
            log.error("Could not save %s: %s", path, exc)
            return 1
        self.screenshot_saved.emit(str(path))
        return 0

    # --- settings and closing ---------------------------------------------------------------------------------
    def _restore(self):
        settings = studio_settings()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        for name, pane in self.panes.items():
            settings.beginGroup(name)
            pane.load_settings(settings)
            settings.endGroup()
        current = settings.value("window/pane")
        if current in self.panes:
            self.tabs.setCurrentWidget(self.panes[current])

    def save_settings(self):
        settings = studio_settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/pane", self.current_pane().name)
        for name, pane in self.panes.items():
            settings.beginGroup(name)
            pane.save_settings(settings)
            settings.endGroup()
        settings.sync()

    def _shutdown_panes(self):
        for pane in self.panes.values():
            try:   # one pane failing to stop must not leave the others' threads (and training) running
                pane.shutdown()
            except Exception:
                log.exception("Stopping the %s pane failed", pane.title)
        self.open_run.shutdown()
        self.log_dock.detach()

    def confirm_close(self, questions: list[str]) -> bool:
        """Ask before closing while a pane is busy (training); True: close."""
        answer = QMessageBox.question(self, "Quit while training?", "\n\n".join(questions),
                                      QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Yes

    def closeEvent(self, event):
        questions = [q for q in (getattr(p, "close_question", lambda: "")() for p in self.panes.values()) if q]
        if questions and self.isVisible() and not self.confirm_close(questions):
            event.ignore()
            return
        self._shutdown_panes()
        if self.persistent:
            self.save_settings()
        event.accept()


INSTALL_COMMAND = re.compile(r"\s*\((pip install [^)]*)\)")


def keep_commands_whole(text: str) -> str:
    """Escaped text with each "(pip install ...)" in it moved to a line of its own that never breaks: a command
    broken across lines cannot be copied (<nobr> is not enough: Qt still breaks after the "-" of "-e")."""
    commands = INSTALL_COMMAND.findall(text)
    return INSTALL_COMMAND.sub("", text) + "".join(
        f"<p style='white-space:pre; margin:0; font-family:monospace'>{command}</p>" for command in commands)
