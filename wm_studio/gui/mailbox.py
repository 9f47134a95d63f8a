"""A long-lived thread that serves only the newest request: a one-slot mailbox.

    decoder = MailboxThread("latent decoder", handler=decode, parent=pane)
    decoder.done.connect(pane.show_image)        # (request, result) on the GUI thread
    decoder.failed.connect(pane.on_failed)       # (request, message); the traceback is in the log
    decoder.post(request)                        # from the GUI thread; replaces a request not yet taken
    decoder.shutdown()                           # when the window closes: end the thread, wait for it

Each post() overwrites the pending request (or merges into it, with `merge`), so while the handler works on one
request, any number of newer ones collapse into the newest: a dragged slider never builds a queue. At most one
delivery is queued to the GUI thread at a time; it carries the newest result (every result since the last
delivery, oldest first, with newest_only=False). The handler runs on the thread only and must not touch widgets
(docs/architecture.md, "Threading rules of the studio").
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PyQt5.QtCore import QObject, pyqtSignal, pyqtSlot

from wm_studio.gui.workers import LoopThread, log_failure

log = logging.getLogger(__name__)

_EMPTY = object()


class MailboxThread(QObject):
    done = pyqtSignal(object, object)    # (request, result) of the newest request served
    failed = pyqtSignal(object, str)     # (request, message) when the handler raised
    _ready = pyqtSignal()

    def __init__(self, name: str, handler: Callable[[Any], Any], parent: QObject | None = None,
                 merge: Callable[[Any, Any], Any] | None = None, newest_only: bool = True):
        super().__init__(parent)
        self.name = name
        self._handler = handler
        self._merge = merge
        self._newest_only = newest_only
        self._cond = threading.Condition()
        self._pending: Any = _EMPTY
        self._outbox: list = []            # [(request, result, error message or None)], newest last
        self._queued = False
        self._busy = False
        self._quit = False
        self._ready.connect(self._deliver)
        self._thread = LoopThread(self._serve, f"wm-studio {name}", self)
        self._thread.start()

    def post(self, request: Any) -> None:
        with self._cond:
            if self._pending is not _EMPTY and self._merge is not None:
                request = self._merge(self._pending, request)
            self._pending = request
            self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """Nothing pending, nothing being served, nothing waiting for delivery."""
        with self._cond:
            return self._pending is _EMPTY and not self._busy and not self._outbox

    def is_alive(self) -> bool:
        return self._thread.isRunning()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        with self._cond:
            self._quit = True
            self._pending = _EMPTY
            self._cond.notify_all()
        return self._thread.wait() if timeout_ms is None else self._thread.wait(int(timeout_ms))

    # --- on the GUI thread --------------------------------------------------------------------------------------
    @pyqtSlot()
    def _deliver(self):
        with self._cond:
            batch, self._outbox = self._outbox, []
            self._queued = False
        for request, result, error in batch[-1:] if self._newest_only else batch:
            if error is None:
                self.done.emit(request, result)
            else:
                self.failed.emit(request, error)

    # --- on the thread ------------------------------------------------------------------------------------------
    def _serve(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._quit or self._pending is not _EMPTY)
                if self._quit:
                    return
                request, self._pending = self._pending, _EMPTY
                self._busy = True
            try:
                outcome = (request, self._handler(request), None)
            except Exception as exc:  # logged and reported; the thread serves the next request
                outcome = (request, None, log_failure(log, self.name, exc))
            with self._cond:
                self._busy = False
                self._outbox.append(outcome)
                notify, self._queued = not self._queued, True
            if notify:
                self._ready.emit()
