"""Small pyqtgraph pieces the Controller and Training panes share: a box that shows a uint8 picture, a mosaic of
frames, a diverging colour map for heat strips, bars, and a histogram of two samples side by side.

Pictures are always uint8 RGB with fixed levels (docs/architecture.md, "Threading rules of the studio"): no auto-levels, no per-frame scaling.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QRectF, Qt
from PyQt5.QtGui import QFont

from wm_studio.gui import style

CONTROLLER = (31, 80, 220)      # blue: the trained controller, everywhere
RANDOM = (150, 150, 150)        # grey: the random policy
DREAM = (148, 70, 170)          # purple: the dream
TICK_FONT = QFont("DejaVu Sans", 8)
NOTE_WIDTH = 280       # pixels: a note in place of a plot wraps at this width

# Diverging map for values in [-1, 1]: blue (negative), white (zero), red (positive).
_NEGATIVE = np.array([33, 102, 172], float)
_ZERO = np.array([247, 247, 247], float)
_POSITIVE = np.array([178, 24, 43], float)


def diverging_rgb(values, limit: float = 1.0) -> np.ndarray:
    """uint8 (..., 3) colours of values clipped to [-limit, limit]: blue < 0 < red, white at zero."""
    t = np.clip(np.nan_to_num(np.asarray(values, float) / limit), -1.0, 1.0)[..., None]
    rgb = np.where(t < 0, _ZERO + (-t) * (_NEGATIVE - _ZERO), _ZERO + t * (_POSITIVE - _ZERO))
    return np.rint(rgb).astype(np.uint8)


def mosaic(rows: list[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Frames (each a stack (k, h, w, 3) uint8) laid out as rows of a picture with `gap` pixels between them."""
    stacks = [np.asarray(row, np.uint8) for row in rows if len(row)]
    if not stacks:
        return np.full((8, 8, 3), fill, np.uint8)
    height, width = stacks[0].shape[1:3]
    columns = max(len(s) for s in stacks)
    picture = np.full((len(stacks) * (height + gap) - gap, columns * (width + gap) - gap, 3), fill, np.uint8)
    for r, stack in enumerate(stacks):
        for c, frame in enumerate(stack):
            top, left = r * (height + gap), c * (width + gap)
            picture[top:top + height, left:left + width] = frame[:height, :width]
    return picture


class PictureBox(pg.PlotItem):
    """A titled, aspect-locked picture (row 0 at the top) without axes or mouse interaction."""

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        if title:
            self.setTitle(title, size="9pt")
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setMenuEnabled(False)
        self.hideButtons()
        box = self.getViewBox()
        box.setAspectLocked(True)
        box.invertY(True)
        box.setMouseEnabled(False, False)
        box.setDefaultPadding(0.0)
        self.image = pg.ImageItem()
        self.addItem(self.image)
        self._shape = None

    def set_picture(self, rgb: np.ndarray | None) -> None:
        if rgb is None:
            self.image.clear()
            self._shape = None
            return
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        if rgb.shape[:2] != self._shape:
            self._shape = rgb.shape[:2]
            self.getViewBox().setRange(QRectF(0, 0, rgb.shape[1], rgb.shape[0]), padding=0)

    def picture(self) -> np.ndarray | None:
        return self.image.image


def _axis_font(plot: pg.PlotItem) -> None:
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setStyle(tickFont=TICK_FONT)


class BarsPlot(pg.PlotItem):
    """Vertical bars over indices 0..k-1 (z), on a fixed y range that grows only when a value leaves it."""

    def __init__(self, title: str, color=CONTROLLER, y_range: float = 3.0, x_label: str = "", parent=None):
        super().__init__(parent)
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(False, False)
        self.showGrid(y=True, alpha=0.25)
        if x_label:
            self.setLabel("bottom", x_label)
        _axis_font(self)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=style.brush(color), pen=style.pen(color))
        self.addItem(self.bars)
        self.addLine(y=0, pen=style.pen((90, 90, 90)))
        self._limit = y_range
        self._count = None
        self.values = np.empty(0)

    def set_values(self, values) -> None:
        values = np.nan_to_num(np.asarray(values, float).ravel())
        self.values = values
        self.bars.setOpts(x=np.arange(len(values)), height=values, width=0.8)
        peak = float(np.abs(values).max()) if len(values) else 0.0
        if peak > self._limit:
            self._limit = math.ceil(peak)
            self.setYRange(-self._limit, self._limit, padding=0.05)
        if len(values) != self._count:
            self._count = len(values)
            self.setXRange(-0.6, len(values) - 0.4, padding=0)
            self.setYRange(-self._limit, self._limit, padding=0.05)


