"""`wm-studio gui`: the studio window (the default command)."""
from __future__ import annotations

import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the studio (the default command)",
                                   description="Open the studio. With no display it says so and does the "
                                               "headless part of its job instead.")
    parser.add_argument("--pane", default=None, help="the pane to open first (evolution, ...)")
    parser.add_argument("--generations", type=int, default=None,
                        help="with --screenshot: CMA-ES generations to run before the picture is taken")
    parser.add_argument("--screenshot", metavar="PNG", default=None,
                        help="open the pane offscreen if need be, let it run, save a PNG of the window and exit")
    parser.set_defaults(func=run)


def has_display() -> bool:
    """True where Qt can open a window (or has been told to render offscreen on purpose)."""
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args) -> int:
    from wm_studio.gui.app import run_studio
    return run_studio(args)
