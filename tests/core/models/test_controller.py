import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.core.models.controller import Controller, to_game_action


@pytest.mark.parametrize("game, z, hidden, inputs, expected", [
    ("carracing", 32, 256, "zh", 867),     # the paper's CarRacing controller
    ("doom", 64, 512, "zh", 1088),         # the paper's Doom controller: [z h c], one output, no bias
    ("carracing", 32, 256, "z", 99),       # z-only: 3 x 32 + 3
    ("doom", 64, 512, "z", 64),
])
def test_parameter_counts(game, z, hidden, inputs, expected):
    assert Controller.for_game(game, z, hidden, inputs).n_params == expected


def test_carracing_action_is_tanh_of_a_linear_map_then_game_ranges():
    rng = np.random.default_rng(0)
    controller = Controller.for_game("carracing", 4, 3, params=rng.normal(size=3 * 7 + 3))
    z, h = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    W = controller.params[:21].reshape(3, 7)
    b = controller.params[21:]
    raw = np.tanh(np.concatenate([z, h], 1) @ W.T + b)
    action = controller.act(z, h)
    np.testing.assert_allclose(action[:, 0], raw[:, 0], atol=1e-5)                    # steer in [-1, 1]
    np.testing.assert_allclose(action[:, 1], (raw[:, 1] + 1) / 2, atol=1e-5)          # gas in [0, 1]
    np.testing.assert_allclose(action[:, 2], np.clip(raw[:, 2], 0, 1), atol=1e-5)     # brake in [0, 1]
    assert action.dtype == np.float32 and action.shape == (5, 3)


def test_doom_thirds():
    actions = to_game_action("doom", np.array([[-0.9], [-0.2], [0.0], [0.3], [0.5]]))
    np.testing.assert_array_equal(actions, [[1, 0], [0, 0], [0, 0], [0, 0], [0, 1]])


def test_doom_reads_z_h_and_c():
    controller = Controller.for_game("doom", 2, 3, params=np.arange(8.0) / 10)
    assert controller.features(np.ones((1, 2)), np.ones((1, 3)), np.zeros((1, 3))).shape == (1, 8)
    with pytest.raises(ConfigError, match="pass h"):
        controller.act(np.ones((1, 2)), np.ones((1, 3)))


def test_params_round_trip_and_bad_vectors():
    controller = Controller.for_game("carracing", 32, 256)
    vector = np.random.default_rng(1).normal(size=867)
    controller.set_params(vector)
    np.testing.assert_allclose(controller.params, vector, rtol=1e-6)
    with pytest.raises(ConfigError, match="867"):
        controller.set_params(np.zeros(10))
    with pytest.raises(ConfigError, match="NaN"):
        controller.set_params(np.full(867, np.nan))


def test_z_only_ignores_h():
    controller = Controller.for_game("carracing", 32, 256, "z", params=np.ones(99))
    assert controller.act(np.zeros((2, 32))).shape == (2, 3)


def test_save_and_load_round_trip(tmp_path):
    from wm_studio.core.models.controller import load_controller, save_controller
    for game, z, hidden, inputs in (("carracing", 32, 256, "zh"), ("doom", 4, 6, "zh"), ("carracing", 5, 7, "z")):
        controller = Controller.for_game(game, z, hidden, inputs)
        controller.set_params(np.random.default_rng(2).normal(size=controller.n_params))
        path = save_controller(tmp_path / f"{game}-{inputs}.npz", controller, {"score": 812.5, "generation": 40})
        loaded, meta = load_controller(path)
        assert loaded.shape == controller.shape
        np.testing.assert_array_equal(loaded.params, controller.params)
        assert meta["score"] == 812.5 and meta["generation"] == 40 and meta["kind"] == "controller"
        z_in, h_in = np.ones((2, z)), np.ones((2, hidden))
        np.testing.assert_array_equal(loaded.act(z_in, h_in, h_in), controller.act(z_in, h_in, h_in))


def test_loading_a_wrong_file_is_one_clear_error(tmp_path):
    from wm_studio.core.errors import CheckpointError
    from wm_studio.core.models.controller import load_controller
    from wm_studio.core.models.serialization import save_model
    save_model(tmp_path / "vae.npz", {"w": np.zeros(3)}, {"kind": "vae", "z_size": 3})
    with pytest.raises(CheckpointError, match="not a controller model"):
        load_controller(tmp_path / "vae.npz")
    save_model(tmp_path / "bad.npz", {"weight": np.zeros((3, 5))},
               {"kind": "controller", "game": "carracing", "z_size": 32, "hidden": 256, "inputs": "zh"})
    with pytest.raises(CheckpointError, match="weight is \\(3, 5\\), expected \\(3, 288\\)"):
        load_controller(tmp_path / "bad.npz")
    save_model(tmp_path / "nometa.npz", {"weight": np.zeros((3, 5))}, {"kind": "controller"})
    with pytest.raises(CheckpointError, match="does not describe a controller"):
        load_controller(tmp_path / "nometa.npz")


@pytest.mark.parametrize("game", ["carracing", "doom"])
def test_a_batch_of_controllers_acts_as_each_controller_alone(game):
    from wm_studio.core.models.controller import ControllerBatch, ControllerShape
    shape = ControllerShape(game, 3, 4)
    rng = np.random.default_rng(5)
    params = rng.normal(size=(6, shape.n_params))
    z, h, c = rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    batch = ControllerBatch(shape, params).act(z, h, c)
    alone = np.concatenate([Controller(shape, p).act(z[i], h[i], c[i]) for i, p in enumerate(params)])
    np.testing.assert_allclose(batch, alone, atol=1e-6)
    assert batch.shape == (6, 3 if game == "carracing" else 2)
    with pytest.raises(ConfigError, match="one row"):
        ControllerBatch(shape, params[:, :-1])
