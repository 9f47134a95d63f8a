"""Slider latency of the Latent pane: from a slider value change to the decoded image being in the ImageItem.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_studio_latent.py [--changes 500] [--run RUN]

Measured inside the real pane, offscreen, with the paper's V (ConvVAE, z 32; random weights decode exactly as
fast as trained ones, or the V of --run). Each change moves one random slider to a random value; the next change
comes 16 ms (one 60 Hz frame) after the previous image is shown, so every change gets its own latency and the
event loop gets to paint in between. Three ways of decoding, side by side in the same run:

- pane: the Latent pane as it is: a MailboxThread (newest request only) that has V decode in a child process
  with one BLAS thread (DecoderProcess);
- decode thread in-process (peer): the same MailboxThread decoding in the studio's own process;
- GUI-thread decode (peer): the obvious alternative, decoding inside the slider's slot on the GUI thread.

Each is measured while the studio is idle and while V trains in the background: the core `train_vae` generator
on a GeneratorWorker thread (paper-size V, batch 100, on synthetic frames in a scratch run folder), as the
Training pane runs it. p50 / p95 / max over the changes; a table on stdout and benchmarks/results/
studio_latent.json.
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

from wm_studio.core.envs.dream import decode_frames  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "studio_latent.json"
GAP_MS = 16
TRAIN_BATCH = 100
METHODS = {"pane": "decode process (the pane)", "thread": "decode thread in-process",
           "gui-thread": "on the GUI thread"}


def scratch_run(root: Path, rollouts: int, steps: int, z_size: int = 32):
    """A CarRacing run with the paper's V (random weights) and rollouts of synthetic frames, plus its latents."""
    from wm_studio.core.files import save_npz
    from wm_studio.core.models.serialization import save_model
    from wm_studio.core.models.vae import ConvVAE
    from wm_studio.core.presets import preset
    from wm_studio.core.runs import Run
    from wm_studio.core.train.encode import encode_frames
    config = preset("carracing", "quick")
    run = Run.create(root, config)
    vae = ConvVAE(z_size, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    rng = np.random.default_rng(0)
    for index in range(rollouts):
        frames = rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8)
        frames[:, 30:] = (60, 160, 60)
        arrays = {"frames": frames, "actions": rng.uniform(-1, 1, (steps, 3)).astype(np.float32),
                  "rewards": np.zeros(steps, np.float32), "dones": np.zeros(steps, bool)}
        name = f"rollout_{index:06d}.npz"
        save_npz(run.rollouts_dir / name, arrays, {"env": "carracing"}, compressed=True)
        mu, logvar = encode_frames(vae, frames, np, 100)
        save_npz(run.latents_dir / name, {"mu": mu, "logvar": logvar, **{k: arrays[k] for k in
                                                                         ("actions", "rewards", "dones")}},
                 {"env": "carracing", "z_size": z_size})
    return run


class Driver:
    """Makes `changes` slider changes one after the other and records each one's latency."""

    def __init__(self, pane, changes: int, method: str, seed: int = 0):
        from PyQt5.QtCore import QTimer
        self.pane, self.changes, self.method = pane, changes, method
        self.rng = np.random.default_rng(seed)
        self.latencies: list[float] = []
        self.done = False
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.change)
        self.connection = pane.image_shown.connect(self.shown) if method != "gui-thread" else None

    def start(self):
        self.timer.start(GAP_MS)

    def change(self):
        pane = self.pane
        dim = int(self.rng.integers(len(pane.z)))
        slider = pane.sliders.sliders[dim]
        position = int(self.rng.integers(-300, 301))
        if position == slider.value():
            position = -position or 1
        if self.method != "gui-thread":
            slider.setValue(position)            # the pane's own slot posts z to its decode thread
            return
        # The peer: decode in the slot, on the GUI thread.
        slider.blockSignals(True)
        slider.setValue(position)
        slider.blockSignals(False)
        start = time.perf_counter()
        z = pane.z.copy()
        z[dim] = position / 100
        pane.z = z
        pane.decoded_view.set_frame(decode_frames(pane.vae, z[None])[0])
        self.record(time.perf_counter() - start)

    def shown(self, request_id: int):
        if self.done or not self.pane.latencies:
            return
        self.record(self.pane.latencies[-1])

    def record(self, latency: float):
        self.latencies.append(latency)
        if len(self.latencies) >= self.changes:
            self.done = True
            if self.connection is not None:
                self.pane.image_shown.disconnect(self.connection)
        else:
            self.timer.start(GAP_MS)


class InProcess:
    """The decode thread's work done in the studio's process (the peer of DecoderProcess)."""

    def decode(self, vae, z):
        return decode_frames(vae, z)


