"""Tasks one after another in this process: the runner of tests, of the dream (numpy on every core) and of one
worker."""
from __future__ import annotations

import traceback

from wm_studio.core.errors import WmStudioError
from wm_studio.core.parallel.base import Runner, _StateCache, _task_failed


class SerialRunner(Runner):
    """Tasks one after another in this process (no timeout: nothing could interrupt a hung task)."""

    def __init__(self):
        self._cache = _StateCache()

    def run(self, function, tasks, context=None):
        state = self._cache.get(context)
        for index, task in enumerate(tasks):
            try:
                result = function(state, task)
            except WmStudioError:
                raise
            except Exception as exc:
                raise _task_failed(index, exc, traceback.format_exc()) from exc
            yield index, result

    def close(self) -> None:
        self._cache.release()
