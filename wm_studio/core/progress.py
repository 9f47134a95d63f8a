"""The command line's face of a training stage: iterate its generator and draw a progress bar with an ETA.

Every stage in wm_studio is a generator of snapshots. A snapshot has `done` and `total` (units of work, whatever
the stage counts: steps, batches, generations, rollouts) and `summary()`, a short line of figures. The studio runs
the same generators on a worker thread; this module is the terminal's way of running them.
"""
from __future__ import annotations

import sys
import time
from typing import Iterator, Protocol, TextIO, TypeVar


class Snapshot(Protocol):
    done: int
    total: int

    def summary(self) -> str: ...


S = TypeVar("S", bound=Snapshot)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Eta:
    """Time spent on a stretch of work and the time it has left. The rate counts only the work done since the clock
    started, so a stage resumed at 80 % does not look impossibly fast."""

    def __init__(self):
        self._start = time.monotonic()
        self._first_done: int | None = None

    def update(self, done: int, total: int) -> tuple[float, float | None]:
        """(seconds so far, seconds left or None while no rate is known)."""
        elapsed = time.monotonic() - self._start
        if self._first_done is None:
            self._first_done = done
        progressed = done - self._first_done
        left = elapsed / progressed * max(total - done, 0) if progressed > 0 and total else None
        return elapsed, left


class ProgressBar:
    """A one-line bar on a terminal, or a line every `interval` seconds when the stream is not a terminal."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 28, interval: float = 10.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._eta = Eta()
        self._last_print = 0.0

    def line(self, done: int, total: int, summary: str) -> str:
        frac = min(1.0, done / total) if total else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed, left = self._eta.update(done, total)
        eta = "?" if left is None else format_duration(left)
        return (f"{self.label} [{bar}] {done}/{total} {frac:4.0%} "
                f"{format_duration(elapsed)} ETA {eta}" + (f" | {summary}" if summary else ""))

    def update(self, done: int, total: int, summary: str = "", force: bool = False) -> None:
        text = self.line(done, total, summary)
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
        elif force or now - self._last_print >= self.interval:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_print = now

    def finish(self, message: str = "") -> None:
        if self.tty:
            self.stream.write("\n")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()


def drive(stage: Iterator[S], label: str, stream: TextIO | None = None) -> S | None:
    """Run a stage generator to its end with a progress bar; return its last snapshot.

    Ctrl-C closes the generator, which checkpoints in its `finally`, so the same command resumes the stage.
    """
    bar = ProgressBar(label, stream)
    last = None
    try:
        for last in stage:
            bar.update(last.done, last.total, last.summary())
    except KeyboardInterrupt:
        stage.close()
        bar.finish(f"{label}: interrupted; progress is saved and the same command resumes it")
        raise
    if last is not None:
        bar.update(last.done, last.total, last.summary(), force=True)
    bar.finish()
    return last
