"""One ETA for the command line's bar and the studio's (wm_studio.core.progress.Eta)."""
import io

from wm_studio.core import progress
from wm_studio.core.progress import Eta, ProgressBar


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_rate_counts_only_work_done_since_the_start(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    eta = Eta()
    assert eta.update(80, 100) == (0.0, None)        # resumed at 80: no rate yet
    clock.now += 10
    assert eta.update(90, 100) == (10.0, 10.0)       # 10 units in 10 s, 10 left
    clock.now += 10
    assert eta.update(100, 100) == (20.0, 0.0)
    assert Eta().update(5, 0)[1] is None             # no total, no ETA


def test_the_terminal_bar_shows_it(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    bar = ProgressBar("V", io.StringIO(), width=4)
    assert bar.line(0, 10, "") == "V [....] 0/10   0% 0s ETA ?"
    clock.now += 65
    assert bar.line(5, 10, "loss 1") == "V [##..] 5/10  50% 1m05s ETA 1m05s | loss 1"
