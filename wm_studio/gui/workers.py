"""Run any core stage generator on its own long-lived QThread, under the GUI's control.

Every stage in wm_studio.core is a generator of immutable snapshots (CMA-ES generations, training batches, dream
steps, controller episodes). `GeneratorWorker` pulls snapshots from one on a dedicated thread and hands them to
the GUI thread; the GUI decides when it runs:

    worker = GeneratorWorker("evolution", parent=pane)
    worker.snapshots.connect(pane.on_snapshots)   # list of snapshots, oldest first (see below)
    worker.failed.connect(pane.on_failed)          # one-line message; the traceback is in the log
    worker.finished.connect(pane.on_finished)      # the generator ran out
    worker.load(lambda: settings.run())            # the factory runs on the worker thread, on the first pull
    worker.step()          # pull one more snapshot (pauses a run first)
    worker.set_rate(10)    # snapshots per second while running; None: as fast as possible
    worker.run(); worker.pause()
    worker.stop()          # close the generator (its `finally` runs on the worker thread)
    worker.shutdown()      # when the window closes: close the generator, end the thread, wait for it

Threading rules it keeps (docs/architecture.md, "Threading rules of the studio"): widgets are never touched off the GUI thread, because the worker
only emits signals, which Qt queues to the GUI thread. At most one delivery is queued at a time: snapshots made
while the GUI is busy wait in an outbox and arrive together in the next `snapshots` list, so a fast stage never
floods the event queue, and a pane that draws only the newest one on a timer still sees every snapshot (to extend
its curves). If the GUI falls `max_pending` snapshots behind, the worker waits for it. The generator is created,
advanced and closed on the worker thread only (CUDA state is per thread). Exceptions are logged and reported
through `failed`; the worker stays usable (load another generator).
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
import traceback
import weakref
from typing import Callable, Iterator

from PyQt5.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from wm_studio.core.errors import WmStudioError

log = logging.getLogger(__name__)

Factory = Callable[[], Iterator]

GIL_SHARE_INTERVAL = 0.01   # seconds of work between two pauses of the worker loop
GIL_SHARE_PAUSE = 0.001

# Every worker whose thread may still run. A window normally shuts its workers down when it closes; this is the net
# for the other ways out (an exception while building a window, a script that never closes it): Qt aborts the
# process when a QThread object is destroyed while its thread runs.
_LIVE: "weakref.WeakSet[GeneratorWorker]" = weakref.WeakSet()


@atexit.register
def _shutdown_all():
    for worker in list(_LIVE):
        try:
            worker.shutdown(timeout_ms=5000)
        except RuntimeError:  # its Qt objects are already gone
            pass


def describe_error(exc: BaseException) -> str:
    """The line a user sees: our own errors say it all; anything else gets its type as well."""
    if isinstance(exc, WmStudioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def log_failure(logger: logging.Logger, name: str, exc: BaseException) -> str:
    """Log what went wrong on a thread (the traceback, unless it is one of our own errors); return the user's line."""
    if isinstance(exc, WmStudioError):
        logger.error("%s: %s", name, exc)
    else:
        logger.error("%s failed:\n%s", name, "".join(traceback.format_exception(exc)).rstrip())
    return describe_error(exc)


class LoopThread(QThread):
    """A QThread whose run() is the worker's loop (no event loop: the loop waits on a condition instead)."""

    def __init__(self, loop: Callable[[], None], name: str, parent: QObject):
        super().__init__(parent)
        self._loop = loop
        self.setObjectName(name)

    def run(self):
        self._loop()


