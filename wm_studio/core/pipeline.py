"""The whole World Models pipeline in order: collect -> V (then encode) -> M -> C, resuming whatever is done.

    results = run_pipeline(run, device, runner_kind=None, workers=None, cluster=None)   # None: each its own

Each step is the one its stage's command runs (wm_studio.core.stages), driven with a progress bar; each resumes
by itself from its checkpoints. A step that has already finished (every rollout on disk; V, M or C at their
configured epochs or generations) is skipped without being started, so a second call only reports. Every step
ends with a summary line, and the pipeline with one line per step.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from wm_studio.core.runs import Run
from wm_studio.core.stages import Step, pipeline_steps, unfinished


@dataclass(frozen=True)
class StepResult:
    name: str
    label: str
    skipped: bool
    seconds: float
    summary: str

    def line(self) -> str:
        how = "already done, skipped" if self.skipped else f"done in {self.seconds:.0f} s"
        return f"{self.label}: {how}" + (f" ({self.summary})" if self.summary else "")


def run_pipeline(run: Run, device, runner_kind: str | None = None, workers: int | None = None,
                 cluster: str | None = None, stream: TextIO | None = None,
                 progress: TextIO | None = None) -> list[StepResult]:
    """Run every step that is not finished, in order; summary lines go to `stream` (stdout), bars to `progress`."""
    from wm_studio.core.progress import drive
    stream = stream or sys.stdout
    results = []

    def report(result: StepResult) -> None:
        results.append(result)
        print(result.line(), file=stream, flush=True)

    def skipped(step: Step) -> None:
        report(StepResult(step.name, step.label, True, 0.0, ""))

    for step in unfinished(pipeline_steps(run, device, runner_kind, workers, cluster), skipped):
        start = time.monotonic()
        last = drive(step.start(), step.label, progress)
        report(StepResult(step.name, step.label, False, time.monotonic() - start,
                          last.summary() if last is not None else ""))
    return results
