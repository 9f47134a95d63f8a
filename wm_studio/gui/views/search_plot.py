"""A 2-D view of a search distribution: function background, population, mean m, optimum, best so far, x0 and the
1- and 2-sigma ellipses of the covariance; optionally a second run's population, mean, ellipses, path and best in a
colour of its own (the Evolution pane's comparison). Used by the Evolution pane and, projected, by the controller
stage."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QFont

from wm_studio.core.es.projection import ellipse_outline
from wm_studio.gui import style

NO_POINTS = np.empty((0, 2))
OTHER = (225, 110, 0)            # orange: everything of the second run of a comparison
OTHER_DARK = (150, 65, 0)


def tick_texts(values, spacing: float) -> list[str]:
    """Short tick labels that still tell the ticks apart: as few decimals as the values need (0.25, 1.5, -2),
    and powers of ten written out (2e-06, 1.5e+05) where fixed decimals would be long."""
    values = [float(v) for v in values]
    if not values:
        return []
    decimals = next((d for d in range(13) if all(abs(round(v, d) - v) <= 1e-9 * max(spacing, 1e-300)
                                                 for v in values)), 12)
    largest = max(abs(v) for v in values)
    if decimals <= 4 and largest < 1e5:
        texts = [f"{v:.{decimals}f}" for v in values]
    else:
        digits = max(1, min(12, int(math.floor(math.log10(max(largest, spacing)))) -
                            int(math.floor(math.log10(spacing))) + 1))
        texts = [f"{v:.{digits}g}" for v in values]
    return ["0" if float(text) == 0 else text for text in texts]


class ReadableAxis(pg.AxisItem):
    """Tick labels from tick_texts: never a label like -1.701514 that crowds the axis or does not fit."""

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return tick_texts([v * scale for v in values], spacing * scale)


class ClickViewBox(pg.ViewBox):
    """A ViewBox that reports left clicks (not drags) in view coordinates; dragging still pans, the wheel zooms."""

    clicked = pyqtSignal(QPointF)

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.LeftButton:
            ev.accept()
            self.clicked.emit(self.mapSceneToView(ev.scenePos()))
        else:
            super().mouseClickEvent(ev)


def _scatter(symbol: str, size: int, fill, outline, z: float) -> pg.ScatterPlotItem:
    item = pg.ScatterPlotItem(symbol=symbol, size=size, pen=style.pen(outline), brush=style.brush(fill),
                              pxMode=True)
    item.setZValue(z)
    return item


class Distribution:
    """The items of one run: population, mean m, 1- and 2-sigma ellipses, path of m, best so far."""

    def __init__(self, population, mean, ellipse, best):
        """Each argument: (symbol or line style, fill colour, outline colour) of that item."""
        self.population = _scatter(population[0], 7, population[1], population[2], 10)
        self.mean = _scatter(mean[0], 13, mean[1], mean[2], 30)
        self.ellipse1 = pg.PlotCurveItem(pen=style.pen(ellipse))
        self.ellipse2 = pg.PlotCurveItem(pen=style.pen(ellipse, Qt.DashLine))
        self.mean_path = pg.PlotCurveItem(pen=style.pen(mean[1], Qt.DotLine))
        self.best = _scatter(best[0], 14, best[1], best[2], 20)
        for line in (self.ellipse1, self.ellipse2, self.mean_path):
            line.setZValue(5)

    def items(self) -> dict[str, pg.GraphicsObject]:
        return {"population": self.population, "mean": self.mean, "ellipse1": self.ellipse1,
                "ellipse2": self.ellipse2, "mean_path": self.mean_path, "best": self.best}

    def set_distribution(self, mean, cov2) -> None:
        mean = np.asarray(mean, dtype=float).reshape(2)
        one, two = ellipse_outline(mean, cov2, 1.0), ellipse_outline(mean, cov2, 2.0)
        self.ellipse1.setData(one[:, 0], one[:, 1])
        self.ellipse2.setData(two[:, 0], two[:, 1])
        self.mean.setData(pos=mean[None, :])

    def set_population(self, points) -> None:
        self.population.setData(pos=np.asarray(points, dtype=float).reshape(-1, 2))

    def set_path(self, points) -> None:
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        self.mean_path.setData(points[:, 0], points[:, 1])

    def clear(self) -> None:
        for item in (self.population, self.mean, self.best):
            item.setData(pos=NO_POINTS)
        for item in (self.ellipse1, self.ellipse2, self.mean_path):
            item.setData([], [])


class SearchSpacePlot(pg.PlotItem):
    clicked = pyqtSignal(float, float)   # a left click on the plot, in plot coordinates

    def __init__(self, parent=None, labels: dict[str, str | None] | None = None, legend_outside: bool = False):
        """labels: legend text by item name (population, mean, ellipse1, ellipse2, mean_path, best, solution,
        start) replacing the Evolution demo's; None leaves that item out of the legend. legend_outside: the
        legend is not drawn over the plot; `self.legend` is for the owner to place (the Evolution figure puts it
        beside the plot)."""
        super().__init__(parent, viewBox=ClickViewBox(),
                         axisItems={"left": ReadableAxis("left"), "bottom": ReadableAxis("bottom")})
        self.setAspectLocked(True)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.background = pg.ImageItem()
        self.background.setZValue(-100)
        self.addItem(self.background)
        self.run = Distribution(("o", style.POPULATION, (120, 0, 0)), ("o", style.MEAN, style.OUTLINE),
                                style.ELLIPSE, ("d", style.BEST, style.OUTLINE))
        self.other = Distribution(("t", OTHER, OTHER_DARK), ("s", OTHER, style.OUTLINE), OTHER,
                                  ("d", OTHER, style.OUTLINE))
        # the first run's items under their old names, which the controller's figure and the tests use
        for name, item in self.run.items().items():
            setattr(self, name, item)
        self.start = _scatter("+", 14, style.START, style.START, 15)
        self.solution = _scatter("star", 19, style.SOLUTION, style.OUTLINE, 25)
        legend_style = dict(brush=pg.mkBrush(255, 255, 255, 225), pen=style.pen((160, 160, 160)),
                            labelTextSize="9pt", verSpacing=-4)
        if legend_outside:
            self.legend = pg.LegendItem(**legend_style)
        else:
            self.legend = self.addLegend(offset=(8, 8), **legend_style)
        entries = {"population": "population", "mean": "mean m", "ellipse1": "1σ ellipse of σ²C",
                   "ellipse2": "2σ ellipse", "mean_path": "path of m", "best": "best so far", "solution": "optimum",
                   "start": "x0 (click to set)"}
        entries.update(labels or {})
        for key, label in entries.items():
            item = getattr(self, key)
            self.addItem(item)
            if label is not None:
                self.legend.addItem(item, label)
        for item in self.other.items().values():
            self.addItem(item)
            item.hide()
        self._other_entries: list[str] = []
        self.getViewBox().clicked.connect(lambda point: self.clicked.emit(point.x(), point.y()))
        self._box = None
        for axis in ("left", "bottom"):
            self.getAxis(axis).setZValue(50)
            self.getAxis(axis).setStyle(tickFont=QFont("DejaVu Sans", 9))
            self.getAxis(axis).enableAutoSIPrefix(False)  # "(x0.001)" beside a coordinate only confuses
        self.getAxis("bottom").setHeight(46)  # room for the tick labels and, below them, the axis label
        self.getAxis("left").setWidth(56)

    def set_axis_labels(self, x: str, y: str) -> None:
        self.setLabel("bottom", x, **{"font-size": "10pt"})
        self.setLabel("left", y, **{"font-size": "10pt"})

    def show_other(self, label: str | None) -> None:
        """Show the second run's items, named `label` in the legend (None hides them)."""
        for name in self._other_entries:
            self.legend.removeItem(name)
        self._other_entries = []
        for item in self.other.items().values():
            item.setVisible(label is not None)
        if label is None:
            self.other.clear()
            return
        for key, text in (("population", f"{label}: population"), ("mean", f"{label}: mean m, ellipses, path")):
            self.legend.addItem(self.other.items()[key], text)
            self._other_entries.append(text)

    def set_path(self, points) -> None:
        """A dotted line through earlier positions of the mean, (k, 2)."""
        self.run.set_path(points)

    def set_box(self, box) -> None:
        """Show exactly ((x_min, x_max), (y_min, y_max)); the user may pan and zoom from there."""
        box = tuple(tuple(float(v) for v in side) for side in box)
        if box != self._box:
            self._box = box
            self.setRange(xRange=box[0], yRange=box[1], padding=0)

    def set_background(self, rgb: np.ndarray | None, box=None) -> None:
        """An (rows, cols, 3) uint8 picture stretched over box; row 0 at y_min."""
        if rgb is None:
            self.background.clear()
            return
        (x_lo, x_hi), (y_lo, y_hi) = box
        self.background.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.background.setRect(QRectF(x_lo, y_lo, x_hi - x_lo, y_hi - y_lo))

    def set_distribution(self, mean, cov2) -> None:
        """The mean marker and the 1- and 2-sigma ellipses of N(mean, cov2)."""
        self.run.set_distribution(mean, cov2)

    def set_population(self, points) -> None:
        self.run.set_population(points)

    def set_marker(self, item: pg.ScatterPlotItem, point) -> None:
        """Place a single marker; NaN or None hides it."""
        point = None if point is None else np.asarray(point, dtype=float).reshape(2)
        item.setData(pos=NO_POINTS if point is None or not np.all(np.isfinite(point)) else point[None, :])
