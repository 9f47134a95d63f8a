"""Tiny run folders for the studio's tests: seeded random-weight V (small z), M and C, and a few short rollouts of
synthetic frames with their latents, so that each pane has real files to open."""
from __future__ import annotations

import numpy as np

from wm_studio.core.files import save_npz
from wm_studio.core.models.controller import Controller, save_controller
from wm_studio.core.models.mdnrnn import MDNRNN
from wm_studio.core.models.serialization import load_vae, save_model
from wm_studio.core.models.vae import ConvVAE
from wm_studio.core.presets import preset
from wm_studio.core.runs import Run
from wm_studio.core.files import model_fingerprint
from wm_studio.core.train.encode import encode_frames

Z, HIDDEN = 8, 16
ALL_PARTS = ("vae", "mdn", "controller", "rollouts", "latents")


def synthetic_frames(rng: np.random.Generator, steps: int) -> np.ndarray:
    """A coloured background with a bright square that moves: frames that differ from rollout to rollout and
    from step to step."""
    background = rng.integers(20, 200, size=3)
    frames = np.empty((steps, 64, 64, 3), np.uint8)
    frames[:] = background
    start, velocity = rng.integers(0, 40, size=2), rng.integers(-2, 3, size=2)
    for t in range(steps):
        row, col = np.clip(start + t * velocity, 0, 48)
        frames[t, row:row + 16, col:col + 16] = 255 - background
    return frames


def save_vae(run: Run, z_size: int = Z, seed: int = 0) -> ConvVAE:
    vae = ConvVAE(z_size, seed=seed)
    save_model(run.model_path("vae"), vae, vae.meta())
    return vae


def save_mdn(run: Run, z_size: int = Z, action_size: int = 3, hidden: int = HIDDEN, seed: int = 1,
             predict_done: bool = False) -> MDNRNN:
    mdn = MDNRNN(z_size, action_size, hidden, predict_done=predict_done, seed=seed)
    mdn.step(np.zeros((1, z_size), np.float32), np.zeros((1, action_size), np.float32))
    save_model(run.model_path("mdn"), mdn, mdn.meta())
    return mdn


def make_run(root, parts=ALL_PARTS, z_size: int = Z, hidden: int = HIDDEN, rollouts: int = 3, steps: int = 12,
             seed: int = 0, game: str = "carracing") -> Run:
    """A run folder holding the named parts. A Doom M has a done head (p(done) from its random weights)."""
    actions_size = 3 if game == "carracing" else 2
    config = preset(game, "tiny")
    config.update(z_size=z_size, hidden=hidden)
    run = Run.create(root, config)
    rng = np.random.default_rng(seed)
    if "vae" in parts or "latents" in parts:
        save_vae(run, z_size, seed)
    if "mdn" in parts:
        save_mdn(run, z_size, actions_size, hidden=hidden, seed=seed + 1, predict_done=game == "doom")
    if "controller" in parts:
        controller = Controller.for_game(game, z_size, hidden)
        controller.set_params(rng.normal(0, 0.5, controller.n_params))
        save_controller(run.model_path("controller"), controller)
    vae = load_vae(run.model_path("vae")) if "latents" in parts else None
    for index in range(rollouts if ("rollouts" in parts or "latents" in parts) else 0):
        frames = synthetic_frames(rng, steps)
        actions = rng.uniform(-1, 1, (steps, actions_size)).astype(np.float32)
        rewards = rng.normal(size=steps).astype(np.float32)
        dones = np.zeros(steps, bool)
        name = f"rollout_{index:06d}.npz"
        if "rollouts" in parts:
            save_npz(run.rollouts_dir / name, {"frames": frames, "actions": actions, "rewards": rewards,
                                               "dones": dones},
                     {"env": game, "seed": index, "policy": "brownian", "steps": steps}, compressed=True)
        if vae is not None:
            mu, logvar = encode_frames(vae, frames, np, 64)
            save_npz(run.latents_dir / name, {"mu": mu, "logvar": logvar, "actions": actions, "rewards": rewards,
                                              "dones": dones},
                     {"env": game, "source": name, "z_size": z_size,
                      "vae": model_fingerprint(run.model_path("vae"))})
    if "vae" not in parts:
        run.model_path("vae").unlink(missing_ok=True)
    return run
