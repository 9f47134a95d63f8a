"""What every pane of the studio offers the main window: a name and title, shortcuts, persistent settings,
export of its view, a screenshot hook, and a clean shutdown of its workers; and the pieces of their controls that
the panes share (key bindings, the scrolling control column, the message page, the export controls)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QScrollArea, QShortcut,
                             QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.export import Progress, write_png
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.settings import studio_settings

log = logging.getLogger(__name__)


class Pane(QWidget):
    name = ""             # used by `wm-studio gui --pane NAME` and in the settings keys
    title = ""            # the tab's label
    status = pyqtSignal(str)              # a line for the status bar
    view_ready = pyqtSignal()             # after prepare_view(): the view shows what a screenshot should
    export_subject = "the recorded run"   # what its GIF / MP4 holds, and what its PNG shows (the export dialogs'
    png_subject = "the view"              # titles); _build_export_controls sets both

    def shortcuts(self) -> list[tuple[str, str]]:
        """(key, what it does) for Help > Keyboard shortcuts."""
        return []

    def load_settings(self, settings: QSettings) -> None:
        """Restore the controls from settings (the group is already the pane's name)."""

    def save_settings(self, settings: QSettings) -> None:
        """Store the controls into settings (the group is already the pane's name)."""

    def view_frame(self) -> np.ndarray:
        """The pane's main view as an RGB frame (File > Save PNG)."""
        raise ConfigError(f"the {self.title} pane has no view to save")

    def can_export_animation(self) -> bool:
        return False

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        """Write what the pane recorded to a GIF or MP4 (File > Export animation)."""
        raise ConfigError(f"the {self.title} pane has nothing to animate")

    def prepare_view(self, steps: int | None) -> None:
        """Bring the view to what `wm-studio gui --generations N [--screenshot]` asks for (the Evolution pane runs
        N generations), then emit view_ready. By default the pane is ready at once."""
        QTimer.singleShot(0, self.view_ready.emit)

    def shutdown(self) -> None:
        """Stop the pane's workers and wait for them; called when the window closes."""

    def _use_open_run(self, open_run: OpenRun | None, parent, remember: bool = True) -> None:
        """self.open_run: the one given, else the main window's; a pane on its own gets one of its own
        (self._own_run), which its shutdown() ends."""
        self.open_run = open_run if open_run is not None else getattr(parent, "open_run", None)
        self._own_run = self.open_run is None
        if self._own_run:
            self.open_run = OpenRun(self, remember=remember)

    def _follow_open_run(self) -> None:
        """on_run_changed(part) whenever the open run changes, and once now for the run open at the start."""
        self.open_run.changed.connect(self.on_run_changed)
        self.on_run_changed("run")

    def _end_own_run(self) -> None:
        """The end of shutdown() for a pane that uses a run: its own OpenRun's loader thread stops with it."""
        if self._own_run:
            self.open_run.shutdown()

    # --- pieces of the panes' controls -----------------------------------------------------------------------------
    def _bind_keys(self, bindings) -> None:
        """(key, slot) pairs that work while the pane or any of its children has the focus."""
        for key, slot in bindings:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    @staticmethod
    def _panel(layout=QVBoxLayout):
        """A widget and its layout without margins: the column of a pane's controls (QVBoxLayout), or the row of
        its views (QHBoxLayout)."""
        panel = QWidget()
        box = layout(panel)
        box.setContentsMargins(0, 0, 0, 0)
        return panel, box

    @staticmethod
    def _scrolling(controls: QWidget, width: int | None = None) -> QScrollArea:
        """The column of controls in a vertical scroll area, as wide as the controls want (or `width`)."""
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setFixedWidth(controls.sizeHint().width() + 18 if width is None else width)
        return scroll

    @staticmethod
    def _transport_buttons(play: tuple[str, str], step_tip: str, again: tuple[str, str]):
        """A checkable play button, Step, and a button that starts again, each (text, tooltip) but Step's tooltip;
        returns (play, step, again, the three in a row)."""
        play_button = QPushButton(play[0])
        play_button.setCheckable(True)
        play_button.setToolTip(play[1])
        step_button = QPushButton("Step")
        step_button.setToolTip(step_tip)
        again_button = QPushButton(again[0])
        again_button.setToolTip(again[1])
        row = QHBoxLayout()
        for button in (play_button, step_button, again_button):
            row.addWidget(button)
        return play_button, step_button, again_button, row

    @staticmethod
    def _show_playing(button: QPushButton, running: bool, idle_text: str) -> None:
        """The play button follows its worker, without calling its toggled slot."""
        button.blockSignals(True)
        button.setChecked(running)
        button.blockSignals(False)
        button.setText("Pause" if running else idle_text)

    def _build_message_page(self, content: QWidget) -> None:
        """A header line over a stack: page 0 the message (what is missing), page 1 the content."""
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("font-size: 15px; color: #444; padding: 40px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.stack, 1)

    def _show_run_header(self, open_run, models_loaded: bool) -> None:
        """The open run in the header; once the pane's models are loaded, the first problems of the run too."""
        text = open_run.describe()
        if open_run.contents is not None and models_loaded:
            notes = open_run.contents.problems()[:3]
            if notes:
                text += "<br><span style='color:#8a5a00'>" + " · ".join(notes) + "</span>"
        self.header.setText(text)

    def _build_export_controls(self, subject: str, sizes: dict, fps: int, size: str | None = None,
                               size_tip: str = "Size of the exported frames", view: str = "the view") -> QHBoxLayout:
        """Make fps_spin, size_box (label: frame size) and gif_button, mp4_button, png_button, wired to the export
        dialogs; returns the buttons in a row (the pane places the spin and the box as its layout wants)."""
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(fps)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Frames per second of the exported animation")
        self.size_box = QComboBox()
        for label, value in sizes.items():
            self.size_box.addItem(label, value)
        if size is not None:
            self.size_box.setCurrentText(size)
        self.size_box.setToolTip(size_tip)
        self.gif_button = QPushButton("GIF…")
        self.gif_button.setToolTip(f"Export {subject} as a GIF")
        self.gif_button.clicked.connect(lambda: self.export_animation_dialog(".gif"))
        self.mp4_button = QPushButton("MP4…")
        self.mp4_button.setToolTip(f"Export {subject} as an MP4 video")
        self.mp4_button.clicked.connect(lambda: self.export_animation_dialog(".mp4"))
        self.png_button = QPushButton("PNG…")
        self.png_button.setToolTip(f"Save a PNG of {view} (Ctrl+S)")
        self.png_button.clicked.connect(self.save_png_dialog)
        self.export_subject, self.png_subject = subject, view
        buttons = QHBoxLayout()
        for button in (self.gif_button, self.mp4_button, self.png_button):
            buttons.addWidget(button)
        return buttons

    def _show_recorded(self, count: int, unit: str) -> None:
        """How much the pane has recorded, in its recorded_label; GIF and MP4 only once there is something."""
        self.recorded_label.setText(f"{count} {unit}{'s' if count != 1 else ''}")
        self.gif_button.setEnabled(count > 0)
        self.mp4_button.setEnabled(count > 0)

    # --- the dialogs behind File > Save PNG / Export animation and the panes' own buttons -----------------------
    def save_png_dialog(self) -> Path | None:
        path = self._ask_path(f"{self.title}: save a PNG of {self.png_subject}", f"wm-studio-{self.name}.png",
                              "PNG image (*.png)")
        if path is None:
            return None
        try:
            write_png(path, self.view_frame())
        except (WmStudioError, OSError) as exc:
            log.error("Saving %s failed: %s", path, exc)
            return None
        self.status.emit(f"Saved {path}")
        return path

    def export_animation_dialog(self, extension: str = ".gif") -> Path | None:
        if not self.can_export_animation():
            log.error("%s: nothing to export yet (record a run first)", self.title)
            return None
        kind = "GIF animation (*.gif)" if extension == ".gif" else "MP4 video (*.mp4)"
        what = "a GIF" if extension == ".gif" else "an MP4"
        path = self._ask_path(f"{self.title}: export {self.export_subject} as {what}",
                              f"wm-studio-{self.name}{extension}", kind)
        if path is None:
            return None
        try:
            self.export_animation(path)
        except (WmStudioError, OSError) as exc:
            log.error("Exporting %s failed: %s", path, exc)
            return None
        self.status.emit(f"Exported {path}")
        return path

    def _ask_path(self, caption: str, name: str, filter_: str) -> Path | None:
        settings = studio_settings()
        folder = settings.value("export/folder", str(Path.cwd()))
        chosen, _ = QFileDialog.getSaveFileName(self, caption, str(Path(folder) / name), filter_)
        if not chosen:
            return None
        path = Path(chosen)
        suffix = Path(name).suffix
        if path.suffix.lower() != suffix:
            path = path.with_name(path.name + suffix)
        settings.setValue("export/folder", str(path.parent))
        return path
