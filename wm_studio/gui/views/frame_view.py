"""One 64x64 game frame, scaled up with crisp pixels, with a title above and a caption below.

The ImageItem holds the uint8 frame itself (fixed levels 0-255, no copy, no rescaling); the ViewBox does the
scaling, so `frame()` is exactly the array the user sees. The Latent and Dream panes show their images in these.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QRectF, Qt

from wm_studio.gui import style

EMPTY_BACKGROUND = (236, 238, 242)


class FrameView(pg.GraphicsLayoutWidget):
    def __init__(self, title: str = "", parent=None, size: int = 64):
        style.configure_pyqtgraph()
        super().__init__(parent)
        self.frame_size = size
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.ci.setSpacing(2)
        self.title = self.addLabel(title, row=0, col=0, size="10pt")
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=False,
                                    defaultPadding=0.0)
        self.view.setMenuEnabled(False)
        self.view.setBackgroundColor(EMPTY_BACKGROUND)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.view.setRange(QRectF(0, 0, size, size), padding=0.0)
        self.caption = self.addLabel("", row=2, col=0, size="9pt")
        self.ci.layout.setRowStretchFactor(1, 1)
        self.setFocusPolicy(Qt.StrongFocus)

    def set_frame(self, frame: np.ndarray) -> None:
        """Show an (H, W, 3) uint8 frame."""
        self.image.setImage(frame, autoLevels=False, levels=(0, 255))
        self.image.setRect(QRectF(0, 0, self.frame_size, self.frame_size))

    def frame(self) -> np.ndarray | None:
        """The array the ImageItem shows (None while empty)."""
        return self.image.image

    def clear_frame(self) -> None:
        self.image.clear()

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)
