"""The studio's opened run: parts loaded off the GUI thread, plain words for what is missing, models that follow
the files on disk, recent runs, and what the studio opens at start."""
import threading

import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.gui import open_run as open_run_module
from wm_studio.gui.mailbox import MailboxThread
from wm_studio.gui.main_window import MainWindow
from wm_studio.gui.open_run import NO_RUN, OpenRun, recent_runs

from tiny_run import Z, make_run, save_mdn, save_vae

WAIT_MS = 20_000


@pytest.fixture
def opened(qtbot):
    runs = []

    def make(poll_ms=100):
        run = OpenRun(poll_ms=poll_ms)
        runs.append(run)
        return run
    yield make
    for run in runs:
        run.shutdown()


def open_and_wait(qtbot, run, path):
    with qtbot.waitSignal(run.changed, timeout=WAIT_MS, check_params_cb=lambda part: part == "run"):
        run.open(path)          # the first "run" (opening) comes at once; wait for the loaded one
    qtbot.waitUntil(lambda: run.contents is not None, timeout=WAIT_MS)


def test_opening_a_run_loads_every_part_off_the_gui_thread(qtbot, opened, tmp_path):
    folder = make_run(tmp_path / "run").root
    run = opened()
    threads = []
    original = open_run_module.load_part
    open_run_module.load_part = lambda contents, name: (threads.append(threading.current_thread()),
                                                        original(contents, name))[1]
    try:
        open_and_wait(qtbot, run, folder)
    finally:
        open_run_module.load_part = original
    assert threads and threading.main_thread() not in threads
    assert run.vae.z_size == Z and run.mdn.z_size == Z and run.controller.shape.z_size == Z
    assert run.latents.mu.shape == (36, Z) and len(run.rollouts) == 3
    assert run.missing("vae", "mdn", "controller", "latents", "rollouts") == ""
    assert "V z8, M 16 units, C on zh, 3 rollouts, 3 latent files" in run.describe()


def test_a_run_without_m_opens_what_it_can_and_says_what_is_missing(qtbot, opened, tmp_path):
    folder = make_run(tmp_path / "run", parts=("vae", "rollouts", "latents")).root
    run = opened()
    open_and_wait(qtbot, run, folder)
    assert run.vae is not None and run.mdn is None and run.controller is None
    assert run.missing("vae") == ""
    assert "M is missing (models/mdn.npz)" in run.missing("vae", "mdn")
    assert "train-mdn" in run.missing("mdn")


def test_a_broken_model_file_is_reported_and_the_rest_still_loads(qtbot, opened, tmp_path):
    folder = make_run(tmp_path / "run").root
    (folder / "models" / "mdn.npz").write_bytes(b"garbage")
    run = opened()
    open_and_wait(qtbot, run, folder)
    assert run.vae is not None and run.mdn is None
    assert "M cannot be read" in run.missing("mdn") and "corrupt" in run.missing("mdn")


def test_a_broken_model_file_is_logged_once_with_the_reason_the_command_line_gives(qtbot, opened, tmp_path,
                                                                                 caplog, capsys):
    from wm_studio.cli import main
    folder = make_run(tmp_path / "run").root
    (folder / "models" / "mdn.npz").write_bytes(b"garbage")
    with caplog.at_level("INFO", logger="wm_studio"):
        open_and_wait(qtbot, opened(), folder)
    reason = (f"{folder}/models/mdn.npz is corrupt: it is not an npz file (no zip archive). Delete it and run "
              f"`wm-studio train-mdn --run {folder}`")
    [logged] = [record.getMessage() for record in caplog.records if "mdn.npz" in record.getMessage()]
    assert reason in logged
    assert main(["dream", "--run", str(folder), "--out", str(tmp_path / "dream.gif")]) == 2
    assert reason in capsys.readouterr().err


def test_a_folder_that_is_no_run_is_refused_at_once(qtbot, opened, tmp_path):
    run = opened()
    (tmp_path / "holiday").mkdir()
    with pytest.raises(ConfigError, match="not a wm_studio run folder"):
        run.open(tmp_path / "holiday")
    assert run.path is None and run.missing("vae") == NO_RUN


def test_a_model_replaced_on_disk_is_reloaded_and_announced(qtbot, opened, tmp_path):
    made = make_run(tmp_path / "run")
    run = opened(poll_ms=100)
    open_and_wait(qtbot, run, made.root)
    old_vae, old_mdn = run.vae, run.mdn
    new = save_vae(made, seed=42)
    with qtbot.waitSignal(run.changed, timeout=WAIT_MS, check_params_cb=lambda part: part == "vae"):
        pass
    assert run.vae is not old_vae and run.mdn is old_mdn          # only what changed is loaded again
    np.testing.assert_array_equal(run.vae.dec_fc.W.array, new.dec_fc.W.array)
    np.testing.assert_array_equal(old_vae.dec_fc.W.array, make_run_vae_weights(tmp_path))  # the old one intact
    save_mdn(made, seed=7)
    with qtbot.waitSignal(run.changed, timeout=WAIT_MS, check_params_cb=lambda part: part == "mdn"):
        pass
    assert run.mdn is not old_mdn


