"""What every pane of the studio offers the main window: a name and title, shortcuts, persistent settings,
export of its view, a screenshot hook, and a clean shutdown of its workers."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QSettings, QTimer, pyqtSignal
from PyQt5.QtWidgets import QFileDialog, QWidget

from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.export import Progress, write_png
from wm_studio.gui.settings import studio_settings

log = logging.getLogger(__name__)


class Pane(QWidget):
    name = ""             # used by `wm-studio gui --pane NAME` and in the settings keys
    title = ""            # the tab's label
    status = pyqtSignal(str)              # a line for the status bar
    view_ready = pyqtSignal()             # after prepare_view(): the view shows what a screenshot should

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

    # --- the dialogs behind File > Save PNG / Export animation and the panes' own buttons -----------------------
    def save_png_dialog(self) -> Path | None:
        path = self._ask_path("Save a PNG of the view", f"wm-studio-{self.name}.png", "PNG image (*.png)")
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
        path = self._ask_path("Export the recorded run", f"wm-studio-{self.name}{extension}", kind)
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
