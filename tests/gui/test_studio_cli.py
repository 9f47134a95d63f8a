"""The command-line faces of the studio, in subprocesses: es-animate, --screenshot, and the no-display fallback."""
import subprocess
import sys

import numpy as np
import pytest

from wm_studio.commands.gui import DREAM_STEPS
from wm_studio.core.export import read_animation, read_png
from wm_studio.core.run_contents import DEFAULT_MODEL

from tiny_run import make_run


def wm_studio(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "wm_studio", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def frames_differ(frames):
    return all(np.abs(a.astype(int) - b).mean() > 0.5 for a, b in zip(frames, frames[1:]))


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_es_animate_writes_the_animation(tmp_path, studio_env, suffix):
    out = tmp_path / f"schaffer{suffix}"
    result = wm_studio("es-animate", "--function", "schaffer", "--lambda", "64", "--mu", "0.25", "--sigma0", "3",
                       "--seed", "1", "--generations", "3", "--size", "320x180", "--fps", "5", "--out", str(out),
                       env=studio_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = read_animation(out)
    assert len(frames) == 4                       # the start + 3 generations
    assert frames[0].shape == (180, 320, 3)
    assert frames_differ(frames)
    assert f"wrote {out}" in result.stdout
    assert bar_counts(result.stderr)[-1] == (3, 3)              # all the generations asked for


def bar_counts(stderr: str) -> list[tuple[int, int]]:
    import re
    return [(int(done), int(total)) for done, total in re.findall(r"\] (\d+)/(\d+) ", stderr)]


def test_es_animates_bar_keeps_its_total_and_says_why_cma_es_stopped_early(tmp_path, studio_env):
    """Issue 12: the bar started at 1/61 and ended at 37/37 when CMA-ES met a criterion at generation 36."""
    out = tmp_path / "sphere.gif"
    result = wm_studio("es-animate", "--function", "sphere", "--lambda", "0", "--mu", "", "--sigma0", "1e-9",
                       "--generations", "60", "--size", "96x64", "--out", str(out), env=studio_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = len(read_animation(out))
    counts = bar_counts(result.stderr)
    assert counts[0] == (0, 60)                                  # generation 0: the start
    assert {total for _, total in counts} == {60}               # the total never changes
    assert counts[-1] == (frames - 1, 60) and frames - 1 < 60
    assert f"CMA-ES stopped after generation {frames - 1} of the 60 asked for (" in result.stderr


def test_es_animate_in_ten_dimensions(tmp_path, studio_env):
    out = tmp_path / "rosenbrock.gif"
    result = wm_studio("es-animate", "--function", "rosenbrock", "--dim", "10", "--lambda", "0", "--mu", "",
                       "--sigma0", "0.5", "--generations", "2", "--size", "320x180", "--out", str(out),
                       env=studio_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_animation(out)) == 3


def test_es_animate_rejects_bad_options_in_one_line(tmp_path, studio_env):
    result = wm_studio("es-animate", "--out", str(tmp_path / "x.avi"), env=studio_env, cwd=tmp_path)
    assert result.returncode == 2 and "use a .gif or .mp4" in result.stderr and "Traceback" not in result.stderr
    result = wm_studio("es-animate", "--size", "big", env=studio_env, cwd=tmp_path)
    assert result.returncode == 2 and "960x540" in result.stderr


def test_screenshot_flag_saves_the_whole_window(tmp_path, studio_env):
    shot = tmp_path / "shot.png"
    result = wm_studio("gui", "--pane", "evolution", "--generations", "3", "--screenshot", str(shot),
                       env=studio_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    picture = read_png(shot)
    assert picture.shape == (900, 1400, 3)
    assert picture.std() > 10                          # a drawn window, not a blank one
    assert not (tmp_path / "config").exists()           # a screenshot leaves the settings alone


def test_screenshot_without_a_display_goes_offscreen(tmp_path, studio_env):
    env = {k: v for k, v in studio_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    shot = tmp_path / "shot.png"
    result = wm_studio("gui", "--generations", "2", "--screenshot", str(shot), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_png(shot).shape == (900, 1400, 3)


def test_no_display_exports_the_schaffer_animation_instead(tmp_path, studio_env):
    env = {k: v for k, v in studio_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = wm_studio("gui", "--generations", "3", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notice = [line for line in result.stdout.splitlines() if "no display" in line]
    assert len(notice) == 1 and "wm-studio-schaffer.gif" in notice[0]
    frames = read_animation(tmp_path / "wm-studio-schaffer.gif")
    assert len(frames) == 4 and frames_differ(frames)
    out = tmp_path / "elsewhere.mp4"
    result = wm_studio("gui", "--generations", "2", "--out", str(out), env=env, cwd=tmp_path)
    assert result.returncode == 0 and len(read_animation(out)) == 3


def test_unknown_pane_is_one_clear_line(tmp_path, studio_env):
    result = wm_studio("gui", "--pane", "nonsense", "--screenshot", str(tmp_path / "x.png"), env=studio_env,
                       cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown pane 'nonsense'" in result.stderr and "Traceback" not in result.stderr
    assert "QThread" not in result.stderr


def test_plain_wm_studio_without_a_display_is_what_make_studio_runs(tmp_path, studio_env):
    env = {k: v for k, v in studio_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = wm_studio(env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no display" in result.stdout
    frames = read_animation(tmp_path / "wm-studio-schaffer.gif")
    assert 2 < len(frames) <= 61 and frames_differ(frames[:5])
    assert DEFAULT_MODEL.is_dir(), "the checkout ships its bundled model"
    assert "wrote a dream of the bundled CarRacing model" in result.stdout
    assert "driven by the controller C" in result.stdout
    dream = read_animation(tmp_path / "wm-studio-dream.gif")
    assert len(dream) == DREAM_STEPS and dream[0].shape == (256, 256, 3)
    assert not np.array_equal(dream[0], dream[-1])


def test_no_display_dreams_the_chosen_run_or_says_what_is_missing(tmp_path, studio_env):
    env = {k: v for k, v in studio_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = make_run(tmp_path / "run", parts=("vae", "mdn", "latents"))
    result = wm_studio("gui", "--generations", "1", "--run", str(run.root), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "driven by random actions" in result.stdout      # the run has no controller
    assert len(read_animation(tmp_path / "wm-studio-dream.gif")) == DREAM_STEPS
    (tmp_path / "wm-studio-dream.gif").unlink()
    run.model_path("mdn").unlink()
    result = wm_studio("gui", "--generations", "1", "--run", str(run.root), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no dream written" in result.stdout and "wm-studio train-mdn" in result.stdout
    assert not (tmp_path / "wm-studio-dream.gif").exists()
