"""The collect stage: files in the documented format, independent of the worker count, resumable."""
import os
import subprocess
import sys

import numpy as np
import pytest

from wm_studio.core.data.collect import (CollectSettings, RolloutTask, collect, collect_rollout, rollout_path,
                                         rollout_seed)
from wm_studio.core.data.dataset import rollout_files
from wm_studio.core.errors import ConfigError, WmStudioError
from wm_studio.core.files import load_npz
from wm_studio.core.runs import Run

SMALL = CollectSettings(env="carracing", rollouts=3, steps=20, policy="brownian", seed=5)


def make_run(root, settings=SMALL):
    return Run.prepare(root, settings.env, "tiny",
                       {"collect": {"rollouts": settings.rollouts, "steps": settings.steps,
                                    "policy": settings.policy, "seed": settings.seed}})


def contents(folder):
    out = {}
    for path in rollout_files(folder):
        arrays, meta = load_npz(path)
        out[path.name] = ({k: v.tobytes() for k, v in arrays.items()}, meta)
    return out


def test_files_follow_the_rollout_format(tmp_path):
    run = make_run(tmp_path / "run")
    snapshots = list(collect(run, workers=1))
    assert [s.done for s in snapshots] == [0, 1, 2, 3] and snapshots[-1].total == 3
    assert snapshots[-1].written == 3 and snapshots[-1].frames == 60 and snapshots[-1].steps_per_second > 0
    assert "60 frames" in snapshots[-1].summary()
    names = [p.name for p in rollout_files(run.rollouts_dir)]
    assert names == ["rollout_000000.npz", "rollout_000001.npz", "rollout_000002.npz"]
    arrays, meta = load_npz(run.rollouts_dir / names[1], required=("frames", "actions", "rewards", "dones"))
    assert arrays["frames"].shape == (20, 64, 64, 3) and arrays["frames"].dtype == np.uint8
    assert arrays["actions"].shape == (20, 3) and arrays["actions"].dtype == np.float32
    assert arrays["rewards"].shape == (20,) and arrays["rewards"].dtype == np.float32
    assert arrays["dones"].shape == (20,) and arrays["dones"].dtype == bool and not arrays["dones"].any()
    assert meta["env"] == "carracing" and meta["policy"] == "brownian" and meta["steps"] == 20
    assert meta["seed"] == int(rollout_seed(5, 1).generate_state(1)[0])
    assert (arrays["actions"][:, 1:] >= 0).all()
    with np.load(run.rollouts_dir / names[1]) as raw:  # compressed on disk
        assert raw.zip.getinfo("frames.npy").compress_type != 0
    assert len(run.read_metrics("collect")) == 3
    # each snapshot after a write carries that rollout's reward, as metrics/collect.jsonl records it
    assert snapshots[0].step == "collect" and snapshots[0].last_index is None
    recorded = {r["rollout"]: r["reward"] for r in run.read_metrics("collect")}
    assert {s.last_index: s.reward for s in snapshots[1:]} == pytest.approx(recorded)
    assert snapshots[-1].mean_reward == pytest.approx(np.mean([s.reward for s in snapshots[1:]]))


def test_worker_count_does_not_change_the_data(tmp_path):
    one = make_run(tmp_path / "one")
    two = make_run(tmp_path / "two")
    list(collect(one, workers=1))
    list(collect(two, workers=2, backend="processes"))
    a, b = contents(one.rollouts_dir), contents(two.rollouts_dir)
    assert len(a) == 3 and a == b
    frames = [v[0]["frames"] for v in a.values()]
    assert len(set(frames)) == 3  # three different rollouts, not one copied


def test_resume_keeps_complete_rollouts_and_drops_leftovers(tmp_path):
    run = make_run(tmp_path / "run")
    list(collect(run, workers=1))
    original = contents(run.rollouts_dir)
    kept = {p.name: p.stat().st_mtime_ns for p in rollout_files(run.rollouts_dir)}
    (run.rollouts_dir / "rollout_000001.npz").unlink()
    leftover = run.rollouts_dir / ".rollout_000001.npz.x1y2z3.tmp"
    leftover.write_bytes(b"half a rollout")
    snapshots = list(collect(run, workers=1))
    assert snapshots[0].done == 2 and snapshots[-1].done == 3 and snapshots[-1].written == 1
    assert snapshots[-1].last_index == 1
    assert not leftover.exists()
    assert contents(run.rollouts_dir) == original  # the redone rollout is the same rollout
    for name in ("rollout_000000.npz", "rollout_000002.npz"):
        assert (run.rollouts_dir / name).stat().st_mtime_ns == kept[name]  # not rewritten
    assert [r["rollout"] for r in run.read_metrics("collect")] == [0, 1, 2, 1]


def test_stopping_mid_run_leaves_only_complete_files(tmp_path):
    run = make_run(tmp_path / "run")
    stage = collect(run, workers=2, backend="processes")
    next(stage)
    first = next(stage)
    stage.close()
    present = rollout_files(run.rollouts_dir)
    assert first.done == 1 and 1 <= len(present) <= 3
    for path in present:
        assert load_npz(path)[0]["frames"].shape == (20, 64, 64, 3)
    snapshots = list(collect(run, workers=1))
    assert snapshots[0].done == len(present) and snapshots[-1].done == 3
    assert not list(run.rollouts_dir.glob(".*tmp"))


