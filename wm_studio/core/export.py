"""Animations and pictures from numpy frames: GIF (Pillow), MP4 (imageio-ffmpeg's bundled ffmpeg), PNG.

Frames are HxWx3 uint8 RGB arrays. Every file is written to a temporary sibling and renamed over the target, so
an interrupted export leaves either the old file or the new one. The Evolution pane, `wm-studio es-animate` and the
later panes (latent walks, dreams, controller episodes) all export through this module.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from wm_studio.core.errors import ConfigError, MissingDependencyError
from wm_studio.core.files import atomic_write

ANIMATION_FORMATS = (".gif", ".mp4")
_UMASK = os.umask(0)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)

# progress(done, total): frames encoded so far, and the frame count when it is known (None for a generator).
Progress = Callable[[int, "int | None"], None]


def write_animation(path, frames: Iterable[np.ndarray], fps: float = 10.0, size: tuple[int, int] | None = None,
                    progress: Progress | None = None) -> Path:
    """Write frames to a GIF or an MP4 (chosen by the extension of path) and return the path.

    size=(width, height) resizes every frame; by default all frames take the size of the first one. MP4 (H.264,
    yuv420p) needs even dimensions: an odd width or height gets one more pixel, copied from the edge.
    A GIF merges consecutive identical frames into one longer frame (Pillow does); an MP4 keeps every frame.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise ConfigError(f"cannot write an animation to {path.name}: use a .gif or .mp4 file name")
    if not fps > 0:
        raise ConfigError(f"the frame rate must be positive, not {fps}")
    total = len(frames) if hasattr(frames, "__len__") else None
    sized = _same_size(frames, size)
    if suffix == ".gif":
        return _write_gif(path, sized, fps, total, progress)
    return _write_mp4(path, sized, fps, total, progress)


def write_png(path, frame: np.ndarray) -> Path:
    """Write one HxWx3 (or HxWx4) uint8 frame as a PNG, atomically."""
    from PIL import Image
    image = Image.fromarray(_check_frame(frame, allow_alpha=True))
    return atomic_write(path, lambda f: image.save(f, format="PNG"))


def read_png(path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_animation(path) -> list[np.ndarray]:
    """Every frame of a GIF or MP4 as HxWx3 uint8 arrays (the tests read exports back with this)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image, ImageSequence
        with Image.open(path) as image:
            return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    if suffix == ".mp4":
        reader = _ffmpeg().read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        return [np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy() for raw in reader]
    raise ConfigError(f"cannot read an animation from {path.name}: use a .gif or .mp4 file")


def _check_frame(frame, allow_alpha: bool = False) -> np.ndarray:
    frame = np.asarray(frame)
    channels = (3, 4) if allow_alpha else (3,)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in channels:
        raise ConfigError(f"a frame must be an HxWx3 uint8 array, not {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


def _same_size(frames: Iterable[np.ndarray], size: tuple[int, int] | None) -> Iterable[np.ndarray]:
    """Yield RGB frames all of one size: `size`, or the first frame's size."""
    from PIL import Image
    if size is not None and (len(size) != 2 or min(size) < 2):
        raise ConfigError(f"the frame size must be (width, height) of at least 2x2, not {size}")
    target = tuple(int(s) for s in size) if size is not None else None
    for frame in frames:
        frame = _check_frame(frame)
        if target is None:
            target = (frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != target:
            frame = np.asarray(Image.fromarray(frame).resize(target, Image.Resampling.LANCZOS))
        yield frame


def _write_gif(path: Path, frames: Iterable[np.ndarray], fps: float, total: int | None,
               progress: Progress | None) -> Path:
    from PIL import Image
    # Each frame gets its own palette (the colours of a run change as the population moves); no dithering,
    # which would turn the flat contour bands into noise that compresses badly.
    images = []
    for frame in frames:
        images.append(Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE,
                                                      dither=Image.Dither.NONE))
        if progress:
            progress(len(images), total)
    if not images:
        raise ConfigError("there are no frames to write")
    duration_ms = max(10, int(round(1000.0 / fps)))  # GIF delays are whole hundredths of a second
    return atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                       duration=duration_ms, loop=0))


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float, total: int | None,
               progress: Progress | None) -> Path:
    ffmpeg = _ffmpeg()
    path.parent.mkdir(parents=True, exist_ok=True)
    # ffmpeg wants a file name with the right extension, so the temporary file is a named .mp4 beside the target.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    writer = None
    count = 0
    try:
        for frame in frames:
            frame = _even(frame)
            if writer is None:
                writer = ffmpeg.write_frames(tmp, (frame.shape[1], frame.shape[0]), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", quality=8, macro_block_size=1,
                                             output_params=["-movflags", "+faststart"])
                writer.send(None)
            writer.send(frame.tobytes())
            count += 1
            if progress:
                progress(count, total)
        if writer is None:
            raise ConfigError("there are no frames to write")
        writer.close()
        writer = None
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; a video should read like any other file
        os.replace(tmp, path)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by one edge pixel: H.264 in yuv420p needs even dimensions."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MissingDependencyError("MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg
