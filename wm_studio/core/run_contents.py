"""What a run folder (or the bundled default model) holds, and loading each part of it on its own.

    contents = inspect_run(path)          # cheap: model metas, file counts, sizes; never the weights
    contents.parts["mdn"].state           # "ok", "stale", "mismatched", "broken" or "missing"
    contents.parts["mdn"].message         # "models/mdn.npz was trained for z 64 but V has z 32"
    contents.missing("vae", "mdn")        # "" when both can be used together, else what is missing, plainly
    vae = load_part(contents, "vae")      # ConvVAE on the CPU (CheckpointError if the file is broken)
    latents = load_latents(contents)      # LatentSample: a bounded sample of the encoded frames

Parts: V (models/vae.npz), M (models/mdn.npz), C (models/controller.npz), the rollouts (data/rollouts/) and
their latents (data/latents/). Each part is checked and loaded independently, so a broken M still lets V be
shown. Sizes are checked against each other and against config.json: M and C must have V's z (and C M's hidden
size), M and C must fit the game's actions, latents must have V's z (latents encoded by another V are usable but
"stale"). A folder without config.json still opens when it has models or data (the game is then inferred).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wm_studio.core.errors import CheckpointError, ConfigError
from wm_studio.core.files import load_json, load_npz, read_meta
from wm_studio.core.runs import DEFAULT_MODEL, bundled_name

MODEL_PARTS = ("vae", "mdn", "controller")
DATA_PARTS = ("rollouts", "latents")
PARTS = MODEL_PARTS + DATA_PARTS
LABELS = {"vae": "V", "mdn": "M", "controller": "C", "rollouts": "rollouts", "latents": "latents"}
RELATIVE = {"vae": "models/vae.npz", "mdn": "models/mdn.npz", "controller": "models/controller.npz",
            "rollouts": "data/rollouts", "latents": "data/latents"}
HOW_TO_MAKE = {"vae": "wm-studio train-vae", "mdn": "wm-studio train-mdn",
               "controller": "wm-studio train-controller", "rollouts": "wm-studio collect",
               "latents": "wm-studio train-vae"}   # training V ends by encoding the rollouts
GAME_ACTIONS = {"carracing": 3, "doom": 2}
USABLE = ("ok", "stale")

# A bounded sample of the latents: enough for the PCA map and the KL order, never a whole paper-size data set.
LATENT_SAMPLE_FRAMES = 20_000
LATENT_SAMPLE_FILES = 200


@dataclass(frozen=True)
class Part:
    name: str               # one of PARTS
    path: Path
    state: str              # "ok", "stale" (usable, with a note), "mismatched", "broken" or "missing"
    message: str            # one plain sentence about it
    meta: Mapping[str, Any] = field(default_factory=dict)   # model meta; for data: files, frames, z_size

    @property
    def usable(self) -> bool:
        return self.state in USABLE


@dataclass(frozen=True)
class RunContents:
    root: Path
    config: Mapping[str, Any]
    game: str                       # "carracing" or "doom" (from config.json, else inferred)
    parts: Mapping[str, Part]
    notes: tuple[str, ...] = ()     # about the folder as a whole (no config.json, unreadable config...)

    @property
    def name(self) -> str:
        return bundled_name(self.root) or str(self.root)

    def usable(self, *names: str) -> bool:
        return all(self.parts[name].usable for name in names)

    def missing(self, *names: str) -> str:
        """'' when every named part is usable, else one plain sentence per part that is not."""
        return " ".join(self.parts[name].message for name in names if not self.parts[name].usable)

    def problems(self) -> list[str]:
        """Every note and every part that is not plainly ok, as sentences."""
        return list(self.notes) + [part.message for part in self.parts.values() if part.state != "ok"]

    def summary(self) -> str:
        """One line: what is there, e.g. 'carracing run: V z32, M 256 units, 4 rollouts, 4 latent files'."""
        found = []
        for part in self.parts.values():
            if not part.usable:
                continue
            meta = part.meta
            if part.name == "vae":
                found.append(f"V z{meta.get('z_size')}")
            elif part.name == "mdn":
                found.append(f"M {meta.get('hidden')} units")
            elif part.name == "controller":
                found.append(f"C on {meta.get('inputs', 'zh')}")
            else:
                found.append(f"{meta.get('files')} {'rollouts' if part.name == 'rollouts' else 'latent files'}")
        return f"{self.game} run: " + (", ".join(found) if found else "nothing usable yet")

    @property
    def z_size(self) -> int | None:
        """V's z size (else the config's)."""
        vae = self.parts["vae"]
        if vae.usable:
            return int(vae.meta["z_size"])
        value = self.config.get("z_size")
        return int(value) if isinstance(value, int) else None


@dataclass(frozen=True)
class LatentSample:
    """Encoded real frames: mu and logvar (N, z) with where each came from (file index into `files`, step)."""
    mu: np.ndarray
    logvar: np.ndarray
    file_index: np.ndarray      # (N,) int
    step: np.ndarray            # (N,) int
    files: tuple[Path, ...]     # latent files; the rollout of the same stem holds the frames


# ---- inspection ------------------------------------------------------------------------------------------------
def looks_like_run(root) -> bool:
    root = Path(root)
    return root.is_dir() and any((root / name).exists() for name in ("config.json", "models", "data"))


def inspect_run(root) -> RunContents:
    """What the folder holds and whether each part can be used; reads metas and headers, never the weights.

    ConfigError if the folder is not a run folder at all (no config.json, models/ or data/)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} does not exist or is not a folder")
    if not looks_like_run(root):
        raise ConfigError(f"{root} is not a wm_studio run folder: it has no config.json, models/ or data/. "
                          f"Choose the folder that `wm-studio collect --run FOLDER` made")
    notes: list[str] = []
    config: dict[str, Any] = {}
    if (root / "config.json").is_file():
        try:
            loaded = load_json(root / "config.json")
            config = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                notes.append("config.json does not hold a settings object; sizes are taken from the models")
        except CheckpointError as exc:
            notes.append(f"{exc}; sizes are taken from the models")
    else:
        notes.append("config.json is missing; the game and sizes are taken from the models")

    metas = {name: _model_meta(root, name) for name in MODEL_PARTS}
    game = _game(config, metas)
    if "env" not in config:
        notes.append(f"the game is taken to be {game}")
    parts: dict[str, Part] = {}
    parts["vae"] = _vae_part(root, config, metas["vae"])
    z_size = int(parts["vae"].meta["z_size"]) if parts["vae"].usable else config.get("z_size")
    parts["mdn"] = _mdn_part(root, game, z_size, metas["mdn"])
    hidden = parts["mdn"].meta.get("hidden") if parts["mdn"].usable else config.get("hidden")
    parts["controller"] = _controller_part(root, game, z_size, hidden, metas["controller"])
    parts["rollouts"] = _rollouts_part(root)
    parts["latents"] = _latents_part(root, z_size, parts["vae"])
    return RunContents(root=root, config=config, game=game, parts=parts, notes=tuple(notes))