def measure(app, pane, changes: int, method: str) -> dict:
    real = pane.decoder_process
    if method == "thread":
        pane.decoder_process = InProcess()
    try:
        return _measure(app, pane, changes, method)
    finally:
        pane.decoder_process = real


def _measure(app, pane, changes: int, method: str) -> dict:
    driver = Driver(pane, changes, method)
    pane.latencies.clear()
    driver.start()
    started = time.perf_counter()
    while not driver.done:
        app.processEvents()
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    ms = np.array(driver.latencies) * 1000
    return {"method": method, "changes": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "seconds": elapsed}


def start_training(root: Path, rollouts: int, device: str = "cpu"):
    """V's training stage on its own GeneratorWorker thread, running; returns (worker, batches seen)."""
    from wm_studio.core.device import resolve_device
    from wm_studio.core.train.vae_stage import VaeSettings, train_vae
    from wm_studio.gui.workers import GeneratorWorker
    run = scratch_run(root, rollouts=rollouts, steps=200)
    settings = VaeSettings(z_size=32, epochs=1000, batch_size=TRAIN_BATCH, holdout=0.0, checkpoint_every_s=1e9,
                           preview_every=10 ** 9)
    worker = GeneratorWorker("vae training")
    seen = []
    worker.snapshots.connect(lambda batch: seen.extend(s.done for s in batch))
    worker.load(lambda: train_vae(run, settings, resolve_device(device)))
    worker.run()
    return worker, seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--run", default=None, help="open this run's V instead of a random paper-size one")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the run, in seconds (Python's default: 0.005)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--device", default="cpu", help="where V trains meanwhile: cpu, gpu or gpu:N (default cpu)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="decoding ways to measure, comma-separated (the pane's is always measured)")
    args = parser.parse_args(argv)
    methods = ["pane"] + [m for m in args.methods.split(",") if m in METHODS and m != "pane"]
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    from wm_studio.core.device import resolve_device
    from wm_studio.gui.app import leave_a_core_for_the_window
    from wm_studio.gui.render import ensure_application
    from wm_studio.gui.panes.latent import LatentPane
    app = ensure_application()
    leave_a_core_for_the_window()   # BLAS threads as `wm-studio gui` sets them
    scratch = tempfile.TemporaryDirectory(prefix="wm-bench-latent-")
    folder = Path(args.run) if args.run else scratch_run(Path(scratch.name) / "view", rollouts=2, steps=100).root
    pane = LatentPane()
    pane.resize(1400, 760)
    pane.show()
    pane.open_run.open(folder)
    while pane.vae is None or pane.shown_id == 0:
        app.processEvents()
        time.sleep(0.01)

    rows = []
    for training in (False, True):
        worker = seen = None
        if training:
            worker, seen = start_training(Path(scratch.name) / "train", rollouts=4, device=args.device)
            while len(seen) < 2:                 # past the data set-up: batches are being trained
                app.processEvents()
                time.sleep(0.01)
            first_batch = seen[-1]
            clock = time.perf_counter()
        for method in methods:
            result = measure(app, pane, args.changes, method)
            result["training"] = training
            result["training_device"] = resolve_device(args.device).name if training else None
            rows.append(result)
            print(f"  {'training' if training else 'idle':>8}  {method:<10}  p50 {result['p50_ms']:6.1f} ms  "
                  f"p95 {result['p95_ms']:6.1f} ms", flush=True)
        if training:
            batches = seen[-1] - first_batch
            rate = batches * TRAIN_BATCH / (time.perf_counter() - clock)
            for row in rows[-len(methods):]:
                row["training_images_per_s"] = rate
            worker.shutdown()
    pane.shutdown()

    print()
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (other work on the machine "
          f"counts)")
    print(f"Slider latency, value change -> decoded image in the ImageItem ({args.changes} changes each, "
          f"paper V z 32, {os.cpu_count()} CPUs)")
    print(f"{'V training':<12}{'decoding':<28}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'p95 / pane':>12}")
    for row in rows:
        pane_row = next(r for r in rows if r["training"] == row["training"] and r["method"] == "pane")
        label = METHODS[row["method"]]
        print(f"{'running' if row['training'] else 'idle':<12}{label:<28}{row['p50_ms']:8.1f}{row['p95_ms']:8.1f}"
              f"{row['max_ms']:8.1f}{row['p95_ms'] / pane_row['p95_ms']:12.2f}")
    trained = [r for r in rows if r["training"]]
    if trained:
        print(f"V trained at {trained[0]['training_images_per_s']:.0f} images/s meanwhile (batch {TRAIN_BATCH})")
    payload = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_average_at_end": os.getloadavg(),
               "switch_interval_s": sys.getswitchinterval(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
