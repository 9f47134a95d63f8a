"""Frame rate of the Dream pane at tau 1.0: dream steps per second (M steps, V decodes) and frames drawn.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_studio_dream.py [--seconds 10] [--run RUN]

Measured inside the real pane, offscreen, with the paper's CarRacing sizes on the CPU: V (ConvVAE z 32), M
(LSTM 256, 5 Gaussians) and C (867 parameters) with random weights (they cost what trained ones cost), or the
models of --run. The pane's speed is set to "as fast as it goes"; the controller drives. Side by side in the same
run, the peers:

- the same session generator (`dream_session`, decoding in a DecoderProcess as the pane does) pulled in a plain
  loop, without Qt: what the GUI costs;
- `wm-studio dream`'s loop (`dream_frames`: the dream first, every frame decoded at the end in batches of 64);
- the pane with the real game beside the dream (CarRacing-v2 stepping and V encoding its frame each step);
- the pane while V trains on a GeneratorWorker thread of the same process (batch 100, as the Training pane runs
  it; bench_studio_latent.start_training).

A table on stdout and benchmarks/results/studio_dream.json. Target: >= 30 dream steps per second in the pane.
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

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "studio_dream.json"


def paper_run(root: Path):
    """A CarRacing run with the paper's V, M and C (random weights) and one rollout's latents to start from."""
    from wm_studio.core.files import save_npz
    from wm_studio.core.models.controller import Controller, save_controller
    from wm_studio.core.models.mdnrnn import MDNRNN
    from wm_studio.core.models.serialization import save_model
    from wm_studio.core.models.vae import ConvVAE
    from wm_studio.core.presets import preset
    from wm_studio.core.runs import Run
    run = Run.create(root, preset("carracing", "paper"))
    vae = ConvVAE(32, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    mdn = MDNRNN(32, 3, 256, seed=1)
    mdn.step(np.zeros((1, 32), np.float32), np.zeros((1, 3), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    controller = Controller.for_game("carracing", 32, 256)
    controller.set_params(np.random.default_rng(2).normal(0, 0.1, controller.n_params))
    save_controller(run.model_path("controller"), controller)
    rng = np.random.default_rng(3)
    save_npz(run.latents_dir / "rollout_000000.npz",
             {"mu": rng.normal(size=(100, 32)).astype(np.float32), "logvar": np.zeros((100, 32), np.float32),
              "actions": np.zeros((100, 3), np.float32), "rewards": np.zeros(100, np.float32),
              "dones": np.zeros(100, bool)}, {"env": "carracing", "z_size": 32})
    return run


def wait(app, condition, timeout=120.0):
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the pane did not get there in time")
        app.processEvents()
        time.sleep(0.002)


def measure_pane(app, pane, seconds: float, real: bool) -> dict:
    if pane.real_check.isChecked() != real:
        pane.real_check.setChecked(real)
    pane.tau_slider.setValue(100)
    pane.set_driver("controller")
    pane.speed_box.setCurrentIndex(pane.speed_box.findData(None))
    wait(app, lambda: pane.latest is not None and (pane.latest.real is not None) == real)
    drawn = []
    connection = pane.drawn.connect(lambda frame: drawn.append(time.perf_counter()))
    pane.worker.run()
    wait(app, lambda: pane.frames_made > 10)         # past the start-up
    made, start = pane.frames_made, time.perf_counter()
    drawn.clear()
    while time.perf_counter() - start < seconds:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    steps = pane.frames_made - made
    pane.worker.pause()
    pane.drawn.disconnect(connection)
    assert pane.latest.tau == 1.0 and pane.latest.driver == "controller"
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed,
            "drawn_per_s": len(drawn) / elapsed}


def measure_loop(run_root: Path, seconds: float) -> dict:
    from wm_studio.core.models.controller import load_controller
    from wm_studio.core.models.mdnrnn import load_mdn
    from wm_studio.core.models.serialization import load_vae
    from wm_studio.gui.decoder_process import DecoderProcess
    from wm_studio.core.envs.dream_session import DreamControls, dream_session, keyboard_action
    vae, mdn = load_vae(run_root / "models" / "vae.npz"), load_mdn(run_root / "models" / "mdn.npz")
    controller, _ = load_controller(run_root / "models" / "controller.npz")
    controls = DreamControls(1.0, "controller", keyboard_action("carracing", ()), 10 ** 6, controller)
    starts = np.zeros((1, 32), np.float32)
    decoder = DecoderProcess()
    session = dream_session(vae, mdn, "carracing", controls, 0, starts, decode=decoder.decode)
    for _ in range(10):
        next(session)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(session)
        steps += 1
    elapsed = time.perf_counter() - start
    session.close()
    decoder.close()
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed, "drawn_per_s": None}


def measure_cli(run_root: Path, steps: int) -> dict:
    from wm_studio.commands.dream import dream_frames
    from wm_studio.core.runs import Run
    run = Run.open(run_root)
    dream_frames(run, 20, 1.0, 0)
    start = time.perf_counter()
    frames, _ = dream_frames(run, steps, 1.0, 0)
    elapsed = time.perf_counter() - start
    return {"steps": len(frames), "seconds": elapsed, "steps_per_s": len(frames) / elapsed, "drawn_per_s": None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--run", default=None, help="use this run's V, M and C instead of random paper-size ones")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from wm_studio.gui.app import leave_a_core_for_the_window
    from wm_studio.gui.panes.dream import DreamPane
    from wm_studio.gui.render import ensure_application
    app = ensure_application()
    leave_a_core_for_the_window()   # BLAS threads as `wm-studio gui` sets them
    scratch = tempfile.TemporaryDirectory(prefix="wm-bench-dream-")
    root = Path(args.run) if args.run else paper_run(Path(scratch.name) / "run").root
    load_start = os.getloadavg()

    pane = DreamPane()
    pane.resize(1400, 760)
    pane.show()
    pane.open_run.open(root)
    wait(app, lambda: pane.ready and pane.latest is not None)
    rows = [("the Dream pane (controller drives)", measure_pane(app, pane, args.seconds, real=False))]
    print(f"  pane: {rows[-1][1]['steps_per_s']:.1f} steps/s", flush=True)
    rows.append(("dream_session in a plain loop (no Qt)", measure_loop(root, args.seconds)))
    print(f"  loop: {rows[-1][1]['steps_per_s']:.1f} steps/s", flush=True)
    rows.append(("`wm-studio dream` (decodes at the end)", measure_cli(root, int(30 * args.seconds))))
    print(f"  cli:  {rows[-1][1]['steps_per_s']:.1f} steps/s", flush=True)
    rows.append(("the pane, real game beside the dream", measure_pane(app, pane, args.seconds, real=True)))
    print(f"  real: {rows[-1][1]['steps_per_s']:.1f} steps/s", flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_studio_latent import start_training
    worker, seen = start_training(Path(scratch.name) / "train", rollouts=4)
    wait(app, lambda: len(seen) >= 2)
    rows.append(("the pane while V trains (same process)", measure_pane(app, pane, args.seconds, real=False)))
    print(f"  training: {rows[-1][1]['steps_per_s']:.1f} steps/s", flush=True)
    worker.shutdown()
    pane.shutdown()

    base = rows[0][1]["steps_per_s"]
    print()
    print(f"Dream pane frame rate at tau 1.0, paper sizes (V z 32, M LSTM 256, C 867) on the CPU, {os.cpu_count()} "
          f"CPUs; load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'':<42}{'steps/s':>9}{'drawn/s':>9}{'vs pane':>9}")
    for label, row in rows:
        drawn = "" if row["drawn_per_s"] is None else f"{row['drawn_per_s']:.1f}"
        print(f"{label:<42}{row['steps_per_s']:9.1f}{drawn:>9}{row['steps_per_s'] / base:9.2f}")
    payload = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_average_start": load_start, "load_average_end": os.getloadavg(),
               "rows": [{"label": label, **row} for label, row in rows]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
