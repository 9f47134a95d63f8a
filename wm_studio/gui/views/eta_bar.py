"""A progress bar that shows done / total, the time spent and an ETA, from a stage's snapshots.

The ETA is the command line's (wm_studio.core.progress.Eta): it counts only the work done since start().
"""
from __future__ import annotations

from PyQt5.QtWidgets import QProgressBar

from wm_studio.core.progress import Eta, format_duration


class EtaBar(QProgressBar):
    def __init__(self, unit: str = "", parent=None):
        super().__init__(parent)
        self.unit = unit
        self.setTextVisible(True)
        self.setMinimumWidth(120)
        self._eta: Eta | None = None
        self.eta_seconds: float | None = None
        self.reset_bar()

    def reset_bar(self, text: str = "idle") -> None:
        self._eta, self.eta_seconds = None, None
        self.setRange(0, 1)
        self.setValue(0)
        self.setFormat(text)

    def start(self, unit: str | None = None) -> None:
        """A new stretch of work: elapsed time and rate count from now."""
        if unit is not None:
            self.unit = unit
        self._eta, self.eta_seconds = Eta(), None

    def show_progress(self, done: int, total: int, note: str = "") -> None:
        if self._eta is None:
            self.start()
        total = max(int(total), 0)
        self.setRange(0, max(total, 1))
        self.setValue(min(int(done), max(total, 1)))
        elapsed, self.eta_seconds = self._eta.update(done, total)
        eta = "?" if self.eta_seconds is None else format_duration(self.eta_seconds)
        unit = f" {self.unit}" if self.unit else ""
        if total and done >= total:
            text = f"{done}{unit} in {format_duration(elapsed)}"
        else:
            percent = f" · {done / total:.0%}" if total else ""
            text = f"{done} / {total}{unit}{percent} · ETA {eta}"
        self.setFormat(f"{note}: {text}" if note else text)
        self.setToolTip(f"{done} / {total}{unit}, {format_duration(elapsed)} so far")
