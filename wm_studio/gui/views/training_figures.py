"""The Training pane's figures, one per stage, each drawing that stage's snapshots (live, or read back from the run
by wm_studio.core.train.history):

- CollectFigure: the reward of every rollout written, and their running mean.
- VaeFigure: V's reconstruction error and KL per batch (held-out error per epoch), and held-out frames above V's
  reconstructions, refreshing while V trains; the encoding of the rollouts after it.
- MdnFigure: M's NLL per batch (held-out NLL per epoch), and z_{t+1} against M's prediction on a training window;
  for an M with a done head (Doom), how it predicts the held-out deaths per epoch.
- ControllerFigure: the Evolution pane's views driven by the real CMA-ES run: the population and the search
  distribution (1- and 2-sigma ellipses of sigma^2 C) on C's two leading principal axes, fitness best / mean /
  worst per generation with the scores of the mean, and sigma.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt

from wm_studio.gui import style
from wm_studio.gui.views.curves import CurvesPlot, legend_title, set_heading
from wm_studio.gui.views.pictures import CONTROLLER, RANDOM, PictureBox, mosaic
from wm_studio.gui.views.search_plot import SearchSpacePlot

REC = (31, 80, 220)
KL = (214, 120, 0)
HELDOUT = (20, 20, 20)
BEST_EVAL = (255, 190, 0)     # gold, as the best-so-far marker of the Evolution pane
DIMENSION_COLOURS = [(31, 80, 220), (214, 39, 40), (0, 150, 60), (148, 70, 170)]
PREDICTION_TITLE = "z<sub>t+1</sub> of a training window: true (solid), M's mixture mean (dashed), first dimensions"
CAUGHT = (0, 150, 60)
AT_DEATH = (148, 103, 189)
MAX_CURVE_POINTS = 4000     # longer histories are drawn thinned (every k-th batch): a 30 Hz redraw stays cheap


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, int(math.ceil(len(x) / MAX_CURVE_POINTS)))
    return x[::step], y[::step]


class StageFigure(pg.GraphicsLayoutWidget):
    """A title line (the snapshot's summary) over the stage's plots; draw(snapshot, heading) draws one."""

    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.ci.setSpacing(6)
        self.title = self.addLabel("", row=0, col=0, colspan=2, size="10pt")
        self.snapshot = None

    def show_message(self, text: str) -> None:
        set_heading(self, self.title, text)


class CollectFigure(StageFigure):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rewards = CurvesPlot(legend_title("reward per rollout (random policy): ", (
            ("each rollout", RANDOM), ("running mean", CONTROLLER))), x_label="rollouts written", log_y=False)
        self.rewards.add_curve("reward", RANDOM)
        self.rewards.add_curve("mean", CONTROLLER)
        self.addItem(self.rewards, row=1, col=0, colspan=2)

    def draw(self, rewards: np.ndarray, heading: str) -> None:
        rewards = np.asarray(rewards, float)
        x = np.arange(1, len(rewards) + 1)
        self.rewards.set_curve("reward", x, rewards)
        self.rewards.set_curve("mean", x, np.cumsum(rewards) / np.maximum(x, 1))
        set_heading(self, self.title, heading)


class VaeFigure(StageFigure):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rec = CurvesPlot(legend_title("reconstruction error per image (log): ", (
            ("per batch", REC), ("held out, per epoch", HELDOUT))), x_label="")
        self.rec.add_curve("batch", REC)
        self.rec.add_curve("heldout", HELDOUT, Qt.DashLine)
        self.kl = CurvesPlot(legend_title("KL per image, floored at z/2: ", (("per batch", KL),)),
                             x_label="batch", log_y=False)
        self.kl.add_curve("batch", KL)
        self.kl.setXLink(self.rec)
        self.pairs = PictureBox("held-out frames (top) and V's reconstructions (bottom)")
        self.addItem(self.rec, row=1, col=0)
        self.addItem(self.kl, row=2, col=0)
        self.addItem(self.pairs, row=1, col=1, rowspan=2)
        self.ci.layout.setColumnStretchFactor(0, 3)
        self.ci.layout.setColumnStretchFactor(1, 2)

    def draw(self, snapshot, heading: str) -> None:
        history = np.asarray(snapshot.history)
        batches = np.arange(1, len(history) + 1)
        if len(history):
            self.rec.set_curve("batch", *_thin(batches, history[:, 2]))
            self.kl.set_curve("batch", *_thin(batches, history[:, 3]))
        else:
            self.rec.set_curve("batch", [], [])
            self.kl.set_curve("batch", [], [])
        heldout = np.asarray(snapshot.heldout)
        per_epoch = snapshot.total / max(snapshot.epochs, 1)
        self.rec.set_curve("heldout", heldout[:, 0] * per_epoch if len(heldout) else [],
                           heldout[:, 1] if len(heldout) else [])
        if len(snapshot.inputs):
            self.pairs.set_picture(mosaic([snapshot.inputs, snapshot.reconstructions]))
        set_heading(self, self.title, heading)


class MdnFigure(StageFigure):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.nll = CurvesPlot(legend_title("NLL per latent dimension (nats): ", (
            ("per batch", REC), ("held out, per epoch", HELDOUT), ("done loss", KL))), x_label="batch",
            log_y=False)
        self.nll.add_curve("batch", REC)
        self.nll.add_curve("heldout", HELDOUT, Qt.DashLine)
        self.nll.add_curve("done", KL)
        self.prediction = CurvesPlot(PREDICTION_TITLE, x_label="step", log_y=False)
        for k, colour in enumerate(DIMENSION_COLOURS):
            self.prediction.add_curve(f"true{k}", colour)
            self.prediction.add_curve(f"predicted{k}", colour, Qt.DashLine)
        self.addItem(self.nll, row=1, col=0)
        self.addItem(self.prediction, row=2, col=0)
        # Doom: the done head on held-out episodes (shown once an epoch has measured it).
        self.done = CurvesPlot("", x_label="epoch", log_y=False)
        self.done.add_curve("caught", CAUGHT)
        self.done.add_curve("at_death", AT_DEATH, Qt.DashLine)
        self.done.setYRange(0.0, 1.0, padding=0.02)
        self.done_shown = False

    def draw_done_prediction(self, heldout: np.ndarray) -> None:
        measured = heldout[np.isfinite(heldout[:, 2])] if heldout.ndim == 2 and heldout.shape[1] >= 5 else []
        if not len(measured):
            if self.done_shown:
                self.removeItem(self.done)
                self.done_shown = False
            return
        if not self.done_shown:
            self.addItem(self.done, row=3, col=0)
            self.done_shown = True
        recall, alarms = measured[-1, 2], measured[-1, 3]
        self.done.setTitle(legend_title(f"held-out deaths: false alarms {alarms:.2f} per 1,000 steps; ", (
            (f"caught within 5 steps ({recall:.0%})", CAUGHT), ("mean p(done) at death", AT_DEATH))), size="10pt")
        self.done.set_curve("caught", measured[:, 0], measured[:, 2])
        self.done.set_curve("at_death", measured[:, 0], measured[:, 4])

    def draw(self, snapshot, heading: str) -> None:
        history = np.asarray(snapshot.history)
        batches = np.arange(1, len(history) + 1)
        self.nll.set_curve("batch", *(_thin(batches, history[:, 1]) if len(history) else ([], [])))
        done = history[:, 2] if len(history) else np.empty(0)
        self.nll.set_curve("done", *(_thin(batches, done) if np.isfinite(done).any() else ([], [])))
        heldout = np.asarray(snapshot.heldout)
        per_epoch = snapshot.total / max(snapshot.epochs, 1)
        self.nll.set_curve("heldout", heldout[:, 0] * per_epoch if len(heldout) else [],
                           heldout[:, 1] if len(heldout) else [])
        true, predicted = np.asarray(snapshot.true_next), np.asarray(snapshot.predicted_next)
        self.prediction.setTitle(PREDICTION_TITLE + ("" if len(true) else " (shown while M trains)"), size="10pt")
        steps = np.arange(len(true))
        for k in range(len(DIMENSION_COLOURS)):
            has = true.ndim == 2 and k < true.shape[1]
            self.prediction.set_curve(f"true{k}", steps if has else [], true[:, k] if has else [])
            self.prediction.set_curve(f"predicted{k}", steps if has else [], predicted[:, k] if has else [])
        self.draw_done_prediction(heldout)
        set_heading(self, self.title, heading)


class ControllerFigure(StageFigure):
    """The Evolution pane's search plot and curves, for C's CMA-ES (n = 867 for CarRacing)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.search = SearchSpacePlot(labels={"population": "population (λ candidates)", "mean": "mean m",
                                              "best": "best of the generation", "solution": None,
                                              "start": "x0 = 0"})
        self.search.set_axis_labels("principal axis 1 of C (plane through m)", "principal axis 2 of C")
        self.fitness = CurvesPlot(legend_title("fitness (mean reward of the rollouts): ", (
            ("worst", style.CURVE_WORST), ("mean", style.CURVE_MEDIAN), ("best", style.CURVE_BEST),
            ("score of m", HELDOUT))), x_label="", log_y=False)
        for key, colour in (("worst", style.CURVE_WORST), ("mean", style.CURVE_MEDIAN),
                            ("best", style.CURVE_BEST)):
            self.fitness.add_curve(key, colour)
        self.evals = pg.ScatterPlotItem(symbol="o", size=8, pen=style.pen(HELDOUT), brush=style.brush(BEST_EVAL))
        self.fitness.addItem(self.evals)
        self.sigma = CurvesPlot("step size σ", x_label="generation", log_y=False)
        self.sigma.add_curve("sigma", style.CURVE_SIGMA)
        self.sigma.setXLink(self.fitness)
        self.addItem(self.search, row=1, col=0, rowspan=2)
        self.addItem(self.fitness, row=1, col=1)
        self.addItem(self.sigma, row=2, col=1)
        layout = self.ci.layout
        layout.setRowStretchFactor(1, 3)
        layout.setRowStretchFactor(2, 2)
        layout.setColumnStretchFactor(0, 1)
        layout.setColumnStretchFactor(1, 1)
        self.means: list[np.ndarray] = []   # m after every generation seen, for the path of m

    def reset_path(self) -> None:
        self.means = []

    def add_mean(self, mean: np.ndarray) -> None:
        if not self.means or not np.array_equal(self.means[-1], mean):
            self.means.append(np.asarray(mean, float).copy())

    def draw(self, snapshot, heading: str) -> None:
        history = np.asarray(snapshot.history)
        generations = history[:, 0] if len(history) else np.empty(0)
        for key, column in (("best", 2), ("mean", 3), ("worst", 4)):
            self.fitness.set_curve(key, generations, history[:, column] if len(history) else [])
        self.sigma.set_curve("sigma", generations, history[:, 5] if len(history) else [])
        evals = np.asarray(snapshot.evals).reshape(-1, 2)
        self.evals.setData(pos=evals if len(evals) else np.empty((0, 2)))
        projection = snapshot.projection
        if projection is not None:
            basis = projection.basis
            self.search.set_population(projection.points)
            self.search.set_distribution(projection.mean, projection.cov2)
            path = np.asarray(self.means) @ basis if self.means else np.empty((0, 2))
            self.search.set_path(path)
            self.search.set_marker(self.search.best, np.asarray(snapshot.best_params) @ basis)
            self.search.set_marker(self.search.start, np.zeros(2))
            self.search.set_box(_box(projection, path))
        set_heading(self, self.title, heading)



def _box(projection, path: np.ndarray):
    """A square around the population, the 2-sigma ellipse and the path of m, with a margin. (x0 = 0 is left
    out: in hundreds of dimensions m soon lies far from it, and the population would shrink to a dot.)"""
    spread = 2.5 * np.sqrt(np.clip(np.diag(projection.cov2), 0.0, None))
    points = np.vstack([projection.points, projection.mean - spread, projection.mean + spread,
                        path.reshape(-1, 2)])
    points = points[np.isfinite(points).all(axis=1)]
    low, high = points.min(axis=0), points.max(axis=0)
    center, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-9) * 1.1
    # Snap to a coarse grid so the view does not jitter by a pixel every generation.
    quantum = 10 ** math.floor(math.log10(half)) / 4
    half = math.ceil(half / quantum) * quantum
    center = np.round(center / quantum) * quantum
    return (center[0] - half, center[0] + half), (center[1] - half, center[1] + half)
