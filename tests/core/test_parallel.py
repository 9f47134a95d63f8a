"""The task runner: same results in-process and in worker processes, heavy state loaded once per worker, and
dead, hung or failing tasks never hang a run."""
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from wm_studio.core.errors import ConfigError, MissingDependencyError
from wm_studio.core.parallel import TaskError, make_runner


@dataclass(frozen=True)
class CountingContext:
    """load() leaves one file per load in `folder`, so the test can count loads and the processes that did them."""
    folder: str
    offset: int = 0

    def load(self):
        Path(self.folder, f"load-{os.getpid()}-{time.monotonic_ns()}").touch()
        return {"offset": self.offset, "pid": os.getpid()}


def add_offset(state, task):
    return task * task + state["offset"], state["pid"]


def square(state, task):
    return task * task


def blas_threads(state, task):
    return {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def die_once(state, task):
    """Task 3 kills its own process on its first attempt (a marker file remembers the attempt)."""
    value, marker = task
    if value == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 10


def always_die(state, task):
    os.kill(os.getpid(), signal.SIGKILL)


def hang_once(state, task):
    value, marker = task
    if value == 1 and not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(3600)
    return value + 100


def fail_on_two(state, task):
    if task == 2:
        raise ValueError("bad task two")
    return task


def missing_game(state, task):
    raise MissingDependencyError('Doom Take Cover needs the doom extra: pip install -e ".[doom]"')


def test_serial_and_processes_give_the_same_results(tmp_path):
    context = CountingContext(str(tmp_path), offset=7)
    with make_runner("serial") as serial:
        expected = dict(serial.run(add_offset, range(12), context))
    with make_runner("processes", workers=2) as runner:
        got = dict(runner.run(add_offset, range(12), context))
    assert sorted(got) == list(range(12))
    assert {i: value for i, (value, _) in got.items()} == {i: value for i, (value, _) in expected.items()}
    assert {i: value for i, (value, _) in got.items()} == {i: i * i + 7 for i in range(12)}
    assert {pid for _, pid in got.values()} - {os.getpid()}  # really ran elsewhere


def test_state_is_loaded_once_per_worker_and_workers_are_reused(tmp_path):
    context = CountingContext(str(tmp_path))
    with make_runner("processes", workers=2) as runner:
        first = dict(runner.run(add_offset, range(10), context))
        second = dict(runner.run(add_offset, range(10, 20), context))
    loads = list(tmp_path.glob("load-*"))
    pids = {pid for _, pid in list(first.values()) + list(second.values())}
    assert len(first) == len(second) == 10
    assert 1 <= len(loads) <= 2 and len(pids) == len(loads)  # one load per worker, across both runs
    assert {name.name.split("-")[1] for name in loads} == {str(pid) for pid in pids}


def test_a_new_context_is_loaded_again(tmp_path):
    with make_runner("processes", workers=1) as runner:
        a = dict(runner.run(add_offset, [2], CountingContext(str(tmp_path), offset=1)))
        b = dict(runner.run(add_offset, [2], CountingContext(str(tmp_path), offset=2)))
    assert a[0][0] == 5 and b[0][0] == 6
    assert len(list(tmp_path.glob("load-*"))) == 2


def test_workers_run_blas_on_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with make_runner("processes", workers=1) as runner:
        [(_, env)] = list(runner.run(blas_threads, [0]))
    assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert os.environ["OMP_NUM_THREADS"] == "2" and "MKL_NUM_THREADS" not in os.environ  # the driver's untouched


def test_a_killed_worker_is_replaced_and_its_task_run_again(tmp_path):
    marker = str(tmp_path / "died")
    with make_runner("processes", workers=2) as runner:
        results = dict(runner.run(die_once, [(i, marker) for i in range(8)]))
        assert runner.restarts == 1
    assert os.path.exists(marker)
    assert results == {i: i * 10 for i in range(8)}


def test_a_task_that_always_kills_its_worker_gives_up_with_a_clear_error():
    with make_runner("processes", workers=1, retries=1) as runner:
        with pytest.raises(TaskError, match=r"task 0 failed 2 times: its worker process died"):
            list(runner.run(always_die, [0]))
        assert dict(runner.run(square, [3, 4])) == {0: 9, 1: 16}  # the runner still works


def test_a_hung_task_times_out_and_is_run_again(tmp_path):
    marker = str(tmp_path / "hung")
    with make_runner("processes", workers=2, task_timeout=2.0) as runner:
        results = dict(runner.run(hang_once, [(i, marker) for i in range(4)]))
    assert os.path.exists(marker)
    assert results == {i: i + 100 for i in range(4)}


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_an_exception_in_a_task_is_a_clear_error(backend):
    with make_runner(backend, workers=2) as runner:
        with pytest.raises(TaskError, match="task 2 failed: ValueError: bad task two") as caught:
            list(runner.run(fail_on_two, range(5)))
    assert "fail_on_two" in caught.value.remote_traceback


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_a_wm_studio_error_in_a_worker_keeps_its_type_and_message(backend):
    with make_runner(backend, workers=1) as runner:
        with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[doom\]"'):
            list(runner.run(missing_game, [0]))


def test_a_function_that_can_not_travel_is_a_clear_error():
    with make_runner("processes", workers=1) as runner:
        with pytest.raises(TaskError, match="module level"):
            list(runner.run(lambda state, task: task, [1]))
        assert dict(runner.run(square, [5])) == {0: 25}


def test_leaving_a_run_early_does_not_leak_into_the_next():
    with make_runner("processes", workers=2) as runner:
        stream = runner.run(square, range(50))
        next(stream)
        stream.close()
        assert dict(runner.run(square, range(6))) == {i: i * i for i in range(6)}


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        make_runner("threads")
    with pytest.raises(ConfigError):
        make_runner("processes", workers=0)


@dataclass(frozen=True, eq=True)
class ArrayContext:
    """A spec with an array field: == on it is elementwise, the cache must still compare it by value."""
    weights: object

    def load(self):
        return {"total": float(sum(self.weights))}


def total_plus(state, task):
    return state["total"] + task


def test_a_context_holding_arrays_is_compared_by_value():
    import numpy as np
    with make_runner("serial") as runner:
        assert dict(runner.run(total_plus, [1], ArrayContext(np.array([1.0, 2.0])))) == {0: 4.0}
        assert dict(runner.run(total_plus, [1], ArrayContext(np.array([1.0, 2.0])))) == {0: 4.0}
        assert dict(runner.run(total_plus, [1], ArrayContext(np.array([5.0, 2.0])))) == {0: 8.0}


# Worker processes started 5 times while another thread does BLAS work. A fork start method (or a preexec_fn)
# hangs here in OpenBLAS's fork handler: checked by making spawn_context return the fork context.
START_BESIDE_BLAS = """
import operator
from wm_studio.core.parallel import make_runner, spawn_context

assert spawn_context().get_start_method() == "spawn"
for round in range(5):
    with make_runner("processes", workers=2) as runner:
        assert dict(runner.run(operator.is_not, [1, 2, 3])) == dict.fromkeys(range(3), True)
    print("round", round, flush=True)
"""


def test_workers_start_beside_a_blas_thread():
    import subprocess
    import sys

    from beside_blas import beside_blas   # here: real Dask workers import this module without tests/ on their path
    limit = 90
    try:
        result = subprocess.run([sys.executable, "-c", beside_blas(START_BESIDE_BLAS, dump_after=limit - 15)],
                                capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"starting workers beside a BLAS thread hung: {exc.stdout!r}")
    assert result.returncode == 0 and "joined" in result.stdout, (
        f"starting workers beside a BLAS thread hung after {result.stdout.count('round')} of 5 rounds:\n"
        f"{result.stderr[-3000:]}")


def test_a_lost_worker_is_told_once_with_its_task_and_where_it_runs_again(tmp_path, caplog):
    marker = str(tmp_path / "died")
    with caplog.at_level("WARNING", logger="wm_studio.core.parallel"):
        with make_runner("processes", workers=2) as runner:
            results = dict(runner.run(die_once, [(i, marker) for i in range(8)]))
    assert results == {i: i * 10 for i in range(8)}
    [loss] = runner.losses
    assert (loss.task, loss.attempt) == (3, 1) and "exit code -9" in loss.reason
    assert loss.rerun_on.startswith("worker process ")
    [line] = [r.getMessage() for r in caplog.records if r.name == "wm_studio.core.parallel"]
    assert line.startswith("task 3: its worker process died (process ") and "exit code -9" in line
    assert f"running it again on {loss.rerun_on} (run 2 of at most 3)" in line
