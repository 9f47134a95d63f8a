"""`wm-studio es-animate`: CMA-ES on a test function, rendered offscreen to a GIF or MP4 (the Evolution pane's
view, frame for frame). The studio's no-display fallback uses the same path."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from wm_studio.core.errors import ConfigError

DEFAULT_GENERATIONS = 60


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "es-animate", help="render CMA-ES on a test function to a GIF or MP4 (no display needed)",
        description="Run CMA-ES on a test function and render the Evolution pane's view offscreen, one frame for "
                    "the start and one per generation (fewer when CMA-ES meets a termination criterion first), "
                    "to a GIF or MP4 chosen by the file name.")
    parser.add_argument("--function", default="schaffer",
                        help="schaffer, sphere, ellipsoid, rosenbrock, rastrigin or griewank (default schaffer)")
    parser.add_argument("--strategy", default="full", choices=("full", "separable", "ipop", "bipop"),
                        help="CMA-ES with a full C, separable, or with IPOP / BIPOP restarts (default full)")
    parser.add_argument("--shift", default="10, 10",
                        help="where the Schaffer problem has its optimum (default 10, 10)")
    parser.add_argument("--dim", type=int, default=2, help="dimension n (n > 2 is shown projected on the two "
                                                           "leading principal axes of C; default 2)")
    parser.add_argument("--lambda", dest="popsize", type=int, default=64,
                        help="population size lambda; 0 for the default 4 + 3 ln n (default 64)")
    parser.add_argument("--mu", default="0.25", help="parents: a count (16) or a fraction of lambda (default 0.25)")
    parser.add_argument("--sigma0", type=float, default=3.0, help="initial step size (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of CMA-ES (default 1)")
    parser.add_argument("--x0", default="0", help="start point: one number for every coordinate or n numbers "
                                                  "separated by commas (default 0)")
    parser.add_argument("--generations", type=int, default=DEFAULT_GENERATIONS,
                        help=f"generations to run at most (default {DEFAULT_GENERATIONS})")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--size", default="960x540", help="frame size WIDTHxHEIGHT (default 960x540)")
    parser.add_argument("--out", default=None, help="the .gif or .mp4 to write (default wm-studio-FUNCTION.gif)")
    parser.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"the frame size must look like 960x540, not {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise ConfigError(f"the frame size must be between 64x64 and 4096x4096, not {width}x{height}")
    return width, height


def run(args) -> int:
    from wm_studio.core.es.demo import EsSettings, parse_mu, parse_vector
    settings = EsSettings(function=args.function, dimension=args.dim, popsize=args.popsize or None,
                          mu=parse_mu(args.mu), sigma0=args.sigma0, seed=args.seed, x0=parse_vector(args.x0),
                          strategy=args.strategy, shift=parse_vector(args.shift, "--shift"))
    out = args.out or f"wm-studio-{args.function}.gif"
    animate_to_file(settings, args.generations, out, args.fps, parse_size(args.size))
    return 0


def animate_to_file(settings, generations: int, out, fps: float, size: tuple[int, int]) -> Path:
    """Render and write the animation with a progress bar on stderr; print where it went."""
    from wm_studio.core.progress import ProgressBar
    from wm_studio.core.runs import output_file
    from wm_studio.gui.render import animate

    if generations < 1:
        raise ConfigError(f"--generations must be at least 1, not {generations}")
    if Path(out).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"cannot write an animation to {out}: use a .gif or .mp4 file name")
    output_file(out)                   # before minutes of rendering
    settings.problem()
    settings.start()
    # The bar counts generations against those asked for, from 0 (the start's frame) to the last one drawn:
    # CMA-ES may stop before, and then the bar says where and why rather than changing its total.
    bar = ProgressBar("es-animate generations", interval=5.0)
    watched = _LastSnapshot(settings)
    frames = 0

    def progress(done, _total):
        nonlocal frames
        frames = done
        bar.update(done - 1, generations)

    path = animate(watched, generations, out, fps=fps, size=size, progress=progress)
    bar.update(frames - 1, generations, force=True)
    reasons = tuple(getattr(watched.last, "stop", ()) or ())
    bar.finish(f"es-animate: CMA-ES stopped after generation {frames - 1} of the {generations} asked for "
               f"({', '.join(reasons)})" if reasons and frames - 1 < generations else "")
    drawn = f"{frames - 1} generation{'s' if frames - 1 != 1 else ''}"
    print(f"wm-studio: wrote {path} ({frames} frames: the start and {drawn}, {size[0]}x{size[1]}, {fps:g} frames/s)")
    sys.stdout.flush()
    return path


class _LastSnapshot:
    """The settings, with the last snapshot its run yielded kept (why CMA-ES stopped, for the bar's last line)."""

    def __init__(self, settings):
        self._settings = settings
        self.last = None

    def __getattr__(self, name):
        return getattr(self._settings, name)

    def run(self, generations):
        for snapshot in self._settings.run(generations):
            self.last = snapshot
            yield snapshot
