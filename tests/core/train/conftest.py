"""Tiny run folders with real (untrained) V and M files, for the controller, rollout and evaluate tests."""
import numpy as np
import pytest

from wm_studio.core.files import save_npz
from wm_studio.core.models.serialization import save_model
from wm_studio.core.presets import preset
from wm_studio.core.runs import Run

CAR_HIDDEN = 16      # a small M keeps the tests fast; V is the paper's network (its size is fixed)
DOOM_Z, DOOM_HIDDEN = 4, 8


def make_tiny_run(root, game="carracing", episode=30, **controller) -> Run:
    """A tiny-preset run with models/vae.npz (CarRacing) and models/mdn.npz (with a done head for Doom) written
    from seeded initial weights, and for Doom a few latent files to start dreams from."""
    from wm_studio.core.models.mdnrnn import MDNRNN
    config = preset(game, "tiny")
    config["max_steps"] = episode
    config["controller"].update(controller)
    if game == "carracing":
        config["hidden"] = CAR_HIDDEN
        run = Run.create(root, config)
        from wm_studio.core.models.vae import ConvVAE
        vae = ConvVAE(32, seed=0)
        save_model(run.model_path("vae"), vae, vae.meta())
        mdn = MDNRNN(32, 3, CAR_HIDDEN, seed=1)
    else:
        config.update(z_size=DOOM_Z, hidden=DOOM_HIDDEN)
        run = Run.create(root, config)
        mdn = MDNRNN(DOOM_Z, 2, DOOM_HIDDEN, predict_done=True, seed=1)
        rng = np.random.default_rng(3)
        for i in range(3):
            save_npz(run.latents_dir / f"rollout_{i:06d}.npz",
                     {"mu": rng.normal(size=(20, DOOM_Z)).astype(np.float32),
                      "logvar": np.zeros((20, DOOM_Z), np.float32), "actions": np.zeros((20, 2), np.float32),
                      "rewards": np.ones(20, np.float32), "dones": np.zeros(20, bool)})
    mdn.step(np.zeros((1, mdn.z_size), np.float32), np.zeros((1, mdn.action_size), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    return run


@pytest.fixture
def tiny_run(tmp_path):
    return lambda game="carracing", name="run", **kwargs: make_tiny_run(tmp_path / name, game, **kwargs)