class ShortEpisodes:
    """A stand-in game whose episodes end after a seed-dependent number of steps."""
    action_size = 3

    def reset(self, seed=None):
        self.length = 2 + seed % 12
        self.t = 0
        return self.obs(), {}

    def obs(self):
        return np.full((64, 64, 3), self.t, np.uint8)

    def step(self, action):
        self.t += 1
        terminated = self.t >= self.length
        return self.obs(), 1.0, terminated, False, {}


def test_early_end_and_min_steps(tmp_path):
    env = ShortEpisodes()
    task = RolloutTask(0, 7, "carracing", "sticky", 50, 10, str(tmp_path / "rollout_000000.npz"))
    result = collect_rollout(env, task)
    arrays, meta = load_npz(tmp_path / "rollout_000000.npz")
    length = len(arrays["frames"])
    assert 10 <= length <= 13 and result["frames"] == length and meta["steps"] == length
    assert arrays["dones"].tolist() == [False] * (length - 1) + [True]  # ended by the game
    np.testing.assert_array_equal(arrays["frames"][:, 0, 0, 0], np.arange(length))  # frames[t] before actions[t]
    expected_attempt = next(a for a in range(100)
                            if 2 + int(rollout_seed(7, 0, a).generate_state(1)[0]) % 12 >= 10)
    assert meta["attempt"] == expected_attempt and result["attempts"] == expected_attempt + 1
    impossible = RolloutTask(1, 7, "carracing", "sticky", 50, 40, str(tmp_path / "rollout_000001.npz"))
    with pytest.raises(WmStudioError, match="min_steps"):
        collect_rollout(env, impossible)
    assert not (tmp_path / "rollout_000001.npz").exists()


def test_doom_rollouts(tmp_path):
    settings = CollectSettings(env="doom", rollouts=2, steps=15, policy="random-weights", seed=1)
    run = make_run(tmp_path / "doom", settings)
    list(collect(run, settings, workers=1))
    arrays, meta = load_npz(rollout_path(run.rollouts_dir, 1))
    assert arrays["frames"].shape == (15, 64, 64, 3) and arrays["actions"].shape == (15, 2)
    assert arrays["rewards"].tolist() == [1.0] * 15 and meta["env"] == "doom"


def test_settings_come_from_the_run_and_are_checked(tmp_path):
    run = make_run(tmp_path / "run")
    assert CollectSettings.from_config(run.config) == SMALL
    with pytest.raises(ConfigError, match="policy"):
        CollectSettings(policy="greedy")
    with pytest.raises(ConfigError, match="min_steps"):
        CollectSettings(steps=10, min_steps=20)
    with pytest.raises(ConfigError, match="unknown setting.*collect section: colour"):
        CollectSettings.from_config({**run.config, "collect": {**run.config["collect"], "colour": "red"}})
    assert CollectSettings.from_config(run.config, {"rollouts": 7, "steps": None}).rollouts == 7


def test_the_command_collects_and_resumes(tmp_path):
    def wm_studio_collect(*options):
        return subprocess.run([sys.executable, "-m", "wm_studio", "collect", "--run", str(tmp_path / "run"),
                               *options], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "SDL_VIDEODRIVER": "dummy"})

    first = wm_studio_collect("--preset", "tiny", "--rollouts", "2", "--steps", "10", "--workers", "2",
                              "--policy", "sticky")
    assert first.returncode == 0, first.stderr
    assert "2/2 rollouts" in first.stdout
    again = wm_studio_collect("--rollouts", "3")  # the run keeps its other settings
    assert again.returncode == 0, again.stderr
    assert "3/3 rollouts" in again.stdout and "1 new" in again.stdout
    config = Run.open(tmp_path / "run").config["collect"]
    assert config["rollouts"] == 3 and config["policy"] == "sticky" and config["steps"] == 10
    assert len(rollout_files(tmp_path / "run" / "data" / "rollouts")) == 3
    wrong = wm_studio_collect("--env", "doom")
    assert wrong.returncode == 2 and "carracing" in wrong.stderr and "Traceback" not in wrong.stderr


class LosingRunner:
    """Serial, but says that rollout 1's worker died once (ProcessRunner's record of a lost worker)."""

    def __init__(self, *args, **kwargs):
        from wm_studio.core.parallel import SerialRunner
        self.runner, self.losses = SerialRunner(), []

    def run(self, function, tasks, context=None):
        from wm_studio.core.parallel import Loss
        for index, result in self.runner.run(function, tasks, context):
            if index == 1:
                self.losses.append(Loss(1, "its worker process died (process 1, exit code -9)", 1, "worker 2"))
            yield index, result

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.runner.close()


def test_lost_workers_are_counted_in_each_rollouts_record(tmp_path, monkeypatch):
    import wm_studio.core.data.collect as collect_module
    monkeypatch.setattr(collect_module, "make_runner", LosingRunner)
    run = make_run(tmp_path / "run")
    list(collect(run, workers=2, backend="processes"))
    assert [(r["rollout"], r["lost_workers"]) for r in run.read_metrics("collect")] == [(0, 0), (1, 1), (2, 0)]
