"""The studio's persistent settings (QSettings, INI format on every platform).

The organisation and application names come from the QApplication (app.py sets "wm-studio"); tests point
QSettings at a scratch folder with QSettings.setPath and never touch the user's own file.
"""
from __future__ import annotations

from PyQt5.QtCore import QCoreApplication, QSettings

ORGANIZATION = "wm-studio"
APPLICATION = "wm-studio"
APPLICATION_NAME = "World Models Studio"     # what people read: window titles, the About box


def studio_settings() -> QSettings:
    organization = QCoreApplication.organizationName() or ORGANIZATION
    application = QCoreApplication.applicationName() or APPLICATION
    return QSettings(QSettings.IniFormat, QSettings.UserScope, organization, application)


def read(settings: QSettings, key: str, default, kind=None):
    """settings.value with a type and a fallback: a value that cannot be converted gives the default."""
    kind = kind or type(default)
    value = settings.value(key, default)
    try:
        if kind is bool and isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return default
