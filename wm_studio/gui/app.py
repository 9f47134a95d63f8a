"""Starting the studio: the safety nets for errors, BLAS's threads, the main window (the QApplication itself is
wm_studio.gui.application's)."""
from __future__ import annotations

import logging
import os
import sys
import traceback

from PyQt5.QtWidgets import QApplication

from wm_studio.gui.application import make_application

log = logging.getLogger("wm_studio.gui")


def leave_a_core_for_the_window():
    """Numpy's BLAS gets one thread fewer than the cores this process may use (at least one) for as long as the
    studio is open. Training V or M on a thread of the studio otherwise runs its matrix products on every core,
    and the rest of the studio's numpy work queues behind them in OpenBLAS's shared pool (on 2 cores: a decode
    on a plain thread, p95 27 ms against 7.6; event-loop p99 19 ms against 15). The command line keeps every core.
    Call it before any thread uses BLAS. Returns threadpoolctl's limiter (restore_original_limits() undoes it)
    and a line for the log."""
    from threadpoolctl import threadpool_limits
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores - 1)
    limiter = threadpool_limits(limits=threads, user_api="blas")
    return limiter, f"numpy's BLAS on {threads} of {cores} cores while the studio is open (one left for the window)"


def install_excepthook() -> None:
    """An exception escaping a Qt slot is logged (the log dock and status bar show it) instead of aborting: PyQt5
    calls qFatal() for such exceptions unless sys.excepthook has been replaced."""
    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("Unexpected error: %s: %s\n%s", exc_type.__name__, exc,
                  "".join(traceback.format_exception(exc_type, exc, tb)).rstrip())

    sys.excepthook = hook


def run_studio(args) -> int:
    """`wm-studio gui`: open the window; with --screenshot, run the pane, save the PNG and exit."""
    from wm_studio.gui.main_window import MainWindow

    app = QApplication.instance() or make_application()
    to_terminal = logging.StreamHandler()
    to_terminal.setLevel(logging.WARNING)  # the log dock shows everything; the terminal only what is wrong
    to_terminal.setFormatter(logging.Formatter("wm-studio: %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("wm_studio").addHandler(to_terminal)
    install_excepthook()
    _, blas_note = leave_a_core_for_the_window()   # before the window's threads start
    window = MainWindow(pane=args.pane, persistent=args.screenshot is None, run=getattr(args, "run", None))
    log.info("%s", blas_note)   # now the log dock is there to show it
    window.show()
    if args.screenshot is not None:
        window.capture_when_ready(args.screenshot, args.generations)
        app.exec_()
        if window.screenshot_result == 0:
            print(f"wm-studio: saved {args.screenshot} ({window.width()}x{window.height()})")
        return 1 if window.screenshot_result is None else window.screenshot_result
    if args.generations:
        window.current_pane().prepare_view(args.generations)
    return app.exec_()
