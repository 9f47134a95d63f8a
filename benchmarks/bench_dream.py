"""Steps per second: the real CarRacing game against the dream (M on the CPU), side by side in one run.

    .venv/bin/python benchmarks/bench_dream.py [--seconds 5]

Each measurement runs in its own process pinned to one CPU core with the BLAS thread count set before numpy is
imported; the dream is also measured with two threads on two cores. A dream step is one step of one dream: a
batch of 64 dreams advancing once counts 64 steps (one LSTM call). The MDN is the paper's CarRacing M (z 32,
LSTM 256, 5 Gaussians) with random weights, which cost the same as trained ones. "decoded" rows also decode
every dream's frame with V (the paper's ConvVAE) on every step, which the real game's rendering corresponds to.
Results: a table on stdout and benchmarks/results/dream.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "dream.json"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

CASES = [  # (label, part, batch, decode, threads)
    ("real CarRacing-v2 (gym 0.26.2)", "real", 1, False, 1),
    ("dream, batch 1", "dream", 1, False, 1),
    ("dream, batch 64", "dream", 64, False, 1),
    ("dream, batch 1, decoded", "dream", 1, True, 1),
    ("dream, batch 64, decoded", "dream", 64, True, 1),
    ("dream, batch 1", "dream", 1, False, 2),
    ("dream, batch 64", "dream", 64, False, 2),
    ("dream, batch 64, decoded", "dream", 64, True, 2),
]


def measure_real(seconds: float) -> dict:
    """The gym environment as gym.make gives it (no wm_studio wrapper, no preprocessing), random actions."""
    import gym
    import numpy as np
    env = gym.make("CarRacing-v2", disable_env_checker=True)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        action = np.array([rng.uniform(-1, 1), rng.uniform(0, 1), 0.0], dtype=np.float32)
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return {"steps": steps, "seconds": elapsed}


def measure_dream(seconds: float, batch: int, decode: bool) -> dict:
    import numpy as np
    from wm_studio.core.envs.dream import DreamEnv
    from wm_studio.core.models.mdnrnn import MDNRNN
    mdn = MDNRNN(32, 3, 256, seed=0)
    vae = None
    if decode:
        from wm_studio.core.models.vae import ConvVAE
        vae = ConvVAE(32)
    env = DreamEnv(mdn, vae, tau=1.0, max_steps=10**9, batch=batch, seed=0)
    rng = np.random.default_rng(0)
    env.reset(rng.standard_normal((batch, 32)).astype(np.float32))
    actions = rng.uniform(-1, 1, (64, batch, 3)).astype(np.float32)
    env.step(actions[0])        # warm-up: first calls allocate
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[calls % 64])
        if decode:
            env.render()
        calls += 1
    elapsed = time.perf_counter() - start
    return {"steps": calls * batch, "calls": calls, "seconds": elapsed}


def run_part(args) -> None:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.threads]))
    if args.part == "real":
        result = measure_real(args.seconds)
    else:
        result = measure_dream(args.seconds, args.batch, args.decode)
    print(json.dumps(result))


def run_case(part: str, batch: int, decode: bool, threads: int, seconds: float) -> dict:
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES},
           "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, __file__, "--part", part, "--batch", str(batch), "--threads", str(threads),
               "--seconds", str(seconds)] + (["--decode"] if decode else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{part} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--part", choices=("real", "dream"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--decode", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        run_part(args)
        return

    rows = []
    for label, part, batch, decode, threads in CASES:
        result = run_case(part, batch, decode, threads, args.seconds)
        rate = result["steps"] / result["seconds"]
        rows.append({"case": label, "part": part, "batch": batch, "decoded": decode, "threads": threads,
                     "steps": result["steps"], "seconds": round(result["seconds"], 3),
                     "steps_per_second": round(rate, 1)})
        print(f"  measured {label} ({threads} thread{'s' if threads > 1 else ''}): {rate:,.0f} steps/s",
              file=sys.stderr)
    real = rows[0]["steps_per_second"]
    for row in rows:
        row["vs_real"] = round(row["steps_per_second"] / real, 2)

    print(f"\nDream vs real CarRacing, steps per second ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; each case pinned to as many cores as it has BLAS threads)\n")
    print(f"{'case':<34}{'threads':>8}{'steps/s':>12}{'x real':>9}")
    for row in rows:
        print(f"{row['case']:<34}{row['threads']:>8}{row['steps_per_second']:>12,.1f}{row['vs_real']:>9.2f}")
    batched = next(r for r in rows if r["part"] == "dream" and r["batch"] == 64 and not r["decoded"]
                   and r["threads"] == 1)
    verdict = "meets" if batched["vs_real"] >= 20 else "misses"
    print(f"\nbatched dream (64, no decoding, 1 thread) is {batched['vs_real']:.1f}x the real game: "
          f"{verdict} the 20x target")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seconds_per_case": args.seconds, "cpu_count": os.cpu_count(),
                                   "rows": rows}, indent=2) + "\n")
    print(f"saved {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
