"""`wm-studio dream-check`: does M's dream rank simple policies as the real game does?"""
from __future__ import annotations

from wm_studio.commands.controller import add_runner_options, runner_kind


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dream-check", help="score fixed policies in the dream and the real game: is the dream fit to train C in?",
        description="Before training C in the dream (Doom): standing still, holding left, holding right, the "
                    "random policy and the run's C (when trained) each play DREAMS dreams and EPISODES real "
                    "episodes. A dream that orders them as the game does (rank agreement near 1) is one C can "
                    "learn in; one that keeps a policy alive that the game kills is a blind spot C will find. "
                    "Written to RUN/metrics/dream_check.json.")
    parser.add_argument("--run", required=True, help="a Doom run with V, M (done head) and latents")
    parser.add_argument("--dreams", type=int, default=256, help="dreams per policy (default 256)")
    parser.add_argument("--episodes", type=int, default=12, help="real episodes per policy (default 12)")
    parser.add_argument("--tau", type=float, default=None, help="the dream's temperature (default: the run's)")
    parser.add_argument("--seed", type=int, default=0, help="picks the episodes and the dreams (default 0)")
    add_runner_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.runs import Run
    from wm_studio.core.train.dream_check import dream_check

    check = dream_check(Run.open(args.run), args.dreams, args.episodes, args.seed, args.tau, runner_kind(args),
                        args.workers)
    print("\n".join(check.lines()))
    return 0
