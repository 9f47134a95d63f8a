"""What a test may not leave running: studio threads and child processes here; tests/gui/conftest.py adds
QThreads and active QTimers. tests/conftest.py checks after every test."""
import threading

import psutil

# Each check returns {key: description} of what runs now.
LEAK_CHECKS = []


def _our_threads() -> dict:
    found = {}
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)
        module = getattr(target, "__module__", "") or ""
        if thread.name.startswith("wm-studio") or module.startswith("wm_studio"):
            found[("thread", thread.ident)] = f"thread {thread.name!r}"
    return found


def _child_processes() -> dict:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
            key = ("process", child.pid, child.create_time())
        except psutil.Error:   # it ended meanwhile
            continue
        if "resource_tracker" in command:   # multiprocessing's, one per session
            continue
        found[key] = f"child process {child.pid} ({command[:120]})"
    return found


LEAK_CHECKS += [_our_threads, _child_processes]


def running_now() -> dict:
    found = {}
    for check in LEAK_CHECKS:
        found.update(check())
    return found
