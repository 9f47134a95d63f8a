"""What the window says about itself (issue 12): its title names the studio once, the About box keeps an install
command on one line, and each pane's export dialogs say what they export."""
import pytest
from PyQt5.QtGui import QTextDocument
from PyQt5.QtWidgets import QApplication

from wm_studio.gui import main_window as main_window_module
from wm_studio.gui.main_window import MainWindow
from wm_studio.gui.panes import base
from wm_studio.gui.settings import APPLICATION_NAME

from tiny_run import make_run

WAIT_MS = 30_000


@pytest.fixture
def window(qtbot):
    window = MainWindow(pane="latent", persistent=False, open_at_start=False)
    qtbot.addWidget(window)
    yield window
    window.close()


def as_the_platform_shows_it(title: str) -> str:
    """What X11, Wayland and Windows show: Qt appends " — <display name>" unless the title ends with it."""
    display = QApplication.applicationDisplayName()
    return title if title.endswith(display) else f"{title} \u2014 {display}"


def test_the_window_title_names_the_run_and_the_studio_once(qtbot, window, tmp_path):
    app = QApplication.instance()
    before = app.applicationDisplayName()
    app.setApplicationDisplayName(APPLICATION_NAME)      # what make_application sets
    try:
        assert as_the_platform_shows_it(window.windowTitle()) == "World Models Studio"
        window.open_run.open(make_run(tmp_path / "default_model", parts=("vae",)).root)
        shown = as_the_platform_shows_it(window.windowTitle())
        assert shown == "default_model \u2014 World Models Studio"
        assert shown.count("World Models Studio") == 1
    finally:
        app.setApplicationDisplayName(before)


def command_lines(html: str, command: str, width: float) -> set[int]:
    """The lines (of its block) over which `command` runs when `html` is laid out `width` pixels wide."""
    document = QTextDocument()
    document.setHtml(html)
    document.setTextWidth(width)
    document.size()                                       # lays it out
    block = document.begin()
    while block.isValid():
        start = block.text().find(command)
        if start >= 0:
            layout = block.layout()
            return {layout.lineForTextPosition(position).lineNumber()
                    for position in range(start, start + len(command))}
        block = block.next()
    raise AssertionError(f"{command!r} is not in the About box")


@pytest.mark.parametrize("width", [180, 240, 320, 600])
def test_the_about_box_never_breaks_an_install_command(window, monkeypatch, width):
    from wm_studio import info
    command = 'pip install -e ".[gpu]"'
    monkeypatch.setattr(info, "versions", lambda: {
        "wm_studio": "0.1.0", "GPU": f"none (CuPy is not installed ({command}))", "Qt": "Qt 5.15"})
    html = window.about_html()
    assert len(command_lines(html, command, width)) == 1


def test_each_panes_export_dialogs_say_what_they_export(window, monkeypatch):
    """Issue 12: every pane's dialog was titled "Export the recorded run"."""
    captions = []
    monkeypatch.setattr(base.QFileDialog, "getSaveFileName",
                        lambda parent, caption, start, filter_: (captions.append(caption), ("", ""))[1])
    subjects = {}
    for name, pane in window.panes.items():
        monkeypatch.setattr(pane, "can_export_animation", lambda: True)
        captions.clear()
        pane.save_png_dialog()
        pane.export_animation_dialog(".gif")
        pane.export_animation_dialog(".mp4")
        png, gif, mp4 = captions
        assert png == f"{pane.title}: save a PNG of {pane.png_subject}"
        assert gif == f"{pane.title}: export {pane.export_subject} as a GIF"
        assert mp4 == f"{pane.title}: export {pane.export_subject} as an MP4"
        if name != "training":                       # the one pane that records nothing to animate
            subjects[name] = pane.export_subject
    assert subjects["dream"] == "this episode" and subjects["latent"] == "the sweep from A to B"
    assert subjects["controller"] == "the episode so far"
    assert len(set(subjects.values())) == len(subjects) and "the recorded run" not in subjects.values()


def test_keep_commands_whole_wraps_only_the_command():
    text = main_window_module.keep_commands_whole('none (CuPy is not installed (pip install -e &quot;.[gpu]&quot;))')
    assert text == ("none (CuPy is not installed)<p style='white-space:pre; margin:0; font-family:monospace'>"
                    "pip install -e &quot;.[gpu]&quot;</p>")
    assert main_window_module.keep_commands_whole("1.26.4") == "1.26.4"
