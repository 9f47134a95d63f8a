"""GIF / MP4 / PNG export: files read back with the right frame count, size and content, written atomically."""
import os

import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.core.export import read_animation, read_png, write_animation, write_png

from beside_blas import beside_blas


def moving_square(count=6, height=48, width=64):
    """Frames whose bright square moves right: every frame differs from the one before."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 30, np.uint8)
        frame[10:26, 4 + 6 * i:20 + 6 * i] = (250, 40, 40)
        frames.append(frame)
    return frames


def square_column(frame):
    """Column of the centre of the red square (tolerant to lossy compression)."""
    red = (frame[..., 0] > 150) & (frame[..., 1] < 120)
    return np.nonzero(red.any(axis=0))[0].mean()


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animation_round_trip(tmp_path, suffix):
    frames = moving_square()
    seen = []
    path = write_animation(tmp_path / f"anim{suffix}", frames, fps=5, progress=lambda done, total: seen.append(
        (done, total)))
    back = read_animation(path)
    assert len(back) == len(frames)
    assert back[0].shape == (48, 64, 3) and back[0].dtype == np.uint8
    columns = [square_column(f) for f in back]
    assert np.all(np.diff(columns) > 4)           # the square moves right in every frame
    assert abs(columns[0] - square_column(frames[0])) < 2
    assert seen == [(i, len(frames)) for i in range(1, len(frames) + 1)]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]   # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask   # readable like any other file, not 0600


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_size_is_settable(tmp_path, suffix):
    back = read_animation(write_animation(tmp_path / f"small{suffix}", moving_square(), fps=10, size=(40, 30)))
    assert len(back) == 6 and back[0].shape == (30, 40, 3)


def test_mp4_pads_odd_dimensions(tmp_path):
    back = read_animation(write_animation(tmp_path / "odd.mp4", moving_square(height=47, width=63), fps=10))
    assert back[0].shape == (48, 64, 3)


def test_generator_of_frames_and_gif_timing(tmp_path):
    from PIL import Image
    path = write_animation(tmp_path / "gen.gif", (f for f in moving_square(4)), fps=4)
    with Image.open(path) as image:
        assert image.n_frames == 4
        assert image.info["duration"] == 250
        assert image.info.get("loop") == 0


def test_png_round_trip(tmp_path):
    frame = moving_square(1)[0]
    path = write_png(tmp_path / "one.png", frame)
    assert np.array_equal(read_png(path), frame)


def test_bad_requests_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"\.gif or \.mp4"):
        write_animation(tmp_path / "anim.avi", moving_square())
    with pytest.raises(ConfigError, match="no frames"):
        write_animation(tmp_path / "empty.gif", [])
    with pytest.raises(ConfigError, match="HxWx3 uint8"):
        write_animation(tmp_path / "float.gif", [np.zeros((8, 8, 3))])
    with pytest.raises(ConfigError, match="frame rate"):
        write_animation(tmp_path / "a.gif", moving_square(), fps=0)
    assert not list(tmp_path.iterdir())


def test_failed_encoding_keeps_the_old_file(tmp_path):
    target = tmp_path / "anim.mp4"
    write_animation(target, moving_square(3), fps=5)
    before = target.read_bytes()

    def broken():
        yield moving_square(1)[0]
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_animation(target, broken(), fps=5)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.mp4"]


# A thread doing BLAS work while the main thread exports MP4s 30 times. Starting ffmpeg with fork() (what a
# preexec_fn forces) runs OpenBLAS's fork handler, which waits for good on the busy thread's BLAS threads.
BLAS_BESIDE_EXPORT = """
import sys
from wm_studio.core.export import write_animation

frames = [np.full((32, 32, 3), 8 * i, np.uint8) for i in range(4)]
for round in range(30):
    write_animation(sys.argv[1], frames, fps=10)
    print("round", round, flush=True)
"""


def test_mp4_export_never_hangs_beside_a_blas_thread(tmp_path):
    """With ffmpeg started by imageio-ffmpeg (fork) the export or the BLAS thread hung in every try; about 3 s
    with vfork."""
    import subprocess
    import sys
    limit = 90
    code = beside_blas(BLAS_BESIDE_EXPORT, dump_after=limit - 15)
    try:
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.mp4")], capture_output=True,
                                text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"MP4 export hung beside a BLAS thread: {exc.stdout!r}")
    rounds = result.stdout.count("round")
    assert result.returncode == 0 and "joined" in result.stdout, (
        f"MP4 export beside a BLAS thread hung after {rounds} of 30 exports (stacks below):\n{result.stderr[-3000:]}")
    assert len(read_animation(tmp_path / "x.mp4")) == 4