def make_run_vae_weights(tmp_path):
    """dec_fc weights of the V a fresh make_run writes (seed 0)."""
    from wm_studio.core.models.vae import ConvVAE
    return ConvVAE(Z, seed=0).dec_fc.W.array


def test_a_model_that_appears_later_is_loaded(qtbot, opened, tmp_path):
    made = make_run(tmp_path / "run", parts=("vae",))
    run = opened(poll_ms=100)
    open_and_wait(qtbot, run, made.root)
    assert run.mdn is None
    save_mdn(made)
    with qtbot.waitSignal(run.changed, timeout=WAIT_MS, check_params_cb=lambda part: part == "mdn"):
        pass
    assert run.mdn is not None and run.missing("vae", "mdn") == ""


def test_recent_runs_are_remembered_newest_first(qtbot, opened, tmp_path):
    first, second = make_run(tmp_path / "a", parts=("vae",)).root, make_run(tmp_path / "b", parts=("vae",)).root
    run = opened()
    open_and_wait(qtbot, run, first)
    open_and_wait(qtbot, run, second)
    open_and_wait(qtbot, run, first)
    assert recent_runs() == [str(first.resolve()), str(second.resolve())]
    forgetful = opened()
    forgetful.remember = False
    open_and_wait(qtbot, forgetful, make_run(tmp_path / "c", parts=("vae",)).root)
    assert len(recent_runs()) == 2


def test_the_studio_starts_without_a_bundled_model_and_says_so(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(open_run_module, "DEFAULT_MODEL", tmp_path / "no_default_model")
    window = MainWindow(pane="latent", persistent=False)
    qtbot.addWidget(window)
    latent, dream = window.panes["latent"], window.panes["dream"]
    assert window.open_run.path is None
    assert "No model open: File > Open run" in latent.message.text()
    assert "No model open: File > Open run" in dream.message.text()
    qtbot.waitUntil(lambda: window.panes["evolution"].latest is not None, timeout=WAIT_MS)   # still works
    window.close()


def test_the_studio_opens_the_bundled_model_first_then_the_last_run(qtbot, tmp_path, monkeypatch):
    bundled = make_run(tmp_path / "default_model", parts=("vae",)).root
    monkeypatch.setattr(open_run_module, "DEFAULT_MODEL", bundled)
    window = MainWindow(pane="latent", persistent=True)
    qtbot.addWidget(window)
    assert window.open_run.path == bundled
    assert recent_runs() == []                       # the bundled model is not a "recent run"
    mine = make_run(tmp_path / "mine", parts=("vae",)).root
    assert window.open_run_folder(mine)
    window.close()
    again = MainWindow(pane="latent", persistent=True)
    qtbot.addWidget(again)
    assert again.open_run.path == mine
    again.close()
    explicit = MainWindow(pane="latent", persistent=False, run=bundled)
    qtbot.addWidget(explicit)
    assert explicit.open_run.path == bundled
    explicit.close()


def test_the_mailbox_serves_only_the_newest_request(qtbot):
    seen, release = [], threading.Event()

    def handler(request):
        seen.append(request)
        if request == 1:
            release.wait(10)
        return request * 10

    mailbox = MailboxThread("test", handler)
    results = []
    mailbox.done.connect(lambda request, result: results.append((request, result)))
    mailbox.post(1)
    qtbot.waitUntil(lambda: seen == [1], timeout=WAIT_MS)
    for request in range(2, 11):                     # arrive while 1 is being served
        mailbox.post(request)
    release.set()
    qtbot.waitUntil(lambda: mailbox.idle and results and results[-1] == (10, 100), timeout=WAIT_MS)
    assert seen == [1, 10]
    mailbox.shutdown()


def test_the_file_menu_opens_either_bundled_model(qtbot, tmp_path, monkeypatch):
    from wm_studio.core import runs
    car = make_run(tmp_path / "default_model", parts=("vae",)).root
    doom = make_run(tmp_path / "doom_model", parts=("vae",), game="doom").root
    monkeypatch.setitem(runs.BUNDLED_MODELS, "carracing", car)
    monkeypatch.setitem(runs.BUNDLED_MODELS, "doom", doom)
    window = MainWindow(pane="latent", persistent=True, open_at_start=False)
    qtbot.addWidget(window)
    actions = {action.text().replace("&", ""): action for action in window.menuBar().actions()[0].menu().actions()}
    actions["Open the bundled Doom model"].trigger()
    qtbot.waitUntil(lambda: window.open_run.contents is not None, timeout=WAIT_MS)
    assert window.open_run.path == doom and window.open_run.game == "doom"
    assert window.open_run.contents.name == str(doom) or "Doom" in window.open_run.contents.name
    actions["Open the bundled CarRacing model"].trigger()
    qtbot.waitUntil(lambda: window.open_run.path == car and window.open_run.contents is not None
                    and window.open_run.game == "carracing", timeout=WAIT_MS)
    assert recent_runs() == []                       # neither is a "recent run"
    window.close()
