"""The controller stage's costs, side by side in one run.

1. Steps per second on one core: a controller rollout (V's encoder on every frame, M's LSTM step, C) through our
   numpy path and through the Chainer models, against the bare game replaying the same actions on the same
   track: gym's own CarRacing-v2 and wm_studio's (the same frames, its road drawn from numpy); and the per-step
   cost of each piece alone (encoder, LSTM step), numpy vs Chainer.
2. One CMA-ES generation of the CarRacing controller (lambda 16, 1 rollout each, 200 steps; 867 parameters, the
   paper's V and M sizes with seeded untrained weights) on the serial, processes (2 workers) and Dask (2 local
   workers) backends: wall time of a cold generation (workers started, models loaded) and of a warm one, ratios to
   serial, and the dispatch overhead per task (a batch of empty tasks through each runner).

Usage: python benchmarks/bench_controller.py [--popsize 16] [--steps 200] [--json PATH]
About three minutes on a 2-core machine; writes benchmarks/results/controller.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# BLAS on one thread before numpy loads, as in every rollout worker: "one core" means one core, and a second BLAS
# thread waking up for each small GEMM between game steps costs more than it saves.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wm_studio.core.es import CMAES  # noqa: E402
from wm_studio.core.models.controller import Controller  # noqa: E402
from wm_studio.core.parallel import make_runner  # noqa: E402
from wm_studio.core.presets import preset  # noqa: E402
from wm_studio.core.runs import Run  # noqa: E402
from wm_studio.core.train.rollout import GameEvaluator, RolloutTask, game_spec, play  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def make_run(folder) -> Run:
    """A CarRacing run with the paper's V (z 32) and M (hidden 256), seeded untrained weights."""
    from wm_studio.core.models.mdnrnn import MDNRNN
    from wm_studio.core.models.serialization import save_model
    from wm_studio.core.models.vae import ConvVAE
    run = Run.create(folder, preset("carracing", "quick"))
    vae = ConvVAE(32, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    mdn = MDNRNN(32, 3, 256, seed=0)
    mdn.step(np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    return run


def driving_params(shape, seed=0) -> np.ndarray:
    """A controller that keeps the car moving (gas, no brake) and steers from z and h, so frames change."""
    controller = Controller(shape, np.random.default_rng(seed).normal(0, 0.1, shape.n_params))
    controller.bias[:] = [0.0, 0.4, -1.0]
    return controller.params


class RecordingEnv:
    """A game that remembers the actions it was given."""

    def __init__(self, env):
        self.env, self.actions = env, []

    def reset(self, seed=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)

    def close(self):
        self.env.close()


def rollout_rates(spec, params, steps: int, rounds: int = 3) -> dict[str, float]:
    """Steps per second on the same track with the same actions, median of `rounds` interleaved rounds: the
    controller rollout (its actions recorded), then gym's own CarRacing (stock renderer) and wm_studio's game
    (the same frames, the road drawn from numpy) replaying those actions; each timed from reset."""
    from wm_studio.core.envs import make_env
    from wm_studio.core.envs.carracing import gym_car_racing_class
    world = spec.load()
    world.env = RecordingEnv(world.env)
    play(world, RolloutTask(params, 1, 20))                 # warm-up (first calls, caches)
    rates = {"bare gym CarRacing-v2 (stock)": [], "wm_studio's game (make_env)": [], "controller rollout": []}

    def replay(env, actions) -> float:
        start = time.perf_counter()
        env.reset(seed=1)
        for action in actions:
            env.step(action)
        return len(actions) / (time.perf_counter() - start)

    stock, ours = gym_car_racing_class()(verbose=False), make_env("carracing")
    for _ in range(rounds):
        world.env.actions.clear()
        start = time.perf_counter()
        result = play(world, RolloutTask(params, 1, steps))
        rates["controller rollout"].append(result.steps / (time.perf_counter() - start))
        actions = list(world.env.actions)
        rates["bare gym CarRacing-v2 (stock)"].append(replay(stock, actions))
        rates["wm_studio's game (make_env)"].append(replay(ours, actions))
    for env in (world, stock, ours):
        env.close()
    return {name: float(np.median(values)) for name, values in rates.items()}


class ChainerWorld:
    """The same rollout through the Chainer models (V.encode, M.step): the path the numpy one replaces."""

    def __init__(self, run, shape):
        import chainer
        from wm_studio.core.envs import make_env
        from wm_studio.core.envs.preprocess import frames_to_input
        from wm_studio.core.models.mdnrnn import load_mdn
        from wm_studio.core.models.serialization import load_vae
        self.chainer, self.to_input = chainer, frames_to_input
        self.vae, self.mdn = load_vae(run.model_path("vae")), load_mdn(run.model_path("mdn"))
        self.env, self.shape = make_env("carracing"), shape

    def rate(self, params, steps: int) -> float:
        controller = Controller(self.shape, params)
        start = time.perf_counter()
        obs, _ = self.env.reset(seed=1)
        state = self.mdn.initial_state(1)
        played = 0
        with self.chainer.no_backprop_mode(), self.chainer.using_config("train", False):
            while played < steps:
                z = self.vae.encode(self.to_input(obs[None]))[0].array
                action = controller.act(z, state.h)
                obs, _, terminated, truncated, _ = self.env.step(action[0])
                played += 1
                if terminated or truncated:
                    break
                _, _, state = self.mdn.step(z, action, state)
        rate = played / (time.perf_counter() - start)
        self.env.close()
        return rate


def piece_costs(run, spec, repeats: int = 300) -> dict[str, float]:
    """Milliseconds per call for one frame / one step: numpy encoder and LSTM against Chainer's."""
    import chainer
    from wm_studio.core.envs.preprocess import frames_to_input
    from wm_studio.core.models.mdnrnn import load_mdn
    from wm_studio.core.models.serialization import load_vae
    world = spec.load()
    world.close()
    vae, mdn = load_vae(run.model_path("vae")), load_mdn(run.model_path("mdn"))
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    z, action = np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32)
    h, c = world.lstm.initial_state()
    state = mdn.initial_state(1)
    calls = {"encoder numpy": lambda: world.encoder(frame),
             "encoder chainer": lambda: vae.encode(frames_to_input(frame[None])),
             "lstm step numpy": lambda: world.lstm.step(z, action, h, c),
             "lstm step chainer": lambda: mdn.step(z, action, state)}
    costs = {}
    with chainer.no_backprop_mode(), chainer.using_config("train", False):
        for name, call in calls.items():
            call()
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            costs[name] = (time.perf_counter() - start) / repeats * 1e3
    return costs


def empty_task(state, task):
    return task


def generation(runner, spec, es, steps: int) -> float:
    start = time.perf_counter()
    population = es.ask()
    population[:, :] += driving_params(spec.shape)            # keep every candidate driving
    rewards, _ = GameEvaluator(runner, spec).evaluate(population, [11], steps)
    es.tell_maximise(population, rewards.mean(axis=1))
    return time.perf_counter() - start


def backend_rows(spec, popsize: int, steps: int, workers: int, dispatch_tasks: int) -> list[dict]:
    rows = []
    for backend in ("serial", "processes", "dask"):
        es = CMAES(np.zeros(spec.shape.n_params), 0.1, popsize=popsize, seed=0)
        start = time.perf_counter()
        with make_runner(backend, workers=workers) as runner:
            startup = time.perf_counter() - start
            cold = generation(runner, spec, es, steps)
            warm = generation(runner, spec, es, steps)
            list(runner.run(empty_task, range(8)))            # warm the dispatch path
            start = time.perf_counter()
            list(runner.run(empty_task, range(dispatch_tasks)))
            per_task = (time.perf_counter() - start) / dispatch_tasks
        rows.append({"backend": backend, "workers": 1 if backend == "serial" else workers,
                     "startup_s": round(startup, 2), "cold_generation_s": round(cold, 2),
                     "warm_generation_s": round(warm, 2), "dispatch_ms_per_task": round(per_task * 1e3, 3)})
    serial = rows[0]["warm_generation_s"]
    for row in rows:
        row["speedup_vs_serial"] = round(serial / row["warm_generation_s"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--popsize", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="steps of each rollout in the generation")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate-steps", type=int, default=600, help="steps timed for the steps/s comparison")
    parser.add_argument("--dispatch-tasks", type=int, default=200, help="empty tasks timed per backend")
    parser.add_argument("--json", type=Path, default=RESULTS / "controller.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        run = make_run(folder)
        spec = game_spec(run)
        params = driving_params(spec.shape)
        rates = rollout_rates(spec, params, args.rate_steps)
        rates["controller rollout, Chainer V/M"] = ChainerWorld(run, spec.shape).rate(params, args.rate_steps)
        costs = piece_costs(run, spec)
        rows = backend_rows(spec, args.popsize, args.steps, args.workers, args.dispatch_tasks)

    stock, game = rates["bare gym CarRacing-v2 (stock)"], rates["wm_studio's game (make_env)"]
    print(f"\nCarRacing steps per second on one core ({args.rate_steps} steps each, median of 3 rounds)")
    print(f"{'contender':34s} {'steps/s':>8s} {'x gym':>7s} {'x our game':>10s}")
    for name, rate in rates.items():
        print(f"{name:34s} {rate:8.1f} {rate / stock:7.2f} {rate / game:10.2f}")
    print("\nper-step cost of each piece (ms per call, one frame / one step)")
    for name, ms in costs.items():
        print(f"{name:34s} {ms:8.3f}")
    print(f"  numpy / Chainer: encoder {costs['encoder numpy'] / costs['encoder chainer']:.2f}, "
          f"LSTM step {costs['lstm step numpy'] / costs['lstm step chainer']:.2f}")
    print(f"\nOne CMA-ES generation: lambda {args.popsize}, 1 rollout each, {args.steps} steps, "
          f"{spec.shape.n_params} parameters")
    print(f"{'backend':10s} {'workers':>7s} {'start s':>8s} {'cold s':>7s} {'warm s':>7s} {'x serial':>8s} "
          f"{'ms/task':>8s}")
    for row in rows:
        print(f"{row['backend']:10s} {row['workers']:7d} {row['startup_s']:8.2f} {row['cold_generation_s']:7.2f} "
              f"{row['warm_generation_s']:7.2f} {row['speedup_vs_serial']:8.2f} {row['dispatch_ms_per_task']:8.3f}")
    print("(cold: the first generation, workers loading the game and the models; warm: the second; ms/task: "
          f"{args.dispatch_tasks} empty tasks through the runner)")

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": vars(args) | {"json": str(args.json)},
        "steps_per_second": {name: round(rate, 1) for name, rate in rates.items()},
        "ms_per_call": {name: round(ms, 4) for name, ms in costs.items()},
        "generation": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {args.json}")


if __name__ == "__main__":
    main()
