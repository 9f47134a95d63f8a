"""GeneratorWorker: any stage generator on its own QThread, driven from the GUI thread."""
import logging
import threading

import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.gui.workers import GeneratorWorker

WAIT_MS = 20_000


class Counter:
    """A generator factory that remembers on which thread its generators ran and were closed."""

    def __init__(self, limit=None, fail_at=None, error=RuntimeError("boom")):
        self.limit, self.fail_at, self.error = limit, fail_at, error
        self.threads, self.closed_on = set(), []

    def __call__(self):
        def generate():
            i = 0
            try:
                while self.limit is None or i < self.limit:
                    self.threads.add(threading.get_ident())
                    if i == self.fail_at:
                        raise self.error
                    yield i
                    i += 1
            finally:
                self.closed_on.append(threading.get_ident())
        return generate()


@pytest.fixture
def worker(qtbot):
    worker = GeneratorWorker("test")
    received = []
    worker.snapshots.connect(lambda batch: received.extend(batch))
    worker.received = received
    yield worker
    assert worker.shutdown(timeout_ms=WAIT_MS)


def test_step_pulls_exactly_one_snapshot_off_the_gui_thread(qtbot, worker):
    counter = Counter()
    worker.load(counter)
    worker.step()
    qtbot.waitUntil(lambda: worker.received == [0], timeout=WAIT_MS)
    worker.step(2)
    qtbot.waitUntil(lambda: worker.received == [0, 1, 2], timeout=WAIT_MS)
    qtbot.wait(100)
    assert worker.received == [0, 1, 2] and not worker.busy
    assert threading.get_ident() not in counter.threads


def test_run_pause_and_finish(qtbot, worker):
    worker.load(Counter(limit=50_000))
    worker.set_rate(None)
    with qtbot.waitSignal(worker.running_changed, timeout=WAIT_MS) as started:
        worker.run()
    assert started.args == [True]
    qtbot.waitUntil(lambda: len(worker.received) >= 20, timeout=WAIT_MS)
    worker.pause()
    qtbot.waitUntil(lambda: not worker.busy, timeout=WAIT_MS)
    qtbot.wait(50)  # a delivery already queued may still arrive
    paused_at = len(worker.received)
    qtbot.wait(200)
    assert len(worker.received) == paused_at < 50_000
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.run()
    # every snapshot arrives, in order, although deliveries are batched
    assert worker.received == list(range(50_000))
    assert not worker.running


def test_batches_keep_the_event_queue_short(qtbot, worker):
    batches = []
    worker.snapshots.connect(batches.append)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.load(Counter(limit=5000))
        worker.run()
    assert sum(len(b) for b in batches) == 5000
    assert len(batches) < 5000


def test_rate_limits_a_run(qtbot, worker):
    """At 20 per second, the worker pulls snapshots at least 50 ms apart (each snapshot here is its pull time)."""
    import time

    def clock():
        while True:
            yield time.monotonic()

    worker.load(clock)
    worker.set_rate(20)
    worker.run()
    qtbot.waitUntil(lambda: len(worker.received) >= 5, timeout=WAIT_MS)
    worker.pause()
    gaps = [later - earlier for earlier, later in zip(worker.received, worker.received[1:])]
    assert min(gaps) >= 0.045


def test_an_exception_is_reported_and_the_worker_lives_on(qtbot, worker, caplog):
    counter = Counter(fail_at=3)
    worker.load(counter)
    with caplog.at_level(logging.ERROR, logger="wm_studio.gui.workers"):
        with qtbot.waitSignal(worker.failed, timeout=WAIT_MS) as failed:
            worker.run()
    assert failed.args == ["RuntimeError: boom"]
    assert "Traceback" in caplog.text and "boom" in caplog.text
    assert worker.received == [0, 1, 2] and not worker.running
    assert counter.closed_on and counter.closed_on[0] in counter.threads
    worker.load(Counter(limit=2))
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.run()
    assert worker.received[-2:] == [0, 1]


def test_user_errors_carry_their_message_alone(qtbot, worker):
    def factory():
        raise ConfigError("x0 has 3 values")
    worker.load(factory)
    with qtbot.waitSignal(worker.failed, timeout=WAIT_MS) as failed:
        worker.step()
    assert failed.args == ["x0 has 3 values"]


def test_load_replaces_and_closes_on_the_worker_thread(qtbot, worker):
    first, second = Counter(), Counter()
    worker.load(first)
    worker.step(3)
    qtbot.waitUntil(lambda: len(worker.received) == 3, timeout=WAIT_MS)
    worker.load(second)
    worker.step()
    qtbot.waitUntil(lambda: len(worker.received) == 4, timeout=WAIT_MS)
    assert worker.received == [0, 1, 2, 0]
    assert first.closed_on == list(first.threads)


def test_shutdown_closes_the_generator_and_ends_the_thread(qtbot):
    worker = GeneratorWorker("test")
    counter = Counter()
    worker.load(counter)
    worker.set_rate(None)
    worker.run()
    qtbot.waitUntil(lambda: bool(counter.threads), timeout=WAIT_MS)
    assert worker.shutdown(timeout_ms=WAIT_MS)
    assert not worker.is_alive()
    assert counter.closed_on == list(counter.threads)


def test_idle_waits_for_the_snapshot_being_made_when_paused(qtbot, worker):
    entered, release = threading.Event(), threading.Event()

    def slow_stage():
        yield 0
        entered.set()
        release.wait(WAIT_MS / 1000)       # a long training batch, under way when the pause comes
        yield 1

    worker.load(slow_stage)
    worker.run()
    assert entered.wait(WAIT_MS / 1000)
    worker.pause()
    assert not worker.busy and not worker.idle           # paused, but batch 1 is still being made
    release.set()
    qtbot.waitUntil(lambda: worker.idle, timeout=WAIT_MS)
    assert worker.received == [0, 1]                     # idle: the last snapshot has been delivered
