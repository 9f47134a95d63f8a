"""wm_studio's CMA-ES side by side with pycma (`cma`) and CyberAgent's `cmaes`, in one run, same seeds.

1. Evaluations to reach f <= 1e-8 on sphere, ellipsoid (condition 1e6) and Rosenbrock in 2, 5, 10, 20 dimensions
   (15 seeds, x0 ~ U[-4, 4]^n drawn from the seed, sigma0 = 2, default population): success rate and median
   evaluations of the successful runs.
2. Restarts (`--restarts`): Rastrigin and Griewank in 5, 10 and 20 dimensions, 60 seeds, same start (x0 ~ U[-4,
   4]^n, sigma0 2, default first population), each engine's IPOP (population doubled, at most 9 restarts) and
   BIPOP (Hansen 2009): ours (IPOPCMAES, BIPOPCMAES), pycma (`cma.fmin2(..., restarts=9, incpopsize=2,
   bipop=...)`) and cmaes (which has no restart strategy of its own: the loops below restart its `CMA` the same
   way). Solved runs and the mean evaluations of the solved runs with its standard error: restarts make the
   evaluations of one seed jump by a whole run, so medians over a few seeds swing by a factor of two between
   seed sets and only a mean over many seeds compares engines. Evaluations are counts, independent of the
   machine's load; every seed is stored as it finishes (benchmarks/results/cmaes_restarts.json), so an
   interrupted run resumes where it stopped, and `--only rastrigin:10` runs one row.
3. Seconds per generation (ask + tell, lambda = 64, sphere, x0 = 0, sigma0 = 0.1 as for the controller) of the
   full and the separable variants at n = 867, 1,088 and 10,000, and the peak memory (ru_maxrss of a fresh
   process per configuration, interpreter and imports included).

Ours and pycma are timed back to back several times (alternating which goes first); "ours / pycma" is the median
of the ratios of those pairs, the seconds per generation the median of each engine's runs. Timing is amortised
over the eigendecomposition gap: the first generation is a warm-up and is not timed; of the
timed generations, "regular" is their median and everything above G x regular (eigendecompositions and whatever
each engine rebuilds after one) is spread over the generations of the cycles the window holds:
    s/gen = regular + (total - G x regular) / (gap x decompositions in the window).
Over whole cycles this equals total / G. At n = 10,000 one `eigh` takes minutes, so each engine runs just past its
first eigendecomposition (G = 32 covers our gap of 29 generations and pycma's 30) and that one is amortised over
its own gap. `cmaes` decomposes C every generation and builds B diag(D) once per sample (n^3 each): it is timed
with 3 generations at n = 867 and 1,088 and left out at n = 10,000 (about 64 n^3 = 1.3e14 flops per generation).

Usage: python benchmarks/bench_cmaes.py [--quick] [--json PATH] [--markdown PATH]
       python benchmarks/bench_cmaes.py --restarts [--only FUNCTION:N[,...]] [--seeds 60] [--quick]
The full run writes benchmarks/results/cmaes.json and cmaes.md (--restarts: cmaes_restarts.json and .md);
--quick (a smoke run) writes only where told.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wm_studio.core.es import BIPOPCMAES, CMAES, IPOPCMAES, SepCMAES, Termination, get_problem  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET = 1e-8
SIGMA0 = 2.0
MAX_RESTARTS = 9
ENGINES = ("ours", "pycma", "cmaes")


def import_peers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma warns that matplotlib is missing
        import cma
        import cmaes
    return cma, cmaes


class Counted:
    """A vectorised objective that counts its evaluations and remembers the best value."""

    def __init__(self, problem):
        self.problem, self.evaluations, self.best = problem, 0, math.inf

    def __call__(self, X) -> np.ndarray:
        values = self.problem.evaluate(np.asarray(X, dtype=np.float64))
        self.evaluations += len(values)
        self.best = min(self.best, float(values.min()))
        return values


# --- 1. evaluations to the target ------------------------------------------------------------------------------
def start_point(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-4, 4, n)


def run_ours(f: Counted, x0, seed, budget):
    es = CMAES(x0, SIGMA0, seed=seed + 1, termination=Termination(target=TARGET, max_evaluations=budget))
    while not es.stop():
        X = es.ask()
        es.tell(X, f(X))


def run_pycma(f: Counted, x0, seed, budget):
    cma, _ = import_peers()
    es = cma.CMAEvolutionStrategy(x0, SIGMA0, {"seed": seed + 1, "ftarget": TARGET, "maxfevals": budget,
                                               "verbose": -9})
    while not es.stop():
        X = es.ask()
        es.tell(X, list(f(X)))


def cmaes_run(f: Counted, x0, sigma0, seed, popsize, budget, cap=None) -> int:
    """One run of cmaes's CMA until the target, the budget, `cap` evaluations of its own or should_stop();
    returns the evaluations it spent."""
    _, cmaes = import_peers()
    es = cmaes.CMA(mean=np.array(x0, dtype=float), sigma=sigma0, seed=seed, population_size=popsize)
    started = f.evaluations
    while f.best > TARGET and f.evaluations < budget and not es.should_stop() \
            and (cap is None or f.evaluations - started < cap):
        X = np.array([es.ask() for _ in range(es.population_size)])
        es.tell(list(zip(X, f(X))))
    return f.evaluations - started


def run_cmaes(f: Counted, x0, seed, budget):
    cmaes_run(f, x0, SIGMA0, seed + 1, None, budget)


RUNNERS = {"ours": run_ours, "pycma": run_pycma, "cmaes": run_cmaes}


def convergence(name: str, n: int, seeds: int) -> dict:
    budget = 20_000 * max(1, n // 5)
    row = {"function": name, "n": n, "seeds": seeds, "budget": budget}
    for engine in ENGINES:
        evaluations, started = [], time.perf_counter()
        for seed in range(seeds):
            f = Counted(get_problem(name, n))
            RUNNERS[engine](f, start_point(seed, n), seed, budget)
            if f.best <= TARGET:
                evaluations.append(f.evaluations)
        row[engine] = {"successes": len(evaluations),
                       "median_evaluations": statistics.median(evaluations) if evaluations else None,
                       "seconds": round(time.perf_counter() - started, 2)}
    peers = [row[e]["median_evaluations"] for e in ("pycma", "cmaes") if row[e]["median_evaluations"]]
    ours = row["ours"]["median_evaluations"]
    row["ratio_to_peer_mean"] = ours / statistics.mean(peers) if ours and peers else None
    return row


# --- 2. restarts: IPOP and BIPOP over many seeds -------------------------------------------------------------
RESTART_ENGINES = ("ours IPOP", "ours BIPOP", "pycma IPOP", "pycma BIPOP", "cmaes IPOP", "cmaes BIPOP")
RESTART_FUNCTIONS = ("rastrigin", "griewank")
RESTART_DIMENSIONS = (5, 10, 20)
RESTART_SEEDS = 60


def restart_budget(n: int) -> int:
    """Evaluations over all runs: 2e5 at 10-D (issue 14's setting), 8e5 at 20-D (IPOP's runs that solve
    Rastrigin 20-D take up to about 5e5), at least 1e5."""
    return max(100_000, 2_000 * n * n)


def restart_ours(f: Counted, x0, seed, budget, bipop):
    termination = Termination(target=TARGET, max_evaluations=budget)
    es = (BIPOPCMAES if bipop else IPOPCMAES)(x0, SIGMA0, seed=seed + 1, termination=termination,
                                              max_restarts=MAX_RESTARTS)
    while not es.stop():
        X = es.ask()
        es.tell(X, f(X))


def restart_pycma(f: Counted, x0, seed, budget, bipop):
    cma, _ = import_peers()
    options = {"seed": seed + 1, "ftarget": TARGET, "maxfevals": budget, "verbose": -9}
    cma.fmin2(None, x0, SIGMA0, options, restarts=MAX_RESTARTS, incpopsize=2, bipop=bipop,
              parallel_objective=lambda X: list(f(X)))


def restart_cmaes(f: Counted, x0, seed, budget, bipop):
    """IPOP: each restart doubles the population. BIPOP as Hansen (2009) and pycma: the first run counts as
    small; then whichever regime has spent fewer evaluations runs next, the large one doubling its population,
    the small one drawing lambda_def * (lambda_large / lambda_def)^(U^2) and sigma0 * 10^(-2 U') with at most
    half the large regime's evaluations."""
    rng = np.random.default_rng(seed + 1)
    default = 4 + int(3 * math.log(len(x0)))
    spent = {"small": 0, "large": 0}
    run, large_runs = 0, 0
    while f.best > TARGET and f.evaluations < budget:
        if run == 0:
            regime, popsize, sigma0, cap = "small" if bipop else "large", default, SIGMA0, None
        elif bipop and spent["small"] < spent["large"]:
            u1, u2 = rng.uniform(size=2)
            regime, sigma0 = "small", SIGMA0 * 10 ** (-2 * u2)
            popsize = int(default * (2 ** large_runs) ** (u1 ** 2))
            cap = max(popsize, spent["large"] // 2)
        elif large_runs == MAX_RESTARTS:
            return
        else:
            large_runs += 1
            regime, popsize, sigma0, cap = "large", default * 2 ** large_runs, SIGMA0, None
        spent[regime] += cmaes_run(f, x0, sigma0, seed + 1 + run, popsize, budget, cap)
        run += 1


RESTART_RUNNERS = {"ours": restart_ours, "pycma": restart_pycma, "cmaes": restart_cmaes}


def restart_seed(function: str, n: int, engine: str, seed: int) -> list:
    """[evaluations, solved] of one seed."""
    f = Counted(get_problem(function, n))
    library, strategy = engine.split()
    RESTART_RUNNERS[library](f, start_point(seed, n), seed, restart_budget(n), strategy == "BIPOP")
    return [f.evaluations, f.best <= TARGET]


def load_cache(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text()).get("cells", {})


def save_cache(path: Path | None, cells: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"target": TARGET, "sigma0": SIGMA0, "max_restarts": MAX_RESTARTS,
                                     "cells": cells}, indent=1) + "\n")
    temporary.replace(path)


