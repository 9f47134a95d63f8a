"""The settings of one stage as a form: a widget per field of the stage table (wm_studio.core.stages), read as
the values config.json takes."""
from __future__ import annotations

from typing import Any, Mapping

from PyQt5.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from wm_studio.core.stages import Field, Stage


class StageForm(QWidget):
    def __init__(self, stage: Stage, parent=None):
        super().__init__(parent)
        self.stage = stage
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.widgets: dict[str, QWidget] = {}
        for field in stage.fields:
            widget = field_widget(field)
            widget.setToolTip(field.tip)
            form.addRow(field.label, widget)
            self.widgets[field.key] = widget

    def fill(self, section: Mapping[str, Any]) -> None:
        """Show the values of the stage's config.json section (a field it lacks keeps its value)."""
        for field in self.stage.fields:
            self.set_value(field.key, section.get(field.key))

    def set_value(self, key: str, value) -> None:
        field = next(f for f in self.stage.fields if f.key == key)
        widget = self.widgets[key]
        if value is None and field.kind != "optional-int":
            return
        if field.kind in ("int", "optional-int"):
            widget.setValue(int(value or 0))
        elif field.kind == "float":
            widget.setValue(float(value))
        elif field.kind == "bool":
            widget.setChecked(bool(value))
        else:
            index = widget.findData(value)
            if index >= 0:
                widget.setCurrentIndex(index)

    def values(self) -> dict[str, Any]:
        return {field.key: field_value(field, self.widgets[field.key]) for field in self.stage.fields}

    def set_editable(self, editable: bool) -> None:
        for widget in self.widgets.values():
            widget.setEnabled(editable)


def field_widget(field: Field) -> QWidget:
    if field.kind in ("int", "optional-int"):
        widget = QSpinBox()
        widget.setRange(int(field.low), int(min(field.high, 2 ** 31 - 1)))
        if field.kind == "optional-int":
            widget.setSpecialValueText("full episode")
        return widget
    if field.kind == "float":
        widget = QDoubleSpinBox()
        widget.setDecimals(7)
        widget.setRange(field.low, field.high)
        widget.setSingleStep(field.low * 10)
        return widget
    if field.kind == "bool":
        return QCheckBox()
    widget = QComboBox()
    for choice in field.choices:
        widget.addItem(choice, choice)
    return widget


def field_value(field: Field, widget: QWidget):
    if field.kind == "int":
        return widget.value()
    if field.kind == "optional-int":
        return widget.value() or None     # 0: the full episode
    if field.kind == "float":
        return float(widget.value())
    if field.kind == "bool":
        return widget.isChecked()
    return widget.currentData()
