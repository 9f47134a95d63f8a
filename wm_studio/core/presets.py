"""Named sizes for a whole run: `paper` (the paper's numbers), `quick` (a 2-core CPU in about half an hour for
collect + V + M), and `tiny` (seconds; the test suite's size).

Each stage reads its own section; any value can be overridden from the command line or the studio.
"""
from __future__ import annotations

import copy

from wm_studio.core.errors import ConfigError

GAMES = {
    "carracing": {"z_size": 32, "action_size": 3, "hidden": 256, "predict_done": False, "max_steps": 1000},
    "doom": {"z_size": 64, "action_size": 2, "hidden": 512, "predict_done": True, "max_steps": 2100},
}

PRESETS = {
    "paper": {
        "collect": {"rollouts": 10_000, "steps": 1000, "policy": "random-weights", "min_steps": 0},
        "vae": {"epochs": 10, "batch_size": 100, "lr": 1e-4},
        "mdn": {"epochs": 20, "batch_size": 100, "seq_len": 999, "lr": 1e-3, "grad_clip": 1.0},
        "controller": {"popsize": 64, "rollouts": 16, "sigma0": 0.1, "generations": 1800, "eval_every": 25,
                       "eval_rollouts": 1024, "max_steps": None, "early_stop": 0, "in_dream": False},
    },
    "quick": {
        "collect": {"rollouts": 100, "steps": 500, "policy": "brownian", "min_steps": 0},
        # V: 95 of the 100 rollouts train (47,500 frames, 475 batches an epoch at about 0.42 s each on 2 cores
        # with the fast CPU layers: 3.3 minutes), so 3 epochs plus encoding the 50,000 frames (~1,900 frames/s)
        # take about 10.5 minutes.
        "vae": {"epochs": 3, "batch_size": 100, "lr": 1e-4},
        # M: ~45k transitions an epoch, 3-3.6 s on 2 cores, so 120 epochs take about 6-7 minutes. On the bundled
        # model's run (runs/default, 23 Nov 2026) it reached a held-out NLL of 0.892 per dimension after 120.
        "mdn": {"epochs": 120, "batch_size": 32, "seq_len": 100, "lr": 1e-3, "grad_clip": 1.0},
        # C: about 1-1.5 h on 2 cores (about 280 game steps/s with V, M and C in the loop). Early stopping (50
        # negative rewards in a row: off the track or stuck) makes bad candidates cheap, so most of the time goes
        # to controllers that drive; those play full 1000-step episodes, as `wm-studio evaluate` does. 16 x 2
        # rollouts a generation (common tracks), the mean scored on 8 full episodes every 10 generations.
        "controller": {"popsize": 16, "rollouts": 2, "sigma0": 0.1, "generations": 50, "eval_every": 10,
                       "eval_rollouts": 8, "max_steps": None, "early_stop": 50, "in_dream": False},
    },
    "tiny": {
        "collect": {"rollouts": 4, "steps": 40, "policy": "brownian", "min_steps": 0},
        "vae": {"epochs": 1, "batch_size": 16, "lr": 1e-4},
        "mdn": {"epochs": 1, "batch_size": 2, "seq_len": 16, "lr": 1e-3, "grad_clip": 1.0},
        "controller": {"popsize": 6, "rollouts": 1, "sigma0": 0.1, "generations": 2, "eval_every": 2,
                       "eval_rollouts": 2, "max_steps": 30, "eval_max_steps": 30, "early_stop": 0,
                       "in_dream": False},
    },
}

# Doom differs from CarRacing where the paper says so: whole episodes (cap 2100 steps, shorter than 100 dropped)
# and C trained inside M's dream at temperature 1.15.
DOOM_OVERRIDES = {
    "paper": {"collect": {"steps": 2100, "min_steps": 100},
              "controller": {"in_dream": True, "tau": 1.15, "done_threshold": 0.5}},
    "quick": {
        # 1,500 episodes of the sticky random policy (a random action held 1-20 steps: it moves the player
        # about, as the paper's random agent did) last about 380 steps each: about 570,000 frames, 2 GB, and
        # about 20 minutes with 2 workers (collected at about 560 steps/s).
        "collect": {"rollouts": 1500, "steps": 2100, "policy": "sticky", "min_steps": 100},
        # V: one pass over the ~510,000 training frames (5,100 batches at about 0.4 s on 2 cores: 35 minutes).
        "vae": {"epochs": 1, "batch_size": 100, "lr": 1e-4},
        # M: windows of 100 transitions (every death still in every epoch). On runs/doom, windows of 500 were a
        # third padding for episodes of about 330 steps; from 100-step windows an epoch took 2.5 times less time
        # with 3 times the updates, and by epoch 17 the dream showed the game's fireballs and deaths (README).
        "mdn": {"epochs": 17, "batch_size": 32, "seq_len": 100, "lr": 1e-3, "grad_clip": 1.0},
        # C: lambda 32 x 8 dreams at tau 1.15; every 10 generations the mean is scored on 256 dreams and the best
        # one kept. The bundled Doom model's C is generation 10 of this (2 minutes on 2 cores).
        "controller": {"popsize": 32, "rollouts": 8, "sigma0": 0.1, "generations": 20, "eval_every": 10,
                       "eval_rollouts": 256, "max_steps": None, "early_stop": 0, "in_dream": True, "tau": 1.15,
                       "done_threshold": 0.5},
    },
    # The tests' size, still trained in the dream: no step cap, so that candidates differ in how long they last.
    "tiny": {"controller": {"in_dream": True, "tau": 1.15, "done_threshold": 0.5, "max_steps": None,
                            "eval_max_steps": None}},
}


def stage_settings(cls, config, stage: str, overrides=None, **game):
    """A stage's settings (a dataclass) the one way every stage reads them: its section of config.json with
    `overrides` on top (None means "not given"), the run's seed unless the stage has its own; `game` holds the
    values taken from the top level of config. A key the stage does not know is a ConfigError."""
    section = {k: v for k, v in {**config.get(stage, {}), **(overrides or {})}.items() if v is not None}
    section.setdefault("seed", config.get("seed", 0))
    unknown = sorted(set(section) - (set(cls.__dataclass_fields__) - set(game)))
    if unknown:
        raise ConfigError(f"unknown setting(s) in the run's {stage} section: {', '.join(unknown)}")
    return cls(**game, **section)


def preset(env: str, name: str) -> dict:
    """The full settings of a preset for a game: {"env", "preset", game sizes..., "collect": {...}, ...}."""
    if env not in GAMES:
        raise ConfigError(f"unknown game {env!r}: choose one of {', '.join(GAMES)}")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    settings = copy.deepcopy(PRESETS[name])
    if env == "doom":
        for stage, overrides in DOOM_OVERRIDES.get(name, {}).items():
            settings[stage].update(overrides)
    return {"env": env, "preset": name, **GAMES[env], **settings}
