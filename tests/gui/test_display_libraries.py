"""A display without the libraries Qt's X11 plugin needs (libxcb-icccm4, libxcb-keysyms1, libxcb-xinerama0 and
friends): the studio names them and the packages to install, then does the headless job, as with no display,
instead of letting Qt abort (issue 12). A fake `ldd` on PATH stands for a machine that lacks them."""
import os
import stat
import subprocess
import sys

import pytest

from wm_studio.commands import gui
from wm_studio.core.export import read_animation, read_png

from tiny_run import make_run

MISSING = ("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-xinerama.so.0")


@pytest.fixture
def fake_ldd(tmp_path):
    """A folder with an `ldd` that reports the three libraries of MISSING as not found (twice, as ldd does when
    two of the plugin's libraries need one), beside libraries it finds."""
    folder = tmp_path / "bin"
    folder.mkdir()
    lines = ["\tlinux-vdso.so.1 (0x00007ffd)", "\tlibX11.so.6 => /lib/x86_64-linux-gnu/libX11.so.6 (0x00007f)"]
    lines += [f"\t{name} => not found" for name in MISSING + MISSING]
    script = folder / "ldd"
    script.write_text("#!/bin/sh\ncat <<'END'\n" + "\n".join(lines) + "\nEND\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def test_the_missing_libraries_are_read_from_ldd(fake_ldd, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_ldd}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert gui.xcb_plugin() is not None and gui.xcb_plugin().name == "libqxcb.so"
    assert gui.display_libraries_missing() == list(MISSING)
    line = gui.missing_libraries_line(list(MISSING))
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in line
    assert all(name in line for name in MISSING)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")       # Qt will not load the X11 plugin: nothing to check
    assert gui.display_libraries_missing() == []
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert gui.display_libraries_missing() == list(MISSING)


def test_a_library_of_unknown_package_is_named_as_it_is():
    assert "apt-get install libxcb-icccm4 libfoo.so.3)" in gui.missing_libraries_line(["libxcb-icccm.so.4",
                                                                                        "libfoo.so.3"])


def test_with_every_library_there_nothing_is_missing(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "ldd").write_text("#!/bin/sh\necho '\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)'\n")
    (folder / "ldd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert gui.display_libraries_missing() == []


def studio_without_x11_libraries(fake_ldd, studio_env, tmp_path, *args):
    env = {k: v for k, v in studio_env.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = ":97"            # a display is set, so only the libraries stand in Qt's way
    env["PATH"] = f"{fake_ldd}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "wm_studio", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


def test_the_studio_names_the_packages_and_does_the_headless_job(fake_ldd, studio_env, tmp_path):
    run = make_run(tmp_path / "run", parts=("vae",))                 # no M: no dream to wait for
    result = studio_without_x11_libraries(fake_ldd, studio_env, tmp_path, "gui", "--generations", "2", "--run",
                                          str(run.root))
    assert result.returncode == 0, result.stderr
    [notice] = [line for line in result.stdout.splitlines() if "Qt's X11 plugin cannot load" in line]
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in notice
    assert "wm-studio-schaffer.gif" in notice
    assert len(read_animation(tmp_path / "wm-studio-schaffer.gif")) == 3
    assert "xcb" not in result.stderr and "Traceback" not in result.stderr   # Qt never tried its plugin


def test_a_screenshot_without_the_libraries_is_taken_offscreen(fake_ldd, studio_env, tmp_path):
    shot = tmp_path / "shot.png"
    result = studio_without_x11_libraries(fake_ldd, studio_env, tmp_path, "gui", "--pane", "evolution",
                                          "--generations", "1", "--screenshot", str(shot))
    assert result.returncode == 0, result.stderr
    assert read_png(shot).shape == (900, 1400, 3)
