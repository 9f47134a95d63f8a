"""`wm-studio train-controller`: evolve C with CMA-ES in the real game or in M's dream, resuming where it stopped."""
from __future__ import annotations

import argparse

from wm_studio.core.parallel import RUNNERS


def add_runner_options(parser) -> None:
    """--backend, --workers, --cluster: where rollouts run (shared with `evaluate` and `pipeline`)."""
    parser.add_argument("--backend", choices=RUNNERS, default=None,
                        help="where rollouts run: serial (this process), processes (all cores; the default in the "
                             "real game) or dask (a local Dask cluster, or the one at --cluster); dreams run in "
                             "this process by default")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--cluster", metavar="ADDR", default=None,
                        help="a running Dask scheduler, e.g. tcp://host:8786 (implies --backend dask; needs "
                             "pip install -e \".[cluster]\")")


def runner_kind(args) -> str | None:
    """The kind of runner --backend asks for (None: the stage's own default)."""
    from wm_studio.core.errors import ConfigError
    if args.cluster and args.backend not in (None, "dask"):
        raise ConfigError(f"--cluster needs the dask backend, not --backend {args.backend}")
    if args.workers is not None and args.workers < 1:     # before the run's config.json records anything
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    return "dask" if args.cluster else args.backend


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-controller", help="evolve C, the controller, with CMA-ES (step 4 of 4)",
        description="Evolve the controller's parameters with CMA-ES: every candidate plays K rollouts in the real "
                    "game (or in M's dream with --in-dream), fitness is their mean reward. Every --eval-every "
                    "generations the mean of the search is scored and the best one written to "
                    "RUN/models/controller.npz. Needs models/vae.npz and models/mdn.npz. Ctrl-C or a crash loses "
                    "at most one generation: the same command resumes. Options given here are recorded in the "
                    "run's config.json.")
    parser.add_argument("--run", required=True, help="the run folder")
    parser.add_argument("--in-dream", action=argparse.BooleanOptionalAction, default=None,
                        help="train inside M's dream (Doom, as in the paper) instead of the real game")
    add_runner_options(parser)
    parser.add_argument("--generations", type=int, default=None, help="CMA-ES generations in all")
    parser.add_argument("--popsize", type=int, default=None, help="candidates per generation (paper: 64)")
    parser.add_argument("--mu", type=float, default=None,
                        help="parents: a count (>= 1) or a fraction of the population (< 1); default half")
    parser.add_argument("--rollouts", type=int, default=None, help="rollouts per candidate (paper: 16)")
    parser.add_argument("--sigma0", type=float, default=None, help="initial step size (paper: 0.1)")
    parser.add_argument("--eval-every", type=int, default=None, help="generations between scorings of the mean")
    parser.add_argument("--eval-rollouts", type=int, default=None, help="episodes per scoring (paper: 1024)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap of a training rollout")
    parser.add_argument("--eval-max-steps", type=int, default=None,
                        help="cap of an episode that scores the mean (default: the game's full episode)")
    parser.add_argument("--early-stop", type=int, default=None,
                        help="end a training rollout after this many negative rewards in a row (0: never)")
    parser.add_argument("--l2", type=float, default=None, help="weight penalty: fitness -= l2 * mean(x^2)")
    parser.add_argument("--tau", type=float, default=None, help="the dream's temperature (paper Doom: 1.15)")
    parser.add_argument("--inputs", choices=("zh", "z"), default=None, help="C sees z and h (default) or z alone")
    parser.add_argument("--seed", type=int, default=None, help="C's seed (default: the run's seed)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.stages import make_step
    from wm_studio.core.train.controller_stage import ControllerSettings, make_evaluator

    runner = runner_kind(args)
    mu = args.mu if args.mu is None or args.mu < 1 else int(args.mu)
    overrides = {"in_dream": args.in_dream, "generations": args.generations, "popsize": args.popsize, "mu": mu,
                 "rollouts": args.rollouts, "sigma0": args.sigma0, "eval_every": args.eval_every,
                 "eval_rollouts": args.eval_rollouts, "max_steps": args.max_steps,
                 "eval_max_steps": args.eval_max_steps, "early_stop": args.early_stop,
                 "l2": args.l2, "tau": args.tau, "inputs": args.inputs, "seed": args.seed}
    run_folder = Run.open(args.run)
    # Bad values, missing models or a dream that pays nothing fail before config.json records the options.
    make_evaluator(run_folder, ControllerSettings.from_config(run_folder.config, overrides), None)
    run_folder = Run.prepare(args.run, overrides={"controller": overrides})
    settings = ControllerSettings.from_config(run_folder.config)
    last = drive(make_step(run_folder, "controller", None, runner, args.workers, args.cluster).start(), "C")
    if last is not None:
        where = "in the dream" if settings.in_dream else "in the real game"
        saved = (f"; controller written to {run_folder.model_path('controller')}"
                 if run_folder.model_path("controller").is_file() else "")
        print(f"C ({where}): {last.summary()}{saved}")
    return 0
