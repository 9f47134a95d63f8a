"""MP4 export from the Evolution and Dream panes while V trains on the Training pane's thread: every export
finishes and reads back. (Before ffmpeg was started without fork(), an export beside V's matrix products could
wait for ever in OpenBLAS's fork handler: the window froze for good.)"""
import pytest

from wm_studio.core.export import read_animation
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.panes.dream import DreamPane
from wm_studio.gui.panes.evolution import EvolutionPane
from wm_studio.gui.panes.training import TrainingPane

from tiny_run import make_run

WAIT_MS = 120_000
EXPORTS = 10


@pytest.fixture
def training(qtbot, tmp_path):
    """A Training pane training V (for far longer than the test) on the studio's training thread."""
    open_run = OpenRun(None, poll_ms=200, remember=False)
    pane = TrainingPane(open_run=open_run)
    pane.backend = "serial"
    qtbot.addWidget(pane)
    run = make_run(tmp_path / "train", parts=("rollouts",), rollouts=3, steps=24)
    with qtbot.waitSignal(pane.histories_loaded, timeout=WAIT_MS):
        open_run.open(run.root)
        qtbot.waitUntil(lambda: open_run.contents is not None, timeout=WAIT_MS)
    pane.select_stage("vae")
    pane.set_field("vae", "epochs", 10_000)
    pane.set_field("vae", "batch_size", 8)
    assert pane.start("vae")
    qtbot.waitUntil(lambda: pane.snapshot_count >= 2, timeout=WAIT_MS)     # V's batches are under way
    yield pane
    pane.shutdown()
    open_run.shutdown()


def exports_while_training(qtbot, training, export):
    """Export EXPORTS times; V must have trained meanwhile and be training still."""
    batches = training.snapshot_count
    for index in range(EXPORTS):
        export(index)
    qtbot.waitUntil(lambda: training.snapshot_count > batches, timeout=WAIT_MS)
    assert training.worker.busy and training.active is not None and training.active.key == "vae"


def test_evolution_exports_mp4_while_v_trains(qtbot, training, tmp_path):
    pane = EvolutionPane()
    qtbot.addWidget(pane)
    pane.resize(900, 600)
    pane.show()
    try:
        qtbot.waitUntil(lambda: pane.drawn_snapshot is not None, timeout=WAIT_MS)
        pane.step()
        qtbot.waitUntil(lambda: len(pane.store) == 2, timeout=WAIT_MS)
        pane.size_box.setCurrentText("640 × 360")

        def export(index):
            frames = read_animation(pane.export_animation(tmp_path / f"evolution{index}.mp4"))
            assert len(frames) == 2 and frames[0].shape == (360, 640, 3)

        exports_while_training(qtbot, training, export)
    finally:
        pane.shutdown()


def test_the_dream_exports_mp4_while_v_trains(qtbot, training, tmp_path):
    pane = DreamPane()
    qtbot.addWidget(pane)
    pane.resize(1200, 760)
    pane.show()
    try:
        pane.open_run.open(make_run(tmp_path / "dream").root)
        qtbot.waitUntil(lambda: pane.drawn_frame is not None and not pane.worker.busy, timeout=WAIT_MS)
        made = pane.frames_made
        pane.worker.step(3)
        qtbot.waitUntil(lambda: pane.frames_made == made + 3 and pane.drawn_frame is pane.latest,
                        timeout=WAIT_MS)
        pane.size_box.setCurrentIndex(pane.size_box.findData(128))

        def export(index):
            frames = read_animation(pane.export_animation(tmp_path / f"dream{index}.mp4"))
            assert len(frames) == 4 and frames[0].shape == (128, 128, 3)

        exports_while_training(qtbot, training, export)
    finally:
        pane.shutdown()
