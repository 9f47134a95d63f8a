"""A pane used on its own, outside the main window (as tests and scripts do)."""
import pytest

from wm_studio.gui.main_window import PANE_TYPES


@pytest.mark.parametrize("pane_type", [t for t in PANE_TYPES if t.name != "evolution"], ids=lambda t: t.name)
def test_a_pane_on_its_own_ends_its_own_run_when_it_shuts_down(qtbot, pane_type):
    pane = pane_type()
    qtbot.addWidget(pane)
    assert pane._own_run and pane.open_run.is_alive()
    pane.shutdown()
    assert not pane.open_run.is_alive()
