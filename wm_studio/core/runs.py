"""A run folder per experiment: its settings, data, checkpoints, models, logs and metrics.

    RUN/
      config.json                  every setting of the run (JSON), written when the run is created
      data/rollouts/*.npz          random rollouts (uint8 frames, actions, rewards, dones), one file each
      data/latents/*.npz           the rollouts encoded by V (mu, logvar, actions, rewards, dones)
      checkpoints/<stage>/*.npz    resumable training state (weights, optimiser, RNG), the newest few kept
      models/<stage>.npz           the trained weights other stages and the studio load (vae, mdn, controller)
      metrics/<stage>.jsonl        one JSON record per line, appended as training goes
      logs/                        free-form logs

Checkpoints carry a JSON meta dict with `format`, `stage` and `step`; every file is written atomically.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_json, load_npz, save_json, save_npz
from wm_studio.core.folders import (BUNDLE_FILE, BUNDLED_MODELS, DEFAULT_MODEL, DOOM_MODEL, STAGES,  # noqa: F401
                                    bundled_name, how_to_rebuild, output_file, read_only_folder,
                                    refuse_read_only)

CHECKPOINT_FORMAT = 1
_CKPT_NAME = re.compile(r"ckpt-(\d{9})\.npz$")
class Run:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ---- creation and settings -------------------------------------------------------------------------
    @classmethod
    def create(cls, root, config: Mapping[str, Any]) -> "Run":
        """Create the run folder with its config, or open an existing one whose config agrees."""
        run = cls(root)
        refuse_read_only(run.root, f"recording settings in {run.config_path}")
        if run.config_path.exists():
            existing = run.config
            clashes = {k: (existing[k], v) for k, v in config.items() if k in existing and existing[k] != v}
            if clashes:
                detail = ", ".join(f"{k}: run has {a!r}, asked for {b!r}" for k, (a, b) in clashes.items())
                raise ConfigError(f"{run.root} was made with other settings ({detail}); "
                                  f"use another --run folder or the run's own settings")
            merged = {**config, **existing}
            if merged != existing:
                save_json(run.config_path, merged)
            return run
        run.root.mkdir(parents=True, exist_ok=True)
        save_json(run.config_path, dict(config))
        return run

    @classmethod
    def prepare(cls, root, env: str | None = None, preset_name: str | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None,
                checks: tuple[Callable[[dict], Any], ...] = ()) -> "Run":
        """What every stage command does first: open the run (or create it from a preset) and record overrides.

        An existing run keeps its own settings; only the values given in `overrides` ({stage: {key: value}},
        None values ignored) change, and they are written to config.json so that a resume uses them too.
        Each of `checks` (a stage's settings parser) sees the merged settings first: a bad value raises before
        anything is written, so it never reaches config.json.
        """
        from wm_studio.core.presets import preset
        run = cls(root)
        refuse_read_only(run.root, f"recording settings in {run.config_path}")
        if run.config_path.exists():
            config = run.config
            for key, asked in (("env", env), ("preset", preset_name)):
                if asked is not None and config.get(key) != asked:
                    raise ConfigError(f"{run.root} is a {key} {config.get(key)!r} run, not {asked!r}; "
                                      f"leave out --{key} or use another --run folder")
        else:
            config = preset(env or "carracing", preset_name or "quick")
        for stage, values in (overrides or {}).items():
            section = dict(config.get(stage, {}))
            section.update({k: v for k, v in values.items() if v is not None})
            config[stage] = section
        for validate in checks:
            validate(config)
        run.root.mkdir(parents=True, exist_ok=True)
        save_json(run.config_path, config)
        return run

    @classmethod
    def open(cls, root) -> "Run":
        run = cls(root)
        if not run.config_path.is_file():
            raise ConfigError(f"{run.root} is not a wm_studio run folder (no config.json)")
        return run

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def config(self) -> dict[str, Any]:
        config = load_json(self.config_path)
        if not isinstance(config, dict):
            raise CheckpointError(f"{self.config_path} does not hold a settings object")
        return config

    @property
    def read_only(self) -> bool:
        """A bundle: nothing in it is ever written (its stages, config and metrics refuse)."""
        return read_only_folder(self.root) is not None

    def update_config(self, **changes: Any) -> None:
        refuse_read_only(self.root, f"changing {self.config_path}")
        save_json(self.config_path, {**self.config, **changes})

    # ---- layout ------------------------------------------------------------------------------------------
    @property
    def rollouts_dir(self) -> Path:
        return self.root / "data" / "rollouts"

    @property
    def latents_dir(self) -> Path:
        return self.root / "data" / "latents"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def checkpoints_dir(self, stage: str) -> Path:
        return self.root / "checkpoints" / _checked(stage)

    def model_path(self, stage: str) -> Path:
        return self.root / "models" / f"{_checked(stage)}.npz"

    def metrics_path(self, stage: str) -> Path:
        return self.root / "metrics" / f"{_checked(stage)}.jsonl"

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save_checkpoint(self, stage: str, step: int, arrays: Mapping[str, Any],
                        meta: Mapping[str, Any] | None = None, keep: int = 3) -> Path:
        """Write checkpoints/<stage>/ckpt-<step>.npz atomically and keep only the newest `keep`."""
        refuse_read_only(self.root, f"a {stage} checkpoint")
        meta = {**(meta or {}), "format": CHECKPOINT_FORMAT, "stage": stage, "step": int(step)}
        path = save_npz(self.checkpoints_dir(stage) / f"ckpt-{int(step):09d}.npz", arrays, meta)
        for old in self.checkpoints(stage)[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def checkpoints(self, stage: str) -> list[Path]:
        """The stage's checkpoints, oldest first."""
        folder = self.checkpoints_dir(stage)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if _CKPT_NAME.search(p.name))

    def latest_checkpoint(self, stage: str) -> Path | None:
        found = self.checkpoints(stage)
        return found[-1] if found else None

    def load_checkpoint(self, stage: str, path=None, required: tuple[str, ...] = ()):
        """(arrays, meta) of the given or newest checkpoint, or None if the stage has none yet."""
        path = Path(path) if path else self.latest_checkpoint(stage)
        if path is None:
            return None
        arrays, meta = load_npz(path, required)
        if meta.get("stage") != stage or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a format-{CHECKPOINT_FORMAT} checkpoint of stage {stage!r} "
                                  f"(it says stage={meta.get('stage')!r}, format={meta.get('format')!r})")
        return arrays, meta

    # ---- metrics -----------------------------------------------------------------------------------------
    def append_metrics(self, stage: str, record: Mapping[str, Any]) -> None:
        """Append one JSON line. A line cut short by a kill is closed off first, so only that line is lost."""
        path = self.metrics_path(stage)
        refuse_read_only(self.root, f"adding to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            torn = f.tell() > 0 and f.seek(-1, os.SEEK_END) >= 0 and f.read(1) != b"\n"
            f.write((("\n" if torn else "") + json.dumps(_plain(record)) + "\n").encode("utf-8"))

    def read_metrics(self, stage: str) -> list[dict[str, Any]]:
        path = self.metrics_path(stage)
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


def _checked(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return stage


def _plain(value):
    """numpy scalars and arrays to JSON-able Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
