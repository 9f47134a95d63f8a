"""GUI responsiveness of the studio while it trains: the largest gap between ticks of a 10 ms event-loop timer.

    .venv/bin/python benchmarks/bench_studio_responsiveness.py [--seconds 60] [--batch-size 100]

The whole studio window runs offscreen (every pane and its timers, the open run's file poll, the log dock), on the
Training pane. A 10 ms QTimer (Qt.PreciseTimer) on the GUI thread records when it fires; a gap well above 10 ms
is a time the window could not repaint or react to a click. Three phases in one process, side by side:

- idle: the same window with nothing training (the peer, what the event loop does on its own);
- training V: the V stage started from the pane on the training thread, at the paper's batch of 100 (the
  quick preset's size), on synthetic 64x64 frames, while the pane draws its curves and reconstructions at 30 Hz,
  with numpy's BLAS on all cores but one, as `wm-studio gui` sets it (app.leave_a_core_for_the_window);
- training V, every core: the same with BLAS on every core (what the limit buys, and what it costs in batches/s).

Reported per phase: max / p99 / p95 / median gap, ticks, the longest draw of the Training pane, V's batches per
second, and how late a plain Python thread sleeping 1 ms at a time woke up at worst ("probe"): a GUI gap with a
late probe is the GIL or the CPUs being taken (by the training thread, its BLAS threads or other programs); a gap
with a punctual probe is the GUI thread's own work. Target: max gap <= 50 ms while training. Results: a table on stdout and
benchmarks/results/studio_responsiveness.json. Options --switch-interval (sys.setswitchinterval, seconds) and
--gil-pause (the training worker's pause between pulls, workers.GIL_SHARE_PAUSE) are there to find out where
gaps come from.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "studio_responsiveness.json"
TICK_MS = 10
TARGET_MS = 50.0
SETTLE_S = 5.0


def make_run(root: Path, rollouts: int, frames: int, batch_size: int, epochs: int):
    """A CarRacing run with synthetic rollouts: blocky random pictures that change a little every step."""
    from wm_studio.core.files import save_npz
    from wm_studio.core.presets import preset
    from wm_studio.core.runs import Run
    config = preset("carracing", "quick")
    config["vae"].update(batch_size=batch_size, epochs=epochs)
    run = Run.create(root, config)
    rng = np.random.default_rng(0)
    for index in range(rollouts):
        base = rng.integers(0, 256, (1, 8, 8, 3))
        drift = np.cumsum(rng.integers(-3, 4, (frames, 8, 8, 3)), axis=0)
        pictures = np.clip(base + drift, 0, 255).astype(np.uint8).repeat(8, axis=1).repeat(8, axis=2)
        save_npz(run.rollouts_dir / f"rollout_{index:06d}.npz",
                 {"frames": pictures, "actions": rng.uniform(-1, 1, (frames, 3)).astype(np.float32),
                  "rewards": np.zeros(frames, np.float32), "dones": np.zeros(frames, bool)},
                 {"env": "carracing", "seed": index, "policy": "brownian", "steps": frames}, compressed=True)
    return run


class TickRecorder:
    """A 10 ms precise QTimer on the GUI thread; gaps between consecutive ticks, in milliseconds."""

    def __init__(self):
        from PyQt5.QtCore import Qt, QTimer
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def start(self):
        self.times = []
        self.timer.start(TICK_MS)

    def stop(self) -> np.ndarray:
        """The tick times (seconds)."""
        self.timer.stop()
        return np.asarray(self.times)


class SleepProbe:
    """A plain Python thread that sleeps 1 ms at a time and records how late it wakes up. When a GUI gap and a
    late wake-up coincide, the GUI thread was waiting for the GIL or for a CPU (not busy drawing)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []   # (time woken, lateness in ms)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self.samples = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            before = time.perf_counter()
            time.sleep(0.001)
            after = time.perf_counter()
            self.samples.append((after, (after - before) * 1000.0 - 1.0))

    def stop(self) -> np.ndarray:
        self._stop.set()
        self._thread.join()
        return np.asarray(self.samples).reshape(-1, 2)


