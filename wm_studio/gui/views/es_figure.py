"""The Evolution figure: the search space on the left, curves per generation on the right, a readout on top.

The pane shows it live and `wm-studio es-animate` renders it offscreen frame by frame, so an exported animation
looks exactly like the studio.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer

from wm_studio.core.es.demo import EsHistory, EsSnapshot, plot_box, slice_grid
from wm_studio.gui import style
from wm_studio.gui.views.curves import CurvesPlot, legend_title, set_heading
from wm_studio.gui.views.search_plot import SearchSpacePlot

# Grid points per side of the contour background: a 2-D function is computed once per view, finely (3 x 3
# samples per pixel of a 400 x 400 picture); the slice of an n-D function moves with m and is recomputed for every
# snapshot, so its cost, resolution^2 * n coordinates, is kept to a budget of a few milliseconds (n = 10:
# 173 x 173 points, n = 100: 55 x 55).
FIXED_RESOLUTION = 400
SUPERSAMPLE = 3
SLICE_BUDGET = 300_000


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.3g}"


def readout_html(snapshot: EsSnapshot) -> str:
    """generation, evaluations, best, sigma (and what stopped the run) as one line of rich text."""
    head = (f"<b>{snapshot.problem.capitalize()}</b> {snapshot.dimension}-D, λ={snapshot.popsize}, "
            f"μ={snapshot.parents}")
    figures = (f"generation <b>{snapshot.generation}</b> · evaluations {snapshot.evaluations} · "
               f"best {_number(snapshot.best_value)} · σ {_number(snapshot.sigma)} · "
               f"axis ratio {_number(snapshot.axis_ratio)}")
    stop = f' · <span style="color:#b00000">stopped: {", ".join(snapshot.stop)}</span>' if snapshot.stop else ""
    return f"{head} &nbsp;│&nbsp; {figures}{stop}"


class EsFigure(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.ci.setSpacing(4)
        self.title = self.addLabel("", row=0, col=0, colspan=2, size="10pt")
        self.search = SearchSpacePlot()
        self.addItem(self.search, row=1, col=0, rowspan=3)
        self.fitness = CurvesPlot(legend_title("objective value (log): ", (
            ("worst", style.CURVE_WORST), ("median", style.CURVE_MEDIAN), ("best", style.CURVE_BEST),
            ("- - best so far", style.CURVE_BEST))), x_label="")
        self.fitness.add_curve("worst", style.CURVE_WORST)
        self.fitness.add_curve("median", style.CURVE_MEDIAN)
        self.fitness.add_curve("best", style.CURVE_BEST)
        self.fitness.add_curve("best_so_far", style.CURVE_BEST, Qt.DashLine)
        self.sigma_plot = CurvesPlot("step size σ (log)", x_label="")
        self.sigma_plot.add_curve("sigma", style.CURVE_SIGMA)
        self.ratio_plot = CurvesPlot("axis ratio of C, √(λmax/λmin) (log)")
        self.ratio_plot.add_curve("axis_ratio", style.CURVE_AXIS_RATIO)
        for row, plot in enumerate((self.fitness, self.sigma_plot, self.ratio_plot), start=1):
            self.addItem(plot, row=row, col=1)
        self.sigma_plot.setXLink(self.fitness)
        self.ratio_plot.setXLink(self.fitness)
        layout = self.ci.layout
        layout.setRowStretchFactor(1, 4)
        layout.setRowStretchFactor(2, 3)
        layout.setRowStretchFactor(3, 3)
        self._background_key = None
        self._problem = self._snapshot = None
        self._dimension = None
        # Panning, zooming or resizing shows another region: draw the function there once the view settles.
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(120)
        self._refresh.timeout.connect(self._show_background)
        self._stopped = False
        self.search.getViewBox().sigRangeChanged.connect(lambda *_: self._stopped or self._refresh.start())

    def shutdown(self) -> None:
        """Draw nothing more: the owner is closing (a range change while the window closes starts no timer)."""
        self._stopped = True
        self._refresh.stop()

    def resizeEvent(self, event):
        """Give the search space a square of the height (its aspect is locked) and the curves the rest."""
        super().resizeEvent(event)
        if not hasattr(self, "fitness") or self.closed:  # while pyqtgraph builds the widget, or after close()
            return
        width, height = self.width(), self.height()
        search = min(int(0.66 * width), height + 20)
        self.ci.layout.setColumnFixedWidth(1, max(200, width - search - 12))

    def show_snapshot(self, snapshot: EsSnapshot, history: EsHistory, problem, x0=None) -> None:
        """Draw one snapshot: background, markers, ellipses, curves and readout. x0: the start point (n,)."""
        if snapshot.dimension != self._dimension:
            self._dimension = snapshot.dimension
            if snapshot.dimension == 2:
                self.search.set_axis_labels("x₁", "x₂")
            else:
                self.search.set_axis_labels("principal axis 1 of C (plane through m)", "principal axis 2 of C")
        self.search.set_box(plot_box(problem, snapshot))
        self._problem, self._snapshot = problem, snapshot
        self._show_background()
        self.search.set_population(snapshot.population)
        self.search.set_distribution(snapshot.mean, snapshot.cov2)
        self.search.set_path(history.mean_path(snapshot.basis))
        self.search.set_marker(self.search.best, snapshot.best_so_far)
        self.search.set_marker(self.search.solution, snapshot.solution)
        x0 = None if x0 is None else np.asarray(x0, dtype=float)
        # x0 of another dimension (chosen for the next run) has no place in this run's picture
        start = x0 @ snapshot.basis if x0 is not None and x0.shape == (snapshot.dimension,) else None
        self.search.set_marker(self.search.start, start)
        columns = history.arrays()
        generations = columns["generation"]
        for plot, keys in ((self.fitness, ("best", "median", "worst", "best_so_far")),
                           (self.sigma_plot, ("sigma",)), (self.ratio_plot, ("axis_ratio",))):
            for key in keys:
                plot.set_curve(key, generations, columns[key])
        set_heading(self, self.title, readout_html(snapshot))

    def _show_background(self) -> None:
        """The function over the whole visible region (the aspect lock usually shows more than the box).

        In 2-D it is f itself, redrawn only when the region changes; for n > 2 it is the slice through m on C's
        leading plane, which moves with every snapshot."""
        problem, snapshot = self._problem, self._snapshot
        if snapshot is None or self.closed:  # nothing drawn yet, or the figure is gone (its items deleted)
            return
        (x_lo, x_hi), (y_lo, y_hi) = self.search.getViewBox().viewRange()
        box = ((float(x_lo), float(x_hi)), (float(y_lo), float(y_hi)))
        if snapshot.dimension == 2:
            key = (problem.name, problem.n, np.round(box, 9).tobytes())
            resolution, supersample = FIXED_RESOLUTION * SUPERSAMPLE, SUPERSAMPLE
        else:
            key = (id(snapshot), box)
            resolution, supersample = int(np.clip(np.sqrt(SLICE_BUDGET / snapshot.dimension), 32, 200)), 1
        if key == self._background_key:
            return
        self._background_key = key
        values = slice_grid(problem, snapshot, box, resolution)
        self.search.set_background(style.contour_image(values, supersample=supersample), box)
