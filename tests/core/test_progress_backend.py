import io
from dataclasses import dataclass

import numpy as np
import pytest

from wm_studio.core.device import resolve_device, to_numpy
from wm_studio.core.errors import ConfigError
from wm_studio.core.progress import drive, format_duration


@dataclass
class Snap:
    done: int
    total: int

    def summary(self):
        return f"loss {10 - self.done}"


def test_drive_runs_a_stage_and_prints_a_final_line():
    stream = io.StringIO()
    last = drive((Snap(i, 5) for i in range(1, 6)), "train", stream=stream)
    assert last == Snap(5, 5)
    out = stream.getvalue()
    assert "train [" in out and "5/5 100%" in out and "loss 5" in out


def test_drive_closes_the_stage_on_ctrl_c():
    closed = []

    def stage():
        try:
            yield Snap(1, 3)
            raise KeyboardInterrupt
        finally:
            closed.append(True)

    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        drive(stage(), "s", stream=stream)
    assert closed and "interrupted" in stream.getvalue()


def test_format_duration():
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3 * 3600 + 60) == "3h01m"


def test_devices():
    assert resolve_device("cpu").kind == "cpu"
    device = resolve_device("auto")
    assert device.kind in ("cpu", "gpu")
    if device.kind == "cpu":  # no GPU here: asking for one falls back with a notice instead of failing
        fallback = resolve_device("gpu:0")
        assert fallback.kind == "cpu" and "running on the CPU" in fallback.notice
        assert fallback.xp is np
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    with pytest.raises(ConfigError):
        resolve_device("cpu:1")
    assert isinstance(to_numpy(np.zeros(2)), np.ndarray)