class GeneratorWorker(QObject):
    snapshots = pyqtSignal(object)      # list of snapshots from the current generator, oldest first
    failed = pyqtSignal(str)            # the generator (or its factory) raised; the message is for the user
    finished = pyqtSignal()             # the generator ran out
    running_changed = pyqtSignal(bool)  # run() / pause(), or the run ended by itself

    # Internal signals, emitted on the worker thread and delivered queued on the GUI thread. Each carries the
    # load it belongs to, so news of a generator replaced in the meantime is dropped.
    _ready = pyqtSignal()
    _failed_in = pyqtSignal(int, str)
    _finished_in = pyqtSignal(int)

    def __init__(self, name: str, parent: QObject | None = None, rate: float | None = None, max_pending: int = 256):
        super().__init__(parent)
        self.name = name
        self._cond = threading.Condition()
        self._factory: Factory | None = None
        self._load = 0                   # bumped by load() and stop(): the worker thread picks up the change
        self._running = False
        self._steps = 0
        self._rate = rate
        self._quit = False
        self._outbox: list = []
        self._delivery_queued = False
        self._pulling = False            # the worker thread is inside next(generator)
        self._max_pending = max(1, max_pending)
        self._ready.connect(self._deliver)
        self._failed_in.connect(self._on_failed)
        self._finished_in.connect(self._on_finished)
        self._thread = LoopThread(self._serve, f"wm-studio {name} worker", self)
        self._thread.start()
        _LIVE.add(self)

    # --- control, from the GUI thread ---------------------------------------------------------------------------
    def load(self, factory: Factory | None) -> None:
        """Replace the generator (the old one is closed on the worker thread); paused, nothing pulled yet."""
        with self._cond:
            self._factory = factory
            self._load += 1
            self._steps = 0
            self._outbox.clear()
            was_running, self._running = self._running, False
            self._cond.notify_all()
        if was_running:
            self.running_changed.emit(False)

    def stop(self) -> None:
        """Close the current generator and forget it."""
        self.load(None)

    def run(self) -> None:
        with self._cond:
            changed = not self._running
            self._running = True
            self._steps = 0
            self._cond.notify_all()
        if changed:
            self.running_changed.emit(True)

    def pause(self) -> None:
        """Stop pulling snapshots (steps still pending are dropped)."""
        with self._cond:
            changed = self._running
            self._running = False
            self._steps = 0
            self._cond.notify_all()
        if changed:
            self.running_changed.emit(False)

    def step(self, count: int = 1) -> None:
        """Pull `count` more snapshots as fast as possible (after any steps still pending), then stay paused."""
        with self._cond:
            changed = self._running
            self._running = False
            self._steps += max(0, int(count))
            self._cond.notify_all()
        if changed:
            self.running_changed.emit(False)

    def set_rate(self, per_second: float | None) -> None:
        """Snapshots per second while running; None or 0: as fast as the generator goes."""
        with self._cond:
            self._rate = per_second if per_second and per_second > 0 else None
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def rate(self) -> float | None:
        """Snapshots per second while running; None: as fast as the generator goes."""
        return self._rate

    @property
    def busy(self) -> bool:
        """Running, or steps still to pull."""
        with self._cond:
            return self._running or self._steps > 0

    @property
    def idle(self) -> bool:
        """Not busy, no snapshot being made (a pause lets the pull under way finish) and nothing left to deliver."""
        with self._cond:
            return not (self._running or self._steps > 0 or self._pulling or self._outbox or self._delivery_queued)

    def is_alive(self) -> bool:
        return self._thread.isRunning()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Close the generator, end the thread and wait for it (at most timeout_ms; None: as long as it takes).

        Returns whether the thread has ended. Call it before the worker's parent is destroyed."""
        with self._cond:
            self._quit = True
            self._running = False
            self._cond.notify_all()
        if timeout_ms is None:
            return self._thread.wait()
        return self._thread.wait(int(timeout_ms))

    # --- delivery, on the GUI thread ----------------------------------------------------------------------------
    @pyqtSlot()
    def _deliver(self):
        with self._cond:
            batch, self._outbox = self._outbox, []
            self._delivery_queued = False
            self._cond.notify_all()
        if batch:
            self.snapshots.emit(batch)

    @pyqtSlot(int, str)
    def _on_failed(self, load, message):
        if load == self._load:
            self.running_changed.emit(False)
            self.failed.emit(message)

    @pyqtSlot(int)
    def _on_finished(self, load):
        if load == self._load:
            self.running_changed.emit(False)
            self.finished.emit()

    # --- the loop, on the worker thread -------------------------------------------------------------------------
    def _serve(self):
        generator, current = None, 0
        next_due = 0.0
        last_pause = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._quit or self._load != current or (
                    generator is not None and (self._running or self._steps > 0)
                    and len(self._outbox) < self._max_pending))
                quitting, reloading = self._quit, self._load != current
                factory, current = self._factory, self._load
                stepping = self._steps > 0 and not self._running and not (quitting or reloading)
                if stepping:
                    self._steps -= 1
                rate = None if stepping else self._rate
                self._pulling = not (quitting or reloading)
            if quitting or reloading:
                self._close(generator)
                generator = None
                if quitting:
                    return
                if factory is not None:
                    generator = self._start(factory, current)
                next_due = 0.0
                continue
            if rate:  # pace a run; pause, step, load and quit cut the wait short
                delay = next_due - time.monotonic()
                if delay > 0:
                    with self._cond:
                        if self._cond.wait_for(lambda: self._quit or self._load != current or not self._running
                                               or self._steps > 0, timeout=delay):
                            self._pulling = False
                            continue
                next_due = max(next_due, time.monotonic()) + 1.0 / rate
            generator = self._pull(generator, current)
            with self._cond:
                self._pulling = False
            if time.monotonic() - last_pause > GIL_SHARE_INTERVAL:
                # A pure-Python stage would hold the GIL almost all the time and the GUI thread would get it only
                # every few switch intervals: step aside briefly now and then so the window stays responsive.
                time.sleep(GIL_SHARE_PAUSE)
                last_pause = time.monotonic()

    def _start(self, factory: Factory, load: int):
        try:
            return iter(factory())
        except Exception as exc:  # a bad setting or a missing file: report it, keep the worker alive
            self._report(exc, load)
            return None

    def _pull(self, generator, load: int):
        """Advance the generator once; return it, or None when it is finished or broken."""
        try:
            snapshot = next(generator)
        except StopIteration:
            with self._cond:
                self._running = False
                self._steps = 0
            self._finished_in.emit(load)
            return None
        except Exception as exc:
            self._report(exc, load)
            self._close(generator)
            return None
        with self._cond:
            if self._load != load:  # replaced while this snapshot was being made
                return generator
            self._outbox.append(snapshot)
            notify, self._delivery_queued = not self._delivery_queued, True
        if notify:
            self._ready.emit()
        return generator

    def _report(self, exc: Exception, load: int):
        with self._cond:
            self._running = False
            self._steps = 0
        self._failed_in.emit(load, log_failure(log, self.name, exc))

    def _close(self, generator):
        close = getattr(generator, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            log.exception("%s: closing the generator failed", self.name)
