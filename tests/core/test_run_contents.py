"""What a run folder holds: every part found, checked against the others and loaded on its own; plain messages
for what is missing, broken or mismatched; the latent statistics the Latent pane draws (KL order, PCA map)."""
import numpy as np
import pytest

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import save_json, save_npz
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.latent_analysis import dimension_order, kl_per_dimension, pca_map
from wm_studio.core.presets import preset
from wm_studio.core.run_contents import inspect_run, load_frames, load_latents, load_part
from wm_studio.core.runs import Run
from wm_studio.core.files import model_fingerprint

Z, HIDDEN = 4, 8


def mdn_file(run, z=Z, actions=3, hidden=HIDDEN):
    mdn = MDNRNN(z, actions, hidden, seed=1)
    mdn.step(np.zeros((1, z), np.float32), np.zeros((1, actions), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())


def full_run(root, z=Z) -> Run:
    config = preset("carracing", "tiny")
    config.update(z_size=z, hidden=HIDDEN)
    run = Run.create(root, config)
    vae = ConvVAE(z, seed=0)
    save_model(run.model_path("vae"), vae, vae.meta())
    mdn_file(run, z)
    save_controller(run.model_path("controller"), Controller.for_game("carracing", z, HIDDEN))
    rng = np.random.default_rng(0)
    for i in range(3):
        name = f"rollout_{i:06d}.npz"
        frames = rng.integers(0, 256, (5 + i, 64, 64, 3), dtype=np.uint8)
        save_npz(run.rollouts_dir / name, {"frames": frames, "actions": np.zeros((5 + i, 3), np.float32),
                                           "rewards": np.zeros(5 + i, np.float32), "dones": np.zeros(5 + i, bool)})
        save_npz(run.latents_dir / name, {"mu": rng.normal(size=(5 + i, z)).astype(np.float32),
                                          "logvar": np.zeros((5 + i, z), np.float32)},
                 {"z_size": z, "vae": model_fingerprint(run.model_path("vae"))})
    return run


def test_a_complete_run_is_all_ok_and_every_part_loads(tmp_path):
    run = full_run(tmp_path / "run")
    contents = inspect_run(run.root)
    assert {name: part.state for name, part in contents.parts.items()} == dict.fromkeys(contents.parts, "ok")
    assert contents.game == "carracing" and contents.z_size == Z and contents.missing("vae", "mdn") == ""
    assert contents.problems() == []
    assert contents.summary() == "carracing run: V z4, M 8 units, C on zh, 3 rollouts, 3 latent files"
    assert load_part(contents, "vae").z_size == Z
    assert load_part(contents, "mdn").hidden == HIDDEN
    controller, meta = load_part(contents, "controller")
    assert controller.n_params == 3 * (Z + HIDDEN) + 3 and meta["game"] == "carracing"
    assert [p.name for p in load_part(contents, "rollouts")] == [f"rollout_{i:06d}.npz" for i in range(3)]
    latents = load_latents(contents)
    assert latents.mu.shape == (5 + 6 + 7, Z) and latents.logvar.shape == latents.mu.shape
    # every row knows where it came from
    row = 7
    file_latents = np.load(latents.files[latents.file_index[row]])["mu"]
    np.testing.assert_array_equal(latents.mu[row], file_latents[latents.step[row]])
    # the rollout a latent file encodes has the same name in data/rollouts
    frames = load_frames(contents.parts["rollouts"].path / latents.files[latents.file_index[row]].name)
    assert frames.shape[0] == len(file_latents)


def test_a_run_without_m_still_opens_v_and_says_what_is_missing(tmp_path):
    run = full_run(tmp_path / "run")
    run.model_path("mdn").unlink()
    contents = inspect_run(run.root)
    assert contents.parts["vae"].usable and contents.parts["mdn"].state == "missing"
    assert contents.missing("vae") == ""
    message = contents.missing("vae", "mdn")
    assert "M is missing (models/mdn.npz)" in message and "wm-studio train-mdn --run" in message
    assert load_part(contents, "vae").z_size == Z
    with pytest.raises(CheckpointError, match="M is missing"):
        load_part(contents, "mdn")


def test_mismatched_sizes_are_named(tmp_path):
    run = full_run(tmp_path / "run")
    mdn_file(run, z=6)
    save_controller(run.model_path("controller"), Controller.for_game("carracing", Z, 5))
    contents = inspect_run(run.root)
    assert contents.parts["mdn"].state == "mismatched"
    assert contents.parts["mdn"].message.startswith("models/mdn.npz was trained for z 6 but V has z 4")
    assert contents.parts["controller"].state == "mismatched"
    assert "reads an LSTM of 5 units" in contents.parts["controller"].message
    assert contents.parts["vae"].usable                     # a bad M does not take V down with it
    mdn_file(run, z=Z, actions=2)
    assert "takes 2 actions but carracing has 3" in inspect_run(run.root).parts["mdn"].message


def test_broken_files_are_broken_not_fatal(tmp_path):
    run = full_run(tmp_path / "run")
    run.model_path("vae").write_bytes(b"not a zip file")
    save_model(run.model_path("controller"), {"weight": np.zeros((3, 2), np.float32)}, {"kind": "vae",
                                                                                          "z_size": 2})
    contents = inspect_run(run.root)
    assert contents.parts["vae"].state == "broken" and "corrupt" in contents.parts["vae"].message
    assert contents.parts["controller"].state == "broken"
    assert "holds a vae model, not a controller model" in contents.parts["controller"].message
    assert contents.parts["mdn"].usable            # checked against config.json's z_size instead
    with pytest.raises(CheckpointError, match="corrupt"):
        load_part(contents, "vae")


def test_latents_of_another_v_are_stale_and_of_another_size_mismatched(tmp_path):
    run = full_run(tmp_path / "run")
    vae = ConvVAE(Z, seed=5)
    save_model(run.model_path("vae"), vae, vae.meta())
    contents = inspect_run(run.root)
    assert contents.parts["latents"].state == "stale" and contents.parts["latents"].usable
    assert "encoded by an earlier V" in contents.parts["latents"].message
    vae = ConvVAE(6, seed=5)
    save_model(run.model_path("vae"), vae, vae.meta())
    contents = inspect_run(run.root)
    assert contents.parts["latents"].state == "mismatched"
    assert "the latents have z 4 but V has z 6" in contents.parts["latents"].message
    assert "V has z 6 but config.json says z_size 4" in contents.parts["vae"].message


def test_a_folder_without_config_infers_the_game(tmp_path):
    run = full_run(tmp_path / "run")
    run.config_path.unlink()
    contents = inspect_run(run.root)
    assert contents.config == {} and contents.game == "carracing"
    assert any("config.json is missing" in note for note in contents.notes)
    mdn_file(run, actions=2)
    assert inspect_run(run.root).parts["mdn"].state == "mismatched"     # C says carracing: M does not fit
    run.model_path("controller").unlink()
    assert inspect_run(run.root).game == "doom"
    save_json(run.config_path, ["not", "a", "dict"])
    assert any("does not hold a settings object" in note for note in inspect_run(run.root).notes)


def test_a_folder_that_is_no_run_is_refused_in_one_line(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match="is not a wm_studio run folder"):
        inspect_run(tmp_path / "photos")
    with pytest.raises(ConfigError, match="does not exist"):
        inspect_run(tmp_path / "nowhere")


def test_an_empty_run_says_what_to_do_for_each_part(tmp_path):
    run = Run.create(tmp_path / "run", preset("doom", "tiny"))
    contents = inspect_run(run.root)
    assert contents.game == "doom"
    assert [part.state for part in contents.parts.values()] == ["missing"] * 5
    assert contents.summary() == "doom run: nothing usable yet"
    assert "wm-studio collect --run" in contents.parts["rollouts"].message
    assert "wm-studio train-vae --run" in contents.parts["latents"].message


def test_load_latents_keeps_memory_bounded(tmp_path):
    run = full_run(tmp_path / "run")
    sample = load_latents(inspect_run(run.root), max_frames=7, max_files=2, seed=3)
    assert sample.mu.shape == (7, Z) and len(sample.files) == 2
    assert set(sample.file_index) <= {0, 1}


def test_kl_order_puts_the_informative_dimensions_first():
    rng = np.random.default_rng(0)
    mu = np.zeros((500, 4))
    logvar = np.zeros((500, 4))
    mu[:, 2] = rng.normal(0, 2.0, 500)          # a dimension that carries information: spread means,
    logvar[:, 2] = -4.0                          # small posterior variance
    mu[:, 0] = rng.normal(0, 0.5, 500)
    kl = kl_per_dimension(mu, logvar)
    expected_2 = np.mean(0.5 * (mu[:, 2] ** 2 + np.exp(-4.0) - 1 + 4.0))
    assert kl[2] == pytest.approx(expected_2) and kl[1] == pytest.approx(0.0) and kl[3] == pytest.approx(0.0)
    order, score, what = dimension_order(mu, logvar)
    assert list(order[:2]) == [2, 0] and what == "KL"
    order, _, what = dimension_order(mu)
    assert list(order[:2]) == [2, 0] and what == "var"


def test_pca_map_projects_and_lifts_on_the_plane_of_the_data():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T          # a random plane in 6-D
    uv = rng.normal(size=(300, 2)) * [3.0, 1.0]
    mu = 0.5 + uv @ basis
    pca = pca_map(mu)
    assert pca.explained.sum() == pytest.approx(1.0) and pca.explained[0] > pca.explained[1]
    np.testing.assert_allclose(pca.lift(pca.points[17]), mu[17], atol=1e-5)    # the data lie on the plane
    np.testing.assert_allclose(pca.project(mu), pca.points, atol=1e-9)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(2), atol=1e-9)
    with pytest.raises(ConfigError):
        pca_map(mu[:1])
