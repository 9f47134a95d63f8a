"""What Doom's M dreams against what the game showed: fireballs and deaths, side by side on the same episodes.

    .venv/bin/python benchmarks/doom_dream_content.py [--run runs/doom] [--mdn PATH] [--episodes 16] [--dreams 16]

For held-out episodes of the run (M never trained on them), each seen through V (the real frames' mean latents,
decoded) and dreamt by M from the episode's first frame (z drawn from V's mu and logvar), with the episode's own
actions replayed, at temperature tau: the share of frames that show a fireball (at least 4 bright yellow pixels in
the decoded 64 x 64 frame), how many episodes end within the first `steps` steps (a real death; in the dream,
p(done) > 0.5) and the mean steps survived up to that cap. A dream fit to train C in shows about as many
fireballs and deaths as the game; a blind one shows fewer and never ends. Results: a table on stdout and
benchmarks/results/doom_dream_content.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")    # a side job: it should not take both cores from a training run
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wm_studio.core.data.dataset import split_holdout  # noqa: E402
from wm_studio.core.files import load_npz  # noqa: E402
from wm_studio.core.models.mdnrnn import load_mdn, sample  # noqa: E402
from wm_studio.core.models.serialization import load_vae  # noqa: E402
from wm_studio.core.runs import Run  # noqa: E402
from wm_studio.core.train.mdn_stage import MdnSettings, latent_files_of  # noqa: E402

FIREBALL_PIXELS = 4


def fireball_frames(vae, z: np.ndarray) -> np.ndarray:
    """True for each latent whose decoded frame shows a fireball (bright yellow pixels)."""
    import chainer
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        frames = vae.decode(np.asarray(z, np.float32)).array * 255
    red, green, blue = frames[:, 0], frames[:, 1], frames[:, 2]
    return ((red > 190) & (green > 140) & (blue < 140)).sum(axis=(1, 2)) >= FIREBALL_PIXELS


def dream_episode(mdn, vae, mu, logvar, actions, dreams: int, steps: int, tau: float, rng, every: int):
    """(share of sampled dream frames with a fireball, steps survived per dream) for one episode's start and
    actions (held at the last one past the episode's end)."""
    z = (mu[0] + np.exp(logvar[0] / 2) * rng.standard_normal((dreams, mu.shape[1]))).astype(np.float32)
    state, alive, survived, fire = None, np.ones(dreams, bool), np.zeros(dreams), []
    for t in range(steps):
        action = np.repeat(actions[min(t, len(actions) - 1)][None], dreams, axis=0)
        mixture, p_done, state = mdn.step(z, action, state)
        z = sample(mixture, tau, rng)
        if t % every == 0:
            fire.append(fireball_frames(vae, z[alive]) if alive.any() else np.zeros(0, bool))
        survived += alive
        alive &= ~(np.asarray(p_done) > 0.5)
    return np.concatenate(fire).mean(), survived


def measure(run: Run, mdn_path: Path, episodes: int, dreams: int, steps: int, tau: float, seed: int,
            every: int) -> dict:
    settings = MdnSettings.from_config(run.config)
    _, heldout = split_holdout(latent_files_of(run), settings.holdout, settings.seed)
    files = heldout[:: max(1, len(heldout) // episodes)][:episodes]
    vae, mdn = load_vae(run.model_path("vae")), load_mdn(mdn_path)
    rng = np.random.default_rng(seed)
    real_fire, real_steps, dream_fire, dream_steps = [], [], [], []
    for path in files:
        arrays, _ = load_npz(path)
        mu, logvar, actions = arrays["mu"], arrays["logvar"], arrays["actions"]
        real_fire.append(fireball_frames(vae, mu[:steps:every]).mean())
        real_steps.append(min(len(mu), steps) if arrays["dones"][-1] else steps)
        fire, survived = dream_episode(mdn, vae, mu, logvar, actions, dreams, steps, tau, rng, every)
        dream_fire.append(fire)
        dream_steps.extend(survived)
    real_steps, dream_steps = np.asarray(real_steps, float), np.asarray(dream_steps, float)
    return {"run": str(run.root), "mdn": str(mdn_path), "episodes": len(files), "dreams_per_episode": dreams,
            "steps": steps, "tau": tau, "seed": seed,
            "real": {"fireball_frames": float(np.mean(real_fire)), "ended": float(np.mean(real_steps < steps)),
                     "mean_steps": float(real_steps.mean())},
            "dream": {"fireball_frames": float(np.mean(dream_fire)), "ended": float(np.mean(dream_steps < steps)),
                      "mean_steps": float(dream_steps.mean())}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "doom")
    parser.add_argument("--mdn", type=Path, default=None, help="an M file (default: the run's models/mdn.npz)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--dreams", type=int, default=16, help="dreams per episode")
    parser.add_argument("--steps", type=int, default=200, help="steps dreamt (and the cap on survival)")
    parser.add_argument("--tau", type=float, default=1.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=4, help="decode every Nth dream step")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "doom_dream_content.json")
    args = parser.parse_args(argv)
    run = Run.open(args.run)
    result = measure(run, args.mdn or run.model_path("mdn"), args.episodes, args.dreams, args.steps, args.tau,
                     args.seed, args.every)
    print(f"{result['episodes']} held-out episodes of {args.run}, {args.dreams} dreams each at tau {args.tau}, "
          f"first {args.steps} steps")
    print("| | game (through V) | dream (M) |\n|---|---|---|")
    for key, label, form in (("fireball_frames", "frames showing a fireball", "{:.1%}"),
                             ("ended", f"episodes ended within {args.steps} steps", "{:.0%}"),
                             ("mean_steps", f"mean steps survived (cap {args.steps})", "{:.1f}")):
        print(f"| {label} | {form.format(result['real'][key])} | {form.format(result['dream'][key])} |")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
