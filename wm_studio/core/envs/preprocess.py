"""Frame preprocessing as in the paper: crop what the agent should not see, shrink to 64x64.

Frames are uint8 (H, W, 3) everywhere on disk and between processes (a quarter of the bytes of float32); V gets
float32 NCHW in [0, 1] from `frames_to_input`. Every resize goes through `resize_frame` (Pillow's bilinear
filter, which averages over the source pixels when shrinking) so the game wrappers, the tests and the studio
all see the same pixels.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

FRAME_SIZE = 64
CARRACING_KEEP_ROWS = 84        # rows 0-83 of the 96x96 frame: everything above the dashboard
DOOM_KEEP_FRACTION = 400 / 480  # the paper kept rows 0-400 of a 480-row frame; same share of any height


def resize_frame(frame: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3)."""
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def carracing_crop(frame: np.ndarray) -> np.ndarray:
    """Drop CarRacing's dashboard (speed, ABS and steering bars at the bottom of the 96x96 frame)."""
    return frame[:CARRACING_KEEP_ROWS]


def doom_crop(frame: np.ndarray) -> np.ndarray:
    """Keep the top 5/6 of a Doom frame (rows 0-400 of the paper's 480; rows 0-200 of vizdoom's 240)."""
    return frame[:int(round(frame.shape[0] * DOOM_KEEP_FRACTION))]


def preprocess_carracing(frame: np.ndarray) -> np.ndarray:
    return resize_frame(carracing_crop(frame))


def preprocess_doom(frame: np.ndarray) -> np.ndarray:
    return resize_frame(doom_crop(frame))


def frames_to_input(frames: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, C) frames -> float32 (..., C, H, W) in [0, 1]: what V eats."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, not {frames.dtype}")
    images = np.ascontiguousarray(np.moveaxis(frames, -1, -3)).astype(np.float32)
    images /= np.float32(255)
    return images


def input_to_frames(images: np.ndarray) -> np.ndarray:
    """float (..., C, H, W) in [0, 1] (V's output) -> uint8 (..., H, W, C), rounded and clipped."""
    images = np.clip(np.moveaxis(np.asarray(images, dtype=np.float32), -3, -1), 0.0, 1.0)
    return np.rint(images * 255).astype(np.uint8)
