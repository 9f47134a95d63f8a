"""`wm-studio evaluate`: the trained controller's mean +- std over real episodes, beside a random policy."""
from __future__ import annotations

from wm_studio.commands.controller import add_runner_options, runner_kind
from wm_studio.commands.run_option import add_run_option, chosen_run


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score the trained controller in the real game, beside a random policy",
        description="Play RUN/models/controller.npz and a random policy on the same N tracks (full episodes) and "
                    "print each one's mean +- std and the difference. The scores are kept in "
                    "RUN/metrics/evaluation.json, except in a bundle such as the bundled default model, which is "
                    "read-only: --out FILE keeps them there too. --record writes the controller's first episode as "
                    "an MP4 or GIF. Without --run: the bundled model.")
    add_run_option(parser)
    parser.add_argument("--episodes", type=int, default=20, help="episodes for each policy (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="picks the tracks (default 0)")
    parser.add_argument("--record", metavar="OUT", default=None, help="write the first episode to OUT.mp4|.gif")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the recording (default: the game's)")
    parser.add_argument("--scale", type=int, default=3, help="enlarge the recorded frames this many times")
    parser.add_argument("--out", metavar="FILE", default=None, help="also write the scores to FILE (JSON)")
    add_runner_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.train.evaluate import evaluate

    run_folder = Run.open(chosen_run(args))
    last = drive(evaluate(run_folder, args.episodes, args.seed, args.record, args.fps, args.scale,
                          backend=runner_kind(args), workers=args.workers, cluster=args.cluster, out=args.out),
                 "evaluate")
    if last is not None and last.report is not None:
        print("\n".join(last.report.lines()))
    return 0
