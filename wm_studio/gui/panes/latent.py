"""The Latent pane: what V learned. Sliders for every latent dimension re-decode the picture as you drag.

- Sliders (range -3 to 3) for every dimension of z, ordered by mean KL over the run's latents (the most
  informative first; the order and score are shown on each row).
- A real frame (random, or picked from a rollout) beside its reconstruction; the sliders jump to its z. Reset
  goes back to the encoded z, Randomize draws z ~ N(0, I).
- A 2-D map of the data's latents on their first two principal components: a click decodes that point.
- Interpolation between two latents A and B with a slider t, exported as GIF or MP4.

Decoding never runs on the GUI thread: every change posts the whole z to a MailboxThread, which takes only the
newest z and has it decoded by a CPU copy of the open run's V in a child process with one BLAS thread
(DecoderProcess: a training thread in the studio would otherwise hold up every decode for OpenBLAS's shared
thread pool and the GIL); the image goes straight into the ImageItem.
"""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider,
                             QSpinBox, QVBoxLayout, QWidget)

from wm_studio.core.data.dataset import array_shape
from wm_studio.core.envs.dream import decode_frames
from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.export import Progress, write_animation
from wm_studio.core.latent_analysis import dimension_order, pca_map
from wm_studio.core.run_contents import load_frames
from wm_studio.core.train.encode import encode_frames
from wm_studio.gui.decoder_process import DecoderProcess
from wm_studio.gui.mailbox import MailboxThread
from wm_studio.gui.open_run import OpenRun
from wm_studio.gui.panes.base import Pane
from wm_studio.gui.settings import read
from wm_studio.gui.views.frame_view import FrameView
from wm_studio.gui.views.grab import grab_frame
from wm_studio.gui.views.latent_map import LatentMap
from wm_studio.gui.views.latent_sliders import LatentSliders

log = logging.getLogger(__name__)

EXPORT_SIZES = (64, 128, 256, 512)
FRAME_CACHE = 4             # rollout files kept in memory
LATENCY_HISTORY = 2000


def encode_one(vae, frame: np.ndarray) -> np.ndarray:
    """mu (z,) of one uint8 frame."""
    return encode_frames(vae, frame[None], np, 1)[0][0]


