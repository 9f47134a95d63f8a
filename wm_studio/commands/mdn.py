"""`wm-studio train-mdn`: train M (the MDN-RNN) on the latents V wrote, resuming where it stopped."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-mdn", help="train M, the MDN-RNN, on the run's latents",
        description="Train M (LSTM + mixture density head) to predict the next latent z from z and the action. "
                    "Needs the latents that `wm-studio train-vae` writes. Ctrl-C saves a checkpoint; the same "
                    "command resumes. Options given here are recorded in the run's config.json.")
    parser.add_argument("--run", required=True, help="the run folder")
    parser.add_argument("--preset", default=None, help="paper, quick or tiny (only for a run not made yet)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training latents")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per batch")
    parser.add_argument("--seq-len", type=int, default=None, help="transitions per training sequence")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (paper: 1e-3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N (default auto)")
    parser.add_argument("--seed", type=int, default=None, help="M's seed (default: the run's seed)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from wm_studio.core.device import resolve_device
    from wm_studio.core.progress import drive
    from wm_studio.core.runs import Run
    from wm_studio.core.stages import make_step
    from wm_studio.core.train.mdn_stage import MdnSettings, latent_files_of

    latent_files_of(Run(args.run))      # before Run.prepare, so that a wrong --run leaves no empty folder behind
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
                 "seed": args.seed}
    device = resolve_device(args.device)
    run_folder = Run.prepare(args.run, None, args.preset, overrides={"mdn": overrides},
                             checks=(MdnSettings.from_config,))
    if device.notice:
        print(f"wm-studio: {device.notice}", file=sys.stderr)
    last = drive(make_step(run_folder, "mdn", device).start(), "M")
    if last is not None:
        print(f"M: {last.summary()}; model written to {run_folder.model_path('mdn')}")
    return 0
