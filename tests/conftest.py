"""Every test runs headless: Qt offscreen, SDL's dummy video driver, and studio settings in a scratch folder."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import faulthandler  # noqa: E402 (after the environment above)
import multiprocessing  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from leaks import running_now  # noqa: E402

pytest_plugins = ["pytester"]   # tests/test_suite_guards.py runs small suites of its own

# ---- nothing a test starts outlives it --------------------------------------------------------------------------
# A test that leaves a studio thread, a QThread, a child process or an active QTimer behind fails in its teardown
# (a worker thread of one test once ran numpy in a later one and hung it). What a broader-scoped fixture starts, and
# what starts while a module-scoped one is in use (its game, its cluster's replacement workers), belongs to that
# fixture, and must be gone when the fixture ends.
_owned: dict = {}          # what runs -> the broader-scoped fixture it belongs to
_in_use: set = set()       # module- or class-scoped fixtures set up and not yet finalized
_ended: list = []          # broader-scoped fixtures finalized during the current teardown


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope == "function":
        return (yield)
    before = running_now()
    try:
        return (yield)
    finally:
        if fixturedef.scope in ("module", "class"):    # a session fixture (qapp) would excuse every test
            _in_use.add(fixturedef.argname)
        _owned.update({key: fixturedef.argname for key in running_now().keys() - before.keys()})


def pytest_fixture_post_finalizer(fixturedef, request):
    if fixturedef.scope != "function" and fixturedef.argname in _in_use:
        _in_use.discard(fixturedef.argname)
        _ended.append(fixturedef.argname)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    item.running_before = running_now()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    now, before = running_now(), getattr(item, "running_before", {})
    owners = sorted(_in_use & set(item.fixturenames))
    left = {}
    for key, text in now.items():
        if key in before or key in _owned:
            continue
        if owners:
            _owned[key] = owners[0]
        else:
            left[key] = text
    for key, owner in list(_owned.items()):
        if owner in _ended:
            del _owned[key]
            if key in now:
                left[key] = f"{now[key]}, of the fixture {owner!r}"
    _ended.clear()
    if left:
        for child in multiprocessing.active_children():   # ours: end them so the next test starts clean
            child.kill()
            child.join(5)
        pytest.fail("the test left running: " + "; ".join(sorted(left.values())), pytrace=False)
    return result


# ---- a stuck test ends the run with stacks ----------------------------------------------------------------------
# pytest-timeout (pyproject: thread method) needs the GIL to act. A thread blocked in C while holding it would keep
# the run waiting for ever, so faulthandler, whose watchdog is a C thread, dumps every thread's stack and exits a
# minute later (ini timeout_backstop). pytest's own faulthandler_timeout dumps without exiting, and would replace
# this timer.
_stacks_to = None


def pytest_addoption(parser):
    parser.addini("timeout_backstop", "seconds after pytest-timeout's limit that faulthandler ends the run",
                  default="60")


def pytest_configure(config):
    global _stacks_to
    _stacks_to = open(os.dup(sys.stderr.fileno()), "w")   # the terminal: tests' own output is captured


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0] if marker and marker.args else
                    item.config.getoption("timeout", None) or item.config.getini("timeout") or 0)
    if timeout > 0:
        backstop = timeout + float(item.config.getini("timeout_backstop"))
        faulthandler.dump_traceback_later(backstop, exit=True, file=_stacks_to)
    try:
        return (yield)
    finally:
        if timeout > 0:
            faulthandler.cancel_dump_traceback_later()
