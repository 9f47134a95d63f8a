"""GUI tests: pytest-qt's QApplication (offscreen, see tests/conftest.py), pyqtgraph configured before any widget,
and QSettings pointed at a scratch folder so the user's own settings are never read or written."""
import weakref

import pytest
from PyQt5 import sip
from PyQt5.QtCore import QSettings, QThread, QTimer
from PyQt5.QtWidgets import QApplication

from leaks import LEAK_CHECKS
from wm_studio.gui import style

style.configure_pyqtgraph()

# Every QThread started, so that the leak check in tests/conftest.py can tell which still run after a test.
_started_threads: "weakref.WeakSet[QThread]" = weakref.WeakSet()
_start = QThread.start


def _recording_start(thread, *args):
    _started_threads.add(thread)
    return _start(thread, *args)


QThread.start = _recording_start


def _running_qthreads() -> dict:
    return {("qthread", id(thread)): f"QThread {thread.objectName() or type(thread).__name__!r}"
            for thread in list(_started_threads) if not sip.isdeleted(thread) and thread.isRunning()}


def _active_timers() -> dict:
    """Active QTimers of the studio's objects under every top-level widget and the application (timers are children
    of what they serve). Qt's own (a status bar's one-shot message timer) are its business."""
    app = QApplication.instance()
    if app is None:
        return {}
    owners = [widget for widget in app.topLevelWidgets() if not sip.isdeleted(widget)] + [app]
    found = {}
    for owner in owners:
        for timer in owner.findChildren(QTimer):
            parent = timer.parent()
            if timer.isActive() and type(parent).__module__.startswith("wm_studio"):
                found[("qtimer", sip.unwrapinstance(timer))] = (
                    f"an active QTimer of {type(parent).__name__} (every {timer.interval()} ms)")
    return found


LEAK_CHECKS.extend([_running_qthreads, _active_timers])


@pytest.fixture(autouse=True)
def scratch_settings(qapp, tmp_path):
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    qapp.setOrganizationName("wm-studio-tests")
    qapp.setApplicationName("wm-studio-tests")
    yield tmp_path / "settings"


@pytest.fixture
def studio_env(tmp_path):
    """Environment for a `wm-studio` subprocess: settings and caches in tmp_path, offscreen Qt."""
    import os
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env
