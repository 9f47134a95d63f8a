"""V's decoder in a child process with one BLAS thread, for interactive decoding while the studio trains.

Why a process: the studio trains V, M and C on a thread of its own process. Measured on a 2-core machine with
OpenBLAS (numpy's wheels), one decode of a single z takes about 3 ms alone but 130 ms at the median while another
thread of the process runs large matrix products: OpenBLAS runs the calls of all threads through one shared
thread pool, so the decoder's products wait for the trainer's. Pinned to one BLAS thread in a process of its own,
the decoder computes on its own and only competes for a core (benchmarks/bench_studio_latent.py). It also never
waits for the GIL of the studio's process while it computes.

    decoder = DecoderProcess()
    frames = decoder.decode(vae, z)     # uint8 (N, 64, 64, 3) of z (N, z_size); blocks; from one thread at a time
    decoder.close()

The child gets V's weights (a copy of the parameters) the first time each V object is used; it decodes exactly as
`wm_studio.core.envs.dream.decode_frames` does in the studio's process. It starts on the first decode (spawn:
about a second, while Chainer imports) and is started again if it dies. No Qt here.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from wm_studio.core.errors import WmStudioError
from wm_studio.core.parallel import spawn_context, start_single_threaded

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0


def _serve(connection) -> None:
    """The child: ("load", z_size, arrays) and ("decode", z) requests, one answer each, until EOF or None."""
    from wm_studio.core.envs.dream import decode_frames
    from wm_studio.core.models.serialization import copy_into_link
    from wm_studio.core.models.vae import ConvVAE
    vae = None
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            if message[0] == "load":
                _, z_size, arrays = message
                vae = ConvVAE(z_size)
                copy_into_link(vae, arrays)
                connection.send(("ok", None))
            else:
                connection.send(("ok", decode_frames(vae, message[1])))
        except Exception as exc:  # reported to the caller, which raises it there
            connection.send(("error", f"{type(exc).__name__}: {exc}"))


class DecoderProcess:
    def __init__(self):
        self._lock = threading.Lock()
        self._process = None
        self._connection = None
        self._loaded = None          # the V object whose weights the child holds

    def decode(self, vae, z) -> np.ndarray:
        """uint8 (N, 64, 64, 3) frames of latents z (N, z_size) through `vae`'s decoder, in the child."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        with self._lock:
            for attempt in (1, 2):          # a child that died is replaced once
                try:
                    self._start()
                    if self._loaded is not vae:
                        from wm_studio.core.models.serialization import model_arrays
                        self._ask(("load", vae.z_size, model_arrays(vae)))
                        self._loaded = vae
                    return self._ask(("decode", z))
                except (EOFError, OSError, BrokenPipeError) as exc:
                    log.warning("The decoder process stopped (%s); starting it again", exc)
                    self._stop()
                    if attempt == 2:
                        raise WmStudioError(f"the decoder process keeps stopping ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ask(self, message):
        self._connection.send(message)
        status, payload = self._connection.recv()
        if status == "error":
            raise WmStudioError(f"decoding failed in the decoder process: {payload}")
        return payload

    def _start(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._stop()
        context = spawn_context()      # never fork beside the training thread's BLAS (see spawn_context)
        self._connection, child = context.Pipe(duplex=True)
        self._process = context.Process(target=_serve, args=(child,), daemon=True, name="wm-studio decoder")
        start_single_threaded(self._process)
        child.close()
        self._loaded = None

    def _stop(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        self._loaded = None
        if connection is not None:
            try:
                connection.send(None)
            except OSError:
                pass
        if process is not None:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join(STOP_TIMEOUT_S)
        if connection is not None:
            connection.close()
