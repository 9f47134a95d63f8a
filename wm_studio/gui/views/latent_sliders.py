"""One slider per latent dimension, in a scrollable column, ordered by how much each dimension matters.

Each row reads `rank. z[dim]`, the slider (range -3 to 3 in steps of 0.01) and the value; its tooltip and the
small figure on the right give the dimension's score (mean KL over the data, or the variance of mu). A value
outside the slider's range is shown as it is and the slider sits at the end.
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import QGridLayout, QLabel, QScrollArea, QSlider, QVBoxLayout, QWidget

SLIDER_RANGE = 3.0
STEPS_PER_UNIT = 100


def to_position(value: float) -> int:
    return int(round(float(np.clip(value, -SLIDER_RANGE, SLIDER_RANGE)) * STEPS_PER_UNIT))


class LatentSliders(QWidget):
    value_changed = pyqtSignal(int, float)     # (dimension, new value) from the user

    def __init__(self, parent=None):
        super().__init__(parent)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.rows = QWidget()
        self.grid = QGridLayout(self.rows)
        self.grid.setContentsMargins(2, 2, 2, 2)
        self.grid.setVerticalSpacing(1)
        self.grid.setColumnStretch(1, 1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.rows)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.scroll, 1)
        self.sliders: list[QSlider] = []       # by dimension
        self.values: list[QLabel] = []         # by dimension
        self.order = np.zeros(0, int)
        self._mono = QFont("DejaVu Sans Mono", 8)

    @property
    def z_size(self) -> int:
        return len(self.sliders)

    def set_dimensions(self, order: np.ndarray, scores: np.ndarray | None, what: str) -> None:
        """Rows for len(order) dimensions, top to bottom in `order`; scores (z,) with their name (KL, var)."""
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        z_size = len(order)
        self.order = np.asarray(order, int)
        self.sliders = [None] * z_size
        self.values = [None] * z_size
        for rank, dim in enumerate(self.order):
            name = QLabel(f"{rank + 1:>2}. z{dim}")
            name.setFont(self._mono)
            slider = QSlider(Qt.Horizontal)
            slider.setRange(-int(SLIDER_RANGE * STEPS_PER_UNIT), int(SLIDER_RANGE * STEPS_PER_UNIT))
            slider.setPageStep(25)
            slider.setMinimumWidth(110)
            value = QLabel("+0.00")
            value.setFont(self._mono)
            value.setMinimumWidth(value.fontMetrics().horizontalAdvance("-10.00") + 2)
            tip = f"z[{dim}], rank {rank + 1} of {z_size}"
            if scores is not None:
                tip += f"; {what} {scores[dim]:.3g}"
                score = QLabel(f"{scores[dim]:.2f}")
                score.setFont(self._mono)
                score.setStyleSheet("color: #777")
                score.setToolTip(f"{what} of z[{dim}] over the data")
                self.grid.addWidget(score, rank, 3)
            for widget in (name, slider, value):
                widget.setToolTip(tip)
            slider.valueChanged.connect(lambda position, d=int(dim): self._moved(d, position))
            self.grid.addWidget(name, rank, 0)
            self.grid.addWidget(slider, rank, 1)
            self.grid.addWidget(value, rank, 2)
            self.sliders[dim], self.values[dim] = slider, value

    def set_header(self, text: str) -> None:
        self.header.setText(text)

    def set_z(self, z: np.ndarray) -> None:
        """Move every slider to z without reporting it."""
        for dim, value in enumerate(np.asarray(z, float)):
            slider = self.sliders[dim]
            slider.blockSignals(True)
            slider.setValue(to_position(value))
            slider.blockSignals(False)
            self.values[dim].setText(f"{value:+.2f}")

    def _moved(self, dim: int, position: int) -> None:
        value = position / STEPS_PER_UNIT
        self.values[dim].setText(f"{value:+.2f}")
        self.value_changed.emit(dim, value)
