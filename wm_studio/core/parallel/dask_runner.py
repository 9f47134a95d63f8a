"""The same contract on a Dask distributed cluster (the optional extra `cluster`): a running scheduler, or a
LocalCluster of spawned single-threaded workers (see the package's docstring)."""
from __future__ import annotations

import pickle
import queue
import threading
import time
import traceback
import uuid

from wm_studio.core.errors import ConfigError, MissingDependencyError, WmStudioError
from wm_studio.core.parallel.base import (LOAD_ALLOWANCE_S, POLL_S, Loss, Runner, TaskError, _StateCache,
                                          _task_failed, log)

CONNECT_TIMEOUT_S = 10.0
RESTART_TIMEOUT_S = 60.0
DASK_INSTALL_HINT = 'the dask backend needs the cluster extra: pip install -e ".[cluster]"'


_dask_caches = threading.local()   # one state cache per worker thread: a game is not shared between threads


def _run_in_dask_worker(function, task, context):
    """Worker side of a Dask task: the thread's cached state, the task, and where it ran."""
    from distributed import get_worker
    cache = getattr(_dask_caches, "cache", None)
    if cache is None:
        cache = _dask_caches.cache = _StateCache()
    return get_worker().address, function(cache.get(context), task)


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(f"{DASK_INSTALL_HINT} ({exc})") from None
    return distributed


class _Attempt:
    """One submission of a task to Dask: the task's index and its future."""

    def __init__(self, index: int, future):
        self.index = index
        self.future = future


