"""The run the studio has open: its folder, what it holds, and CPU copies of V, M and C that follow the files.

    run = OpenRun(parent)                 # MainWindow makes one (window.open_run) before its panes
    run.changed.connect(pane.on_run_changed)   # "run": another folder (or none); or a part: "vae", "mdn", ...
    run.open(path)                        # ConfigError at once if it is no run folder; the rest loads off the
                                          # GUI thread, then changed("run")
    run.vae, run.mdn, run.controller      # ConvVAE, MDNRNN, Controller on the CPU, or None
    run.latents, run.rollouts             # LatentSample (a bounded sample) or None; list of rollout files
    run.missing("vae", "mdn")             # '' when the pane can work, else what is missing, in plain words

Loading runs on a MailboxThread; every ~1.5 s a QTimer compares the size, inode and mtime of models/*.npz and
of the data folders with what was loaded (the training stages rewrite models/<stage>.npz with every checkpoint),
reloads what changed and emits changed(part), so a pane shows the newest V, M or C without a restart. Models
handed out are never modified afterwards: a reload makes new objects. They are used for inference only, which
is safe from several threads at once (Chainer's configuration is per thread).

Recent runs are kept in QSettings ("runs/recent", newest first).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from wm_studio.core.errors import WmStudioError
from wm_studio.core.run_contents import (DEFAULT_MODEL, PARTS, RELATIVE, LatentSample, RunContents,
                                         inspect_run, load_part, looks_like_run)
from wm_studio.core.runs import BUNDLED_MODELS
from wm_studio.gui.mailbox import MailboxThread
from wm_studio.gui.settings import studio_settings

log = logging.getLogger(__name__)

POLL_MS = 1500
RECENT_KEY = "runs/recent"
MAX_RECENT = 8
NO_RUN = "No model open: File > Open run…, or train one."


@dataclass(frozen=True)
class _Load:
    generation: int         # which open() it belongs to
    root: Path
    parts: frozenset        # parts to (re)load
    opening: bool           # a new folder: announce changed("run") rather than each part


@dataclass
class _Loaded:
    contents: RunContents | None
    objects: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, Any] = field(default_factory=dict)
    error: str = ""         # the folder itself could not be read


def file_stamps(root: Path, parts=PARTS) -> dict[str, Any]:
    """What tells that a part changed on disk: (inode, size, mtime) of a model file or data folder, or None."""
    stamps = {}
    for name in parts:
        try:
            stat = os.stat(root / RELATIVE[name])
            stamps[name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            stamps[name] = None
    return stamps


def _merge(older: _Load, newer: _Load) -> _Load:
    if older.generation != newer.generation:
        return newer
    return _Load(newer.generation, newer.root, older.parts | newer.parts, older.opening or newer.opening)


def _load(request: _Load) -> _Loaded:
    """On the loader thread: inspect the folder, then load each requested part on its own."""
    stamps = file_stamps(request.root)      # before reading: a change during the load is seen by the next poll
    try:
        contents = inspect_run(request.root)
    except WmStudioError as exc:
        return _Loaded(None, stamps=stamps, error=str(exc))
    loaded = _Loaded(contents, stamps=stamps)
    for name in PARTS:
        if name not in request.parts:
            continue
        part = contents.parts[name]
        if part.state in ("missing", "broken"):   # said once, by _on_loaded, from part.message
            loaded.objects[name] = None
            continue
        try:
            loaded.objects[name] = load_part(contents, name)
        except WmStudioError as exc:
            loaded.objects[name] = None
            loaded.errors[name] = str(exc)
            log.error("%s: %s", part.path, exc)
    return loaded


class OpenRun(QObject):
    changed = pyqtSignal(str)    # "run" (another folder opened, or closed) or the part whose object was replaced
    failed = pyqtSignal(str)     # the folder could not be opened

    def __init__(self, parent: QObject | None = None, poll_ms: int = POLL_MS, remember: bool = True):
        super().__init__(parent)
        self.remember = remember              # keep opened folders in the recent list (not for screenshots)
        self.path: Path | None = None
        self.contents: RunContents | None = None
        self.loading = False
        self._objects: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._generation = 0
        self._requested: dict[str, Any] = {}  # the stamps of what was last asked for, per part
        self._loader = MailboxThread("run loader", _load, self, merge=_merge, newest_only=False)
        self._loader.done.connect(self._on_loaded)
        self._loader.failed.connect(lambda request, message: self._on_loaded(request, _Loaded(None, error=message)))
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(int(poll_ms))

    # --- what is open ---------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.path is not None

    @property
    def vae(self):
        return self._objects.get("vae")

    @property
    def mdn(self):
        return self._objects.get("mdn")

    @property
    def controller(self):
        """The Controller (its meta is controller_meta)."""
        loaded = self._objects.get("controller")
        return None if loaded is None else loaded[0]

    @property
    def controller_meta(self) -> dict:
        loaded = self._objects.get("controller")
        return {} if loaded is None else dict(loaded[1])

    @property
    def latents(self) -> LatentSample | None:
        return self._objects.get("latents")

    @property
    def rollouts(self) -> list[Path]:
        return list(self._objects.get("rollouts") or [])

    @property
    def game(self) -> str:
        return self.contents.game if self.contents is not None else "carracing"

    def missing(self, *parts: str) -> str:
        """'' when every named part is loaded and usable together; else what is missing, in plain words."""
        if self.path is None:
            return NO_RUN
        if self.contents is None:
            return f"Opening {self.path}…" if self.loading else NO_RUN
        sentences = []
        for name in parts:
            part = self.contents.parts[name]
            if not part.usable:
                sentences.append(part.message)
            elif name in self._errors:
                sentences.append(f"{part.path.relative_to(self.contents.root)} cannot be loaded: "
                                 f"{self._errors[name]}")
            elif self._objects.get(name) is None and name in self._objects:
                sentences.append(f"{RELATIVE[name]} could not be loaded")
            elif name not in self._objects:
                sentences.append(f"{RELATIVE[name]} is still loading…")
        return " ".join(sentences)

    def describe(self) -> str:
        """One line for a pane's header: the folder and what it holds."""
        if self.contents is None:
            return NO_RUN if self.path is None else f"Opening {self.path}…"
        return f"{self.contents.name}: {self.contents.summary()}"

    # --- opening ----------------------------------------------------------------------------------------------------
    def open(self, path) -> None:
        """Open a run folder: ConfigError now if it is none; the parts load on the loader thread, then
        changed("run"). Anything missing or broken is said by missing() and contents.problems()."""
        root = Path(path).expanduser()
        if not looks_like_run(root):
            inspect_run(root)  # raises the ConfigError that says why
        self._generation += 1
        self.path = root
        self.contents = None
        self._objects, self._errors = {}, {}
        self.loading = True
        self._requested = file_stamps(root)
        self._loader.post(_Load(self._generation, root, frozenset(PARTS), opening=True))
        shipped = {DEFAULT_MODEL.resolve(), *(model.resolve() for model in BUNDLED_MODELS.values())}
        if self.remember and root.resolve() not in shipped:
            remember_run(root)
        self.changed.emit("run")

    def open_default(self, game: str = "carracing") -> bool:
        """Open the game's bundled model (resources/default_model, resources/doom_model) if the checkout has it."""
        model = BUNDLED_MODELS[game]
        if not looks_like_run(model):
            return False
        self.open(model)
        return True

    def open_at_start(self, path=None, restore: bool = True) -> None:
        """What the studio opens when it starts: `path` (--run), else the last run (restore), else the bundled
        model; problems are logged, never raised."""
        candidates = [path] if path is not None else []
        if path is None and restore:
            candidates += recent_runs()[:1]
        candidates.append(DEFAULT_MODEL)
        for candidate in candidates:
            try:
                if candidate == DEFAULT_MODEL and not looks_like_run(DEFAULT_MODEL):
                    log.info("No bundled model in %s: open a run folder with File > Open run", DEFAULT_MODEL)
                    return
                self.open(candidate)
                return
            except WmStudioError as exc:
                log.error("Could not open %s: %s", candidate, exc)
                if candidate == path:
                    return

    def close(self) -> None:
        self._generation += 1
        self.path, self.contents = None, None
        self._objects, self._errors, self._requested = {}, {}, {}
        self.loading = False
        self.changed.emit("run")

    def reload(self, *parts: str) -> None:
        """Load the named parts (all by default) again, whether or not they changed."""
        if self.path is None:
            return
        names = frozenset(parts or PARTS)
        self._requested.update(file_stamps(self.path, names))
        self._loader.post(_Load(self._generation, self.path, names, opening=False))

    def poll(self) -> None:
        """Reload whatever changed on disk since it was last asked for (the timer calls this)."""
        if self.path is None:
            return
        stamps = file_stamps(self.path)
        changed = frozenset(name for name in PARTS if stamps[name] != self._requested.get(name))
        if changed:
            self._requested.update({name: stamps[name] for name in changed})
            self._loader.post(_Load(self._generation, self.path, changed, opening=False))

    @property
    def idle(self) -> bool:
        """Nothing being loaded or waiting to be announced."""
        return not self.loading and self._loader.idle

    def is_alive(self) -> bool:
        """Whether its loader thread still runs (until shutdown())."""
        return self._loader.is_alive()

    def shutdown(self) -> None:
        self._timer.stop()
        self._loader.shutdown()

    # --- results, on the GUI thread ---------------------------------------------------------------------------------
    def _on_loaded(self, request: _Load, loaded: _Loaded) -> None:
        if request.generation != self._generation:
            return   # a folder opened (or closed) since
        if loaded.contents is None:
            self.loading = False
            log.error("Could not open %s: %s", request.root, loaded.error)
            self.failed.emit(loaded.error)
            self.changed.emit("run")
            return
        self.contents = loaded.contents
        for name in request.parts:
            self._objects[name] = loaded.objects.get(name)
            if name in loaded.errors:
                self._errors[name] = loaded.errors[name]
            else:
                self._errors.pop(name, None)
        if request.opening:
            self.loading = False
            for problem in loaded.contents.problems():
                log.warning("%s: %s", loaded.contents.name, problem)
            log.info("Opened %s (%s)", loaded.contents.name, loaded.contents.summary())
            self.changed.emit("run")
            return
        for name in PARTS:
            if name in request.parts:
                part = loaded.contents.parts[name]
                if part.state == "broken":
                    log.warning("%s: %s", loaded.contents.name, part.message)
                else:
                    log.info("%s changed on disk: reloaded", RELATIVE[name])
                self.changed.emit(name)


# --- recent runs ----------------------------------------------------------------------------------------------------
def recent_runs() -> list[str]:
    """Run folders opened before, newest first (only those that still exist)."""
    value = studio_settings().value(RECENT_KEY, [])
    if isinstance(value, str):
        value = [value]
    return [path for path in (value or []) if looks_like_run(path)]


def remember_run(path) -> None:
    path = str(Path(path).resolve())
    settings = studio_settings()
    value = settings.value(RECENT_KEY, [])
    value = [value] if isinstance(value, str) else list(value or [])
    settings.setValue(RECENT_KEY, [path] + [p for p in value if p != path][:MAX_RECENT - 1])
    settings.sync()
