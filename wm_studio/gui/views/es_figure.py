"""The Evolution figure: the search space on the left, curves per generation on the right, a readout on top and
the legend along the bottom (out of the data).

The pane shows it live and replays any generation of a run; `wm-studio es-animate` and the pane's export render it
offscreen frame by frame, so an exported animation looks exactly like the studio. A frame holds one run, or two
runs in lockstep (a comparison): the second in orange, projected on the first one's plane, its curves overlaid.
For n > 2 the plane's coordinates are drawn relative to m (the first run's mean), so the ticks stay short while
the distribution shrinks far from the origin.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer

from wm_studio.core.es.demo import STRATEGIES, EsFrame, EsHistory, EsSnapshot, plot_box, slice_grid
from wm_studio.gui import style
from wm_studio.gui.views.curves import CurvesPlot, legend_title, set_heading
from wm_studio.gui.views.search_plot import OTHER, SearchSpacePlot

# Grid points per side of the contour background: a 2-D function is computed once per view, finely (3 x 3
# samples per pixel of a 400 x 400 picture); the slice of an n-D function moves with m and is recomputed for every
# snapshot, so its cost, resolution^2 * n coordinates, is kept to a budget of a few milliseconds (n = 10:
# 173 x 173 points, n = 100: 55 x 55).
FIXED_RESOLUTION = 400
SUPERSAMPLE = 3
SLICE_BUDGET = 300_000
RESTART_MARK = (70, 70, 70)
FITNESS_KEYS = ("best", "median", "worst", "best_so_far")
OTHER_LINES = {"best": Qt.SolidLine, "median": Qt.DashLine, "worst": Qt.DotLine, "best_so_far": Qt.DashDotLine}


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.3g}"


def run_label(snapshot: EsSnapshot) -> str:
    return STRATEGIES.get(snapshot.strategy, (None, snapshot.strategy))[1]


def readout_html(snapshot: EsSnapshot, other: EsSnapshot | None = None, note: str = "") -> str:
    """generation, evaluations, best, sigma (and what stopped the run) as one line of rich text; with a second
    run, a shorter line for each run, the second in its colour."""
    stop = f' · <span style="color:#b00000">stopped: {", ".join(snapshot.stop)}</span>' if snapshot.stop else ""
    restarts = f" · restarts {snapshot.restarts}" if snapshot.restarts else ""
    problem = f"{note}<b>{snapshot.problem.capitalize()}</b> {snapshot.dimension}-D"
    if other is None:
        return (f"{problem}, {run_label(snapshot)}, λ={snapshot.popsize}, μ={snapshot.parents} &nbsp;│&nbsp; "
                f"generation <b>{snapshot.generation}</b> · evaluations {snapshot.evaluations} · "
                f"best {_number(snapshot.best_value)} · σ {_number(snapshot.sigma)} · "
                f"axis ratio {_number(snapshot.axis_ratio)}{restarts}{stop}")

    def line(name, run):
        ended = " · stopped" if run.stop else ""
        restarted = f" · restarts {run.restarts}" if run.restarts else ""
        return (f"<b>{name}</b>: {run_label(run)} λ={run.popsize} · generation <b>{run.generation}</b> · "
                f"evaluations {run.evaluations} · best {_number(run.best_value)} · σ {_number(run.sigma)}"
                f"{restarted}{ended}")

    colour = "#%02x%02x%02x" % OTHER
    return f'{problem} &nbsp;│&nbsp; {line("A", snapshot)}<br><span style="color:{colour}">{line("B", other)}</span>'


class EsFigure(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.ci.setSpacing(4)
        self.title = self.addLabel("", row=0, col=0, colspan=2, size="10pt")
        self.search = SearchSpacePlot(legend_outside=True)
        self.addItem(self.search, row=1, col=0, rowspan=3)
        self.search.legend.setColumnCount(5)
        self.addItem(self.search.legend, row=4, col=0, colspan=2)
        self.fitness = CurvesPlot(self._fitness_title(False), x_label="")
        self.fitness.add_curve("worst", style.CURVE_WORST)
        self.fitness.add_curve("median", style.CURVE_MEDIAN)
        self.fitness.add_curve("best", style.CURVE_BEST)
        self.fitness.add_curve("best_so_far", style.CURVE_BEST, Qt.DashLine)
        self.sigma_plot = CurvesPlot("step size σ (log)", x_label="")
        self.sigma_plot.add_curve("sigma", style.CURVE_SIGMA)
        self.ratio_plot = CurvesPlot("axis ratio of C, √(λmax/λmin) (log)")
        self.ratio_plot.add_curve("axis_ratio", style.CURVE_AXIS_RATIO)
        for key in FITNESS_KEYS:
            self.fitness.add_curve("b_" + key, OTHER, OTHER_LINES[key])
        self.sigma_plot.add_curve("b_sigma", OTHER, Qt.DashLine)
        self.ratio_plot.add_curve("b_axis_ratio", OTHER, Qt.DashLine)
        for row, plot in enumerate(self.curve_plots(), start=1):
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
        self._comparing = None
        self.offset = np.zeros(2)   # plane coordinates of the plot's (0, 0): m for n > 2
        # Panning, zooming or resizing shows another region: draw the function there once the view settles.
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(120)
        self._refresh.timeout.connect(self._show_background)
        self._stopped = False
        self.search.getViewBox().sigRangeChanged.connect(lambda *_: self._stopped or self._refresh.start())

    def curve_plots(self) -> tuple[CurvesPlot, CurvesPlot, CurvesPlot]:
        return self.fitness, self.sigma_plot, self.ratio_plot

    @staticmethod
    def _fitness_title(comparing: bool) -> str:
        title = legend_title("objective value (log): ", (
            ("worst", style.CURVE_WORST), ("median", style.CURVE_MEDIAN), ("best", style.CURVE_BEST),
            ("- - best so far", style.CURVE_BEST)))
        return title + (legend_title("; ", (("B dashed", OTHER),)) if comparing else "")

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

    def to_plane(self, x: float, y: float) -> np.ndarray:
        """Plane coordinates of a point of the plot."""
        return np.array([x, y]) + self.offset

    def reset_curves(self) -> None:
        """Empty axes at their first ranges: a new run does not inherit the last run's."""
        for plot in self.curve_plots():
            plot.reset_view()

    def show_snapshot(self, snapshot: EsSnapshot, history: EsHistory, problem, x0=None) -> None:
        """Draw one run's snapshot, live (es-animate, tests)."""
        self.show_frame(EsFrame(snapshot.generation, snapshot), history, None, problem, x0)

    def show_frame(self, frame: EsFrame, history: EsHistory, other_history: EsHistory | None, problem, x0=None,
                   upto: int | None = None, end: int | None = None, note: str = "") -> None:
        """Draw a frame: background, markers, ellipses, curves up to its generation, restarts and readout.

        x0: the start point (n,). upto: draw the curves up to this generation (a replay; None: all of them).
        end: the newest generation of the run (the curves' x axis reaches it; a replay's cursor moves along)."""
        snapshot, other = frame.a, frame.b
        if snapshot.dimension != self._dimension:
            self._dimension = snapshot.dimension
            if snapshot.dimension == 2:
                self.search.set_axis_labels("x₁", "x₂")
            else:
                self.search.set_axis_labels("u₁ − m (plane of C's two leading axes)", "u₂ − m")
        comparing = other is not None
        if comparing != self._comparing:
            self._comparing = comparing
            self.search.show_other(f"B ({run_label(other)})" if comparing else None)
            self.fitness.setTitle(self._fitness_title(comparing), size="10pt")
            if not comparing:
                self.clear_other_curves()
        self.offset = np.zeros(2) if snapshot.dimension == 2 else np.asarray(snapshot.mean, dtype=float)
        shift = self.offset
        (x_lo, x_hi), (y_lo, y_hi) = plot_box(problem, snapshot, others=() if other is None else (other,))
        self.search.set_box(((x_lo - shift[0], x_hi - shift[0]), (y_lo - shift[1], y_hi - shift[1])))
        self._problem, self._snapshot = problem, snapshot
        self._show_background()
        generation = frame.index if upto is None else upto
        for items, shown, past in ((self.search.run, snapshot, history), (self.search.other, other, other_history)):
            if shown is None:
                continue
            items.set_population(shown.population - shift)
            items.set_distribution(shown.mean - shift, shown.cov2)
            items.set_path(past.mean_path(shown.basis, generation) - shift)
            self.search.set_marker(items.best, shown.best_so_far - shift)
        self.search.set_marker(self.search.solution, snapshot.solution - shift)
        x0 = None if x0 is None else np.asarray(x0, dtype=float)
        # x0 of another dimension (chosen for the next run) has no place in this run's picture
        start = x0 @ snapshot.basis - shift if x0 is not None and x0.shape == (snapshot.dimension,) else None
        self.search.set_marker(self.search.start, start)
        end = frame.index if end is None else end
        for plot in self.curve_plots():
            plot.show_counts(end)
            plot.set_cursor(generation if generation < end else None)
        self._show_curves(history, "", generation, RESTART_MARK, 0.92)
        if comparing:
            self._show_curves(other_history, "b_", generation, OTHER, 0.5)
        set_heading(self, self.title, readout_html(snapshot, other, note))

    def _show_curves(self, history: EsHistory, prefix: str, upto: int, colour, height: float) -> None:
        columns = history.arrays(upto)
        generations = columns["generation"]
        for plot, keys in ((self.fitness, FITNESS_KEYS), (self.sigma_plot, ("sigma",)),
                           (self.ratio_plot, ("axis_ratio",))):
            for key in keys:
                plot.set_curve(prefix + key, generations, columns[key])
        restarts = history.restarts_until(upto)
        xs = [generation for generation, _ in restarts]
        self.fitness.set_markers(prefix + "restarts", xs, colour, [f"λ={popsize}" for _, popsize in restarts],
                                 height)
        self.sigma_plot.set_markers(prefix + "restarts", xs, colour)
        self.ratio_plot.set_markers(prefix + "restarts", xs, colour)

    def clear_other_curves(self) -> None:
        for plot, keys in ((self.fitness, FITNESS_KEYS), (self.sigma_plot, ("sigma",)),
                           (self.ratio_plot, ("axis_ratio",))):
            for key in keys:
                plot.set_curve("b_" + key, [], [])
            plot.set_markers("b_restarts", [], OTHER)

    def _show_background(self) -> None:
        """The function over the whole visible region (the aspect lock usually shows more than the box).

        In 2-D it is f itself, redrawn only when the region changes; for n > 2 it is the slice through m on C's
        leading plane, which moves with every snapshot."""
        problem, snapshot = self._problem, self._snapshot
        if snapshot is None or self.closed:  # nothing drawn yet, or the figure is gone (its items deleted)
            return
        (x_lo, x_hi), (y_lo, y_hi) = self.search.getViewBox().viewRange()
        shift = self.offset
        box = ((float(x_lo), float(x_hi)), (float(y_lo), float(y_hi)))
        plane = ((box[0][0] + shift[0], box[0][1] + shift[0]), (box[1][0] + shift[1], box[1][1] + shift[1]))
        if snapshot.dimension == 2:
            key = (problem.name, problem.n, tuple(problem.optimum), np.round(box, 9).tobytes())
            resolution, supersample = FIXED_RESOLUTION * SUPERSAMPLE, SUPERSAMPLE
        else:
            key = (id(snapshot), box)
            resolution, supersample = int(np.clip(np.sqrt(SLICE_BUDGET / snapshot.dimension), 32, 200)), 1
        if key == self._background_key:
            return
        self._background_key = key
        values = slice_grid(problem, snapshot, plane, resolution)
        self.search.set_background(style.contour_image(values, supersample=supersample), box)
