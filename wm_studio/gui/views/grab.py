"""A widget as a numpy frame, for PNG, GIF and MP4 export."""
from __future__ import annotations

import numpy as np
from PyQt5.QtGui import QImage
from PyQt5.QtWidgets import QWidget


def image_to_array(image: QImage) -> np.ndarray:
    """A QImage as an (height, width, 3) uint8 RGB array (a copy)."""
    image = image.convertToFormat(QImage.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    bits = image.constBits()
    bits.setsize(stride * height)
    rows = np.frombuffer(bits, np.uint8).reshape(height, stride)
    return rows[:, :width * 3].reshape(height, width, 3).copy()


def grab_frame(widget: QWidget) -> np.ndarray:
    """What the widget shows now, at its size in device-independent pixels."""
    pixmap = widget.grab()
    image = pixmap.toImage()
    if pixmap.devicePixelRatio() != 1:  # a high-DPI screen: keep exports at the widget's logical size
        image = image.scaled(widget.width(), widget.height())
    return image_to_array(image)
