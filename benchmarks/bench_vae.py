"""V's training speed on the CPU: Chainer's own layers, Chainer with wm_studio's fast layers, and PyTorch.

"fast" is wm_studio.core.channels_last: its convolution layers and its in-place Adam step, as V's stage uses them.
All three train the paper's ConvVAE (z 32, batch 100, Adam 1e-4, per-image squared error + floored KL) on the same
frames, in the same process, in interleaved rounds (stock, fast, torch, stock, ...) so that a noisy machine hurts
them alike; the table shows the median images/s of the rounds and the ratios.

    .venv/bin/python benchmarks/bench_vae.py                # the table, saved to benchmarks/results/vae.json
    .venv/bin/python benchmarks/bench_vae.py --quick        # a smoke run: a few small batches
    .venv/bin/python benchmarks/bench_vae.py --profile      # and where Chainer spends a step (cProfile)

PyTorch is a peer to measure against, never a dependency of wm_studio: `pip install torch==2.13.0` (a CPU build).
Without it the Chainer rows are still measured. Threads: numpy's OpenBLAS uses every core for its matrix products
by default, and PyTorch is given the same number (torch.set_num_threads). `--threads N` sets both (OpenBLAS through
OPENBLAS_NUM_THREADS, which must be set before numpy loads, hence the late imports below). PyTorch's OpenMP
threads suffer far more than OpenBLAS's when another process holds a core: compare on a quiet machine.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results" / "vae.json"


def make_batches(count: int, batch_size: int, seed: int = 0) -> list:
    """Frames with some structure (plain background, a few coloured boxes) as float32 NCHW in [0, 1]."""
    import numpy as np
    from wm_studio.core.envs.preprocess import frames_to_input
    rng = np.random.default_rng(seed)
    frames = np.empty((count * batch_size, 64, 64, 3), np.uint8)
    frames[:] = rng.integers(0, 256, (len(frames), 1, 1, 3), dtype=np.uint8)
    for frame in frames:
        for _ in range(3):
            top, left = rng.integers(0, 48, 2)
            frame[top:top + 16, left:left + 16] = rng.integers(0, 256, 3, dtype=np.uint8)
    images = frames_to_input(frames)
    return [images[i * batch_size:(i + 1) * batch_size] for i in range(count)]


class ChainerTrainer:
    def __init__(self, z_size: int, lr: float, fast: bool):
        import chainer
        import numpy as np
        from wm_studio.core.models.vae import ConvVAE
        from wm_studio.core import channels_last
        self.model = ConvVAE(z_size, seed=0, fast_cpu=fast)
        self.optimizer = (channels_last.Adam if fast else chainer.optimizers.Adam)(alpha=lr)
        self.optimizer.setup(self.model)
        self.rng = np.random.default_rng(0)

    def step(self, x) -> float:
        total, _, _ = self.model.loss(x, self.rng)
        self.model.cleargrads()
        total.backward()
        self.optimizer.update()
        return float(total.array)


class TorchTrainer:
    """The same network, loss and optimiser written in PyTorch."""

    def __init__(self, z_size: int, lr: float, threads: int):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        self.z_size = z_size
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
            nn.Conv2d(64, 128, 4, 2), nn.ReLU(), nn.Conv2d(128, 256, 4, 2), nn.ReLU(), nn.Flatten())
        self.mu, self.logvar = nn.Linear(1024, z_size), nn.Linear(1024, z_size)
        self.dense = nn.Linear(z_size, 1024)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, 2), nn.ReLU(), nn.ConvTranspose2d(128, 64, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 6, 2), nn.ReLU(), nn.ConvTranspose2d(32, 3, 6, 2), nn.Sigmoid())
        self.modules = nn.ModuleList([self.encoder, self.mu, self.logvar, self.dense, self.decoder])
        self.parameters = sum(p.numel() for p in self.modules.parameters())
        self.optimizer = torch.optim.Adam(self.modules.parameters(), lr=lr)

    def step(self, x) -> float:
        torch = self.torch
        x = torch.from_numpy(x)
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        y = self.decoder(self.dense(z).reshape(-1, 1024, 1, 1))
        rec = ((x - y) ** 2).sum() / len(x)
        kl = (-0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(dim=1)).clamp(min=0.5 * self.z_size).mean()
        total = rec + kl
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        return float(total.detach())


def time_run(trainer, batches: list, steps: int) -> float:
    """Images per second over `steps` training steps."""
    start = time.perf_counter()
    for i in range(steps):
        trainer.step(batches[i % len(batches)])
    return steps * len(batches[0]) / (time.perf_counter() - start)


def profile_summary(trainer, batches, steps: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(steps):
        trainer.step(batches[i % len(batches)])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    total = next(line for line in lines if "function calls" in line).strip()
    return "\n".join([f"  {total} ({steps} steps)"] + ["  " + line for line in lines[start:] if line.strip()])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="timed training steps per round and framework")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the table shows medians)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--z-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both OpenBLAS and PyTorch (default: OpenBLAS's own default, all cores)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 2 steps at batch 16")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of Chainer's step")
    parser.add_argument("--json", default=str(RESULTS), help="where to save the results (default %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds, args.batch_size = 2, 2, 16

    if args.threads:
        if "numpy" in sys.modules:
            parser.error("--threads must be set before numpy is imported: run this file as a script")
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    threads = args.threads or os.cpu_count()
    import chainer
    import numpy as np
    batches = make_batches(4, args.batch_size)
    trainers = {"chainer (stock layers)": ChainerTrainer(args.z_size, args.lr, fast=False),
                "chainer (wm_studio fast)": ChainerTrainer(args.z_size, args.lr, fast=True)}
    try:
        import torch
        trainers["pytorch"] = TorchTrainer(args.z_size, args.lr, threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
        print("PyTorch is not installed, so there is no peer row: `.venv/bin/pip install torch==2.13.0` "
              "(a CPU build; for this benchmark only)", file=sys.stderr)

    print(f"ConvVAE z {args.z_size}, batch {args.batch_size}, Adam {args.lr}; {args.rounds} interleaved rounds "
          f"of {args.batches} steps; {os.cpu_count()} cores; threads: OpenBLAS {threads}"
          + (f", torch {threads}" if torch_version else ""), file=sys.stderr)
    for trainer in trainers.values():       # first steps allocate and warm caches: not timed
        trainer.step(batches[0])
    runs: dict[str, list[float]] = {name: [] for name in trainers}
    for round_index in range(args.rounds):
        for name, trainer in trainers.items():
            runs[name].append(time_run(trainer, batches, args.batches))
        print(f"round {round_index + 1}/{args.rounds}: "
              + ", ".join(f"{name} {values[-1]:.0f}/s" for name, values in runs.items()), file=sys.stderr)

    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(f"\n{'framework':34s} {'images/s (median)':>18s} {'min':>7s} {'max':>7s}")
    for name, values in runs.items():
        print(f"{name:34s} {medians[name]:18.1f} {min(values):7.1f} {max(values):7.1f}")
    pairs = {"fast / stock chainer": ("chainer (wm_studio fast)", "chainer (stock layers)")}
    if "pytorch" in runs:
        pairs.update({"stock chainer / pytorch": ("chainer (stock layers)", "pytorch"),
                      "fast chainer / pytorch": ("chainer (wm_studio fast)", "pytorch")})
    # Each round's figures are taken minutes apart at most, so the ratio within a round shares its noise.
    ratios = {name: {"of medians": medians[a] / medians[b],
                     "median of rounds": statistics.median(x / y for x, y in zip(runs[a], runs[b])),
                     "of best rounds": max(runs[a]) / max(runs[b])}
              for name, (a, b) in pairs.items()}
    print(f"\n{'ratio':34s} {'of medians':>12s} {'median of rounds':>17s} {'of best rounds':>15s}")
    for name, value in ratios.items():
        print(f"{name:34s} {value['of medians']:12.2f} {value['median of rounds']:17.2f} "
              f"{value['of best rounds']:15.2f}")

    profiles = {}
    if args.profile:
        for name in ("chainer (stock layers)", "chainer (wm_studio fast)"):
            profiles[name] = profile_summary(trainers[name], batches, 2, 14)
            print(f"\nprofile of {name}, by own time (numpy's dot is counted in its caller's own time):")
            print(profiles[name])

    results = {
        "benchmark": "vae_training_cpu",
        "settings": {"z_size": args.z_size, "batch_size": args.batch_size, "lr": args.lr, "steps": args.batches,
                     "rounds": args.rounds, "threads": threads},
        "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "chainer": chainer.__version__, "torch": torch_version},
        "images_per_second": {name: {"median": medians[name], "runs": values} for name, values in runs.items()},
        "ratios": ratios,
        "profiles": profiles,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nsaved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