class DaskRunner(Runner):
    def __init__(self, cluster: str | None, workers: int, task_timeout: float | None = None, retries: int = 2):
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, not {workers}")
        if task_timeout is not None and task_timeout <= 0:
            raise ConfigError(f"task_timeout must be positive, not {task_timeout}")
        distributed = _import_distributed()
        import dask
        self.task_timeout = task_timeout
        self.retries = int(retries)
        self.address = cluster
        self._cluster = None
        self._closed = False
        self.restarts = 0                # hung workers restarted over the runner's life
        self._warm: set[str] = set()     # workers that have finished one of our tasks (their state is loaded)
        self.losses: list[Loss] = []
        self._holding: dict[str, list[str]] = {}     # worker address -> our keys it held at the last look
        if cluster is None:
            import logging
            # The nannies live in this process and start (and restart) their workers from it, whatever thread
            # runs BLAS meanwhile: only spawn starts them without fork() (see base.spawn_context). Set for good, not
            # for the block, because a restart reads it later.
            dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})
            # The scheduler lives in this process: its allowed-failures is how often a task may kill a worker.
            with dask.config.set({"distributed.scheduler.allowed-failures": self.retries}):
                self._cluster = distributed.LocalCluster(
                    n_workers=int(workers), threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR,
                    # no dashboard; the scheduler's HTTP routes (health, metrics) on a free port rather than
                    # 8787, which a cluster of the user's own or one still closing may hold
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            self._client = distributed.Client(self._cluster, set_as_default=False)
            self.address = self._cluster.scheduler_address
        else:
            try:
                self._client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {cluster} ({exc}); start one with "
                                  f"`dask scheduler` and workers with `dask worker {cluster}`, or check the "
                                  f"address") from None
        self.workers = max(1, len(self._worker_addresses()))

    def _worker_addresses(self) -> list[str]:
        return list(self._client.scheduler_info().get("workers", {}))

    def run(self, function, tasks, context=None):
        if self._closed:
            raise RuntimeError("this runner is closed")
        tasks = list(tasks)
        batch = uuid.uuid4().hex[:12]
        failures = [0] * len(tasks)
        attempts: dict[str, _Attempt] = {}
        finished = queue.SimpleQueue()        # futures as they finish, put there by Dask's callbacks

        def key_of(index: int) -> str:
            return f"wm-studio-{batch}-{index}-{failures[index]}"

        def track(index: int, future) -> None:
            attempts[future.key] = _Attempt(index, future)
            future.add_done_callback(finished.put)

        def send(indices: list[int]) -> None:
            try:
                futures = self._client.map(_run_in_dask_worker, [function] * len(indices),
                                           [tasks[i] for i in indices], [context] * len(indices),
                                           key=[key_of(i) for i in indices], pure=False, retries=0)
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                raise TaskError(f"tasks can not be sent to a Dask worker ({exc}): the function must be defined "
                                f"at module level, the tasks and the context picklable") from None
            for index, future in zip(indices, futures):
                track(index, future)

        if tasks:
            send(list(range(len(tasks))))
        watch = _HangWatch(self.task_timeout)
        last_check = time.monotonic()
        try:
            while attempts:
                try:
                    future = finished.get(timeout=POLL_S)
                except queue.Empty:
                    future = None
                attempt = attempts.get(future.key) if future is not None else None
                if attempt is not None and attempt.future is future:
                    del attempts[future.key]
                    outcome = self._outcome(attempt)
                    if outcome is None:          # cancelled or lost with the scheduler's state: run it again
                        send([attempt.index])
                        continue
                    address, result = outcome
                    self._warm.add(address)
                    yield attempt.index, result
                if attempts and time.monotonic() - last_check >= POLL_S:
                    last_check = time.monotonic()
                    stuck = self._hung(watch, attempts)
                    hung = [attempts.pop(key) for key, _ in stuck]
                    for attempt, (_, address) in zip(hung, stuck):
                        attempt.future.cancel()
                        failures[attempt.index] += 1
                        if failures[attempt.index] > self.retries:
                            raise TaskError(f"task {attempt.index} ran longer than the {self.task_timeout:g} s "
                                            f"timeout {failures[attempt.index]} times; giving up")
                        self._lost(attempt.index, f"it ran longer than the {self.task_timeout:g} s timeout on "
                                                  f"Dask worker {address} (restarted)", failures[attempt.index])
                    if hung:
                        send([attempt.index for attempt in hung])
        finally:
            if attempts:
                self._client.cancel([a.future for a in attempts.values()])

    def _outcome(self, attempt: _Attempt):
        """(worker address, result) of a finished future; None when it must be submitted again; else raises."""
        future = attempt.future
        if future.status == "finished":
            return future.result()
        if future.status != "error":
            return None
        exc = future.exception()
        if isinstance(exc, WmStudioError):
            raise exc
        if type(exc).__name__ == "KilledWorker":
            raise TaskError(f"task {attempt.index} failed: its worker process died every time it ran it "
                            f"({exc}); giving up")
        remote = "".join(traceback.format_tb(future.traceback())) if future.traceback() else ""
        raise _task_failed(attempt.index, exc, remote)

    def _lost(self, index: int, reason: str, runs: int) -> None:
        loss = Loss(index, reason, runs, "another Dask worker")
        self.losses.append(loss)
        log.warning("task %d: %s; running it again on %s", index, reason, loss.rerun_on)

    def _hung(self, watch: "_HangWatch", attempts: dict[str, _Attempt]) -> list[tuple[str, str]]:
        """(key, worker address) of our tasks on workers that have made no progress for too long; restart those
        workers. Also tells of workers that vanished with our tasks (Dask runs those again by itself)."""
        processing = {address: [key for key in keys if key in attempts]
                      for address, keys in self._client.processing().items()}
        for address, keys in self._holding.items():
            if address not in processing:
                for key in keys:
                    if key in attempts:
                        index = attempts[key].index
                        self._lost(index, f"its Dask worker {address} was lost",
                                   1 + sum(loss.task == index for loss in self.losses))
        self._holding = processing
        if not processing and not self._worker_addresses():
            if watch.idle_for() > LOAD_ALLOWANCE_S:
                raise TaskError(f"the Dask cluster at {self.address} has had no workers for "
                                f"{LOAD_ALLOWANCE_S:g} s; start workers with `dask worker {self.address}`")
            return []
        watch.saw_workers()
        stuck = watch.stuck(processing, self._warm)
        keys = [(key, address) for address in stuck for key in processing[address]]
        if stuck:
            try:
                self._client.restart_workers(stuck, timeout=RESTART_TIMEOUT_S, raise_for_error=False)
                self.restarts += len(stuck)
            except Exception:  # noqa: BLE001 - a worker without a nanny can not be restarted; its tasks move on
                pass
        return keys

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


class _HangWatch:
    """Per worker: since when its set of our tasks has not changed. A worker that holds the same tasks for longer
    than the timeout (plus the start-up allowance before its first finished task) is stuck."""

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.since: dict[str, tuple[frozenset, float]] = {}
        self.last_workers = time.monotonic()

    def saw_workers(self) -> None:
        self.last_workers = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_workers

    def stuck(self, processing: dict[str, list[str]], warm: set[str]) -> list[str]:
        now = time.monotonic()
        stuck = []
        for address, keys in processing.items():
            held = frozenset(keys)
            previous = self.since.get(address)
            if previous is None or previous[0] != held:
                self.since[address] = (held, now)
                continue
            allowance = self.timeout + (0.0 if address in warm else LOAD_ALLOWANCE_S) if self.timeout else None
            if held and allowance is not None and now - previous[1] > allowance:
                stuck.append(address)
                del self.since[address]
        return stuck