def _model_meta(root: Path, name: str) -> dict[str, Any] | CheckpointError | None:
    path = root / RELATIVE[name]
    if not path.is_file():
        return None
    try:
        meta = read_meta(path, required=True)
    except CheckpointError as exc:
        return exc
    if meta.get("kind") != name:
        return CheckpointError(f"{RELATIVE[name]} holds a {meta.get('kind') or 'unknown'} model, not "
                               f"{'a' if name != 'mdn' else 'an'} {name} model")
    return meta


def _game(config: Mapping[str, Any], metas: Mapping[str, Any]) -> str:
    if config.get("env") in GAME_ACTIONS:
        return config["env"]
    controller, mdn, vae = metas["controller"], metas["mdn"], metas["vae"]
    if isinstance(controller, dict) and controller.get("game") in GAME_ACTIONS:
        return controller["game"]
    if isinstance(mdn, dict) and mdn.get("action_size") == GAME_ACTIONS["doom"]:
        return "doom"
    if isinstance(mdn, dict) and mdn.get("action_size") == GAME_ACTIONS["carracing"]:
        return "carracing"
    if isinstance(vae, dict) and vae.get("z_size") == 64:
        return "doom"
    return "carracing"


def _missing(root: Path, name: str) -> Part:
    what = "The rollouts are" if name == "rollouts" else "The latents are" if name == "latents" else \
        f"{LABELS[name]} is"
    return Part(name, root / RELATIVE[name], "missing", f"{what} missing ({RELATIVE[name]}): make "
                f"{'them' if name in DATA_PARTS else 'it'} with `{HOW_TO_MAKE[name]} --run {root}`")


