"""Where the files of run folders and bundles lie: which folders are read-only (bundles, the bundled models), where
a file the user names may go, and how a damaged file of a run is made again. Nothing here reads or writes a file
(wm_studio.core.files asks it how to rebuild what it cannot read)."""
from __future__ import annotations

from pathlib import Path

from wm_studio.core.errors import ConfigError

STAGES = ("collect", "vae", "mdn", "controller")
# The model the studio opens on first launch (resources/ beside the package), and the file that marks any folder
# `wm-studio bundle` made. Bundles are read-only: float16 weights without checkpoints can not be trained further,
# and the shipped one's records (metrics/evaluation.json...) are what the README quotes.
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "resources" / "default_model"
DOOM_MODEL = DEFAULT_MODEL.parent / "doom_model"
BUNDLED_MODELS = {"carracing": DEFAULT_MODEL, "doom": DOOM_MODEL}     # File > Open the bundled ... model
BUNDLE_FILE = "BUNDLE.json"


def bundled_name(folder) -> str | None:
    """'the bundled CarRacing model' (or Doom) for a folder that is one of the models shipped with the studio."""
    folder = Path(folder).resolve()
    for game, model in BUNDLED_MODELS.items():
        if folder == model.resolve():
            return f"the bundled {'CarRacing' if game == 'carracing' else 'Doom'} model"
    return None


def read_only_folder(path) -> Path | None:
    """The bundle (read-only run folder) that is `path` or holds it, else None."""
    path = Path(path).expanduser().resolve()
    default = DEFAULT_MODEL.resolve()
    for folder in (path, *path.parents):
        if folder == default or (folder / BUNDLE_FILE).is_file():
            return folder
    return None


def refuse_read_only(path, doing: str) -> None:
    """ConfigError when `path` is, or lies inside, a bundle: `doing` would change it."""
    folder = read_only_folder(path)
    if folder is not None:
        raise ConfigError(f"{doing} would change {_bundle_name(folder)}, which is read-only: make a run of your "
                          f"own (`wm-studio collect --run NEW_FOLDER`, or New run… in the studio's Training pane)")


def output_file(path, option: str = "--out") -> Path:
    """A file the user named for a result: its folder must exist (a typo never makes a tree of folders) and
    must not be a bundle. ConfigError otherwise; `option` names the file in the message ("" for none)."""
    path = Path(path).expanduser()
    named = f"{option} {path}".strip()
    if not path.parent.is_dir():
        raise ConfigError(f"{named}: the folder {path.parent} does not exist; create it first or choose another "
                          f"file")
    bundle = read_only_folder(path)
    if bundle is not None:
        raise ConfigError(f"{named} lies in {_bundle_name(bundle)}, which is read-only: choose a file elsewhere")
    return path


def how_to_rebuild(path) -> str:
    """How a damaged file of a run folder is made again (a sentence), or '' for a file of no known place."""
    path = Path(path).absolute()
    bundle = read_only_folder(path)
    if bundle == DEFAULT_MODEL.resolve():
        return f"Restore the bundled model (`git checkout -- {DEFAULT_MODEL.name}` in {DEFAULT_MODEL.parent}) or " \
               f"reinstall wm_studio"
    if bundle is not None:
        return f"Make the bundle again: `wm-studio bundle --run SOURCE_RUN --out {bundle} --replace`"
    folder, name = path.parent, path.stem
    if folder.name == "models" and name in ("vae", "mdn"):
        command = "train-vae" if name == "vae" else "train-mdn"
        return (f"Delete it and run `wm-studio {command} --run {folder.parent}`: it is written again from the "
                f"newest checkpoint (or trained again)")
    if folder.name == "models" and name == "controller":
        return (f"Delete it and {folder.parent / 'checkpoints' / 'controller'}, then train C again: `wm-studio "
                f"train-controller --run {folder.parent}`")
    if folder.parent.name == "checkpoints" and folder.name in STAGES:
        return "Delete it: the stage resumes from the checkpoint before it"
    if folder.parent.name == "data" and folder.name == "rollouts":
        return f"Delete it and run `wm-studio collect --run {folder.parent.parent}`: that rollout is played again"
    if folder.parent.name == "data" and folder.name == "latents":
        return f"Delete it and run `wm-studio train-vae --run {folder.parent.parent}`: that rollout is encoded again"
    return ""


def _bundle_name(folder: Path) -> str:
    return bundled_name(folder) or f"the bundle {folder}"
