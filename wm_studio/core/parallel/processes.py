"""Our own worker processes (spawn; a pipe per worker, one task in flight each): a dead or hung worker is replaced
and its task run again (see the package's docstring)."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import pickle
import signal
import time
import traceback
from collections import deque
from typing import Any

from wm_studio.core.errors import ConfigError
from wm_studio.core.parallel.base import (LOAD_ALLOWANCE_S, POLL_S, Loss, Runner, TaskError, _StateCache,
                                          _task_failed, log, spawn_context, start_single_threaded)


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
