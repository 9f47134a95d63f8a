"""Nothing is written where it must not be: no command changes a bundle (the bundled default model is one), bad
settings are refused before config.json (or the run folder) is written, and a user's output file never makes
folders."""
import hashlib
import json
import shutil

import pytest

from wm_studio.cli import main
from wm_studio.core.runs import DEFAULT_MODEL, Run, read_only_folder

from tiny_run import make_run


def state_of(folder):
    """Every file under folder with its content hash and mtime, and every folder."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            if path.is_file() else "folder" for path in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def bundle_copy(tmp_path_factory):
    """A copy of resources/default_model (BUNDLE.json makes it a bundle wherever it is), with 20-step episodes
    so that an evaluation takes a moment."""
    folder = tmp_path_factory.mktemp("copy") / "default_model"
    shutil.copytree(DEFAULT_MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_steps": 20}))
    return folder


def test_the_shipped_model_and_any_bundle_are_read_only(tmp_path):
    assert read_only_folder(DEFAULT_MODEL) == DEFAULT_MODEL.resolve() and Run(DEFAULT_MODEL).read_only
    assert read_only_folder(DEFAULT_MODEL / "metrics" / "evaluation.json") == DEFAULT_MODEL.resolve()
    run = make_run(tmp_path / "run", parts=("vae",))
    assert not run.read_only
    (run.root / "BUNDLE.json").write_text("{}")
    assert run.read_only


COMMANDS = {
    "evaluate": ["evaluate", "--run", "{b}", "--episodes", "1", "--backend", "serial"],
    "evaluate --out": ["evaluate", "--run", "{b}", "--episodes", "1", "--backend", "serial", "--out",
                       "{tmp}/scores.json"],
    "evaluate --record in it": ["evaluate", "--run", "{b}", "--episodes", "1", "--record", "{b}/drive.mp4"],
    "dream": ["dream", "--run", "{b}", "--steps", "3", "--size", "64", "--out", "{tmp}/dream.gif"],
    "dream --out in it": ["dream", "--run", "{b}", "--steps", "3", "--out", "{b}/dream.gif"],
    "collect": ["collect", "--run", "{b}", "--rollouts", "7"],
    "train-vae": ["train-vae", "--run", "{b}", "--epochs", "4"],
    "train-mdn": ["train-mdn", "--run", "{b}", "--epochs", "121"],
    "train-controller": ["train-controller", "--run", "{b}", "--generations", "51", "--backend", "serial"],
    "pipeline": ["pipeline", "--run", "{b}"],
    "bundle of it": ["bundle", "--run", "{b}", "--out", "{tmp}/again", "--rollouts", "1"],
    "bundle over it": ["bundle", "--run", "{b}", "--out", "{b}", "--rollouts", "1"],
    "es-animate into it": ["es-animate", "--generations", "1", "--out", "{b}/schaffer.gif"],
}
ALLOWED = {"evaluate", "evaluate --out", "dream", "bundle of it"}   # they read the bundle and write elsewhere


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_command_changes_a_bundle(name, bundle_copy, tmp_path, capsys):
    before = state_of(bundle_copy)
    code = main([part.format(b=bundle_copy, tmp=tmp_path) for part in COMMANDS[name]])
    out, err = capsys.readouterr()
    assert state_of(bundle_copy) == before
    if name in ALLOWED:
        assert code == 0, err
    else:
        assert code == 2 and "read-only" in err and "Traceback" not in err, err


def test_evaluating_a_bundle_prints_the_scores_and_keeps_them_where_asked(bundle_copy, tmp_path, capsys):
    record = json.loads((bundle_copy / "metrics" / "evaluation.json").read_text())
    assert main(["evaluate", "--run", str(bundle_copy), "--episodes", "1", "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert "controller:" in out and "random policy:" in out and "read-only" in out and "--out FILE" in out
    assert main(["evaluate", "--run", str(bundle_copy), "--episodes", "1", "--backend", "serial", "--out",
                 str(tmp_path / "scores.json")]) == 0
    assert f"scores written to {tmp_path / 'scores.json'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "scores.json").read_text())["episodes"] == 1
    assert json.loads((bundle_copy / "metrics" / "evaluation.json").read_text()) == record   # the 20 episodes


@pytest.mark.parametrize("options", [["--rollouts", "-3"], ["--steps", "0"], ["--min-steps", "900"],
                                     ["--workers", "0"]], ids=str)
def test_bad_collect_settings_leave_no_trace(options, tmp_path, capsys):
    assert main(["collect", "--run", str(tmp_path / "r"), *options]) == 2
    assert not (tmp_path / "r").exists()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command, options", [
    ("collect", ["--rollouts", "-3"]), ("collect", ["--steps", "0"]),
    ("train-vae", ["--epochs", "0"]), ("train-vae", ["--lr", "-1"]), ("train-vae", ["--device", "tpu"]),
    ("train-mdn", ["--seq-len", "0"]), ("train-mdn", ["--batch-size", "0"]),
    ("train-controller", ["--popsize", "1"]), ("train-controller", ["--rollouts", "0"]),
    ("train-controller", ["--workers", "0"]),
], ids=str)
def test_bad_settings_of_an_existing_run_change_nothing(command, options, tmp_path, capsys):
    run = make_run(tmp_path / "run")
    before = state_of(run.root)
    assert main([command, "--run", str(run.root), *options]) == 2
    assert state_of(run.root) == before
    assert "Traceback" not in capsys.readouterr().err


def test_a_file_in_a_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    assert main(["es-animate", "--generations", "1", "--out", str(tmp_path / "no" / "such" / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert f"the folder {tmp_path / 'no' / 'such'} does not exist" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

