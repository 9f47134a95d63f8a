"""`wm-studio bundle`: a compact copy of a trained run that opens in the studio with every part usable."""
import numpy as np
import pytest

from wm_studio.cli import main
from wm_studio.core.bundle import bundled_rollouts, make_bundle
from wm_studio.core.files import load_json, load_npz
from wm_studio.core.models.serialization import load_vae
from wm_studio.core.run_contents import PARTS, inspect_run
from wm_studio.core.runs import Run

from tiny_run import make_run


def test_the_bundle_holds_float16_models_a_few_rollouts_and_matching_latents(tmp_path):
    run = make_run(tmp_path / "run", rollouts=4)
    run.append_metrics("vae", {"epoch": 1, "loss": 2.0})
    report = make_bundle(run, tmp_path / "bundle", rollouts=2)
    bundle = Run(tmp_path / "bundle")
    for stage in ("vae", "mdn", "controller"):
        arrays, meta = load_npz(bundle.model_path(stage))
        floats = [a for a in arrays.values() if np.issubdtype(a.dtype, np.floating)]
        assert floats and all(a.dtype == np.float16 for a in floats) and meta["dtype"] == "float16"
    assert sorted(p.name for p in bundle.rollouts_dir.iterdir()) == ["rollout_000000.npz", "rollout_000001.npz"]
    contents = inspect_run(bundle.root)
    assert {name: contents.parts[name].state for name in PARTS} == dict.fromkeys(PARTS, "ok")
    original = load_vae(run.model_path("vae"))
    compact = load_vae(bundle.model_path("vae"))
    for (name, a), (_, b) in zip(sorted(original.namedparams()), sorted(compact.namedparams())):
        np.testing.assert_allclose(b.array, a.array, rtol=1e-3, atol=1e-4, err_msg=name)
    assert bundle.read_metrics("vae") == [{"epoch": 1, "loss": 2.0}]
    assert load_json(bundle.root / "BUNDLE.json")["rollouts"] == 2
    assert report.files == sum(1 for p in bundle.root.rglob("*") if p.is_file())


def test_the_bundle_keeps_the_training_record_without_weights(tmp_path):
    from wm_studio.core.train.history import stage_history
    from wm_studio.core.device import resolve_device
    from wm_studio.core.train.mdn_stage import MdnSettings, train_mdn
    run = make_run(tmp_path / "run", rollouts=3, steps=24)
    for _ in train_mdn(run, MdnSettings.from_config(run.config), resolve_device("cpu")):
        pass
    make_bundle(run, tmp_path / "bundle", rollouts=1)
    bundle = Run(tmp_path / "bundle")
    arrays, meta = load_npz(bundle.root / "history" / "mdn.npz")
    assert "history" in arrays and not any(name.startswith(("model/", "optimizer/")) for name in arrays)
    assert bundle.latest_checkpoint("mdn") is None
    original, copied = stage_history(run, "mdn"), stage_history(bundle, "mdn")
    assert copied.finished and copied.done == original.done
    np.testing.assert_array_equal(copied.history, original.history)
    assert stage_history(bundle, "vae") is None         # no V checkpoint in the source run: no record


def test_a_failed_bundle_keeps_the_old_one(tmp_path, capsys):
    run = make_run(tmp_path / "run", rollouts=1)
    make_bundle(run, tmp_path / "bundle", rollouts=1)
    run.model_path("mdn").write_bytes(b"not an npz")
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "bundle"), "--replace"]) != 0
    assert "corrupt" in capsys.readouterr().err
    assert inspect_run(tmp_path / "bundle").parts["mdn"].state == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "run"]


def test_an_unfinished_run_cannot_be_bundled(tmp_path, capsys):
    run = make_run(tmp_path / "run", parts=("vae", "rollouts"))
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "bundle")]) != 0
    assert "no trained mdn, controller yet" in capsys.readouterr().err
    assert not (tmp_path / "bundle").exists()


def test_a_bundle_counts_its_few_rollouts_as_all_it_collected(tmp_path):
    from wm_studio.core.train.history import stage_history
    run = make_run(tmp_path / "run", rollouts=3, steps=24)
    make_bundle(run, tmp_path / "bundle", rollouts=1)
    collected = stage_history(Run(tmp_path / "bundle"), "collect")
    assert (collected.done, collected.total, collected.finished) == (1, 1, True)
    assert bundled_rollouts(run) is None
    assert stage_history(run, "collect").total == run.config["collect"]["rollouts"]


def test_bundling_never_deletes_a_run_and_replaces_a_bundle_only_when_told(tmp_path, capsys):
    run = make_run(tmp_path / "run", rollouts=1)
    other = make_run(tmp_path / "other", parts=("vae",))
    before = sorted(p.relative_to(other.root) for p in other.root.rglob("*"))
    assert main(["bundle", "--run", str(run.root), "--out", str(other.root)]) == 2
    assert "exists and is not a bundle" in capsys.readouterr().err
    assert sorted(p.relative_to(other.root) for p in other.root.rglob("*")) == before
    make_bundle(run, tmp_path / "bundle", rollouts=1)
    made = (tmp_path / "bundle" / "BUNDLE.json").read_bytes()
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "bundle")]) == 2
    assert "pass --replace" in capsys.readouterr().err
    assert (tmp_path / "bundle" / "BUNDLE.json").read_bytes() == made
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "bundle" / "inner")]) == 2
    assert "read-only" in capsys.readouterr().err and not (tmp_path / "bundle" / "inner").exists()
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "no" / "such")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert main(["bundle", "--run", str(run.root), "--out", str(tmp_path / "bundle"), "--replace"]) == 0
