"""`wm-studio dream`: let M dream from a real frame, decode the dream with V and write it as a GIF or MP4.

The dream is driven by the run's trained controller C (on M's z and h, as in the game), or with --driver random
by the collector's "brownian" random policy (wm_studio.core.data.policies): smooth random steering and speed for
CarRacing, left / none / right held for a while for Doom. It starts where C's training dreams start: the first
frame of a real episode (CarRacing: after its zoom-in), z drawn from V's (mu, logvar) of it.
"""
from __future__ import annotations

import numpy as np

from wm_studio.commands.run_option import add_run_option, chosen_run


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dream", help="write a dream of M, decoded by V, as a GIF or MP4",
        description="Start from the first frame of a real episode of the run (CarRacing: after its zoom-in), let "
                    "M predict the next latents under the actions of the run's controller C (--driver random: a "
                    "random brownian policy instead; a run without C gets that one), decode them with V and write "
                    "the frames; a Doom dream ends where M predicts death. Needs the run's models/vae.npz "
                    "(train-vae) and models/mdn.npz (train-mdn). Without --run: the bundled model.")
    add_run_option(parser)
    parser.add_argument("--steps", type=int, default=300, help="frames in the dream (default 300)")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature: above 1 wilder, below 1 tamer")
    parser.add_argument("--out", required=True, help="the .gif or .mp4 file to write")
    parser.add_argument("--seed", type=int, default=0,
                        help="picks the start frame and M's noise (and the random driver's actions)")
    parser.add_argument("--fps", type=float, default=25.0, help="frames per second of the file (default 25)")
    parser.add_argument("--size", type=int, default=256, help="width and height of the frames in pixels")
    parser.add_argument("--driver", choices=("auto", "controller", "random"), default="auto",
                        help="who picks the actions: auto (default): the controller C when the run has one, else "
                             "random; controller: C; random: random (brownian) actions")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.errors import CheckpointError, ConfigError
    from wm_studio.core.export import write_animation
    from wm_studio.core.runs import Run, output_file

    if args.steps < 1 or args.size < 1:
        raise ConfigError("--steps and --size must be at least 1")
    output_file(args.out)
    run_folder = Run.open(chosen_run(args))
    for stage, command in (("vae", "train-vae"), ("mdn", "train-mdn")):
        if not run_folder.model_path(stage).is_file():
            raise CheckpointError(f"{run_folder.model_path(stage)} does not exist: run "
                                  f"`wm-studio {command} --run {args.run}` first")
    has_controller = run_folder.model_path("controller").is_file()
    if args.driver == "controller" and not has_controller:
        raise CheckpointError(f"{run_folder.model_path('controller')} does not exist: run "
                              f"`wm-studio train-controller --run {args.run}` first, or use --driver random")
    driver = "controller" if args.driver == "controller" or (args.driver == "auto" and has_controller) else "random"
    frames, ended = dream_frames(run_folder, args.steps, args.tau, args.seed, driver)
    path = write_animation(args.out, list(frames), fps=args.fps, size=(args.size, args.size))
    note = f" (the dream ended after {len(frames) - 1} steps: M predicted the end of the episode)" if ended else ""
    print(f"wrote {len(frames)} frames of a dream driven by {DRIVERS[driver]} to {path}{note}")
    return 0


DRIVERS = {"controller": "the controller C", "random": "random actions"}


def dream_frames(run, steps: int, tau: float, seed: int, driver: str = "random") -> tuple[np.ndarray, bool]:
    """(uint8 frames (N, 64, 64, 3) with N <= steps, whether M ended the dream early) for one dream of the run,
    driven by the run's controller ("controller") or brownian random actions ("random"): the first episode of
    core's dream session (the Dream pane's), from where the controller stage's dreams start."""
    from wm_studio.core.data.dataset import rollout_files
    from wm_studio.core.envs.dream_session import DreamControls, dream_session, first_episode, keyboard_action
    from wm_studio.core.models.controller import load_controller
    from wm_studio.core.models.mdnrnn import load_mdn
    from wm_studio.core.models.serialization import load_vae

    controller = load_controller(run.model_path("controller"))[0] if driver == "controller" else None
    vae, mdn = load_vae(run.model_path("vae")), load_mdn(run.model_path("mdn"))
    game = run.config.get("env", "carracing")
    controls = DreamControls(tau, driver, keyboard_action(game, ()), cap=max(steps - 1, 1), controller=controller)
    session = dream_session(vae, mdn, game, controls, seed, latent_files=rollout_files(run.latents_dir))
    frames, ended = first_episode(session, steps)
    session.close()
    return np.stack([frame.dream for frame in frames]), ended
