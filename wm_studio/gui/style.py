"""Colours, pens and pyqtgraph's global options: one place, so every pane and every exported frame look alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QIcon

# What each thing is drawn in, everywhere (plots, legends, exported animations).
POPULATION = (214, 39, 40)       # red
MEAN = (0, 150, 60)              # green: the distribution mean m
ELLIPSE = (0, 105, 40)           # darker green: the 1- and 2-sigma ellipses of sigma^2 C
SOLUTION = (31, 80, 220)         # blue: the known optimum
BEST = (255, 190, 0)             # gold: the best point found so far
START = (20, 20, 20)             # x0
OUTLINE = (25, 25, 25)
CURVE_BEST = (31, 80, 220)
CURVE_MEDIAN = (90, 90, 90)
CURVE_WORST = (214, 39, 40)
CURVE_SIGMA = (0, 130, 130)
CURVE_AXIS_RATIO = (148, 70, 170)

# The contour background: light for low (good) values, slate for high ones, never red, green or saturated blue,
# so that the markers on top stay the loudest things in the picture.
CONTOUR_LOW = np.array([250, 250, 246], dtype=float)
CONTOUR_HIGH = np.array([150, 160, 178], dtype=float)
CONTOUR_BANDS = 14

# resources/ sits beside the package in a checkout (and an editable install), where `make studio` runs from.
RESOURCES = Path(__file__).resolve().parents[2] / "resources"

_configured = False


def configure_pyqtgraph() -> None:
    """pyqtgraph's global options, set once before any of its widgets exists (changing them later is unsafe)."""
    global _configured
    if _configured:
        return
    pg.setConfigOptions(antialias=True, useOpenGL=False, imageAxisOrder="row-major", background="w",
                        foreground="k")
    _configured = True


def pen(color, style=Qt.SolidLine) -> pg.QtGui.QPen:
    """A cosmetic pen of width 1 (wider pens are slow to draw in Qt)."""
    result = pg.mkPen(color=color, width=1, style=style)
    result.setCosmetic(True)
    return result


def brush(color, alpha: int = 255):
    return pg.mkBrush(*color, alpha)


def contour_image(values: np.ndarray, bands: int = CONTOUR_BANDS, supersample: int = 1) -> np.ndarray:
    """A filled-contour picture (rows, cols, 3) uint8 of a function on a grid.

    Band edges are quantiles of the values, so every band covers about the same area whatever the function's scale
    (Schaffer's rings, Rosenbrock's valley, a sphere's circles all show); non-finite values get the top band.
    With supersample = k the grid is k times finer than the picture and each pixel averages k x k samples: rings
    finer than a pixel (Schaffer's, far from the centre) blend to grey instead of drawing moire patterns.
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return np.broadcast_to(CONTOUR_HIGH.astype(np.uint8), (*values.shape, 3)).copy()
    edges = np.quantile(values[finite], np.linspace(0, 1, bands + 1)[1:-1])
    band = np.searchsorted(edges, np.where(finite, values, np.inf), side="right")
    shade = band / max(1, bands - 1)
    rgb = CONTOUR_LOW + shade[..., None] * (CONTOUR_HIGH - CONTOUR_LOW)
    if supersample > 1:
        rows, cols = (size // supersample for size in rgb.shape[:2])
        rgb = rgb[:rows * supersample, :cols * supersample]
        rgb = rgb.reshape(rows, supersample, cols, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def studio_icon() -> QIcon:
    """The window icon (resources/icon.svg, with the PNG beside it for Qt builds without SVG support)."""
    icon = QIcon()
    for name in ("icon.svg", "icon.png"):
        if (RESOURCES / name).is_file():
            icon.addFile(str(RESOURCES / name))
    return icon
