"""What every runner shares: the Runner interface, a lost worker (Loss), TaskError, the per-worker state cache,
and how child processes start (spawn, BLAS on one thread). The contract is in the package's docstring."""
from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from wm_studio.core.errors import WmStudioError

SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
LOAD_ALLOWANCE_S = 120.0  # a fresh worker's start-up and context load are not counted against task_timeout
POLL_S = 0.5
_environ_lock = threading.Lock()
log = logging.getLogger("wm_studio.core.parallel")   # one logger for every runner


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
