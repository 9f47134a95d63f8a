"""`wm-studio collect`: random rollouts of a real game into a run folder (resumable)."""
from __future__ import annotations

from wm_studio.core.data.policies import POLICIES
from wm_studio.core.parallel import RUNNERS
from wm_studio.core.presets import GAMES, PRESETS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "collect", help="play random rollouts of a game and store their frames (step 1 of 4)",
        description="Play random rollouts of CarRacing or Doom Take Cover in parallel worker processes and write "
                    "one compressed npz per rollout under RUN/data/rollouts. Run it again to resume: complete "
                    "rollouts are kept. The data do not depend on --workers.")
    parser.add_argument("--run", required=True, help="the run folder (created from --env and --preset if new)")
    parser.add_argument("--env", choices=sorted(GAMES), default=None, help="the game (new runs; default carracing)")
    parser.add_argument("--preset", choices=list(PRESETS), default=None, help="sizes of a new run (default quick)")
    parser.add_argument("--rollouts", type=int, default=None, help="number of rollouts wanted in the run")
    parser.add_argument("--steps", type=int, default=None, help="the most steps of one rollout")
    parser.add_argument("--min-steps", type=int, default=None,
                        help="replay rollouts that end sooner (the paper's Doom data: 100)")
    parser.add_argument("--policy", choices=POLICIES, default=None, help="the random policy")
    parser.add_argument("--seed", type=int, default=None, help="the run's data seed")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--backend", choices=RUNNERS, default=None,
                        help="serial or processes (default: processes when --workers is above 1)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.data.collect import CollectSettings
    from wm_studio.core.errors import ConfigError
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.stages import make_step

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    overrides = {"collect": {"rollouts": args.rollouts, "steps": args.steps, "min_steps": args.min_steps,
                             "policy": args.policy, "seed": args.seed}}
    run_folder = Run.prepare(args.run, args.env, args.preset, overrides, checks=(CollectSettings.from_config,))
    last = drive(make_step(run_folder, "collect", None, args.backend, args.workers).start(), "collect")
    if last is not None:
        print(f"{last.done}/{last.total} rollouts in {run_folder.rollouts_dir} ({last.summary()})")
    return 0
