"""`wm-studio train-vae`: train V (the ConvVAE) on the run's rollouts, then encode every rollout for M."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-vae", help="train V, the convolutional VAE, on the run's rollouts and encode them",
        description="Train V to compress each 64x64 frame into z, then write the latents (mu, logvar) of every "
                    "rollout for M. Needs the rollouts that `wm-studio collect` writes. Ctrl-C (or a crash) "
                    "loses at most a minute: the same command resumes. Options given here are recorded in the "
                    "run's config.json.")
    parser.add_argument("--run", required=True, help="the run folder")
    parser.add_argument("--preset", default=None, help="paper, quick or tiny (only for a run not made yet)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training frames")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per batch (paper: 100)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N (default auto)")
    parser.add_argument("--seed", type=int, default=None, help="V's seed (default: the run's seed)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.device import resolve_device
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.stages import stage_steps
    from wm_studio.core.train.vae_stage import VaeSettings, rollout_files_of

    rollout_files_of(Run(args.run))     # before Run.prepare, so that a wrong --run leaves no empty folder behind
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    device = resolve_device(args.device)
    run_folder = Run.prepare(args.run, None, args.preset, overrides={"vae": overrides},
                             checks=(VaeSettings.from_config,))
    if device.notice:
        print(f"wm-studio: {device.notice}", file=sys.stderr)
    print(f"V: training on {device.describe()}", file=sys.stderr)
    written = {"vae": f"model written to {run_folder.model_path('vae')}",
               "encode": f"latents in {run_folder.latents_dir}"}
    for step in stage_steps(run_folder, "vae", device):    # train V, then encode every rollout with it
        last = drive(step.start(), step.label)
        if last is not None:
            print(f"{step.label}: {last.summary()}; {written[step.name]}")
    return 0
