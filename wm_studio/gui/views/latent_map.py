"""The data's latents on their first two principal components, drawn as a density picture; a click reports the
plot point (the pane decodes the latent there).

A density image costs the same to draw for 200 latents or 20,000, so moving the current-z marker (on every
slider change) never repaints thousands of scatter points.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QRectF, pyqtSignal

from wm_studio.gui import style
from wm_studio.gui.views.search_plot import NO_POINTS, ClickViewBox

DENSITY_BINS = 160
SCATTER_POINTS = 1500       # drawn on top of the density: sparse data stay visible, the cost stays fixed
DENSITY_LOW = np.array([252, 252, 250], dtype=float)     # no data
DENSITY_HIGH = np.array([40, 70, 150], dtype=float)      # the densest bin
CURRENT = (214, 39, 40)
POINT_A = (0, 150, 60)
POINT_B = (148, 70, 170)


def density_image(points: np.ndarray, box, bins: int = DENSITY_BINS) -> np.ndarray:
    """(bins, bins, 3) uint8: log counts of points per cell of box ((x_lo, x_hi), (y_lo, y_hi)), row 0 at y_lo."""
    (x_lo, x_hi), (y_lo, y_hi) = box
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=bins, range=[[y_lo, y_hi], [x_lo, x_hi]])
    shade = np.log1p(counts) / max(np.log1p(counts.max()), 1e-12)
    rgb = DENSITY_LOW + np.sqrt(shade)[..., None] * (DENSITY_HIGH - DENSITY_LOW)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _marker(symbol: str, size: int, color, z: float) -> pg.ScatterPlotItem:
    item = pg.ScatterPlotItem(symbol=symbol, size=size, pen=style.pen(style.OUTLINE), brush=style.brush(color),
                              pxMode=True)
    item.setZValue(z)
    return item


class LatentMap(pg.GraphicsLayoutWidget):
    clicked = pyqtSignal(float, float)      # a left click, in plot (principal component) coordinates

    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.plot = self.addPlot(row=0, col=0, viewBox=ClickViewBox())
        self.plot.setTitle("latents of the data (PCA): click to decode", size="10pt")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(False)
        self.plot.getViewBox().clicked.connect(lambda point: self.clicked.emit(point.x(), point.y()))
        self.density = pg.ImageItem(axisOrder="row-major")
        self.density.setZValue(-10)
        self.plot.addItem(self.density)
        self.scatter = pg.ScatterPlotItem(symbol="o", size=4, pen=None, brush=pg.mkBrush(40, 70, 150, 110),
                                          pxMode=True)
        self.scatter.setZValue(-5)
        self.plot.addItem(self.scatter)
        self.point_a = _marker("t", 12, POINT_A, 10)
        self.point_b = _marker("t1", 12, POINT_B, 11)
        self.current = _marker("o", 11, CURRENT, 20)
        for item in (self.point_a, self.point_b, self.current):
            self.plot.addItem(item)
        self.box = None

    def set_points(self, points: np.ndarray | None, explained=None) -> None:
        """The projected latents (N, 2) and the share of variance on each axis; None empties the map."""
        if points is None or not len(points):
            self.density.clear()
            self.scatter.setData(pos=NO_POINTS)
            self.box = None
            self.plot.setLabel("bottom", "")
            self.plot.setLabel("left", "")
            return
        lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
        pad = 0.15 * np.maximum(hi - lo, 1e-6)
        lo, hi = lo - pad, hi + pad
        self.box = ((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))
        self.density.setImage(density_image(points, self.box), autoLevels=False, levels=(0, 255))
        self.density.setRect(QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]))
        step = max(1, len(points) // SCATTER_POINTS)
        self.scatter.setData(pos=points[::step])
        self.plot.setRange(xRange=self.box[0], yRange=self.box[1], padding=0.0)
        if explained is not None:
            self.plot.setLabel("bottom", f"PC 1 ({100 * explained[0]:.0f}% of the variance)")
            self.plot.setLabel("left", f"PC 2 ({100 * explained[1]:.0f}%)")

    def set_marker(self, item: pg.ScatterPlotItem, point) -> None:
        point = None if point is None else np.asarray(point, dtype=float).reshape(2)
        item.setData(pos=NO_POINTS if point is None or not np.all(np.isfinite(point)) else point[None, :])