def _broken(root: Path, name: str, error: Exception) -> Part:
    return Part(name, root / RELATIVE[name], "broken", f"{LABELS[name]} cannot be read: {error}")


def _vae_part(root: Path, config, meta) -> Part:
    path = root / RELATIVE["vae"]
    if meta is None:
        return _missing(root, "vae")
    if isinstance(meta, Exception):
        return _broken(root, "vae", meta)
    z_size = meta.get("z_size")
    if not isinstance(z_size, int) or z_size < 1:
        return _broken(root, "vae", CheckpointError(f"{RELATIVE['vae']} does not say its z size"))
    if isinstance(config.get("z_size"), int) and config["z_size"] != z_size:
        return Part("vae", path, "stale", f"V has z {z_size} but config.json says z_size {config['z_size']}; "
                                          f"V's own size is used", meta)
    return Part("vae", path, "ok", f"V: z {z_size}", meta)


def _mdn_part(root: Path, game: str, z_size, meta) -> Part:
    path = root / RELATIVE["mdn"]
    if meta is None:
        return _missing(root, "mdn")
    if isinstance(meta, Exception):
        return _broken(root, "mdn", meta)
    sizes = {key: meta.get(key) for key in ("z_size", "action_size", "hidden", "gaussians")}
    if not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        return _broken(root, "mdn", CheckpointError(f"{RELATIVE['mdn']} does not say its sizes ({sizes})"))
    if isinstance(z_size, int) and sizes["z_size"] != z_size:
        return Part("mdn", path, "mismatched", f"{RELATIVE['mdn']} was trained for z {sizes['z_size']} but V has "
                                               f"z {z_size}: retrain M on this V's latents", meta)
    if sizes["action_size"] != GAME_ACTIONS[game]:
        return Part("mdn", path, "mismatched", f"{RELATIVE['mdn']} takes {sizes['action_size']} actions but "
                                               f"{game} has {GAME_ACTIONS[game]}", meta)
    return Part("mdn", path, "ok", f"M: {sizes['hidden']} units, {sizes['gaussians']} Gaussians", meta)


def _controller_part(root: Path, game: str, z_size, hidden, meta) -> Part:
    path = root / RELATIVE["controller"]
    if meta is None:
        return _missing(root, "controller")
    if isinstance(meta, Exception):
        return _broken(root, "controller", meta)
    where = RELATIVE["controller"]
    if meta.get("game") != game:
        return Part("controller", path, "mismatched", f"{where} plays {meta.get('game')}, not {game}", meta)
    if isinstance(z_size, int) and meta.get("z_size") != z_size:
        return Part("controller", path, "mismatched", f"{where} reads z {meta.get('z_size')} but V has "
                                                      f"z {z_size}", meta)
    if meta.get("inputs", "zh") == "zh" and isinstance(hidden, int) and meta.get("hidden") != hidden:
        return Part("controller", path, "mismatched", f"{where} reads an LSTM of {meta.get('hidden')} units but M "
                                                      f"has {hidden}", meta)
    return Part("controller", path, "ok", f"C: on {meta.get('inputs', 'zh')}", meta)


def _data_files(folder: Path) -> list[Path]:
    from wm_studio.core.data.dataset import rollout_files
    return rollout_files(folder)


def _rollouts_part(root: Path) -> Part:
    folder = root / RELATIVE["rollouts"]
    files = _data_files(folder)
    if not files:
        return _missing(root, "rollouts")
    return Part("rollouts", folder, "ok", f"{len(files)} rollouts", {"files": len(files)})