def restart_rows(plan, seeds: int, cache: Path | None) -> list[dict]:
    """Run every (function, n) of plan for every engine and seed not in the cache yet, saving after each seed."""
    cells = load_cache(cache)
    for function, n in plan:
        for engine in RESTART_ENGINES:
            key = f"{function}:{n}:{engine}"
            results = cells.setdefault(key, {})
            started = time.perf_counter()
            for seed in range(seeds):
                if str(seed) not in results:
                    results[str(seed)] = restart_seed(function, n, engine, seed)
                    save_cache(cache, cells)
            print(f"  {function} {n}-D {engine}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for function, n in plan:
        row = {"function": function, "n": n, "seeds": seeds, "budget": restart_budget(n)}
        for engine in RESTART_ENGINES:
            results = [cells[f"{function}:{n}:{engine}"][str(seed)] for seed in range(seeds)]
            solved = [evaluations for evaluations, ok in results if ok]
            row[engine] = {"solved": len(solved),
                           "mean": statistics.mean(solved) if solved else None,
                           "stderr": statistics.stdev(solved) / math.sqrt(len(solved)) if len(solved) > 1 else None}
        rows.append(row)
    return rows


def restart_table(rows) -> str:
    lines = ["| function | n | budget | " + " | ".join(RESTART_ENGINES) + " | ours / pycma IPOP, BIPOP |",
             "|---|---|---|" + "---|" * len(RESTART_ENGINES) + "---|"]

    def cell(result, seeds):
        if not result["mean"]:
            return f"{result['solved']}/{seeds}"
        error = f" ± {result['stderr']:,.0f}" if result["stderr"] is not None else ""
        return f"{result['solved']}/{seeds}, {result['mean']:,.0f}{error}"

    def ratio(row, strategy):
        ours, pycma = row[f"ours {strategy}"]["mean"], row[f"pycma {strategy}"]["mean"]
        return f"{ours / pycma:.2f}" if ours and pycma else "-"

    for row in rows:
        lines.append(f"| {row['function']} | {row['n']} | {row['budget']:,} | "
                     + " | ".join(cell(row[e], row["seeds"]) for e in RESTART_ENGINES)
                     + f" | {ratio(row, 'IPOP')}, {ratio(row, 'BIPOP')} |")
    return "\n".join(lines)


def restarts_main(args) -> int:
    if args.only:
        plan = []
        for item in args.only.split(","):
            function, _, n = item.partition(":")
            plan.append((function, int(n)))
    else:
        plan = [(function, n) for function in RESTART_FUNCTIONS for n in RESTART_DIMENSIONS]
    if args.quick:
        plan, seeds, cache = [("rastrigin", 2), ("griewank", 2)], args.seeds or 3, None
    else:
        seeds, cache = args.seeds or RESTART_SEEDS, RESULTS / "cmaes_restarts.json"
    rows = restart_rows(plan, seeds, cache)
    text = (f"Restarts: solved runs (f <= 1e-8 within the budget) of {seeds} seeds, mean evaluations of the solved "
            f"runs ± standard error (x0 ~ U[-4,4]^n, sigma0 2, at most {MAX_RESTARTS} restarts)\n\n"
            + restart_table(rows) + "\n")
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"restarts": rows, "quick": args.quick}, indent=2) + "\n")
    if args.markdown or not args.quick:
        cma, cmaes = import_peers()
        path = args.markdown or RESULTS / "cmaes_restarts.md"
        path.write_text(f"CMA-ES restarts (pycma {cma.__version__}, cmaes {cmaes.__version__}; "
                        f"`python benchmarks/bench_cmaes.py --restarts`)\n\n" + text)
    return 0


