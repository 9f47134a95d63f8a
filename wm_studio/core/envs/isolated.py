"""A game played in a spawned child process of its own, behind the same API as the game itself.

vizdoom starts its game engine with a C fork(). A fork runs OpenBLAS's fork handler, which waits for good when
another thread of the process is inside a matrix product: making a Doom game in the studio while V trains on its
training thread froze the window. A game made here lives in a process started by spawn (vfork: no fork handler
runs), whose own BLAS does nothing, so its fork is safe; reset() and step() cross a pipe (about 0.1 ms for a
Doom step and its 320x240 frame).

`make_env` isolates Doom wherever another thread may be using BLAS, i.e. everywhere but the single-threaded
rollout workers (wm_studio.core.parallel starts them with BLAS pinned to one thread).
"""
from __future__ import annotations

import os

from wm_studio.core.errors import WmStudioError

READY_TIMEOUT_S = 120.0


def forks_safely() -> bool:
    """True in a process whose BLAS runs on one thread only (a rollout worker): a fork there cannot hang."""
    return os.environ.get("OPENBLAS_NUM_THREADS") == "1"


def _serve(connection, name: str, seed, max_steps) -> None:
    """The child: make the game, then answer reset / step / close until told to stop."""
    os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    from wm_studio.core.envs import make_env
    try:
        env = make_env(name, seed, max_steps, isolated=False)
    except BaseException as exc:  # noqa: BLE001 (the parent re-raises it)
        connection.send(("error", exc if isinstance(exc, WmStudioError) else RuntimeError(str(exc))))
        return
    connection.send(("ready", (env.name, env.action_size, env.max_steps)))
    try:
        while True:
            command, argument = connection.recv()
            if command == "close":
                break
            try:
                result = env.reset(seed=argument) if command == "reset" else env.step(argument)
                connection.send(("ok", result))
            except BaseException as exc:  # noqa: BLE001
                connection.send(("error", exc if isinstance(exc, WmStudioError) else RuntimeError(str(exc))))
    except (EOFError, OSError):
        pass                                    # the parent went away
    finally:
        env.close()


class IsolatedGame:
    """make_env(name, ...) in a spawned child; the same reset / step / close, action_size, max_steps, name."""

    _process = None

    def __init__(self, name: str, seed: int | None = None, max_steps: int | None = None):
        from wm_studio.core.parallel import spawn_context
        context = spawn_context()
        self._connection, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, name, seed, max_steps), daemon=True,
                                  name=f"wm-studio {name} game")
        process.start()
        self._process = process
        child.close()
        self.name, self.action_size, self.max_steps = self._answer("starting the game", READY_TIMEOUT_S)

    def _answer(self, doing: str, timeout: float | None = None):
        if timeout is not None and not self._connection.poll(timeout):
            self.close()
            raise WmStudioError(f"the game process did not answer within {timeout:.0f} s while {doing}")
        try:
            status, value = self._connection.recv()
        except (EOFError, OSError):
            self.close()
            raise WmStudioError(f"the game process ended while {doing}") from None
        if status == "error":
            self.close()
            raise value
        return value

    def reset(self, seed: int | None = None):
        self._connection.send(("reset", seed))
        return self._answer("resetting it")

    def step(self, action):
        self._connection.send(("step", action))
        return self._answer("stepping it")

    def close(self) -> None:
        if self._process is None:
            return
        try:
            self._connection.send(("close", None))
        except (OSError, BrokenPipeError):
            pass
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
        self._process = None

    def __del__(self):
        if getattr(self, "_process", None) is not None:
            self.close()
