"""`wm-studio tau-table`: the paper's table of C's scores in the dream and in the real game at each temperature."""
from __future__ import annotations

from wm_studio.commands.controller import add_runner_options, runner_kind


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tau-table", help="score C in the dream at each temperature tau and in the real game (Doom)",
        description="The paper's Doom table: for each temperature, C's score in M's dream (DREAMS dreams at that "
                    "tau) and in the real game (EPISODES episodes), beside the random policy. Each row's C is the "
                    "run's own, or one trained at that tau (--controller TAU=FILE). Written to "
                    "RUN/metrics/tau_table.json (a bundle stays as it is: use --out).")
    parser.add_argument("--run", required=True, help="a Doom run with V, M (done head), C and latents")
    parser.add_argument("--taus", type=float, nargs="+", default=None,
                        help="temperatures (default: the paper's 0.1 0.5 1.0 1.15 1.3)")
    parser.add_argument("--dreams", type=int, default=1024, help="dreams per score (default 1024)")
    parser.add_argument("--episodes", type=int, default=100, help="real episodes per controller (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="picks the episodes and the dreams (default 0)")
    parser.add_argument("--controller", action="append", default=[], metavar="TAU=FILE",
                        help="a controller.npz trained at TAU scores that row (repeat for several)")
    parser.add_argument("--out", metavar="FILE", default=None, help="also write the table to this JSON file")
    add_runner_options(parser)
    parser.set_defaults(func=run)


def parse_controllers(pairs) -> dict[float, str]:
    from wm_studio.core.errors import ConfigError
    chosen = {}
    for pair in pairs:
        tau, sep, path = pair.partition("=")
        try:
            chosen[float(tau)] = path
        except ValueError:
            sep = ""
        if not sep or not path:
            raise ConfigError(f"--controller wants TAU=FILE (e.g. 1.3=runs/doom13/models/controller.npz), "
                              f"not {pair!r}")
    return chosen


def run(args) -> int:
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.train.tau_table import TAUS, tau_table

    run_folder = Run.open(args.run)
    controllers = parse_controllers(args.controller)
    taus = tuple(args.taus or TAUS)
    last = drive(tau_table(run_folder, taus + tuple(t for t in controllers if t not in taus), args.dreams,
                           args.episodes, args.seed, controllers, args.out, runner_kind(args), args.workers,
                           args.cluster), "tau table")
    if last is not None and last.table is not None:
        print("\n".join(last.table.lines()))
    return 0
