"""GUI tests: pytest-qt's QApplication (offscreen, see tests/conftest.py), pyqtgraph configured before any widget,
and QSettings pointed at a scratch folder so the user's own settings are never read or written."""
import pytest
from PyQt5.QtCore import QSettings

from wm_studio.gui import style

style.configure_pyqtgraph()


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