# --- 3. seconds per generation (each configuration in a fresh process) -----------------------------------------
def build(engine: str, variant: str, n: int, seed: int):
    x0, sigma0, popsize = np.zeros(n), 0.1, 64
    if engine == "ours":
        es = (CMAES if variant == "full" else SepCMAES)(x0, sigma0, popsize=popsize, seed=seed)
        gap = es.eigen_gap if variant == "full" else None
        decompositions = (lambda: es.eigen_generation) if variant == "full" else (lambda: 0)
        return es.ask, es.tell, decompositions, gap
    cma, cmaes = import_peers()
    if engine == "pycma":
        es = cma.CMAEvolutionStrategy(x0, sigma0, {"popsize": popsize, "seed": seed, "verbose": -9,
                                                   "CMA_diagonal": variant == "separable"})
        gap = getattr(es.sm, "lazy_update_gap", None)
        return (es.ask, lambda X, v: es.tell(X, list(v)), lambda: getattr(es.sm, "count_eigen", 0),
                math.ceil(gap) if gap else None)
    es = (cmaes.CMA if variant == "full" else cmaes.SepCMA)(mean=x0, sigma=sigma0, population_size=popsize,
                                                          seed=seed)
    return (lambda: np.array([es.ask() for _ in range(popsize)]), lambda X, v: es.tell(list(zip(X, v))),
            lambda: es.generation if variant == "full" else 0, 1 if variant == "full" else None)