def _latents_part(root: Path, z_size, vae: Part) -> Part:
    folder = root / RELATIVE["latents"]
    files = _data_files(folder)
    if not files:
        return _missing(root, "latents")
    try:
        meta = read_meta(files[0], required=True)
    except CheckpointError as exc:
        return _broken(root, "latents", exc)
    info = {"files": len(files), "z_size": meta.get("z_size"), "vae": meta.get("vae")}
    if isinstance(z_size, int) and isinstance(meta.get("z_size"), int) and meta["z_size"] != z_size:
        return Part("latents", folder, "mismatched", f"the latents have z {meta['z_size']} but V has z {z_size}: "
                                                     f"encode the rollouts again (wm-studio train-vae)", info)
    if vae.usable and meta.get("vae"):
        from wm_studio.core.files import model_fingerprint
        if meta["vae"] != model_fingerprint(vae.path):
            return Part("latents", folder, "stale", f"the latents ({len(files)} files) were encoded by an "
                                                    f"earlier V; the studio uses them as they are", info)
    return Part("latents", folder, "ok", f"{len(files)} latent files", info)


# ---- loading -----------------------------------------------------------------------------------------------
def load_part(contents: RunContents, name: str):
    """The part's object on the CPU: ConvVAE, MDNRNN, (Controller, meta), or the list of rollout files.

    CheckpointError when the part is missing or cannot be read (mismatched parts load: the caller decides)."""
    part = contents.parts[name]
    if part.state == "missing":
        raise CheckpointError(part.message)
    if part.state == "broken":
        raise CheckpointError(part.message)
    if name == "vae":
        from wm_studio.core.models.serialization import load_vae
        return load_vae(part.path)
    if name == "mdn":
        from wm_studio.core.models.mdnrnn import load_mdn
        return load_mdn(part.path)
    if name == "controller":
        from wm_studio.core.models.controller import load_controller
        return load_controller(part.path)
    if name == "rollouts":
        return _data_files(part.path)
    if name == "latents":
        return load_latents(contents)
    raise ValueError(f"unknown part {name!r}; parts are {', '.join(PARTS)}")


def load_latents(contents: RunContents, max_frames: int = LATENT_SAMPLE_FRAMES,
                 max_files: int = LATENT_SAMPLE_FILES, seed: int = 0) -> LatentSample:
    """mu and logvar of up to max_frames encoded frames from up to max_files latent files (a fixed random
    choice for larger runs, so memory stays bounded); files that cannot be read are skipped."""
    part = contents.parts["latents"]
    if part.state in ("missing", "broken"):
        raise CheckpointError(part.message)
    files = _data_files(part.path)
    rng = np.random.default_rng(seed)
    if len(files) > max_files:
        files = [files[i] for i in np.sort(rng.choice(len(files), max_files, replace=False))]
    mus, logvars, sources, steps, kept = [], [], [], [], []
    for path in files:
        try:
            arrays, _ = load_npz(path, required=("mu", "logvar"))
        except CheckpointError:
            continue
        mu, logvar = arrays["mu"], arrays["logvar"]
        if mu.ndim != 2 or mu.shape != logvar.shape or not len(mu):
            continue
        mus.append(mu.astype(np.float32))
        logvars.append(logvar.astype(np.float32))
        sources.append(np.full(len(mu), len(kept)))
        steps.append(np.arange(len(mu)))
        kept.append(path)
    if not mus:
        raise CheckpointError(f"none of the {len(files)} latent files in {part.path} could be read")
    sizes = {m.shape[1] for m in mus}
    if len(sizes) > 1:
        raise CheckpointError(f"the latent files in {part.path} have different z sizes ({sorted(sizes)})")
    mu, logvar = np.concatenate(mus), np.concatenate(logvars)
    file_index, step = np.concatenate(sources), np.concatenate(steps)
    if len(mu) > max_frames:
        pick = np.sort(rng.choice(len(mu), max_frames, replace=False))
        mu, logvar, file_index, step = mu[pick], logvar[pick], file_index[pick], step[pick]
    finite = np.isfinite(mu).all(axis=1) & np.isfinite(logvar).all(axis=1)
    return LatentSample(mu[finite], logvar[finite], file_index[finite], step[finite], tuple(kept))


def load_frames(path) -> np.ndarray:
    """uint8 (T, 64, 64, 3) frames of a rollout file."""
    arrays, _ = load_npz(path, required=("frames",))
    frames = arrays["frames"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (64, 64, 3):
        raise CheckpointError(f"{path} does not hold 64x64 RGB frames (frames is {frames.dtype} {frames.shape})")
    return frames
