"""`wm-studio gui`: the studio window (the default command)."""
from __future__ import annotations

import os
import sys

NO_DISPLAY_ANIMATION = "wm-studio-schaffer.gif"
NO_DISPLAY_DREAM = "wm-studio-dream.gif"
DREAM_STEPS = 200


def register(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the studio (the default command)",
                                   description="Open the studio. With no display it says so and does the "
                                               "headless part of its job instead: it renders the CMA-ES Schaffer "
                                               "animation to a file (see --out) and, from the run (default: the "
                                               f"bundled model), a dream driven by its controller "
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


def run(args) -> int:
    if args.screenshot is not None:
        from wm_studio.core.runs import output_file
        output_file(args.screenshot, "--screenshot")
    if not has_display():
        if args.screenshot is None:
            return export_instead(args)
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    from wm_studio.gui.app import run_studio
    return run_studio(args)


def export_instead(args) -> int:
    """No display: say so in one line, render the Evolution pane's Schaffer demo and a dream of the model."""
    from pathlib import Path

    from wm_studio.commands.es import DEFAULT_GENERATIONS, animate_to_file
    from wm_studio.core.es.demo import EsSettings
    from wm_studio.gui.render import DEFAULT_SIZE

    out = Path(args.out or NO_DISPLAY_ANIMATION)
    print(f"wm-studio: no display (DISPLAY and WAYLAND_DISPLAY are unset), so the studio cannot open a window; "
          f"writing the CMA-ES Schaffer animation to {out} instead (--out FILE to choose).", flush=True)
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
