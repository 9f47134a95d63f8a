"""`wm-studio dream` and `evaluate` open the bundled model without --run, as the studio does, and write nothing
inside it (issue 12); `dream --help` says who drives by default."""
import os

import pytest

from wm_studio.cli import build_parser, main
from wm_studio.commands import run_option
from wm_studio.core.export import read_animation
from wm_studio.core.runs import DEFAULT_MODEL


def bundle_listing():
    """Every file of the bundled model with its size and modification time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in DEFAULT_MODEL.rglob("*")}


def test_dream_without_run_dreams_the_bundled_model_and_writes_only_out(tmp_path, capsys):
    before = bundle_listing()
    out = tmp_path / "dream.gif"
    assert main(["dream", "--out", str(out), "--steps", "4", "--size", "64"]) == 0
    captured = capsys.readouterr()
    assert f"using the bundled model ({DEFAULT_MODEL})" in captured.err
    assert "driven by the controller C" in captured.out           # the bundled model has a C
    assert len(read_animation(out)) == 4
    assert bundle_listing() == before


def test_evaluate_without_run_scores_the_bundled_model(monkeypatch, capsys, tmp_path):
    from wm_studio.core.train import evaluate as evaluate_module
    asked = {}

    def fake_evaluate(run, episodes, seed, record, fps, scale, **options):
        asked.update(root=run.root, read_only=run.read_only, out=options["out"])
        return iter(())
    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    assert main(["evaluate", "--episodes", "1", "--backend", "serial", "--out", str(tmp_path / "s.json")]) == 0
    assert asked == {"root": DEFAULT_MODEL, "read_only": True, "out": str(tmp_path / "s.json")}
    assert "using the bundled model" in capsys.readouterr().err


def test_a_given_run_is_used_as_given(monkeypatch, tmp_path):
    from wm_studio.core.train import evaluate as evaluate_module
    asked = []
    monkeypatch.setattr(evaluate_module, "evaluate", lambda run, *a, **k: asked.append(run.root) or iter(()))
    assert main(["evaluate", "--run", str(DEFAULT_MODEL), "--backend", "serial"]) == 0
    assert asked == [DEFAULT_MODEL]


def test_without_a_bundled_model_the_commands_ask_for_run_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run_option, "DEFAULT_MODEL", tmp_path / "no_default_model")
    assert main(["dream", "--out", str(tmp_path / "d.gif")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--run FOLDER" in error and "Traceback" not in error
    assert not (tmp_path / "d.gif").exists()


def test_dream_help_says_the_controller_drives_by_default():
    parser = build_parser()
    dream = parser._subparsers._group_actions[0].choices["dream"]
    text = " ".join(dream.format_help().split())
    assert "under the actions of the run's controller C" in text
    assert "auto (default): the controller C when the run has one" in text
    assert "(default: the bundled CarRacing model" in text
