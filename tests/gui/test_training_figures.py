"""The Training pane's M figure shows how the done head predicts held-out deaths (Doom), and nothing of it for an
M without one (CarRacing)."""
import math

import numpy as np

from wm_studio.core.train.mdn_stage import HELDOUT_COLUMNS, MdnSnapshot
from wm_studio.gui.views.training_figures import MdnFigure


def snapshot(heldout):
    history = np.column_stack([np.repeat([1, 2, 3], 4), np.linspace(2, 1, 12), np.linspace(0.5, 0.2, 12)])
    return MdnSnapshot(done=12, total=12, epoch=3, epochs=3, nll=1.0, done_loss=0.2, heldout_nll=1.1,
                       history=history, heldout=np.asarray(heldout, np.float64).reshape(-1, len(HELDOUT_COLUMNS)),
                       true_next=np.zeros((5, 2), np.float32), predicted_next=np.zeros((5, 2), np.float32))


def test_the_m_figure_plots_the_deaths_caught_per_epoch(qtbot):
    figure = MdnFigure()
    qtbot.addWidget(figure)
    figure.draw(snapshot([[1, 1.3, 0.40, 2.5, 0.35], [2, 1.2, 0.75, 1.25, 0.61], [3, 1.1, 0.9, 0.5, 0.8]]), "M")
    assert figure.done_shown and figure.done in figure.ci.items
    x, caught = figure.done.curve_data("caught")
    assert x.tolist() == [1, 2, 3] and caught.tolist() == [0.40, 0.75, 0.9]
    assert figure.done.curve_data("at_death")[1].tolist() == [0.35, 0.61, 0.8]
    title = figure.done.titleLabel.text
    assert "false alarms 0.50 per 1,000 steps" in title and "caught within 5 steps (90%)" in title


def test_an_m_without_a_done_head_shows_no_done_plot(qtbot):
    figure = MdnFigure()
    qtbot.addWidget(figure)
    nan = math.nan
    figure.draw(snapshot([[1, 1.3, nan, nan, nan]]), "M")
    assert not figure.done_shown and figure.done not in figure.ci.items
    figure.draw(snapshot([[1, 1.3, 0.5, 1.0, 0.4]]), "M")
    figure.draw(snapshot([[1, 1.3, nan, nan, nan]]), "M")             # another run opened: gone again
    assert not figure.done_shown and figure.done not in figure.ci.items
