"""A plot of keyed curves over generations (or batches), optionally on a log y axis.

On a log axis, values <= 0 or non-finite are left out (the curve breaks there) rather than sent to -inf.
Training panes reuse it for losses.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QFont

from wm_studio.gui import style


LEFT_AXIS_WIDTH = 52  # fixed, so the plots beside do not shift when the tick labels change


def legend_title(text: str, names) -> str:
    """A plot title that doubles as the legend: each curve's name, from (name, colour) pairs, in its colour."""
    return text + ", ".join(f'<span style="color:rgb{tuple(color)}">{name}</span>' for name, color in names)


def set_heading(view: pg.GraphicsLayoutWidget, label: pg.LabelItem, html: str) -> None:
    """Set a figure's heading without letting one long heading widen the figure for good: a LabelItem raises its
    minimum width to fit its text, and the layout, once pushed past the view, never shrinks back (the plots on
    the right would stay cut off). A heading too long for the view is clipped instead."""
    label.setText(html)
    label.setMinimumWidth(0)
    view.ci.setGeometry(view.range)


class CountAxis(pg.AxisItem):
    """An axis of whole counts (generations, batches): no ticks at 2.5."""

    def tickValues(self, minVal, maxVal, size):
        levels = [(spacing, [v for v in values if float(v).is_integer()])
                  for spacing, values in super().tickValues(minVal, maxVal, size) if spacing >= 1]
        return levels or [(1.0, [float(v) for v in range(int(np.ceil(minVal)), int(np.floor(maxVal)) + 1)])]


class ValueAxis(pg.AxisItem):
    """A log axis that, over a decade or more, labels only 1, 2 and 5 times powers of ten (the other minor ticks
    keep their grid lines but no text, which would crowd the axis)."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        levels = super().logTickValues(minVal, maxVal, size, stdTicks)
        if maxVal - minVal < 1:
            return levels
        result = []
        for spacing, values in levels:
            if spacing is None:
                mantissas = np.rint(10 ** (np.asarray(values) - np.floor(np.asarray(values))))
                result.append((None, [v for v, m in zip(values, mantissas) if m in (1, 2, 5)]))
                result.append((None, [v for v, m in zip(values, mantissas) if m not in (1, 2, 5)]))
            else:
                result.append((spacing, values))
        return result


class CurvesPlot(pg.PlotItem):
    def __init__(self, title: str, y_label: str = "", x_label: str = "generation", log_y: bool = True,
                 parent=None):
        super().__init__(parent, axisItems={"bottom": CountAxis("bottom"), "left": ValueAxis("left")})
        self.setTitle(title, size="10pt")
        if x_label:
            self.setLabel("bottom", x_label)
        if y_label:
            self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.log_y = log_y
        self.setLogMode(x=False, y=log_y)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._markers: dict[str, list[pg.InfiniteLine]] = {}
        self._cursor: pg.InfiniteLine | None = None
        self._span: tuple[float, float] | None = None
        for axis in ("left", "bottom"):
            self.getAxis(axis).setStyle(tickFont=QFont("DejaVu Sans", 8))
        self.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        self.getAxis("left").setStyle(maxTextLevel=1)  # ValueAxis's third level: grid lines only

    def set_markers(self, key: str, xs, color, labels=None, height: float = 0.92) -> None:
        """Vertical lines at xs (events such as restarts) in `color`, each with its label (or none) at about
        `height` (0 bottom, 1 top); the set `key` replaces the lines it had."""
        lines = self._markers.setdefault(key, [])
        labels = list(labels) if labels is not None else [None] * len(xs)
        while len(lines) < len(xs):
            line = pg.InfiniteLine(angle=90, movable=False, pen=style.pen(color, Qt.DashLine))
            line.setZValue(-10)
            line.text = pg.InfLineLabel(line, text="", position=0.9, anchors=[(0, 0), (0, 0)], color=color)
            self.addItem(line, ignoreBounds=True)
            lines.append(line)
        (x_lo, x_hi), _ = self.viewRange()
        for k, line in enumerate(lines):
            line.setVisible(k < len(xs))
            if k < len(xs):
                line.setValue(float(xs[k]))
                line.text.setFormat(labels[k] or "")
                line.text.setVisible(labels[k] is not None)
                # beside the line, on the side with room; alternate heights so that near lines do not collide
                right_half = xs[k] > x_lo + 0.75 * (x_hi - x_lo)
                line.text.anchors = [(1, 0), (1, 0)] if right_half else [(0, 0), (0, 0)]
                line.text.setPosition(height - 0.14 * (k % 3))

    def markers(self, key: str) -> list[tuple[float, str | None]]:
        """(x, label) of the visible lines of the set `key`."""
        return [(line.value(), line.text.format if line.text.isVisible() else None)
                for line in self._markers.get(key, []) if line.isVisible()]

    def set_cursor(self, x: float | None) -> None:
        """A solid vertical line at x (the generation being replayed); None hides it."""
        if self._cursor is None:
            self._cursor = pg.InfiniteLine(angle=90, movable=False, pen=style.pen((40, 40, 40)))
            self.addItem(self._cursor, ignoreBounds=True)
        self._cursor.setVisible(x is not None)
        if x is not None:
            self._cursor.setValue(float(x))

    def cursor(self) -> float | None:
        return None if self._cursor is None or not self._cursor.isVisible() else float(self._cursor.value())

    def show_counts(self, end: float, minimum: float = 10) -> None:
        """x from 0 to max(end, minimum); y follows the data (a new run starts from a fresh range, not the last
        run's)."""
        span = (0.0, float(max(end, minimum)))
        if span != self._span:
            self._span = span
            self.setXRange(*span, padding=0.02)
        self.enableAutoRange(axis="y")

    def reset_view(self) -> None:
        """The ranges of an empty plot (x 0 to 10, y 1 to 10 or 0 to 1), whatever the plot showed before."""
        self._span = None
        self.show_counts(0)
        self.setYRange(0, 1, padding=0)   # on a log axis: 1 to 10

    def add_curve(self, key: str, color, line=Qt.SolidLine) -> pg.PlotDataItem:
        curve = self.plot([], [], pen=style.pen(color, line), connect="finite")
        self._curves[key] = curve
        return curve

    def set_curve(self, key: str, x, y) -> None:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if self.log_y:
            y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
        self._curves[key].setData(x, y, connect="finite")

    def curve_data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) last given to set_curve (y in data units, not log10)."""
        x, y = self._curves[key].getOriginalDataset()
        return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))