class GcClock:
    """How long Python's garbage collector ran, per collection (gc.callbacks), on whichever thread triggered it."""

    def __init__(self):
        self.pauses: list[tuple[float, float, int]] = []   # (start, ms, generation)
        self._start = None
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            self.pauses.append((self._start, (time.perf_counter() - self._start) * 1000.0, info["generation"]))
            self._start = None

    def take(self) -> list[tuple[float, float, int]]:
        pauses, self.pauses = self.pauses, []
        return pauses


def wait_until(app, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the studio did not get there within two minutes")
        app.processEvents()
        time.sleep(0.005)


def run_for(app, seconds: float) -> None:
    from PyQt5.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()


def summarise(ticks: np.ndarray, probe: np.ndarray, gc_pauses: list, draws: list[float], batches: int,
              seconds: float) -> dict:
    gaps = np.diff(ticks) * 1000.0
    worst = np.argsort(gaps)[::-1][:5]

    def probe_late(i):
        """The probe thread's worst lateness while the GUI thread was away (ticks[i] .. ticks[i + 1])."""
        inside = probe[(probe[:, 0] > ticks[i]) & (probe[:, 0] <= ticks[i + 1] + 0.002), 1]
        return round(float(inside.max()), 1) if len(inside) else None

    def gc_inside(i):
        """Garbage collection (ms) that ran while the GUI thread was away."""
        return round(sum(ms for start, ms, _ in gc_pauses if ticks[i] - 0.001 <= start <= ticks[i + 1]), 1)

    return {"worst_gaps": [{"at_s": round(float(ticks[i] - ticks[0]), 3), "ms": round(float(gaps[i]), 1),
                            "probe_late_ms": probe_late(i), "gc_ms": gc_inside(i)} for i in worst],
            "gc_max_ms": max((ms for _, ms, _ in gc_pauses), default=0.0),
            "gc_collections": {str(g): sum(1 for *_, gen in gc_pauses if gen == g) for g in (0, 1, 2)},
            "probe_max_late_ms": float(probe[:, 1].max()) if len(probe) else None,
            "ticks": int(len(gaps)), "max_ms": float(gaps.max()), "p99_ms": float(np.percentile(gaps, 99)),
            "p95_ms": float(np.percentile(gaps, 95)), "median_ms": float(np.median(gaps)),
            "gaps_over_50ms": int((gaps > TARGET_MS).sum()),
            "longest_draw_ms": float(max(draws) if draws else 0.0), "draws": len(draws),
            "batches": int(batches), "batches_per_second": batches / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    parser.add_argument("--batch-size", type=int, default=100, help="V's batch (default 100, the quick preset)")
    parser.add_argument("--rollouts", type=int, default=20, help="synthetic rollouts (default 20)")
    parser.add_argument("--frames", type=int, default=300, help="frames per rollout (default 300)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the run (Python's default: 0.005 s)")
    parser.add_argument("--gil-pause", type=float, default=None,
                        help="the training worker's pause between pulls, seconds (default workers.GIL_SHARE_PAUSE)")
    parser.add_argument("--json", default=str(RESULTS), help="where the results go")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    from PyQt5.QtCore import QSettings
    from threadpoolctl import threadpool_info
    from wm_studio.gui import workers
    from wm_studio.gui.app import leave_a_core_for_the_window
    from wm_studio.gui.application import make_application
    if args.gil_pause is not None:
        workers.GIL_SHARE_PAUSE = args.gil_pause
    app = make_application()
    blas_limit, _ = leave_a_core_for_the_window()
    scratch = Path(tempfile.mkdtemp(prefix="wm-studio-bench-"))
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(scratch / "settings"))
    run = make_run(scratch / "run", args.rollouts, args.frames, args.batch_size, epochs=1000)

    from wm_studio.gui.main_window import MainWindow
    window = MainWindow(pane="training", persistent=False, run=run.root)
    window.show()
    pane = window.panes["training"]
    wait_until(app, lambda: pane.start_button.isEnabled() and window.open_run.idle)
    run_for(app, SETTLE_S)   # the panes' first reactions to the opened run (decoding, maps) are not measured
    draws: list[float] = []
    original_draw = pane.draw

    def timed_draw():
        start = time.perf_counter()
        original_draw()
        draws.append((time.perf_counter() - start) * 1000.0)

    pane._draw_timer.timeout.disconnect()
    pane._draw_timer.timeout.connect(timed_draw)
    recorder = TickRecorder()
    probe = SleepProbe()
    gc_clock = GcClock()
    results = {}
    for phase in ("idle", "training V", "training V, every core"):
        if phase == "training V, every core":
            pane.stop()
            wait_until(app, lambda: pane.worker.idle)
            blas_limit.restore_original_limits()   # no BLAS call is under way: the trainer has stopped
        if phase.startswith("training V"):
            pane.start("vae")
            wait_until(app, lambda: pane.snapshot_count >= 1)  # the model is built, a batch done: measure from here
        first = pane.latest["vae"].done if "vae" in pane.latest and pane.training else 0
        draws.clear()
        gc_clock.take()
        probe.start()
        recorder.start()
        run_for(app, args.seconds)
        ticks = recorder.stop()
        batches = (pane.latest["vae"].done - first) if pane.training else 0
        results[phase] = summarise(ticks, probe.stop(), gc_clock.take(), list(draws), batches, args.seconds)
        results[phase]["blas_threads"] = max(info["num_threads"] for info in threadpool_info()
                                             if info["user_api"] == "blas")
        print(f"{phase}: done", file=sys.stderr, flush=True)
    pane.stop()
    window.close()

    print(f"\nGUI responsiveness, {args.seconds:.0f} s per phase, 10 ms timer, offscreen "
          f"(batch {args.batch_size}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"switch interval {sys.getswitchinterval() * 1000:.1f} ms, worker pause "
          f"{workers.GIL_SHARE_PAUSE * 1000:.1f} ms per {workers.GIL_SHARE_INTERVAL * 1000:.0f} ms)")
    header = f"{'phase':<22} {'BLAS':>4} {'ticks':>6} {'max ms':>8} {'p99 ms':>8} {'p95 ms':>8} {'median':>8} " \
             f"{'>50 ms':>7} {'draw max':>9} {'probe max':>10} {'gc max':>7} {'V batch/s':>10}"
    print(header)
    print("-" * len(header))
    for phase, row in results.items():
        print(f"{phase:<22} {row['blas_threads']:>4} {row['ticks']:>6} {row['max_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['p95_ms']:>8.1f} "
              f"{row['median_ms']:>8.1f} {row['gaps_over_50ms']:>7} {row['longest_draw_ms']:>9.1f} "
              f"{row['probe_max_late_ms']:>10.1f} {row['gc_max_ms']:>7.1f} {row['batches_per_second']:>10.2f}")
    for phase, row in results.items():
        worst = ", ".join(f"{g['ms']:.0f} ms at {g['at_s']:.1f} s (probe {g['probe_late_ms']} ms late, "
                          f"gc {g['gc_ms']} ms)" for g in row["worst_gaps"][:3])
        print(f"  {phase}: worst gaps {worst}")
    training, every_core = results["training V"], results["training V, every core"]
    verdict = "met" if training["max_ms"] <= TARGET_MS else "MISSED"
    print(f"target max gap <= {TARGET_MS:.0f} ms while training: {verdict} "
          f"(max {training['max_ms']:.1f} ms; idle max {results['idle']['max_ms']:.1f} ms, ratio "
          f"{training['max_ms'] / max(results['idle']['max_ms'], 1e-9):.1f}x; with BLAS on every core "
          f"{every_core['max_ms']:.1f} ms at {every_core['batches_per_second'] / max(training['batches_per_second'], 1e-9):.2f}x "
          f"the batches/s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "seconds": args.seconds, "batch_size": args.batch_size, "tick_ms": TICK_MS, "target_ms": TARGET_MS,
        "switch_interval_s": sys.getswitchinterval(), "gil_pause_s": workers.GIL_SHARE_PAUSE,
        "gil_interval_s": workers.GIL_SHARE_INTERVAL, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "phases": results}, indent=2))
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
