"""The QApplication with the studio's names and icon, pyqtgraph's options and Qt's messages sent to the log: what
the studio's window and the offscreen renderers (wm_studio.gui.render) both start with."""
from __future__ import annotations

import logging
import sys

from PyQt5.QtCore import QtMsgType, qInstallMessageHandler
from PyQt5.QtWidgets import QApplication

from wm_studio.gui import style
from wm_studio.gui.settings import APPLICATION, APPLICATION_NAME, ORGANIZATION

# Harmless notes Qt prints on every headless start; kept at debug level so they do not look like problems.
QUIET_QT_MESSAGES = ("QStandardPaths: XDG_RUNTIME_DIR not set",
                     "This plugin does not support propagateSizeHints()")


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with the studio's names and icon; pyqtgraph is configured before any widget exists."""
    style.configure_pyqtgraph()
    install_qt_message_handler()
    app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION_NAME)
    app.setWindowIcon(style.studio_icon())
    return app


def install_qt_message_handler() -> None:
    """Qt's own warnings go to the log too (they would otherwise only reach a terminal nobody watches)."""
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}
    qt_log = logging.getLogger("wm_studio.qt")

    def handler(kind, context, message):
        level = levels.get(kind, logging.WARNING)
        if message.startswith(QUIET_QT_MESSAGES):
            level = logging.DEBUG
        qt_log.log(level, "%s", message)

    qInstallMessageHandler(handler)
