"""The Dask backend of the task runner: the same contract as the process runner, on a LocalCluster and on a real
`dask scheduler` with `dask worker` processes on 127.0.0.1 (with and without nannies), a worker killed mid-run."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("distributed")

from wm_studio.core.parallel import dask_runner  # noqa: E402
from wm_studio.core.errors import ConfigError, MissingDependencyError  # noqa: E402
from wm_studio.core.parallel import TaskError, make_runner  # noqa: E402
from test_parallel import (CountingContext, add_offset, always_die, die_once, fail_on_two, hang_once,  # noqa: E402
                           missing_game, square)

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def local():
    with make_runner("dask", workers=2, retries=2) as runner:
        yield runner


def test_a_local_cluster_gives_the_serial_results_and_loads_once_per_worker(local, tmp_path):
    context = CountingContext(str(tmp_path), offset=3)
    first = dict(local.run(add_offset, range(12), context))
    second = dict(local.run(add_offset, range(12, 20), context))
    assert {i: v for i, (v, _) in first.items()} == {i: i * i + 3 for i in range(12)}
    assert {i: v for i, (v, _) in second.items()} == {i: (i + 12) ** 2 + 3 for i in range(8)}
    pids = {pid for _, pid in list(first.values()) + list(second.values())}
    loads = list(tmp_path.glob("load-*"))
    assert os.getpid() not in pids and local.workers == 2
    assert len(loads) == len(pids) <= 2                                 # once per worker over both runs
    assert {p.name.split("-")[1] for p in loads} == {str(pid) for pid in pids}


def test_errors_in_tasks_come_back_clearly(local):
    with pytest.raises(TaskError, match="task 2 failed: ValueError: bad task two") as caught:
        list(local.run(fail_on_two, range(5)))
    assert "fail_on_two" in caught.value.remote_traceback
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[doom\]"'):
        list(local.run(missing_game, [0]))
    assert dict(local.run(square, [3])) == {0: 9}                      # the runner still works


def test_a_killed_worker_is_replaced_and_its_task_run_again(local, tmp_path):
    marker = str(tmp_path / "died")
    results = dict(local.run(die_once, [(i, marker) for i in range(8)]))
    assert os.path.exists(marker)
    assert results == {i: i * 10 for i in range(8)}


def test_a_task_that_always_kills_its_worker_gives_up(local):
    with pytest.raises(TaskError, match="task 0 failed: its worker process died every time"):
        list(local.run(always_die, [0]))
    assert dict(local.run(square, [4])) == {0: 16}


def test_a_hung_task_is_run_again_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(dask_runner, "LOAD_ALLOWANCE_S", 1.0)
    marker = str(tmp_path / "hung")
    with make_runner("dask", workers=2, task_timeout=2.0) as runner:
        results = dict(runner.run(hang_once, [(i, marker) for i in range(4)]))
    assert os.path.exists(marker)
    assert results == {i: i + 100 for i in range(4)}


def test_the_local_cluster_leaves_port_8787_to_others(recwarn):
    """Dask's default dashboard port may be another cluster's (the user's own, or one still closing)."""
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        except OSError:
            pass   # somebody else holds it already: the same situation
        with make_runner("dask", workers=1):
            pass
    assert not [w for w in recwarn if "8787" in str(w.message)]


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(dask_runner, "CONNECT_TIMEOUT_S", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"          # nobody listens there
    with pytest.raises(ConfigError, match=f"cannot reach the Dask scheduler at {address}.*`dask scheduler`"):
        make_runner("dask", cluster=address)
    with pytest.raises(ConfigError, match="dask backend"):
        make_runner("processes", cluster="tcp://127.0.0.1:8786")


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[cluster\]"'):
        make_runner("dask", workers=1)


# ---- a real scheduler and real workers -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(processes) -> None:
    """Workers first, then the scheduler (a worker whose scheduler is gone waits for it before leaving)."""
    for group in (processes[1:], processes[:1]):
        for process in group:
            process.terminate()
        for process in group:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module", params=["nanny", "no-nanny"])
def cluster(request):
    """A `dask scheduler` and two workers on 127.0.0.1: under nannies (a killed worker comes back) or alone (it
    does not); yields (address, the worker processes to kill)."""
    from distributed import Client
    address = f"tcp://127.0.0.1:{free_port()}"
    common = ["--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60"]
    processes = [start("scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")]
    try:
        if request.param == "nanny":
            processes.append(start("worker", address, "--nworkers", "2", *common))
        else:
            processes += [start("worker", address, "--no-nanny", *common) for _ in range(2)]
        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout=5, set_as_default=False) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

        def workers():
            """The live worker processes: the nannies' children, or the `dask worker --no-nanny` processes."""
            found = []
            for process in processes[1:]:
                me = psutil.Process(process.pid)
                found += [p for p in me.children() if "spawn_main" in " ".join(p.cmdline())] or [me]
            return [p for p in found if not gone(p)]
        yield address, workers, request.param
    finally:
        stop(processes)


def test_a_real_cluster_gives_every_backends_fitness_with_a_worker_killed_mid_generation(cluster, tmp_path):
    """Serial, processes and a real Dask cluster give one generation the same fitness, though one cluster worker
    is SIGKILLed mid-generation: its nanny starts a new one, or (no nanny) the other worker takes its tasks."""
    from train.conftest import make_tiny_run
    from train.test_rollout import KillWorkersAfterFirstResult
    from wm_studio.core.train.rollout import GameEvaluator, game_spec
    address, workers, kind = cluster
    spec = game_spec(make_tiny_run(tmp_path / "run"))
    params = np.random.default_rng(4).normal(0, 0.5, (4, spec.shape.n_params))
    results = {}
    for backend in ("serial", "processes"):
        with make_runner(backend, workers=2) as runner:
            results[backend] = GameEvaluator(runner, spec).evaluate(params, [3, 9], 25)
    with make_runner("dask", cluster=address) as runner:
        assert runner.workers == 2
        assert dict(runner.run(square, range(6))) == {i: i * i for i in range(6)}
        victims = workers()[:1]
        killer = KillWorkersAfterFirstResult(runner, lambda: victims)
        results["dask"] = GameEvaluator(killer, spec).evaluate(params, [3, 9], 25)
        assert killer.killed == [victims[0].pid] and gone(victims[0])
        if kind == "no-nanny":       # nobody brings the killed worker back: the other one did the rest
            assert len(runner._worker_addresses()) == 1
    for backend in ("processes", "dask"):
        np.testing.assert_array_equal(results[backend][0], results["serial"][0])
        np.testing.assert_array_equal(results[backend][1], results["serial"][1])
    assert len(set(results["serial"][0].ravel())) > 1
