"""Seconds per CMA-ES generation of Doom's C trained in the dream: lambda 64 candidates x 16 dreams each.

    .venv/bin/python benchmarks/bench_doom_dream.py [--mdn runs/doom/models/mdn.npz] [--generations 3]

Two ways to run one generation's 1,024 dreams, measured side by side in one run on the same candidates:

- batched (what `train-controller --in-dream` runs): all 1,024 dreams in one numpy batch, one LSTM call per step
  for every dream still alive; a dream whose episode has ended leaves the batch (envs.dream.run_dreams);
- frozen rows (the peer: how the first round did it): DreamEnv over the Chainer M in tasks of 256 rows, an ended
  row kept in the batch (frozen) until the last row of its task ends.

The M is a trained Doom M (z 64, LSTM 512, 5 Gaussians, done head: what the dream costs depends on how long its
dreams last, so a random-weight M would say little); by default the bundled Doom model's, else runs/doom's. The
candidates are the first generation of a CMA-ES run from x0 = 0 with sigma0 0.1 (the paper's start), then
generations of a mean moved towards longer dreams. The table gives seconds per generation, dream steps per
second and the mean dream length. Both use every core (BLAS threads = cores). The paper's 64-core machine took
about 80 s a generation. Results: a table on stdout and benchmarks/results/doom_dream.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "doom_dream.json"
CANDIDATES = ("resources/doom_model", "runs/doom")


def find_run(mdn: str | None) -> Path:
    if mdn:
        return Path(mdn).resolve().parent.parent
    for folder in CANDIDATES:
        if (ROOT / folder / "models" / "mdn.npz").is_file():
            return ROOT / folder
    raise SystemExit("no trained Doom M: pass --mdn, or train one (wm-studio pipeline --env doom --preset quick)")


def frozen_rows(spec, params, seeds, max_steps, rows_per_task=256):
    """The first round's dream: Chainer DreamEnv, ended rows frozen in the batch, 256 rows a task."""
    from wm_studio.core.envs.dream import DreamEnv, episode_starts
    from wm_studio.core.data.dataset import rollout_files
    from wm_studio.core.models.controller import ControllerBatch
    from wm_studio.core.models.mdnrnn import load_mdn
    mdn = load_mdn(spec.mdn_path)
    starts = episode_starts(rollout_files(spec.latents_dir), 1024)
    rows = np.repeat(params, len(seeds), axis=0)
    picks = np.tile(np.asarray(seeds) % len(starts), len(params))
    steps = np.zeros(len(rows), np.int64)
    for lo in range(0, len(rows), rows_per_task):
        part = slice(lo, lo + rows_per_task)
        env = DreamEnv(mdn, tau=spec.tau, done_threshold=spec.done_threshold, max_steps=max_steps,
                       batch=len(rows[part]), seed=lo, starts=starts[picks[part]])
        controllers = ControllerBatch(spec.shape, rows[part])
        z, info = env.reset()
        while env.alive.any():
            alive = env.alive.copy()
            z, _, _, _, info = env.step(controllers.act(z, info["h"], info["c"]))
            steps[part] += alive
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mdn", help="a Doom run's models/mdn.npz (default: the bundled Doom model's)")
    parser.add_argument("--generations", type=int, default=3, help="generations measured per way")
    parser.add_argument("--popsize", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=2100)
    parser.add_argument("--no-peer", action="store_true", help="skip the frozen-rows peer (slow)")
    args = parser.parse_args()

    from wm_studio.core.es import CMAES
    from wm_studio.core.parallel import make_runner
    from wm_studio.core.runs import Run
    from wm_studio.core.train.rollout import DreamEvaluator, dream_spec

    run = Run.open(find_run(args.mdn))
    spec = dream_spec(run, "zh", tau=1.15)
    rows = []
    rng = np.random.default_rng(0)
    es = CMAES(np.zeros(spec.shape.n_params), 0.1, popsize=args.popsize, seed=0)
    with make_runner("serial") as runner:
        evaluator = DreamEvaluator(runner, spec)
        evaluator.evaluate(es.ask()[:2], [1, 2], 50)                     # warm-up: load M and the starts
        for generation in range(args.generations):
            params = es.ask()
            seeds = rng.integers(0, 2 ** 31 - 1, args.rollouts)
            start = time.perf_counter()
            _, steps = evaluator.evaluate(params, seeds, args.max_steps)
            batched = time.perf_counter() - start
            row = {"generation": generation + 1, "dreams": int(steps.size), "mean_length": float(steps.mean()),
                   "batched_s": round(batched, 2), "batched_steps_per_s": round(steps.sum() / batched)}
            if not args.no_peer:
                start = time.perf_counter()
                peer_steps = frozen_rows(spec, params, seeds, args.max_steps)
                frozen = time.perf_counter() - start
                row.update(frozen_s=round(frozen, 2), frozen_mean_length=float(peer_steps.mean()),
                           ratio=round(batched / frozen, 3))
            rows.append(row)
            print(f"  generation {generation + 1}: {row}", file=sys.stderr)
            es.tell_maximise(params, steps.mean(axis=1))

    print(f"\nOne generation in Doom's dream: lambda {args.popsize} x {args.rollouts} dreams, tau 1.15, cap "
          f"{args.max_steps} ({os.cpu_count()} CPUs, M from {run.root.relative_to(ROOT) if run.root.is_relative_to(ROOT) else run.root})\n")
    header = f"{'gen':>4}{'mean dream steps':>18}{'batched s/gen':>15}{'steps/s':>10}"
    if not args.no_peer:
        header += f"{'frozen rows s/gen':>19}{'batched/frozen':>16}"
    print(header)
    for row in rows:
        line = (f"{row['generation']:>4}{row['mean_length']:>18.1f}{row['batched_s']:>15.2f}"
                f"{row['batched_steps_per_s']:>10,}")
        if not args.no_peer:
            line += f"{row['frozen_s']:>19.2f}{row['ratio']:>16.3f}"
        print(line)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"popsize": args.popsize, "rollouts": args.rollouts, "cpu_count": os.cpu_count(),
                                   "run": str(run.root), "rows": rows}, indent=2) + "\n")
    print(f"saved {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
