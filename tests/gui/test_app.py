"""Starting the studio."""
import os
import signal

import numpy  # noqa: F401  (loads the BLAS that threadpoolctl looks for)
from threadpoolctl import threadpool_info

from wm_studio.gui.app import leave_a_core_for_the_window


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_the_studio_leaves_a_core_for_its_window():
    before = blas_threads()
    limiter, note = leave_a_core_for_the_window()
    try:
        cores = len(os.sched_getaffinity(0))
        assert blas_threads() and set(blas_threads()) == {max(1, cores - 1)}
        assert f"BLAS on {max(1, cores - 1)} of {cores} cores" in note
    finally:
        limiter.restore_original_limits()
    assert blas_threads() == before


def die_once(state, task):
    """Task 3 kills its own worker process the first time (a marker file remembers it)."""
    value, marker = task
    if value == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def test_a_lost_worker_is_told_once_in_the_log_dock(qtbot, tmp_path):
    from wm_studio.core.parallel import make_runner
    from wm_studio.gui.log_dock import LogDock
    dock = LogDock()
    qtbot.addWidget(dock)
    try:
        with make_runner("processes", workers=2) as runner:
            dict(runner.run(die_once, [(i, str(tmp_path / "died")) for i in range(8)]))
        qtbot.waitUntil(lambda: "task 3" in dock.text())
        [line] = [line for line in dock.text().splitlines() if "worker process" in line]
        assert "WARNING" in line and "task 3: its worker process died" in line and "running it again on" in line
    finally:
        dock.detach()
