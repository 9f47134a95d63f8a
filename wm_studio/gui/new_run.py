"""New run…: a run folder from a preset (where, which game, which size), proposed where the last new run went."""
from __future__ import annotations

from pathlib import Path

from PyQt5.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
                             QPushButton)

from wm_studio.core.presets import GAMES, PRESETS
from wm_studio.core.runs import read_only_folder
from wm_studio.gui.settings import studio_settings

NEW_RUN_PARENT_KEY = "runs/new_parent"    # the folder the last new run went into
NEW_RUNS_FOLDER = "wm-studio-runs"        # under the home folder, until a new run went elsewhere
FOLDER_FIELD_CHARS = 64                   # the New run dialog's folder field shows paths this long in full


def proposed_run_folder() -> Path:
    """Where New run… proposes a run: a name not yet taken, in the folder the last new run went into, else in
    ~/wm-studio-runs. Never beside the open run: that is often the bundled model's folder inside the installed
    package, which may be read-only."""
    remembered = str(studio_settings().value(NEW_RUN_PARENT_KEY, "") or "")
    parent = Path(remembered) if remembered else None
    if parent is None or not parent.is_dir() or read_only_folder(parent) is not None:
        parent = Path.home() / NEW_RUNS_FOLDER
    name, number = "my-run", 1
    while (parent / name).exists():
        number += 1
        name = f"my-run-{number}"
    return parent / name


class NewRunDialog(QDialog):
    """A new run folder from a preset: where, which game, which size."""

    def __init__(self, parent=None, folder: str = ""):
        super().__init__(parent)
        self.setWindowTitle("New run")
        form = QFormLayout(self)
        self.folder_edit = QLineEdit(folder)
        metrics = self.folder_edit.fontMetrics()   # wide enough for the whole proposed path, and then some
        self.folder_edit.setMinimumWidth(max(metrics.averageCharWidth() * FOLDER_FIELD_CHARS,
                                             metrics.horizontalAdvance(folder) + 24))
        self.folder_edit.setCursorPosition(len(folder))   # the run's own name in view, should it not fit
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.game_box = QComboBox()
        for game in GAMES:
            self.game_box.addItem(game, game)
        self.preset_box = QComboBox()
        for name in PRESETS:
            self.preset_box.addItem(name, name)
        self.preset_box.setCurrentText("quick")
        self.preset_box.setToolTip("quick: about half an hour on a 2-core CPU for collect + V + M; paper: the "
                                   "paper's numbers; tiny: seconds, for trying the buttons")
        form.addRow("Game", self.game_box)
        form.addRow("Preset", self.preset_box)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new run", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def values(self) -> tuple[str, str, str]:
        return self.folder_edit.text().strip(), self.game_box.currentData(), self.preset_box.currentData()
