"""Replay in the Evolution pane: the time to draw any generation of a 300-generation run of lambda 64 while scrubbing,
and the memory the replay keeps.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_studio_replay.py [--generations 300]

The runs are made first (their frames handed to the pane as its worker would), then the pane replays them the way
the slider and the arrow keys do: every generation forward, then every one backward. Each replay is timed from the
request to the figure painted (the pane's draw() on its timer, then a synchronous repaint of the figure, offscreen),
three times: the first draw is what the user waits for, the best of the three is the draw with as little of the
machine's other load in it as this run can get. Side by side in the same run, the alternative the replay store
saves: recomputing CMA-ES from the start up to the generation asked for. Configurations: Rosenbrock 20-D (the slice
of f through m is computed again for every generation: the costly case) and Rastrigin 2-D with two runs compared
(full CMA-ES against IPOP). Memory: bytes a frame takes in the ReplayStore (tracemalloc, arrays and objects) and the
store's bound.

Times are wall-clock on whatever else the machine does: read them against the frame budget (16.7 ms at 60 Hz, 33 ms
between two ticks of the pane's timer), not to the microsecond. A table on stdout and
benchmarks/results/studio_replay.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from itertools import islice
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wm_studio.core.es.demo import EsHistory, EsSettings, ReplayStore, run_frames  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "studio_replay.json"
REPEATS = 3   # draws of each generation: the first is what a user waits for, the best filters out the load
CONFIGURATIONS = {
    "Rosenbrock 20-D, λ 64": (EsSettings(function="rosenbrock", dimension=20, popsize=64, mu=None, sigma0=0.5,
                                         x0=(0.0,)), None),
    "Rastrigin 2-D, λ 64, A/B (full / IPOP)": (
        EsSettings(function="rastrigin", dimension=2, popsize=64, mu=None, sigma0=1.0, x0=(3.3,)),
        EsSettings(function="rastrigin", dimension=2, popsize=64, mu=None, sigma0=1.0, x0=(3.3,), strategy="ipop")),
}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def make_frames(settings, other, generations):
    """The frames of `generations` generations; runs that stop early are restarted from the next seed and
    appended, so that there is a frame for every generation (as a long IPOP run would have)."""
    frames, seed = [], settings.seed
    while len(frames) < generations + 1:
        a = replace(settings, seed=seed)
        b = None if other is None else replace(other, seed=seed + 1000)
        for frame in run_frames(a, b):
            frames.append(replace(frame, index=len(frames)))
            if len(frames) > generations:
                break
        seed += 1
    return frames


def frame_bytes(settings, other, generations) -> float:
    """Bytes a frame takes: the frames are made again under tracemalloc (arrays, snapshot objects, the store's
    lists) and what they keep is divided by their count."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = ReplayStore()
        for frame in make_frames(settings, other, generations):
            store.add(frame)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / len(store)


def measure(name, settings, other, generations, app):
    from wm_studio.gui.panes.evolution import EvolutionPane
    frames = make_frames(settings, other, generations)
    pane = EvolutionPane()
    pane.resize(1400, 860)
    pane.show()
    app.processEvents()
    try:
        pane.worker.stop()                      # the pane's own run is not needed: it replays these frames
        app.processEvents()
        pane.store, pane.history, pane.other_history = ReplayStore(), EsHistory(), EsHistory()
        pane._problem = settings.problem()
        pane._x0 = settings.start()
        pane.on_frames(frames)
        order = list(range(generations + 1)) + list(range(generations, -1, -1))
        times, best = [], []
        for generation in order:
            pane.show_generation(generation)
            tries = []
            for _ in range(REPEATS):
                pane._drawn_key = None               # draw it all again; for n > 2 the slice of f through m too,
                if settings.dimension > 2:           # which another generation always needs (2-D: f is drawn once)
                    pane.figure._background_key = None
                started = time.perf_counter()
                pane.draw()
                pane.figure.repaint()
                tries.append(time.perf_counter() - started)
                app.processEvents()
            times.append(tries[0])
            best.append(min(tries))
        assert pane.drawn_frame.index == 0
    finally:
        pane.shutdown()
        pane.close()
        pane.deleteLater()
        app.processEvents()
    # the peer: recompute CMA-ES from the start to the generation asked for (or to the end of its run)
    recompute = []
    for generation in (0, generations // 4, generations // 2, 3 * generations // 4, generations):
        started = time.perf_counter()
        for _ in islice(run_frames(settings, other), generation + 1):
            pass
        recompute.append(time.perf_counter() - started)
    per_frame = frame_bytes(settings, other, generations)
    store = ReplayStore()
    return {"configuration": name, "generations": generations, "popsize": settings.popsize,
            "replays": len(times), "draw_ms": {"p50": 1e3 * statistics.median(times),
                                              "p95": 1e3 * percentile(times, 95), "max": 1e3 * max(times)},
            "best_of_3_ms": {"p50": 1e3 * statistics.median(best), "p95": 1e3 * percentile(best, 95),
                             "max": 1e3 * max(best)},
            "recompute_ms_mean": 1e3 * statistics.mean(recompute), "recompute_ms_max": 1e3 * max(recompute),
            "frame_kib": per_frame / 1024, "store_capacity": store.capacity, "store_recent": store.recent,
            "store_bound_mib": per_frame * store.capacity / 2 ** 20}


def table(rows) -> str:
    lines = ["| configuration | replays | draw + paint ms p50 / p95 / max | best of 3 draws, ms p50 / p95 / max "
             "| recompute to the generation (peer), ms mean / max | KiB a frame | store bound (frames, MiB) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        draw, best = row["draw_ms"], row["best_of_3_ms"]
        lines.append(f"| {row['configuration']} ({row['generations']} generations) | {row['replays']} | "
                     f"{draw['p50']:.1f} / {draw['p95']:.1f} / {draw['max']:.1f} | "
                     f"{best['p50']:.1f} / {best['p95']:.1f} / {best['max']:.1f} | "
                     f"{row['recompute_ms_mean']:.0f} / {row['recompute_ms_max']:.0f} | {row['frame_kib']:.1f} | "
                     f"{row['store_capacity']}, {row['store_bound_mib']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from wm_studio.gui.render import ensure_application
    app = ensure_application()
    rows = [measure(name, settings, other, args.generations, app)
            for name, (settings, other) in CONFIGURATIONS.items()]
    text = table(rows)
    print(text)
    load = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": {"cpus": len(os.sched_getaffinity(0)), "load_average": load,
                                                 "python": platform.python_version()},
                                     "rows": rows}, indent=2) + "\n")
    print(f"(load average while measured: {load[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
