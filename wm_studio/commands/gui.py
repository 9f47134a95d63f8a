"""`wm-studio gui`: the studio window (the default command)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

NO_DISPLAY_ANIMATION = "wm-studio-schaffer.gif"
NO_DISPLAY_DREAM = "wm-studio-dream.gif"
DREAM_STEPS = 200
NO_DISPLAY = "no display (DISPLAY and WAYLAND_DISPLAY are unset), so the studio cannot open a window"
# The system libraries that Qt 5's X11 plugin (PyQt5's own, in the wheel) loads, and the Debian / Ubuntu
# packages that hold them. A minimal or server install often lacks the first few.
DEBIAN_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0", "libxcb-shape.so.0": "libxcb-shape0", "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1", "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1", "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6", "libXext.so.6": "libxext6", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0", "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libGL.so.1": "libgl1", "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the studio (the default command)",
                                   description="Open the studio. With no display (or without the system "
                                               "libraries Qt needs to open a window, which it names) it says so "
                                               "and does the headless part of its job instead: it renders the "
                                               "CMA-ES Schaffer animation to a file (see --out) and, from the "
                                               "run (default: the bundled model), a dream driven by its controller "
                                               f"({NO_DISPLAY_DREAM} beside it).")
    parser.add_argument("--pane", default=None,
                        help="the pane to open first (evolution, latent, dream, ...)")
    parser.add_argument("--generations", type=int, default=None,
                        help="CMA-ES generations to run when the studio opens (with --screenshot: before the "
                             "picture is taken, default 30; with no display: frames of the animation, default 60)")
    parser.add_argument("--screenshot", metavar="PNG", default=None,
                        help="open the pane (offscreen if there is no display) with default settings, let it "
                             "run, save a PNG of the whole window and exit")
    parser.add_argument("--run", metavar="FOLDER", default=None,
                        help="the run folder to open (default: the last one opened, else the bundled model)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help=f"with no display: where the animation goes (.gif or .mp4; default "
                             f"./{NO_DISPLAY_ANIMATION})")
    parser.set_defaults(func=run)


def has_display() -> bool:
    """True where Qt can open a window (or has been told to render offscreen on purpose)."""
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def xcb_plugin() -> Path | None:
    """PyQt5's X11 platform plugin (libqxcb.so), found without importing Qt; None where it is not there."""
    try:
        spec = importlib.util.find_spec("PyQt5")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for qt in ("Qt5", "Qt"):
            plugin = Path(folder) / qt / "plugins" / "platforms" / "libqxcb.so"
            if plugin.is_file():
                return plugin
    return None


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries `library` needs that the dynamic loader cannot find, as `ldd` tells (glibc's, on
    every usual Linux); [] when all are there or when it cannot be told."""
    try:
        listing = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = []
    for line in listing.splitlines():
        name, _, where = line.strip().partition(" => ")
        if where.strip() == "not found" and name not in missing:
            missing.append(name)
    return missing


def display_libraries_missing() -> list[str]:
    """The system libraries without which Qt's X11 plugin cannot load, where Qt would use that plugin. Qt 5 does
    (also in a Wayland session) unless QT_QPA_PLATFORM names another platform. Qt itself would abort the
    process with a message about the "xcb" plugin that names none of them."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return []
    plugin = xcb_plugin()
    return missing_libraries(plugin) if plugin is not None else []


def missing_libraries_line(missing: list[str]) -> str:
    """One line: what is missing and the command that installs it."""
    packages = list(dict.fromkeys(DEBIAN_PACKAGES.get(name, name) for name in missing))
    return (f"Qt's X11 plugin cannot load: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"installed (Debian / Ubuntu: sudo apt-get install {' '.join(packages)}), so the studio cannot open "
            f"a window")


def run(args) -> int:
    if args.screenshot is not None:
        from wm_studio.core.runs import output_file
        output_file(args.screenshot, "--screenshot")
    why = NO_DISPLAY if not has_display() else ""
    if not why:
        missing = display_libraries_missing()
        why = missing_libraries_line(missing) if missing else ""
    if why:
        if args.screenshot is None:
            return export_instead(args, why)
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    from wm_studio.gui.app import run_studio
    return run_studio(args)


def export_instead(args, why: str = NO_DISPLAY) -> int:
    """No window possible (`why`): say so in one line, render the Evolution pane's Schaffer demo and a dream of
    the model."""
    from wm_studio.commands.es import DEFAULT_GENERATIONS, animate_to_file
    from wm_studio.core.es.demo import EsSettings
    from wm_studio.gui.render import DEFAULT_SIZE

    out = Path(args.out or NO_DISPLAY_ANIMATION)
    print(f"wm-studio: {why}; writing the CMA-ES Schaffer animation to {out} instead (--out FILE to choose).",
          flush=True)
    animate_to_file(EsSettings(), args.generations or DEFAULT_GENERATIONS, out, 10.0, DEFAULT_SIZE)
    write_dream(args.run, out.with_name(NO_DISPLAY_DREAM))
    return 0


def write_dream(run: str | None, out) -> None:
    """The Dream pane's headless counterpart: a dream of the run (default: the bundled model) as a GIF."""
    from wm_studio.commands.dream import DRIVERS, dream_frames
    from wm_studio.core.export import write_animation
    from wm_studio.core.run_contents import DEFAULT_MODEL, inspect_run
    from wm_studio.core.runs import Run

    contents = inspect_run(run or DEFAULT_MODEL)
    missing = contents.missing("vae", "mdn")
    if missing:
        print(f"wm-studio: no dream written: {contents.name}: {missing}", flush=True)
        return
    driver = "controller" if contents.usable("controller") else "random"
    frames, _ = dream_frames(Run(contents.root), DREAM_STEPS, 1.0, 0, driver)
    write_animation(out, list(frames), fps=25.0, size=(256, 256))
    print(f"wm-studio: wrote a dream of {contents.name} ({len(frames)} frames, M predicting and V drawing, "
          f"driven by {DRIVERS[driver]}) to {out}", flush=True)
