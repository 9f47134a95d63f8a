"""The Controller pane's figures: an episode step by step (EpisodeFigure), and the scores of an evaluation
(ScoreFigure: the controller beside the random policy, in the real game and in the dream).

EpisodeFigure draws one wm_studio.core.train.episode.EpisodeStep: the game's frame, what V saw and V's
reconstruction of it, z as bars, M's state h as a heat strip, the actions as gauges and the running reward.
The pane draws it live, and the episode export renders it offscreen frame by frame, so a video looks like the
studio.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from wm_studio.core.train.episode import EpisodeStep, ScoreSnapshot
from wm_studio.gui import style
from wm_studio.gui.views.curves import CurvesPlot
from wm_studio.gui.views.pictures import (CONTROLLER, DREAM, RANDOM, BarsPlot, GaugesPlot, HeatStrip,
                                          HistogramPlot, PictureBox)

ACTION_GAUGES = {
    # names top to bottom, each gauge's range, guide lines
    "carracing": (["steer", "gas", "brake"], [(-1, 1), (0, 1), (0, 1)], ()),
    # Doom's C has one tanh output: below -1/3 it presses left, above +1/3 right (the paper's thirds).
    "doom": (["C output", "left", "right"], [(-1, 1), (0, 1), (0, 1)], (-1 / 3, 1 / 3)),
}


def gauge_values(game: str, step: EpisodeStep) -> np.ndarray:
    if game == "doom":
        return np.concatenate([step.raw_action[:1], step.action[:2]])
    return step.action[:3]


def readout_html(step: EpisodeStep, game: str) -> str:
    who = "driven by the trained controller C" if step.policy == "controller" else "driven by a random policy"
    end = ""
    if step.terminated:
        end = ' · <span style="color:#b00000">episode over</span>'
    elif step.finished:
        end = " · step limit reached"
    return (f"<b>{game}</b>, seed {step.seed}, {who}<br>step <b>{step.done}</b> / {step.total} · "
            f"this step {step.reward:+.2f} · total reward <b>{step.total_reward:.1f}</b>{end}")


class EpisodeFigure(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.ci.setSpacing(6)
        self.title = self.addLabel("", row=0, col=0, colspan=3, size="10pt")
        self.game = PictureBox("the game (full frame)")
        self.seen = PictureBox("what V sees (64×64)")
        self.reconstruction = PictureBox("V's reconstruction of z")
        self.addItem(self.game, row=1, col=0, rowspan=2)
        self.addItem(self.seen, row=1, col=1)
        self.addItem(self.reconstruction, row=1, col=2)
        self.actions = GaugesPlot("actions")
        self.addItem(self.actions, row=2, col=1, colspan=2)
        self.z_bars = BarsPlot("z: V's latent (mean)", x_label="latent dimension")
        self.addItem(self.z_bars, row=3, col=0, colspan=3)
        self.h_strip = HeatStrip("h: M's hidden state (blue −1 … red +1)")
        self.addItem(self.h_strip, row=4, col=0, colspan=3)
        self.reward = CurvesPlot("running reward (total so far)", x_label="step", log_y=False)
        self.reward.add_curve("total", CONTROLLER)
        self.addItem(self.reward, row=5, col=0, colspan=3)
        layout = self.ci.layout
        for row, stretch in ((1, 5), (2, 3), (3, 3), (4, 1), (5, 3)):
            layout.setRowStretchFactor(row, stretch)
        layout.setColumnStretchFactor(0, 2)
        layout.setColumnStretchFactor(1, 1)
        layout.setColumnStretchFactor(2, 1)
        self.step: EpisodeStep | None = None

    def clear_view(self, message: str = "") -> None:
        self.step = None
        for box in (self.game, self.seen, self.reconstruction):
            box.set_picture(None)
        self.z_bars.set_values([])
        self.h_strip.set_values([])
        self.reward.set_curve("total", [], [])
        self._set_title(message)

    def show_step(self, step: EpisodeStep, game: str) -> None:
        self.step = step
        self.game.set_picture(step.frame)
        self.seen.set_picture(step.observation)
        self.reconstruction.set_picture(step.reconstruction)
        names, ranges, marks = ACTION_GAUGES.get(game, ACTION_GAUGES["carracing"])
        self.actions.set_layout(names, ranges, marks)
        self.actions.set_values(gauge_values(game, step))
        self.z_bars.set_values(step.z)
        if step.h is None:
            self.h_strip.set_values([])
            self.h_strip.setTitle("h: none (this controller reads z only)", size="9pt")
        else:
            self.h_strip.set_values(step.h)
        steps = np.arange(1, len(step.rewards) + 1)
        self.reward.set_curve("total", steps, np.cumsum(step.rewards))
        self._set_title(readout_html(step, game))

    def _set_title(self, html: str) -> None:
        self.title.setText(html)
        self._wrap_title()

    def _wrap_title(self) -> None:
        """Wrap a title wider than the view. A LabelItem keeps its text on one line and makes that line the
        layout's minimum width: a long error message made the figure wider than its view and cut the plots off."""
        text = self.title.item
        text.setTextWidth(-1)                    # a short title keeps its natural width (and stays centred)
        room = max(120.0, self.viewport().width() - 24.0)
        if text.boundingRect().width() > room:
            text.setTextWidth(room)
        self.title.updateMin()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if hasattr(self, "title") and not self.closed:   # while pyqtgraph builds it, or after close()
            self._wrap_title()


class ScoreFigure(pg.GraphicsLayoutWidget):
    """Histograms of an evaluation's scores: real game above, dream below. Where M cannot score a dream
    (CarRacing's M predicts no reward) the dream histogram is taken out and the real one has the whole height."""

    def __init__(self, parent=None):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.ci.setContentsMargins(4, 4, 4, 4)
        self.real = HistogramPlot("real game", x_label="total reward per episode")
        self.dream = HistogramPlot("dream", x_label="dream score per episode")
        self.addItem(self.real, row=0, col=0)
        self.addItem(self.dream, row=1, col=0)
        self.real.show_note("press Evaluate to score C beside a random policy")
        self.dream.show_note("")

    @property
    def shows_dream(self) -> bool:
        return self.dream in self.ci.items

    def show_dream(self, shown: bool) -> None:
        """Keep the dream histogram (an M that scores dreams) or give its row to the real one."""
        if shown and not self.shows_dream:
            self.addItem(self.dream, row=1, col=0)
        elif not shown and self.shows_dream:
            self.ci.removeItem(self.dream)

    def show_scores(self, snapshot: ScoreSnapshot) -> None:
        report = snapshot.real
        if report is None:
            self.real.show_note(f"playing… {snapshot.done} / {snapshot.total} episodes")
        else:
            self.real.show_samples({"controller": (report.controller_rewards, CONTROLLER),
                                    "random": (report.random_rewards, RANDOM)})
        if snapshot.dream_controller is not None:
            self.show_dream(True)
            self.dream.show_samples({"controller": (snapshot.dream_controller, DREAM),
                                     "random": (snapshot.dream_random, RANDOM)})
            self.dream.setLabel("bottom", "steps survived in the dream")
        elif snapshot.dream_note:
            self.dream.show_note(snapshot.dream_note)
        elif report is not None:
            self.dream.show_note("dreaming…")
