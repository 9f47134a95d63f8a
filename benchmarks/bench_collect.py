"""Game step rates and collect throughput, side by side in one run.

1. Steps per second on one core, the same fixed random actions for every contender:
   - CarRacing through `gym.make("CarRacing-v2")` (the peer: gym's wrappers, raw 96x96 frames), the bare gym
     CarRacing class (what wm_studio builds), and wm_studio's `make_env("carracing")` (crop + 64x64 resize);
   - Doom Take Cover through `gymnasium.make("VizdoomTakeCover-v1")` and wm_studio's `make_env("doom")`.
2. `collect` (random rollouts written as compressed npz) with 1 worker (serial) and 2 worker processes: frames
   per second of wall time, worker start-up and file writing included.

Usage: python benchmarks/bench_collect.py [--steps N] [--rollouts R] [--rollout-steps T] [--json PATH]
Defaults take about a minute and a half on a 2-core machine and write benchmarks/results/collect.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wm_studio.core.data.collect import CollectSettings, collect  # noqa: E402
from wm_studio.core.envs import make_env  # noqa: E402
from wm_studio.core.envs.carracing import gym_car_racing_class, import_gym  # noqa: E402
from wm_studio.core.runs import Run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def timed_steps(reset, step, actions) -> float:
    """Steps per second of `step` over the actions, restarting the episode when it ends."""
    reset()
    start = time.perf_counter()
    for action in actions:
        if step(action):
            reset()
    return len(actions) / (time.perf_counter() - start)


def gym_make_carracing(actions):
    gym = import_gym()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("CarRacing-v2")
        rate = timed_steps(lambda: env.reset(seed=0), lambda a: any(env.step(a)[2:4]), actions)
    env.close()
    return rate


def bare_carracing(actions):
    env = gym_car_racing_class()(verbose=False)
    rate = timed_steps(lambda: env.reset(seed=0), lambda a: any(env.step(a)[2:4]), actions)
    env.close()
    return rate


def ours(name, actions):
    env = make_env(name)
    rate = timed_steps(lambda: env.reset(seed=0), lambda a: any(env.step(a)[2:4]), actions)
    env.close()
    return rate


def gymnasium_doom(actions):
    import gymnasium
    import vizdoom.gymnasium_wrapper  # noqa: F401
    env = gymnasium.make("VizdoomTakeCover-v1", max_buttons_pressed=0)
    rate = timed_steps(lambda: env.reset(seed=0), lambda a: any(env.step(a)[2:4]), actions)
    env.close()
    return rate


def collect_rate(rollouts, steps, workers):
    with tempfile.TemporaryDirectory() as folder:
        run = Run.prepare(folder, "carracing", "tiny")
        settings = CollectSettings(env="carracing", rollouts=rollouts, steps=steps, policy="brownian", seed=0)
        start = time.perf_counter()
        last = None
        for last in collect(run, settings, workers=workers, backend="processes" if workers > 1 else "serial"):
            pass
        seconds = time.perf_counter() - start
    return last.frames / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="timed steps per game contender")
    parser.add_argument("--rollouts", type=int, default=6, help="rollouts per collect run")
    parser.add_argument("--rollout-steps", type=int, default=300, help="steps per rollout")
    parser.add_argument("--json", type=Path, default=RESULTS / "collect.json")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    car_actions = np.column_stack([rng.uniform(-1, 1, args.steps), rng.uniform(0, 1, args.steps),
                                   rng.uniform(0, 0.2, args.steps)]).astype(np.float32)
    doom_steps = args.steps * 4
    doom_buttons = np.eye(2, dtype=np.int8)[rng.integers(0, 2, doom_steps)]

    rows = []
    peer = gym_make_carracing(car_actions)
    rows.append(("CarRacing  gym.make('CarRacing-v2') (peer)", peer, 1.0))
    for label, rate in (("CarRacing  bare gym class", bare_carracing(car_actions)),
                        ("CarRacing  wm_studio make_env (crop+resize)", ours("carracing", car_actions))):
        rows.append((label, rate, rate / peer))
    doom_peer = gymnasium_doom(doom_buttons)
    rows.append(("Doom       gymnasium.make (peer)", doom_peer, 1.0))
    doom_ours = ours("doom", doom_buttons.astype(np.float32))
    rows.append(("Doom       wm_studio make_env (crop+resize)", doom_ours, doom_ours / doom_peer))

    collect_rows = []
    for workers in (1, 2):
        rate, seconds = collect_rate(args.rollouts, args.rollout_steps, workers)
        collect_rows.append((workers, rate, seconds))

    print(f"\nGame steps per second, one core ({args.steps} CarRacing steps, {doom_steps} Doom steps each)")
    print(f"{'contender':46s} {'steps/s':>9s} {'x peer':>7s}")
    for label, rate, ratio in rows:
        print(f"{label:46s} {rate:9.1f} {ratio:7.2f}")
    base = collect_rows[0][1]
    print(f"\ncollect, CarRacing, {args.rollouts} rollouts x {args.rollout_steps} steps (brownian, files written)")
    print(f"{'workers':>7s} {'seconds':>8s} {'frames/s':>9s} {'x 1 worker':>10s}")
    for workers, rate, seconds in collect_rows:
        print(f"{workers:7d} {seconds:8.1f} {rate:9.1f} {rate / base:10.2f}")

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args) | {"json": str(args.json)},
        "steps_per_second": [{"contender": label, "steps_per_second": round(rate, 1), "ratio_to_peer": round(r, 3)}
                             for label, rate, r in rows],
        "collect": [{"workers": w, "frames_per_second": round(rate, 1), "seconds": round(s, 2),
                     "ratio_to_one_worker": round(rate / base, 3)} for w, rate, s in collect_rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {args.json}")


if __name__ == "__main__":
    main()
