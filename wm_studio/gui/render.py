"""Offscreen rendering of the Evolution figure, frame by frame: `wm-studio es-animate`, the studio's no-display
fallback and the pane's GIF/MP4 export all draw through here, so a file looks exactly like the studio."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PyQt5.QtCore import QEventLoop, Qt
from PyQt5.QtWidgets import QApplication

from wm_studio.core.es.demo import EsFrame, EsHistory, EsSettings, EsSnapshot
from wm_studio.core.export import Progress, write_animation
from wm_studio.gui.views.es_figure import EsFigure
from wm_studio.gui.views.grab import grab_frame

DEFAULT_SIZE = (960, 540)


def ensure_application(offscreen: bool = True) -> QApplication:
    """The running QApplication, or a new one (offscreen unless QT_QPA_PLATFORM says otherwise)."""
    from wm_studio.gui.application import make_application
    app = QApplication.instance()
    if app is None:
        if offscreen:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = make_application()
    return app


def render_hidden(figure, items: Iterable, draw: Callable[[Any], None], size: tuple[int, int],
                  shutdown: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
    """Show `figure` hidden at `size` (width, height), `draw(item)` each item on it and yield the figure as an RGB
    frame; at the end `shutdown()` (if given) and the figure is closed. Every offscreen figure renders here."""
    figure.setAttribute(Qt.WA_DontShowOnScreen)
    figure.resize(*size)
    figure.show()
    QApplication.processEvents(QEventLoop.ExcludeUserInputEvents)  # lay it out before the first frame
    try:
        for item in items:
            draw(item)
            QApplication.processEvents(QEventLoop.ExcludeUserInputEvents)  # let the layout settle
            yield grab_frame(figure)
    finally:
        if shutdown is not None:
            shutdown()
        figure.close()
        figure.deleteLater()


def render_frames(frames: Iterable[EsFrame | EsSnapshot], problem, size: tuple[int, int] = DEFAULT_SIZE,
                  x0=None, histories: tuple[EsHistory, EsHistory] | None = None) -> Iterator[np.ndarray]:
    """Draw each frame (or one run's snapshot) on a hidden EsFigure of `size` (width, height) and yield it as an
    RGB frame, as the studio showed it live: the curves up to that generation.

    histories: the curves of the run(s) (a replayed range of a longer run); by default they are built from the
    frames as they come."""
    figure = EsFigure()
    given = histories is not None
    history, other_history = histories if given else (EsHistory(), EsHistory())

    def draw(frame) -> None:
        if isinstance(frame, EsSnapshot):
            frame = EsFrame(frame.generation, frame)
        if not given:
            history.add(frame.a)
            other_history.add(frame.b)
        figure.show_frame(frame, history, other_history, problem, x0, upto=frame.index, end=frame.index)

    yield from render_hidden(figure, frames, draw, size, figure.shutdown)


def animate(settings: EsSettings, generations: int, path, fps: float = 10.0,
            size: tuple[int, int] = DEFAULT_SIZE, progress: Progress | None = None) -> Path:
    """Run CMA-ES for `generations` and write one frame per snapshot (the start and each generation; fewer when
    CMA-ES stops early) to a GIF or MP4."""
    ensure_application()
    problem = settings.problem()
    frames = render_frames(settings.run(generations), problem, size, settings.start())
    return write_animation(path, frames, fps=fps, size=size, progress=progress)
