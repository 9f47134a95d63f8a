"""Animations and pictures from numpy frames: GIF (Pillow), MP4 (imageio-ffmpeg's bundled ffmpeg), PNG.

Frames are HxWx3 uint8 RGB arrays. Every file is written to a temporary sibling and renamed over the target, so
an interrupted export leaves either the old file or the new one. The target's folder must exist (no folders are
made) and must not lie in a bundle, which is read-only (`runs.output_file`). The Evolution pane, `wm-studio
es-animate` and the later panes (latent walks, dreams, controller episodes) all export through this module.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from wm_studio.core.errors import ConfigError, MissingDependencyError, WmStudioError
from wm_studio.core.files import atomic_path, atomic_write
from wm_studio.core.runs import output_file

ANIMATION_FORMATS = (".gif", ".mp4")

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
    output_file(path, "")
    total = len(frames) if hasattr(frames, "__len__") else None
    sized = _same_size(frames, size)
    if suffix == ".gif":
        return _write_gif(path, sized, fps, total, progress)
    return _write_mp4(path, sized, fps, total, progress)


def write_png(path, frame: np.ndarray) -> Path:
    """Write one HxWx3 (or HxWx4) uint8 frame as a PNG, atomically."""
    from PIL import Image
    output_file(path, "")
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
        return _read_mp4(path)
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
    exe = _ffmpeg_exe()
    with atomic_path(path, suffix=".mp4") as tmp:   # ffmpeg picks the format by the file name's extension
        encoder = None
        count = 0
        try:
            for frame in frames:
                frame = _even(frame)
                if encoder is None:
                    rate = str(Fraction(fps).limit_denominator())
                    encoder = _start_ffmpeg([exe, "-y", "-v", "error", "-f", "rawvideo", "-vcodec", "rawvideo",
                                             "-s", f"{frame.shape[1]}x{frame.shape[0]}", "-pix_fmt", "rgb24",
                                             "-r", rate, "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt",
                                             "yuv420p", "-crf", "10", "-movflags", "+faststart", str(tmp)],
                                            stdin=subprocess.PIPE)
                try:
                    encoder.stdin.write(frame.tobytes())
                except (BrokenPipeError, OSError):
                    raise _ffmpeg_failed(encoder, f"writing {path.name}") from None
                count += 1
                if progress:
                    progress(count, total)
            if encoder is None:
                raise ConfigError("there are no frames to write")
            encoder.stdin.close()
            if encoder.wait() != 0:
                raise _ffmpeg_failed(encoder, f"writing {path.name}")
        finally:
            if encoder is not None:
                _end(encoder)
                encoder.errors.close()
    return path


def _read_mp4(path: Path) -> list[np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    decoder = _start_ffmpeg([_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path), "-f", "image2pipe",
                             "-pix_fmt", "rgb24", "-vcodec", "rawvideo", "-"], stdout=subprocess.PIPE)
    try:
        raw = decoder.stdout.read()
        if decoder.wait() != 0:
            raise _ffmpeg_failed(decoder, f"reading {path.name}")
        # The size is in ffmpeg's description of its output stream, the last "Video: ..., WxH" line it prints.
        sizes = re.findall(r"Video: .*?, (\d+)x(\d+)[ ,\[]", _stderr_text(decoder))
        if not sizes:
            raise ConfigError(f"ffmpeg did not say the frame size of {path.name}")
        width, height = (int(v) for v in sizes[-1])
    finally:
        _end(decoder)
        decoder.errors.close()
    frames = np.frombuffer(raw, np.uint8)
    return [frame.copy() for frame in frames.reshape(-1, height, width, 3)]


def _start_ffmpeg(command: list[str], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """Start ffmpeg so that no fork handler runs in this process.

    imageio-ffmpeg's own read_frames/write_frames pass preexec_fn=os.setpgrp, and any preexec_fn makes
    subprocess use fork(). fork() runs OpenBLAS's atfork handler, which waits for OpenBLAS's threads; while
    another thread of this process (V training in the studio) is inside a matrix product that wait never ends,
    and the export hangs for good. Without preexec_fn CPython starts the child with vfork(), which runs no fork
    handlers; process_group=0 does what setpgrp was there for (Ctrl-C in the terminal does not reach ffmpeg)
    and still allows vfork (only preexec_fn and user or group changes rule it out).
    """
    errors = tempfile.TemporaryFile()    # a file, not a pipe: a chatty ffmpeg can never block on a full pipe
    try:
        process = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=errors, process_group=0)
    except BaseException:
        errors.close()
        raise
    process.errors = errors
    return process


def _stderr_text(process: subprocess.Popen) -> str:
    process.errors.seek(0)
    return process.errors.read().decode("utf-8", "replace")


def _ffmpeg_failed(process: subprocess.Popen, doing: str) -> WmStudioError:
    _end(process, grace_s=10.0)
    lines = [line for line in _stderr_text(process).splitlines() if line.strip()]
    return WmStudioError(f"ffmpeg failed {doing} (exit code {process.returncode}): "
                         f"{' / '.join(lines[-3:]) or 'no message'}")


def _end(process: subprocess.Popen, grace_s: float = 0.0) -> None:
    """Make sure ffmpeg has exited (killed unless it ends within grace_s of its input's end) and its pipes are
    closed; its log stays readable."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by one edge pixel: H.264 in yuv420p needs even dimensions."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def _ffmpeg_exe() -> str:
    """The ffmpeg that imageio-ffmpeg carries (or the one its IMAGEIO_FFMPEG_EXE names)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MissingDependencyError("MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise MissingDependencyError(f"MP4 needs ffmpeg: {exc}") from None
