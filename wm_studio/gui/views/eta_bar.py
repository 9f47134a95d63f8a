"""A progress bar that shows done / total, the time spent and an ETA, from a stage's snapshots.

The ETA counts only the work done since start() (as the command line's bar does), so a stage resumed at 80 %
does not look impossibly fast.
"""
from __future__ import annotations

import time

from PyQt5.QtWidgets import QProgressBar

from wm_studio.core.progress import format_duration


class EtaBar(QProgressBar):
    def __init__(self, unit: str = "", parent=None):
        super().__init__(parent)
        self.unit = unit
        self.setTextVisible(True)
        self.setMinimumWidth(120)
        self._start = None
        self._first_done = None
        self.eta_seconds: float | None = None
        self.reset_bar()

    def reset_bar(self, text: str = "idle") -> None:
        self._start, self._first_done, self.eta_seconds = None, None, None
        self.setRange(0, 1)
        self.setValue(0)
        self.setFormat(text)

    def start(self, unit: str | None = None) -> None:
        """A new stretch of work: elapsed time and rate count from now."""
        if unit is not None:
            self.unit = unit
        self._start, self._first_done, self.eta_seconds = time.monotonic(), None, None

    def show_progress(self, done: int, total: int, note: str = "") -> None:
        if self._start is None:
            self.start()
        if self._first_done is None:
            self._first_done = done
        total = max(int(total), 0)
        self.setRange(0, max(total, 1))
        self.setValue(min(int(done), max(total, 1)))
        elapsed = time.monotonic() - self._start
        progressed = done - self._first_done
        if progressed > 0 and total:
            self.eta_seconds = elapsed / progressed * max(total - done, 0)
            eta = format_duration(self.eta_seconds)
        else:
            self.eta_seconds, eta = None, "?"
        unit = f" {self.unit}" if self.unit else ""
        if total and done >= total:
            text = f"{done}{unit} in {format_duration(elapsed)}"
        else:
            percent = f" · {done / total:.0%}" if total else ""
            text = f"{done} / {total}{unit}{percent} · ETA {eta}"
        self.setFormat(f"{note}: {text}" if note else text)
        self.setToolTip(f"{done} / {total}{unit}, {format_duration(elapsed)} so far")