def time_configuration(engine: str, variant: str, n: int, generations: int, seed: int = 1) -> dict:
    """Runs in a worker process: warm-up generation, then `generations` timed ones."""
    ask, tell, decomposition_marker, gap = build(engine, variant, n, seed)
    sphere = get_problem("sphere", n).evaluate
    times, decomposed = [], 0
    for generation in range(generations + 1):
        marker = decomposition_marker()
        started = time.perf_counter()
        X = ask()
        asked = time.perf_counter()
        values = sphere(np.asarray(X))
        resumed = time.perf_counter()
        tell(X, values)
        if generation:  # the first generation is a warm-up
            times.append(asked - started + time.perf_counter() - resumed)
            decomposed += decomposition_marker() != marker
    regular, total = statistics.median(times), sum(times)
    cycles = decomposed if gap and gap > 1 and decomposed else 0
    per_generation = regular + (total - len(times) * regular) / (gap * cycles) if cycles else total / len(times)
    return {"engine": engine, "variant": variant, "n": n, "generations": len(times), "decompositions": decomposed,
            "gap": gap, "regular_s": regular, "total_s": total, "s_per_generation": per_generation,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def time_in_fresh_process(engine, variant, n, generations) -> dict:
    spec = json.dumps({"engine": engine, "variant": variant, "n": n, "generations": generations})
    done = subprocess.run([sys.executable, __file__, "--worker", spec], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"timing worker {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timing(variant: str, n: int, plan: dict, repeats: int) -> dict:
    """Ours and pycma run back to back, in alternating order, `repeats` times: other users' load drifts slowly,
    so the ratio of each back-to-back pair is fair; the table gives the median of those ratios and the median
    seconds per generation of each engine. cmaes (seconds per generation) runs once."""
    runs = {engine: [] for engine in plan}
    for repeat in range(repeats):
        pair = ("ours", "pycma") if repeat % 2 == 0 else ("pycma", "ours")
        for engine in pair + (("cmaes",) if repeat == 0 else ()):
            if plan.get(engine):
                runs[engine].append(time_in_fresh_process(engine, variant, n, plan[engine]))
    row = {"variant": variant, "n": n, "repeats": repeats}
    for engine, results in runs.items():
        median = statistics.median(r["s_per_generation"] for r in results) if results else None
        row[engine] = min(results, key=lambda r: abs(r["s_per_generation"] - median)) if results else None
        row[engine + "_runs"] = [r["s_per_generation"] for r in results]
    row["ratio_to_pycma"] = statistics.median(o / p for o, p in zip(row["ours_runs"], row["pycma_runs"]))
    return row


# --- tables ----------------------------------------------------------------------------------------------------
def convergence_table(rows) -> str:
    lines = ["| function | n | ours: solved, median evals | pycma | cmaes | ours / peers' mean |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[e]['successes']}/{row['seeds']}, "
                 + (f"{row[e]['median_evaluations']:,.0f}" if row[e]["median_evaluations"] else "-")
                 for e in ENGINES]
        ratio = f"{row['ratio_to_peer_mean']:.2f}" if row["ratio_to_peer_mean"] else "-"
        lines.append(f"| {row['function']} | {row['n']} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def timing_table(rows) -> str:
    lines = ["| variant | n | ours s/gen (eigh, gap) | pycma | cmaes | ours / pycma (pairs) | peak RSS MiB ours / pycma / cmaes |",
             "|---|---|---|---|---|---|---|"]

    def cell(result):
        if result is None:
            return "skipped"
        extra = f" ({result['decompositions']}, {result['gap']})" if result["gap"] else ""
        return f"{result['s_per_generation']:.4g}{extra}"

    for row in rows:
        memory = " / ".join(f"{row[e]['peak_rss_mib']:,.0f}" if row[e] else "-" for e in ENGINES)
        lines.append(f"| {row['variant']} | {row['n']:,} | " + " | ".join(cell(row[e]) for e in ENGINES)
                     + f" | {row['ratio_to_pycma']:.2f} ({row['repeats']}) | {memory} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small sizes, few seeds)")
    parser.add_argument("--json", type=Path, help="where to save the results (full run: benchmarks/results)")
    parser.add_argument("--markdown", type=Path, help="where to save the tables as markdown")
    parser.add_argument("--restarts", action="store_true", help="only the restart table (IPOP and BIPOP)")
    parser.add_argument("--only", help="with --restarts: rows to run, e.g. rastrigin:10,griewank:20")
    parser.add_argument("--seeds", type=int, help=f"with --restarts: seeds per row (default {RESTART_SEEDS})")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(time_configuration(**json.loads(args.worker))))
        return 0
    if args.restarts:
        return restarts_main(args)
    if not args.quick:
        args.json = args.json or RESULTS / "cmaes.json"
        args.markdown = args.markdown or RESULTS / "cmaes.md"

    seeds, dims = (3, (2, 5)) if args.quick else (15, (2, 5, 10, 20))
    started = time.perf_counter()
    rows = []
    for name in ("sphere", "ellipsoid", "rosenbrock"):
        for n in dims:
            rows.append(convergence(name, n, seeds))
            print(f"  {name} {n}-D done", file=sys.stderr, flush=True)

    if args.quick:
        sizes = {(variant, 100): ({"ours": 6, "pycma": 6, "cmaes": 2}, 2) for variant in ("full", "separable")}
    else:
        sizes = {}
        for n in (867, 1088):
            sizes[("full", n)] = ({"ours": 60, "pycma": 60, "cmaes": 3}, 6)
            sizes[("separable", n)] = ({"ours": 300, "pycma": 300, "cmaes": 20}, 4)
        sizes[("full", 10_000)] = ({"ours": 32, "pycma": 32, "cmaes": 0}, 1)
        sizes[("separable", 10_000)] = ({"ours": 100, "pycma": 100, "cmaes": 10}, 4)
    timings = []
    for (variant, n), (plan, repeats) in sizes.items():
        timings.append(timing(variant, n, plan, repeats))
        print(f"  timing {variant} n={n} done", file=sys.stderr, flush=True)

    text = ("Evaluations to f <= 1e-8 (x0 ~ U[-4,4]^n, sigma0 2, default population; median over solved runs)\n\n"
            + convergence_table(rows)
            + "\n\nSeconds per generation (ask + tell, lambda 64; eigh = eigendecompositions in the timed window, "
              "gap = generations between them; peak RSS of a fresh process)\n\n" + timing_table(timings) + "\n")
    print(text)
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    machine = {"cpus": len(__import__("os").sched_getaffinity(0)), "numpy": np.__version__,
               "pycma": import_peers()[0].__version__, "cmaes": import_peers()[1].__version__}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "convergence": rows, "timing": timings,
                                         "quick": args.quick}, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"CMA-ES benchmark ({machine['cpus']} CPUs, numpy {machine['numpy']}, "
                                 f"pycma {machine['pycma']}, cmaes {machine['cmaes']}; "
                                 f"`python benchmarks/bench_cmaes.py`)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
