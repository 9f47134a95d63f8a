"""Run many independent tasks (rollouts, evaluations) in this process or in worker processes, one interface.

    with make_runner("processes", workers=4, task_timeout=600) as runner:
        for index, result in runner.run(evaluate, tasks, context=spec):   # in completion order
            ...

- `function(state, task)` must be a module-level function (it travels to the workers by name).
- `context` is a small picklable spec with `load() -> state` (a game, model weights read from a path...). It
  travels with every task, so keep it small (paths and sizes, not arrays). Each worker loads it once and keeps
  the state until a run brings a different spec (compared by value: use a frozen dataclass), so the heavy state
  is built once per worker, not once per task. With no context, `state` is None.

The "processes" backend runs its own worker processes (spawn start method; a pipe per worker, one task in flight
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

The "dask" backend (the optional extra `cluster`: pip install -e ".[cluster]") runs the same contract on a Dask
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

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from wm_studio.core.errors import ConfigError, MissingDependencyError, WmStudioError

BACKENDS = ("serial", "processes", "dask")
SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
LOAD_ALLOWANCE_S = 120.0  # a fresh worker's start-up and context load are not counted against task_timeout
POLL_S = 0.5
CONNECT_TIMEOUT_S = 10.0
RESTART_TIMEOUT_S = 60.0
DASK_INSTALL_HINT = 'the dask backend needs the cluster extra: pip install -e ".[cluster]"'
_environ_lock = threading.Lock()
log = logging.getLogger(__name__)


@dataclass
class Loss:
    """A worker lost with a task in hand: the task (index in its run), why, and where the task ran again."""
    task: int
    reason: str                     # "its worker process 123 died (exit code -9)", "... ran past the timeout"
    attempt: int                    # the task's runs so far, this lost one included
    rerun_on: str | None = None     # "worker process 456", "another Dask worker"; None: not run again


def spawn_context():
    """The multiprocessing context for every child of the studio and the CLI: spawn, never fork.

    A fork() (the "fork" or "forkserver" start methods, or subprocess with a preexec_fn) runs OpenBLAS's fork
    handler, which waits for good when another thread of this process is inside a matrix product (V training on
    the studio's thread). Spawn starts the child through _posixsubprocess with vfork(), which runs no fork
    handlers; ffmpeg is started the same way (wm_studio.core.export._start_ffmpeg).
    """
    return multiprocessing.get_context("spawn")


def start_single_threaded(process) -> None:
    """Start a child process with its BLAS pinned to one thread (it copies os.environ when it starts)."""
    with _environ_lock:
        saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
        os.environ.update(SINGLE_THREAD_ENV)
        try:
            process.start()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class TaskError(WmStudioError):
    """A task raised an exception, or kept killing or hanging its worker."""

    def __init__(self, message: str, remote_traceback: str = ""):
        super().__init__(message)
        self.remote_traceback = remote_traceback


def make_runner(backend: str = "processes", workers: int | None = None, task_timeout: float | None = None,
                retries: int = 2, cluster: str | None = None) -> "Runner":
    """A runner; workers defaults to the number of CPU cores; task_timeout (seconds) applies to processes and
    dask; cluster (dask only) is a scheduler address such as tcp://host:8786, None for a local cluster."""
    if cluster is not None and backend != "dask":
        raise ConfigError(f"a cluster address goes with the dask backend, not {backend!r}")
    if backend == "serial":
        return SerialRunner()
    if backend == "processes":
        return ProcessRunner(os.cpu_count() or 1 if workers is None else workers, task_timeout, retries)
    if backend == "dask":
        return DaskRunner(cluster, os.cpu_count() or 1 if workers is None else workers, task_timeout, retries)
    raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")


class Runner:
    workers = 1
    losses: "list[Loss] | tuple" = ()   # workers lost with a task in hand, over the runner's life

    def run(self, function: Callable[[Any, Any], Any], tasks: Iterable[Any],
            context: Any = None) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers; the runner can not run afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _StateCache:
    """The state loaded from the latest context, rebuilt only when a run brings a different context."""

    def __init__(self):
        self.context = None
        self.state = None

    def get(self, context):
        if context is None:
            return None
        if self.state is None or not _same(self.context, context):
            self.release()
            self.state = context.load()
            self.context = context
        return self.state

    def release(self) -> None:
        closing = getattr(self.state, "close", None)
        self.state = self.context = None
        if callable(closing):
            closing()


def _same(a, b) -> bool:
    """Value equality, also for specs whose fields are numpy arrays (their == is elementwise)."""
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return pickle.dumps(a) == pickle.dumps(b)


def _task_failed(index: int, exc: BaseException, remote_traceback: str = "") -> WmStudioError:
    if isinstance(exc, WmStudioError):
        return exc
    return TaskError(f"task {index} failed: {type(exc).__name__}: {exc}", remote_traceback)


class SerialRunner(Runner):
    """Tasks one after another in this process (no timeout: nothing could interrupt a hung task)."""

    def __init__(self):
        self._cache = _StateCache()

    def run(self, function, tasks, context=None):
        state = self._cache.get(context)
        for index, task in enumerate(tasks):
            try:
                result = function(state, task)
            except WmStudioError:
                raise
            except Exception as exc:
                raise _task_failed(index, exc, traceback.format_exc()) from exc
            yield index, result

    def close(self) -> None:
        self._cache.release()


# ---- worker process -------------------------------------------------------------------------------------------

def _worker_main(connection) -> None:
    """Loop: receive (index, function, task, context), send ("started", index) then ("done"|"error", index, ...)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cache = _StateCache()
    try:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the driver is gone
                return
            if message is None:
                return
            index, function, task, context = message
            try:
                state = cache.get(context)
                connection.send(("started", index))
                connection.send(("done", index, function(state, task)))
            except BaseException as exc:  # noqa: BLE001 - every failure (an unpicklable result too) goes back
                connection.send(("error", index, _portable(exc), traceback.format_exc()))
    finally:
        cache.release()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling (WmStudioError and most built-ins), else a stand-in."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _Worker:
    def __init__(self, mp_context):
        self.connection, child_end = mp_context.Pipe(duplex=True)
        self.process = mp_context.Process(target=_worker_main, args=(child_end,), daemon=True,
                                          name="wm-studio-worker")
        start_single_threaded(self.process)
        child_end.close()
        self.task: int | None = None
        self.deadline = float("inf")

    def give(self, index: int, message, timeout: float | None) -> None:
        self.task = index
        self.deadline = time.monotonic() + (timeout + LOAD_ALLOWANCE_S if timeout else float("inf"))
        self.connection.send(message)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.connection.close()

    def stop(self) -> None:
        """Ask an idle worker to leave, then make sure it has."""
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(2)
        self.kill()


class ProcessRunner(Runner):
    def __init__(self, workers: int, task_timeout: float | None = None, retries: int = 2):
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, not {workers}")
        if task_timeout is not None and task_timeout <= 0:
            raise ConfigError(f"task_timeout must be positive, not {task_timeout}")
        self.workers = int(workers)
        self.task_timeout = task_timeout
        self.retries = int(retries)
        self._mp = spawn_context()
        self._pool: list[_Worker] = []
        self._closed = False
        self.restarts = 0  # workers replaced after a death or a timeout, over the runner's life
        self.losses: list[Loss] = []
        self._to_rerun: dict[int, Loss] = {}    # task -> its loss, until a worker takes the task again

    def run(self, function, tasks, context=None):
        if self._closed:
            raise RuntimeError("this runner is closed")
        tasks = list(tasks)
        waiting = deque(range(len(tasks)))
        failures = [0] * len(tasks)
        remaining = len(tasks)
        try:
            while remaining:
                self._hand_out(waiting, function, tasks, context)
                busy = [w for w in self._pool if w.task is not None]
                ready = multiprocessing.connection.wait(
                    [w.connection for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_S)
                for worker in busy:
                    outcome = self._poll(worker, ready)
                    if outcome is None:
                        continue
                    kind, index, payload = outcome
                    if kind == "done":
                        remaining -= 1
                        yield index, payload
                    elif kind == "error":
                        exc, remote = payload
                        raise _task_failed(index, exc, remote)
                    else:  # the worker died or hung: replace it, run its task again
                        failures[index] += 1
                        loss = Loss(index, payload, failures[index])
                        self.losses.append(loss)
                        if failures[index] > self.retries:    # the error says it: no log line of its own
                            raise TaskError(f"task {index} failed {failures[index]} times: {payload}; "
                                            "giving up")
                        self._to_rerun[index] = loss
                        waiting.appendleft(index)
        finally:
            for loss in self._to_rerun.values():
                log.warning("task %d: %s; not run again: the run ended", loss.task, loss.reason)
            self._to_rerun.clear()
            for worker in [w for w in self._pool if w.task is not None]:
                self._discard(worker)

    def _hand_out(self, waiting: deque, function, tasks, context) -> None:
        while waiting:
            idle = next((w for w in self._pool if w.task is None), None)
            if idle is None:
                if len(self._pool) >= self.workers:
                    return
                idle = _Worker(self._mp)
                self._pool.append(idle)
            index = waiting.popleft()
            try:
                idle.give(index, (index, function, tasks[index], context), self.task_timeout)
            except (OSError, ValueError):  # it died while idle: its pipe is broken; nothing was lost
                waiting.appendleft(index)
                self._discard(idle)
                continue
            except (pickle.PicklingError, AttributeError, TypeError) as exc:  # nothing was sent
                idle.task = None
                raise TaskError(f"task {index} can not be sent to a worker process ({exc}): the function must "
                                f"be defined at module level, the task and the context picklable") from None
            loss = self._to_rerun.pop(index, None)
            if loss is not None:
                loss.rerun_on = f"worker process {idle.process.pid}"
                log.warning("task %d: %s; running it again on %s (run %d of at most %d)", index, loss.reason,
                            loss.rerun_on, loss.attempt + 1, self.retries + 1)

    def _poll(self, worker: _Worker, ready) -> tuple[str, int, Any] | None:
        """What happened to a busy worker: ("done"|"error"|"lost", task, payload), or None (still at work)."""
        index = worker.task
        if worker.connection in ready:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                message = None
            if message is not None and message[0] == "started":
                if self.task_timeout:
                    worker.deadline = time.monotonic() + self.task_timeout
                return None
            if message is not None:
                worker.task = None
                payload = message[2] if message[0] == "done" else (message[2], message[3])
                return message[0], index, payload
        if not worker.process.is_alive():
            code, pid = worker.process.exitcode, worker.process.pid
            self._discard(worker)
            self.restarts += 1
            return "lost", index, f"its worker process died (process {pid}, exit code {code})"
        if time.monotonic() > worker.deadline:
            pid = worker.process.pid
            self._discard(worker)
            self.restarts += 1
            return "lost", index, f"it ran longer than the {self.task_timeout:g} s timeout (process {pid}, killed)"
        return None

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        self._pool.remove(worker)
        worker.task = None

    def close(self) -> None:
        self._closed = True
        for worker in list(self._pool):
            worker.stop()
        self._pool.clear()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()


# ---- Dask distributed -----------------------------------------------------------------------------------------

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
            # runs BLAS meanwhile: only spawn starts them without fork() (see _spawn_context). Set for good, not
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