def upscale(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, 64, 64, 3) -> (N, size, size, 3), each pixel repeated (crisp, as on screen)."""
    factor = max(1, size // frames.shape[1])
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


class LatentPane(Pane):
    name = "latent"
    title = "Latent (V)"
    image_shown = pyqtSignal(int)     # the id of the request whose image just went into the ImageItem

    def __init__(self, parent=None, open_run: OpenRun | None = None, seed: int = 0):
        super().__init__(parent)
        self._use_open_run(open_run, parent)
        self.rng = np.random.default_rng(seed)
        self.vae = None
        self.z = np.zeros(0, np.float32)            # what the sliders say (the truth; sliders clamp at +-3)
        self.encoded: np.ndarray | None = None      # mu of the real frame on show
        self.original: np.ndarray | None = None     # that frame
        self.source = ""                            # where the current z came from
        self.edited: dict[int, float] = {}          # dimensions moved by hand since (dim -> value, last moved last)
        self.pca = None
        self.points: dict[str, tuple[np.ndarray, str] | None] = {"A": None, "B": None}
        self.request_id = 0
        self.shown_id = 0
        self.change_times: dict[int, float] = {}    # request id -> perf_counter() of the change that made it
        self.latencies: collections.deque = collections.deque(maxlen=LATENCY_HISTORY)   # seconds
        self._frames_cache: collections.OrderedDict = collections.OrderedDict()
        self._view_target: int | None = None
        self.decoder_process = DecoderProcess()
        self.decoder = MailboxThread("latent decoder", self._decode, self)
        self.decoder.done.connect(self._show_decoded)
        self.decoder.failed.connect(lambda _, message: self.status.emit(f"Decoding failed: {message}"))

        self._build_message_page(self._build_content())
        self.header.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._add_shortcuts()
        self._follow_open_run()

    # --- building ---------------------------------------------------------------------------------------------
    def _build_content(self) -> QWidget:
        content, row = self._panel(QHBoxLayout)

        left = QGroupBox("Latent dimensions")
        column = QVBoxLayout(left)
        self.sliders = LatentSliders()
        self.sliders.value_changed.connect(self.set_dimension)
        column.addWidget(self.sliders, 1)
        buttons = QHBoxLayout()
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the encoded z of the real frame (R)")
        self.randomize_button = QPushButton("Randomize")
        self.randomize_button.setToolTip("Draw z ~ N(0, I), the prior V was trained towards (Z)")
        self.zero_button = QPushButton("Zero")
        self.zero_button.setToolTip("z = 0, the prior's mean (0)")
        for button in (self.reset_button, self.randomize_button, self.zero_button):
            buttons.addWidget(button)
        column.addLayout(buttons)
        left.setFixedWidth(330)
        row.addWidget(left)

        middle = QVBoxLayout()
        images = QHBoxLayout()
        self.original_view = FrameView("real frame")
        self.decoded_view = FrameView("V's decoding of z")
        for view in (self.original_view, self.decoded_view):
            view.setMinimumSize(240, 260)
            images.addWidget(view)
        middle.addLayout(images, 1)
        frame_row = QHBoxLayout()
        self.random_button = QPushButton("Random real frame")
        self.random_button.setToolTip("Encode a random frame of the run's rollouts; the sliders jump to its z (F)")
        self.rollout_spin = QSpinBox()
        self.rollout_spin.setPrefix("rollout ")
        self.rollout_spin.setToolTip("Which rollout of data/rollouts (in name order)")
        self.step_spin = QSpinBox()
        self.step_spin.setPrefix("step ")
        self.step_spin.setToolTip("Which frame of that rollout")
        self.show_button = QPushButton("Show")
        self.show_button.setToolTip("Encode that frame")
        for widget in (self.random_button, self.rollout_spin, self.step_spin, self.show_button):
            frame_row.addWidget(widget)
        frame_row.addStretch(1)
        middle.addLayout(frame_row)
        middle.addWidget(self._build_interpolation())
        row.addLayout(middle, 3)

        self.map = LatentMap()
        self.map.setMinimumWidth(300)
        self.map.clicked.connect(self.decode_map_point)
        row.addWidget(self.map, 2)
        self.views = content

        self.reset_button.clicked.connect(self.reset_to_encoded)
        self.randomize_button.clicked.connect(self.randomize)
        self.zero_button.clicked.connect(lambda: self.set_z(np.zeros_like(self.z), "z = 0"))
        self.random_button.clicked.connect(self.random_real_frame)
        self.show_button.clicked.connect(lambda: self.show_real_frame(self.rollout_spin.value() - 1,
                                                                      self.step_spin.value()))
        self.rollout_spin.valueChanged.connect(self._update_step_range)
        return content

    def _build_interpolation(self) -> QGroupBox:
        box = QGroupBox("Interpolate between two latents")
        form = QFormLayout(box)
        ends = QHBoxLayout()
        self.set_a_button = QPushButton("A ← current z")
        self.set_a_button.setToolTip("Remember the current z as the start A (A)")
        self.set_b_button = QPushButton("B ← current z")
        self.set_b_button.setToolTip("Remember the current z as the end B (B)")
        self.ends_label = QLabel("A: –   B: –")
        self.ends_label.setWordWrap(True)
        ends.addWidget(self.set_a_button)
        ends.addWidget(self.set_b_button)
        ends.addWidget(self.ends_label, 1)
        form.addRow(ends)
        t_row = QHBoxLayout()
        self.t_slider = QSlider(Qt.Horizontal)
        self.t_slider.setRange(0, 1000)
        self.t_slider.setToolTip("z = (1 - t) A + t B")
        self.t_label = QLabel("t = 0.00")
        t_row.addWidget(self.t_slider, 1)
        t_row.addWidget(self.t_label)
        form.addRow("t", t_row)
        export = QHBoxLayout()
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(2, 600)
        self.frames_spin.setValue(48)
        self.frames_spin.setSuffix(" frames")
        buttons = self._build_export_controls(
            "the sweep from A to B", {f"{size} × {size}": size for size in EXPORT_SIZES}, fps=24, size="256 × 256",
            view="the pane's views")
        for widget in (self.frames_spin, self.fps_spin, self.size_box):
            export.addWidget(widget)
        export.addLayout(buttons)
        form.addRow("Export", export)
        self.set_a_button.clicked.connect(lambda: self.set_end("A"))
        self.set_b_button.clicked.connect(lambda: self.set_end("B"))
        self.t_slider.valueChanged.connect(self._t_moved)
        box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
        self._update_interpolation_controls()
        return box

    def _add_shortcuts(self):
        keys = ((Qt.Key_F, self.random_real_frame), (Qt.Key_R, self.reset_to_encoded), (Qt.Key_Z, self.randomize),
                (Qt.Key_0, lambda: self.set_z(np.zeros_like(self.z), "z = 0")),
                (Qt.Key_A, lambda: self.set_end("A")), (Qt.Key_B, lambda: self.set_end("B")))
        self._bind_keys(keys)

    def shortcuts(self) -> list[tuple[str, str]]:
        return [("F", "a random real frame and its z"), ("R", "reset z to the encoded frame"),
                ("Z", "randomize z ~ N(0, I)"), ("0", "z = 0"), ("A / B", "remember z as interpolation end A / B"),
                ("Click on the map", "decode the latent there")]

    # --- the open run ---------------------------------------------------------------------------------------------
    def on_run_changed(self, part: str) -> None:
        if part in ("run", "vae"):
            self._take_vae(new_run=part == "run")
        if part in ("run", "vae", "latents"):
            self._take_latents()
        if part in ("run", "rollouts"):
            self._take_rollouts()
        self._update_header()
        if part in ("run", "vae") and self.vae is not None:
            if self.original is not None and (self.encoded is None or np.array_equal(self.z, self.encoded)):
                # the sliders still show the frame's encoding: follow it into the new V
                self.encoded = encode_one(self.vae, self.original)
                self.set_z(self.encoded, self.source)
            else:
                self.request_decode()
        self._continue_view()

    def _take_vae(self, new_run: bool) -> None:
        missing = self.open_run.missing("vae")
        vae = None if missing else self.open_run.vae
        if vae is None:
            self.vae = None
            problems = self.open_run.contents.problems() if self.open_run.contents is not None else []
            extra = "".join(f"<li>{p}</li>" for p in problems if p not in missing)
            self.message.setText(f"<p><b>The Latent pane shows V, the VAE.</b></p><p>{missing}</p>"
                                 + (f"<ul style='text-align:left'>{extra}</ul>" if extra else ""))
            self.stack.setCurrentIndex(0)
            return
        fresh = new_run or self.vae is None or vae.z_size != self.vae.z_size
        self.vae = vae
        self.stack.setCurrentIndex(1)
        if fresh:       # another run (or another z size): nothing of the last one's frames or latents applies
            self.z = np.zeros(vae.z_size, np.float32)
            self.encoded, self.original, self.source = None, None, "z = 0"
            self.edited = {}
            self.points = {"A": None, "B": None}
            self.original_view.clear_frame()
            self.original_view.set_caption("no real frame yet: press F")
            self._update_interpolation_controls()

    def _take_latents(self) -> None:
        if self.vae is None:
            return
        latents = self.open_run.latents
        usable = latents is not None and latents.mu.shape[1] == self.vae.z_size and len(latents.mu) >= 2
        if usable:
            order, scores, what = dimension_order(latents.mu, latents.logvar)
            frames = len(latents.mu)
            self.sliders.set_dimensions(order, scores, f"mean {what}")
            self.sliders.set_header(f"Ordered by mean {what} over {frames:,} encoded frames, most informative first "
                                    f"(the grey figure). Range ±3.")
            self.pca = pca_map(latents.mu)
            self.map.set_points(self.pca.points, self.pca.explained)
        else:
            self.sliders.set_dimensions(np.arange(self.vae.z_size), None, "")
            self.sliders.set_header("In index order: this run has no latents of this V to rank the dimensions "
                                    "(training V encodes the rollouts). Range ±3.")
            self.pca = None
            self.map.set_points(None)
            self.map.plot.setTitle("no latents to map (train V to encode the rollouts)", size="10pt")
        if usable:
            self.map.plot.setTitle("latents of the data (PCA): click to decode", size="10pt")
        self.sliders.set_z(self.z)
        self._update_markers()

    def _take_rollouts(self) -> None:
        count = len(self.open_run.rollouts)
        for widget in (self.rollout_spin, self.step_spin, self.show_button):
            widget.setEnabled(count > 0)
        self.rollout_spin.setRange(1, max(1, count))
        self.random_button.setEnabled(count > 0 or self.open_run.latents is not None)
        self._update_step_range()

    def _update_step_range(self) -> None:
        files = self.open_run.rollouts
        index = self.rollout_spin.value() - 1
        if not 0 <= index < len(files):
            return
        try:
            steps = array_shape(files[index], "frames")[0][0]
        except WmStudioError:
            steps = 1
        self.step_spin.setRange(0, max(0, steps - 1))

    def _update_header(self) -> None:
        self._show_run_header(self.open_run, self.vae is not None)

    # --- changing z -----------------------------------------------------------------------------------------------
    def set_dimension(self, dim: int, value: float) -> None:
        """A slider moved: that dimension takes the value and the image is decoded again."""
        if not 0 <= dim < len(self.z):
            return
        self.z = self.z.copy()
        self.z[dim] = value
        self.edited.pop(dim, None)
        self.edited[dim] = float(value)
        self.request_decode()

    def set_z(self, z, source: str = "") -> None:
        """Replace the whole z (sliders follow) and decode it."""
        if self.vae is None:
            return
        z = np.asarray(z, np.float32).reshape(self.vae.z_size)
        self.z = z.copy()
        self.source = source
        self.edited = {}
        self.sliders.set_z(self.z)
        self.request_decode()

    def request_decode(self) -> int:
        """Post the current z to the decoder (the newest request replaces any not yet taken)."""
        if self.vae is None:
            return self.request_id
        self.request_id += 1
        self.change_times[self.request_id] = time.perf_counter()
        self.decoder.post((self.request_id, self.z.copy(), self.vae))
        self._update_markers()
        return self.request_id

    def _decode(self, request) -> np.ndarray:
        """On the decoder thread: (id, z, vae) -> uint8 (64, 64, 3)."""
        _, z, vae = request
        return self.decoder_process.decode(vae, z[None])[0]

    def _show_decoded(self, request, image: np.ndarray) -> None:
        request_id, _, vae = request
        if vae is not self.vae:
            return       # decoded by a V that has been replaced since; a newer request is on its way
        self.decoded_view.set_frame(image)
        self.shown_id = request_id
        shown = time.perf_counter()
        changed = self.change_times.get(request_id)
        if changed is not None:
            self.latencies.append(shown - changed)
        for old in [key for key in self.change_times if key <= request_id]:
            del self.change_times[old]
        self.decoded_view.set_caption(self.caption())
        self.image_shown.emit(request_id)
        self._continue_view()

    def caption(self) -> str:
        """What the decoded image shows: where z came from, and the dimensions moved by hand since."""
        if not self.edited:
            return self.source
        dim, value = next(reversed(self.edited.items()))
        if len(self.edited) == 1:
            return f"{self.source}, with z{dim} = {value:+.2f}"
        return f"{self.source}, {len(self.edited)} dimensions moved (last z{dim} = {value:+.2f})"

    def decoded_image(self) -> np.ndarray | None:
        return self.decoded_view.frame()

    # --- real frames ----------------------------------------------------------------------------------------------
    def random_real_frame(self) -> bool:
        """Encode a random frame of a random rollout (or, without rollouts, take a random stored latent)."""
        if self.vae is None:
            return False
        files = self.open_run.rollouts
        if files:
            index = int(self.rng.integers(len(files)))
            frames = self._frames(files[index])
            return self.show_real_frame(index, int(self.rng.integers(len(frames))))
        latents = self.open_run.latents
        if latents is not None and latents.mu.shape[1] == self.vae.z_size:
            row = int(self.rng.integers(len(latents.mu)))
            self.original = None
            self.original_view.clear_frame()
            self.original_view.set_caption("this run keeps no frames (data/rollouts): only its latent")
            self.encoded = latents.mu[row].copy()
            name = latents.files[latents.file_index[row]].stem
            self.set_z(self.encoded, f"encoded {name}, step {latents.step[row]}")
            return True
        self.status.emit("This run has no rollouts or latents to take a real frame from")
        return False

    def show_real_frame(self, rollout: int, step: int) -> bool:
        """Show frame `step` of rollout number `rollout` (0-based, name order) and jump to its z."""
        files = self.open_run.rollouts
        if self.vae is None or not 0 <= rollout < len(files):
            return False
        try:
            frames = self._frames(files[rollout])
        except WmStudioError as exc:
            log.error("Latent: %s", exc)
            return False
        step = int(np.clip(step, 0, len(frames) - 1))
        self.original = frames[step]
        self.original_view.set_frame(self.original)
        name = files[rollout].stem
        self.original_view.set_caption(f"{name}, step {step}")
        for spin, value in ((self.rollout_spin, rollout + 1), (self.step_spin, step)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self._update_step_range()
        self.encoded = encode_one(self.vae, self.original)
        self.set_z(self.encoded, f"reconstruction of {name}, step {step}")
        return True

    def _frames(self, path: Path) -> np.ndarray:
        if path in self._frames_cache:
            self._frames_cache.move_to_end(path)
            return self._frames_cache[path]
        frames = load_frames(path)
        self._frames_cache[path] = frames
        while len(self._frames_cache) > FRAME_CACHE:
            self._frames_cache.popitem(last=False)
        return frames

    def reset_to_encoded(self) -> None:
        if self.encoded is None:
            self.status.emit("No real frame is encoded yet: press F for a random one")
            return
        self.set_z(self.encoded, self.source if "reconstruction" in self.source else "encoded z")

    def randomize(self) -> None:
        if self.vae is not None:
            self.set_z(self.rng.standard_normal(self.vae.z_size).astype(np.float32), "z ~ N(0, I)")

    def decode_map_point(self, x: float, y: float) -> None:
        if self.pca is None or self.vae is None:
            return
        self.set_z(self.pca.lift([x, y]), f"map point ({x:.2f}, {y:.2f})")

    def _update_markers(self) -> None:
        if self.pca is None or len(self.z) != len(self.pca.mean):
            for item in (self.map.current, self.map.point_a, self.map.point_b):
                self.map.set_marker(item, None)
            return
        self.map.set_marker(self.map.current, self.pca.project(self.z))
        for key, item in (("A", self.map.point_a), ("B", self.map.point_b)):
            point = self.points[key]
            self.map.set_marker(item, None if point is None else self.pca.project(point[0]))

    # --- interpolation --------------------------------------------------------------------------------------------
    def set_end(self, which: str) -> None:
        if self.vae is None:
            return
        self.points[which] = (self.z.copy(), self.caption() or "z")
        self._update_interpolation_controls()
        self._update_markers()

    def _update_interpolation_controls(self) -> None:
        ready = all(self.points.values())
        labels = [f"<b>{key}</b>: {point[1] if point else '–'}" for key, point in self.points.items()]
        self.ends_label.setText("<br>".join(labels))
        for widget in (self.t_slider, self.gif_button, self.mp4_button):
            widget.setEnabled(ready)

    def _t_moved(self, position: int) -> None:
        t = position / 1000
        self.t_label.setText(f"t = {t:.2f}")
        if all(self.points.values()):
            self.set_z(self.interpolate(t), f"(1 − {t:.2f}) A + {t:.2f} B")

    def interpolate(self, t: float) -> np.ndarray:
        a, b = self.points["A"][0], self.points["B"][0]
        return ((1.0 - t) * a + t * b).astype(np.float32)

    def sweep_frames(self, count: int) -> np.ndarray:
        """The decoded latents from A to B, `count` evenly spaced ones: uint8 (count, 64, 64, 3)."""
        if self.vae is None or not all(self.points.values()):
            raise ConfigError("set both ends first: A ← current z and B ← current z")
        return decode_frames(self.vae, np.stack([self.interpolate(t) for t in np.linspace(0, 1, count)]))

    # --- export ---------------------------------------------------------------------------------------------------
    def view_frame(self) -> np.ndarray:
        return grab_frame(self.views if self.stack.currentIndex() == 1 else self.message)

    def can_export_animation(self) -> bool:
        return self.vae is not None and all(self.points.values())

    def export_animation(self, path, progress: Progress | None = None) -> Path:
        """The sweep from A to B (frames, size and frame rate from the controls) as a GIF or MP4."""
        size = int(self.size_box.currentData())
        frames = upscale(self.sweep_frames(self.frames_spin.value()), size)
        return write_animation(path, list(frames), fps=self.fps_spin.value(), size=(size, size),
                               progress=progress)

    # --- screenshots, settings, shutdown -------------------------------------------------------------------------
    def prepare_view(self, steps: int | None) -> None:
        """Show a random real frame (when the run is open) and its reconstruction, then view_ready."""
        self._view_target = -1
        QTimer.singleShot(0, self._continue_view)   # never before the event loop runs (the window may close)

    def _continue_view(self) -> None:
        if self._view_target is None:
            return
        if self._view_target == -1:
            if self.open_run.loading:
                return                          # on_run_changed comes back here
            if self.vae is None:
                self._finish_view()
                return
            self._view_target = 0
            if not self.random_real_frame():
                self.randomize()
            self._view_target = self.request_id
            return
        if self.shown_id >= self._view_target:
            self._finish_view()

    def _finish_view(self) -> None:
        self._view_target = None
        self.view_ready.emit()

    def load_settings(self, settings: QSettings) -> None:
        self.frames_spin.setValue(read(settings, "frames", 48, int))
        self.fps_spin.setValue(read(settings, "fps", 24, int))
        size = read(settings, "size", 256, int)
        if size in EXPORT_SIZES:
            self.size_box.setCurrentIndex(EXPORT_SIZES.index(size))

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("frames", self.frames_spin.value())
        settings.setValue("fps", self.fps_spin.value())
        settings.setValue("size", int(self.size_box.currentData()))

    def shutdown(self) -> None:
        self.decoder.shutdown()
        self.decoder_process.close()
        self._end_own_run()

