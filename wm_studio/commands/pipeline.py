"""`wm-studio pipeline`: collect, V, M and C in order, resuming whatever is already done; `wm-studio bundle`."""
from __future__ import annotations

import sys
import time

from wm_studio.commands.controller import add_runner_options, runner_kind
from wm_studio.core.presets import GAMES, PRESETS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pipeline", help="run collect, train-vae, train-mdn and train-controller in order",
        description="Run the whole World Models pipeline in one run folder: random rollouts, V (and the "
                    "latents), M, then C. Every step resumes where it stopped and finished steps are skipped, "
                    "so the same command picks up after Ctrl-C or a crash.")
    parser.add_argument("--run", required=True, help="the run folder (created from --env and --preset if new)")
    parser.add_argument("--env", choices=sorted(GAMES), default=None, help="the game (new runs; default carracing)")
    parser.add_argument("--preset", choices=list(PRESETS), default=None, help="sizes of a new run (default quick)")
    parser.add_argument("--device", default="auto", help="for V and M: auto, cpu, gpu or gpu:N (default auto)")
    add_runner_options(parser)
    parser.set_defaults(func=run)
    register_bundle(subparsers)


def run(args) -> int:
    from wm_studio.core.device import resolve_device
    from wm_studio.core.pipeline import run_pipeline
    from wm_studio.core.progress import format_duration
    from wm_studio.core.runs import Run

    runner = runner_kind(args)
    run_folder = Run.prepare(args.run, args.env, args.preset)
    device = resolve_device(args.device)
    if device.notice:
        print(f"wm-studio: {device.notice}", file=sys.stderr)
    start = time.monotonic()
    results = run_pipeline(run_folder, device, runner, args.workers, args.cluster)
    ran = [r.label for r in results if not r.skipped]
    print(f"pipeline: {len(ran)} of {len(results)} steps run ({', '.join(ran) or 'none'}) in "
          f"{format_duration(time.monotonic() - start)}; models in {run_folder.root / 'models'}")
    return 0


def register_bundle(subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle", help="copy a trained run compactly (float16, a few rollouts) for shipping",
        description="Copy RUN's config, V, M and C (as float16), its first few rollouts and their latents and its "
                    "metrics into OUT, leaving checkpoints and the rest of the data behind. This is how "
                    "resources/default_model, the model the studio opens on first launch, is made.")
    parser.add_argument("--run", required=True, help="a finished run folder")
    parser.add_argument("--out", required=True, help="the folder to write: a new one, or an older bundle with "
                                                     "--replace")
    parser.add_argument("--rollouts", type=int, default=6, help="rollouts (and latents) to keep (default 6)")
    parser.add_argument("--replace", action="store_true",
                        help="replace --out when it is an older bundle (bundles are read-only otherwise)")
    parser.set_defaults(func=bundle)


def bundle(args) -> int:
    from wm_studio.core.bundle import make_bundle
    from wm_studio.core.runs import Run

    print(make_bundle(Run.open(args.run), args.out, args.rollouts, args.replace).summary())
    return 0