class GaugesPlot(pg.PlotItem):
    """Horizontal gauges, one per named quantity, each on its own fixed range: the actions."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(False, False)
        self.showGrid(x=True, alpha=0.25)
        _axis_font(self)
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.6, brush=style.brush(CONTROLLER),
                                    pen=style.pen(CONTROLLER))
        self.frames = pg.BarGraphItem(x0=[], y=[], width=[], height=0.6, brush=pg.mkBrush(0, 0, 0, 0),
                                      pen=style.pen((120, 120, 120)))
        self.addItem(self.frames)
        self.addItem(self.bars)
        self.addLine(x=0, pen=style.pen((90, 90, 90)))
        self.marks: list = []
        self._layout = None
        self.values = np.empty(0)

    def set_layout(self, names: list[str], ranges: list[tuple[float, float]], marks=()) -> None:
        """Names top to bottom, each with its (low, high); marks: x positions of dotted guide lines."""
        layout = (tuple(names), tuple(ranges), tuple(marks))
        if layout == self._layout:
            return
        self._layout = layout
        count = len(names)
        ys = np.arange(count)[::-1].astype(float)
        lows = np.array([r[0] for r in ranges], float)
        highs = np.array([r[1] for r in ranges], float)
        self.frames.setOpts(x0=lows, y=ys, width=highs - lows, height=0.6)
        self.getAxis("left").setTicks([[(float(y), name) for y, name in zip(ys, names)]])
        for line in self.marks:
            self.removeItem(line)
        self.marks = [self.addLine(x=x, pen=style.pen((120, 120, 120), Qt.DotLine)) for x in marks]
        self.setXRange(float(lows.min()), float(highs.max()), padding=0.05)
        self.setYRange(-0.6, count - 0.4, padding=0)
        self._ys = ys

    def set_values(self, values) -> None:
        values = np.nan_to_num(np.asarray(values, float).ravel())
        self.values = values
        self.bars.setOpts(x0=np.zeros(len(values)), y=self._ys[:len(values)], width=values, height=0.6)


class HeatStrip(pg.PlotItem):
    """A vector as one row of coloured cells (M's hidden state h), values mapped through diverging_rgb."""

    def __init__(self, title: str, limit: float = 1.0, parent=None):
        super().__init__(parent)
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(False, False)
        self.hideAxis("left")
        _axis_font(self)
        self.image = pg.ImageItem()
        self.addItem(self.image)
        self.limit = limit
        self.values = np.empty(0)
        self._count = None

    def set_values(self, values) -> None:
        values = np.asarray(values, float).ravel()
        self.values = values
        if not len(values):
            self.image.clear()
            return
        self.image.setImage(diverging_rgb(values[None, :], self.limit), autoLevels=False, levels=(0, 255))
        self.image.setRect(QRectF(0, 0, len(values), 1))
        if len(values) != self._count:
            self._count = len(values)
            self.setXRange(0, len(values), padding=0)
            self.setYRange(0, 1, padding=0)


class HistogramPlot(pg.PlotItem):
    """Two or more samples as histograms on shared bins, side by side in each bin; the title holds the legend
    with mean +- std of each."""

    def __init__(self, title: str, x_label: str = "score", parent=None):
        super().__init__(parent)
        self.base_title = title
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.hideButtons()
        self.showGrid(y=True, alpha=0.25)
        self.setLabel("bottom", x_label)
        self.setLabel("left", "episodes")
        _axis_font(self)
        self.samples: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self._bars: list = []
        self.note = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))
        self.note.setFont(QFont("DejaVu Sans", 10))
        self.addItem(self.note, ignoreBounds=True)
        self.getViewBox().sigResized.connect(lambda *_: self._fit_note())

    def _fit_note(self) -> None:
        """Wrap the note to the plot's width."""
        if self.note.toPlainText():
            self.note.setTextWidth(max(80.0, min(NOTE_WIDTH, self.getViewBox().width() - 16)))

    def show_samples(self, samples: dict[str, tuple[np.ndarray, tuple]], bins: int | None = None) -> None:
        """samples: name -> (values, colour). Empty dict: clear."""
        for bar in self._bars:
            self.removeItem(bar)
        self._bars = []
        self.samples = {name: np.asarray(values, float) for name, (values, _) in samples.items()}
        self.counts = {}
        self.note.setText("")
        finite = [v[np.isfinite(v)] for v in self.samples.values()]
        everything = np.concatenate(finite) if finite else np.empty(0)
        if not len(everything):
            self.setTitle(self.base_title, size="9pt")
            return
        count = bins or int(np.clip(np.ceil(np.sqrt(max(len(v) for v in finite))) * 2, 5, 30))
        low, high = float(everything.min()), float(everything.max())
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, count + 1)
        width = (edges[1] - edges[0]) / (len(samples) + 0.5)
        legend = []
        for k, (name, (values, color)) in enumerate(samples.items()):
            values = finite[k]
            counts, _ = np.histogram(values, edges)
            self.counts[name] = counts
            x = edges[:-1] + width * (k + 0.75)
            bar = pg.BarGraphItem(x=x, height=counts, width=width, brush=style.brush(color, 200),
                                  pen=style.pen(color))
            self.addItem(bar)
            self._bars.append(bar)
            mean, std = (float(values.mean()), float(values.std())) if len(values) else (math.nan, math.nan)
            legend.append(f'<span style="color:rgb{tuple(color)}">{name} {mean:.1f} ± {std:.1f}</span>')
        self.setTitle(f"{self.base_title}, N = {max(len(v) for v in finite)}<br>" + " · ".join(legend),
                      size="9pt")
        self.enableAutoRange()

    def show_note(self, text: str) -> None:
        """A sentence in place of the histogram (why there is none)."""
        self.show_samples({})
        self.note.setText(text)
        self._fit_note()
        self.setXRange(0, 1, padding=0)
        self.setYRange(0, 1, padding=0)
        self.note.setPos(0.5, 0.5)
