"""A 2-D view of a search distribution: function background, population, mean m, optimum, best so far, x0 and the
1- and 2-sigma ellipses of the covariance. Used by the Evolution pane and, projected, by the controller stage."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QFont

from wm_studio.core.es.projection import ellipse_outline
from wm_studio.gui import style

NO_POINTS = np.empty((0, 2))


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


class SearchSpacePlot(pg.PlotItem):
    clicked = pyqtSignal(float, float)   # a left click on the plot, in plot coordinates

    def __init__(self, parent=None, labels: dict[str, str | None] | None = None):
        """labels: legend text by item name (population, mean, ellipse1, ellipse2, mean_path, best, solution,
        start) replacing the Evolution demo's; None leaves that item out of the legend."""
        super().__init__(parent, viewBox=ClickViewBox())
        self.setAspectLocked(True)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.background = pg.ImageItem()
        self.background.setZValue(-100)
        self.addItem(self.background)
        self.ellipse2 = pg.PlotCurveItem(pen=style.pen(style.ELLIPSE, Qt.DashLine))
        self.ellipse1 = pg.PlotCurveItem(pen=style.pen(style.ELLIPSE))
        self.mean_path = pg.PlotCurveItem(pen=style.pen(style.MEAN, Qt.DotLine))
        self.population = _scatter("o", 7, style.POPULATION, (120, 0, 0), 10)
        self.start = _scatter("+", 14, style.START, style.START, 15)
        self.best = _scatter("d", 14, style.BEST, style.OUTLINE, 20)
        self.mean = _scatter("o", 13, style.MEAN, style.OUTLINE, 30)
        self.solution = _scatter("star", 19, style.SOLUTION, style.OUTLINE, 25)
        legend = self.addLegend(offset=(8, 8), brush=pg.mkBrush(255, 255, 255, 225), pen=style.pen((160, 160, 160)),
                                labelTextSize="9pt", verSpacing=-4)
        entries = {"population": "population", "mean": "mean m", "ellipse1": "1σ ellipse of σ²C",
                   "ellipse2": "2σ ellipse", "mean_path": "path of m", "best": "best so far", "solution": "optimum",
                   "start": "x0 (click to set)"}
        entries.update(labels or {})
        for key, label in entries.items():
            item = getattr(self, key)
            self.addItem(item)
            if label is not None:
                legend.addItem(item, label)
        for line in (self.ellipse1, self.ellipse2, self.mean_path):
            line.setZValue(5)
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

    def set_path(self, points) -> None:
        """A dotted line through earlier positions of the mean, (k, 2)."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        self.mean_path.setData(points[:, 0], points[:, 1])

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
        mean = np.asarray(mean, dtype=float).reshape(2)
        one, two = ellipse_outline(mean, cov2, 1.0), ellipse_outline(mean, cov2, 2.0)
        self.ellipse1.setData(one[:, 0], one[:, 1])
        self.ellipse2.setData(two[:, 0], two[:, 1])
        self.mean.setData(pos=mean[None, :])

    def set_population(self, points) -> None:
        self.population.setData(pos=np.asarray(points, dtype=float).reshape(-1, 2))

    def set_marker(self, item: pg.ScatterPlotItem, point) -> None:
        """Place a single marker; NaN or None hides it."""
        point = None if point is None else np.asarray(point, dtype=float).reshape(2)
        item.setData(pos=NO_POINTS if point is None or not np.all(np.isfinite(point)) else point[None, :])
