"""Starting the studio."""
import os

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
