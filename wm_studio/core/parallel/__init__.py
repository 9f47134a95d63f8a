"""Run many independent tasks (rollouts, evaluations) in this process or in worker processes, one interface.

    with make_runner("processes", workers=4, task_timeout=600) as runner:
        for index, result in runner.run(evaluate, tasks, context=spec):   # in completion order
            ...

- `function(state, task)` must be a module-level function (it travels to the workers by name).
- `context` is a small picklable spec with `load() -> state` (a game, model weights read from a path...). It
  travels with every task, so keep it small (paths and sizes, not arrays). Each worker loads it once and keeps
  the state until a run brings a different spec (compared by value: use a frozen dataclass), so the heavy state
  is built once per worker, not once per task. With no context, `state` is None.

The "processes" runner runs its own worker processes (spawn start method; a pipe per worker, one task in flight
per worker) instead of multiprocessing.Pool, whose map hangs for ever when a worker dies, or
ProcessPoolExecutor, which breaks for good (BrokenProcessPool) and loses track of which task died. Because the
driver knows which task each worker holds:
- a worker that dies (crash, out of memory, os.kill) is replaced and its task run again;
- a task that runs past `task_timeout` seconds has its worker killed and replaced, and is run again;
- after `retries` such re-runs of one task, a TaskError says which task and why.
Every lost worker is logged (WARNING, logger wm_studio.core.parallel: which task, why, and the worker process
that runs it again) and kept in `runner.losses`, which the stages count into their metrics ("lost_workers").
An exception raised by a task is not retried: it ends the run at once as a TaskError carrying the worker's
traceback text (a WmStudioError raised in a worker comes back as itself, message intact).

Workers start with BLAS pinned to one thread (OMP/OpenBLAS/MKL variables set in the environment they inherit,
so they hold before numpy loads there), ignore Ctrl-C (the driver decides), leave when the driver's end of the
pipe closes, and live for the runner's lifetime: one runner serves a whole training stage. Leaving a run early
(closing its generator, an error) kills only the workers still busy with it.

The "dask" runner (the optional extra `cluster`: pip install -e ".[cluster]") runs the same contract on a Dask
distributed cluster: `make_runner("dask", cluster="tcp://host:8786")` connects to a running scheduler,
`cluster=None` starts a LocalCluster of `workers` processes with one thread each. Each worker thread keeps its own
state cache (the context is loaded once per worker, as above). Dask itself re-runs the tasks of a worker that dies
(its nanny starts a new worker; without a nanny the others take over); after `retries` deaths of one task the run
ends as TaskError (LocalCluster: we set the scheduler's allowed-failures; an external scheduler uses its own
setting, 3 by default). A worker whose task runs past `task_timeout` is treated as hung: its tasks are submitted
again (they run elsewhere) and the worker is restarted through its nanny. Nanny-started workers pin BLAS to one
thread (Dask's pre-spawn environment); start `dask worker` without --no-nanny, or with OMP_NUM_THREADS=1.
"""
from __future__ import annotations

import os

from wm_studio.core.errors import ConfigError
from wm_studio.core.parallel.base import (SINGLE_THREAD_ENV, Loss, Runner, TaskError, spawn_context,
                                          start_single_threaded)
from wm_studio.core.parallel.dask_runner import DASK_INSTALL_HINT, DaskRunner
from wm_studio.core.parallel.processes import ProcessRunner
from wm_studio.core.parallel.serial import SerialRunner

RUNNERS = ("serial", "processes", "dask")
__all__ = ["DASK_INSTALL_HINT", "RUNNERS", "SINGLE_THREAD_ENV", "DaskRunner", "Loss", "ProcessRunner", "Runner",
           "SerialRunner", "TaskError", "make_runner", "spawn_context", "start_single_threaded"]


def make_runner(kind: str = "processes", workers: int | None = None, task_timeout: float | None = None,
                retries: int = 2, cluster: str | None = None) -> "Runner":
    """A runner of `kind` (serial, processes or dask: the CLI's --backend); workers defaults to the number of CPU
    cores; task_timeout (seconds) applies to processes and dask; cluster (dask only) is a scheduler address such
    as tcp://host:8786, None for a local cluster."""
    if cluster is not None and kind != "dask":
        raise ConfigError(f"a cluster address goes with the dask backend, not {kind!r}")
    if kind == "serial":
        return SerialRunner()
    if kind == "processes":
        return ProcessRunner(os.cpu_count() or 1 if workers is None else workers, task_timeout, retries)
    if kind == "dask":
        return DaskRunner(cluster, os.cpu_count() or 1 if workers is None else workers, task_timeout, retries)
    raise ConfigError(f"unknown backend {kind!r}: choose one of {', '.join(RUNNERS)}")
