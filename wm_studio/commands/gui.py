"""`wm-studio gui`: the studio window (the default command)."""
from __future__ import annotations

import os
import sys

NO_DISPLAY_ANIMATION = "wm-studio-schaffer.gif"


def register(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the studio (the default command)",
                                   description="Open the studio. With no display it says so and does the "
                                               "headless part of its job instead: it renders the CMA-ES Schaffer "
                                               "animation to a file (see --out).")
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


def run(args) -> int:
    if not has_display():
        if args.screenshot is None:
            return export_instead(args)
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    from wm_studio.gui.app import run_studio
    return run_studio(args)


def export_instead(args) -> int:
    """No display: say so in one line and render the Evolution pane's Schaffer demo to a file."""
    from wm_studio.commands.es import DEFAULT_GENERATIONS, animate_to_file
    from wm_studio.core.es.demo import EsSettings
    from wm_studio.gui.render import DEFAULT_SIZE

    out = args.out or NO_DISPLAY_ANIMATION
    print(f"wm-studio: no display (DISPLAY and WAYLAND_DISPLAY are unset), so the studio cannot open a window; "
          f"writing the CMA-ES Schaffer animation to {out} instead (--out FILE to choose).", flush=True)
    animate_to_file(EsSettings(), args.generations or DEFAULT_GENERATIONS, out, 10.0, DEFAULT_SIZE)
    return 0
