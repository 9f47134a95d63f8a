"""The suite's own guards, each shown to act on a small suite run in a subprocess: a test that leaves a child
process, a QThread or a QTimer running fails; a stuck test ends the run with every thread's stack."""
import shutil
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def suite(pytester):
    """A copy of this suite's conftests and leak checks, with pyproject's timeout settings."""
    shutil.copy(HERE / "conftest.py", pytester.path / "conftest.py")
    shutil.copy(HERE / "leaks.py", pytester.path / "leaks.py")
    (pytester.path / "gui").mkdir()
    shutil.copy(HERE / "gui" / "conftest.py", pytester.path / "gui" / "conftest.py")
    pytester.makeini("[pytest]\ntimeout = 240\ntimeout_method = thread\n")
    return pytester


def test_a_child_process_left_running_fails_its_test(suite):
    suite.makepyfile(test_leak="""
        import multiprocessing, time

        def test_leaves_a_process():
            multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True).start()

        def test_after_it():
            pass
    """)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_process*",
                                 "*the test left running: child process*"])


def test_a_qthread_or_qtimer_left_running_fails_its_test(suite):
    (suite.path / "gui" / "test_gui_leak.py").write_text('''
from wm_studio.gui.views.es_figure import EsFigure
from wm_studio.gui.workers import GeneratorWorker

def test_leaves_a_worker(qtbot):
    GeneratorWorker("probe")

kept = []

def test_leaves_a_timer(qtbot):
    kept.append(EsFigure())          # a window nobody closes, its timer running
    kept[0]._refresh.start(60_000)

def test_cleans_up(qtbot):
    worker = GeneratorWorker("tidy")
    worker.shutdown()
''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*the test left running: QThread 'wm-studio probe worker'*",
                                 "*the test left running: an active QTimer of EsFigure (every 60000 ms)*"])


def test_a_stuck_test_ends_the_run_with_every_stack(suite):
    suite.makepyfile(test_stuck="""
        import time

        def test_stuck():
            time.sleep(600)

        def test_never_reached():
            pass
    """)
    start = time.monotonic()
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "2")
    assert time.monotonic() - start < 120
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Timeout*", "*Stack of MainThread*", "*time.sleep(600)*"])
    assert "test_never_reached" not in result.stdout.str()


def test_a_test_stuck_holding_the_gil_ends_the_run_with_every_stack(suite):
    """pytest-timeout's thread can not run while the GIL is held; faulthandler's backstop still ends the run."""
    suite.makepyfile(test_stuck="""
        import ctypes

        def test_stuck_in_c():
            ctypes.PyDLL(None).sleep(600)      # a C call that keeps the GIL
    """)
    start = time.monotonic()
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "2", "-o", "timeout_backstop=2")
    assert time.monotonic() - start < 120
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*Timeout (0:00:04)!*", "*test_stuck_in_c*"])


def test_what_a_module_fixture_starts_is_its_own_until_it_ends(suite):
    suite.makepyfile(test_fixtures="""
        import multiprocessing, time
        import pytest

        def start():
            process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,), daemon=True)
            process.start()
            return process

        @pytest.fixture(scope="module")
        def tidy():
            started = []
            yield started
            for process in started:
                process.kill()
                process.join()

        @pytest.fixture(scope="module")
        def careless():
            yield []

        def test_tidy_starts_a_process_lazily(tidy):
            tidy.append(start())

        def test_tidy_again(tidy):
            tidy.append(start())

        def test_careless_starts_one(careless):
            careless.append(start())

        def test_careless_last(careless):
            pass
    """)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_careless_last*",
                                 "*left running: child process*, of the fixture 'careless'*"])
