"""The log dock: Python logging records from any thread, shown on the GUI thread.

A logging.Handler emits each formatted record through a Qt signal (queued to the GUI thread when the record comes
from a worker), and the dock appends it. Every pane logs with logging.getLogger(__name__) under "wm_studio".
"""
from __future__ import annotations

import html
import logging

from PyQt5.QtCore import QObject, Qt, pyqtSignal, pyqtSlot
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import QDockWidget, QPlainTextEdit

MAX_LINES = 5000
_COLOURS = {logging.WARNING: "#a06000", logging.ERROR: "#c00000", logging.CRITICAL: "#c00000"}


class _Bridge(QObject):
    record = pyqtSignal(str, int, str)   # formatted text, level, the message's first line


class QtLogHandler(logging.Handler):
    """Sends records through `bridge.record(text, levelno, first line)`; safe to call from any thread."""

    def __init__(self, level=logging.INFO):
        super().__init__(level)
        self.bridge = _Bridge()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record):
        try:
            message = record.getMessage()
            self.bridge.record.emit(self.format(record), record.levelno, message.splitlines()[0] if message else "")
        except RuntimeError:  # the dock is gone (the window is closing); nothing left to show it in
            pass


class LogDock(QDockWidget):
    """Shows the records of the "wm_studio" logger; detach() when the window closes."""

    error_logged = pyqtSignal(str)   # the first line of each ERROR record, for the status bar

    def __init__(self, parent=None, logger_name: str = "wm_studio"):
        super().__init__("Log", parent)
        self.setObjectName("log-dock")
        self.view = QPlainTextEdit(self)
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setFont(QFont("DejaVu Sans Mono", 9))
        self.view.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.setWidget(self.view)
        self.setAllowedAreas(Qt.BottomDockWidgetArea | Qt.RightDockWidgetArea)
        self.handler = QtLogHandler()
        self.handler.bridge.record.connect(self.append)
        self.logger = logging.getLogger(logger_name)
        if self.logger.level == logging.NOTSET or self.logger.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)

    @pyqtSlot(str, int, str)
    def append(self, text: str, level: int = logging.INFO, headline: str = ""):
        colour = next((c for lvl, c in sorted(_COLOURS.items(), reverse=True) if level >= lvl), None)
        body = html.escape(text).replace("\n", "<br>").replace("  ", "&nbsp; ")
        self.view.appendHtml(f'<span style="color:{colour}">{body}</span>' if colour else body)
        self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().maximum())
        if level >= logging.ERROR:
            self.error_logged.emit(headline or text)

    def text(self) -> str:
        return self.view.toPlainText()

    def detach(self):
        self.logger.removeHandler(self.handler)
