"""`wm-studio install-desktop`: put World Models Studio in the desktop's application menu (freedesktop.org).

It writes $XDG_DATA_HOME/applications/wm-studio.desktop (default ~/.local/share/applications) from
resources/wm-studio.desktop, with Exec set to the absolute path of this installation's `wm-studio` (the one in
the virtual environment, so the menu entry works without activating it) and Icon to the icon copied under
$XDG_DATA_HOME/icons/hicolor. `--uninstall` removes what it wrote. Nothing outside the user's data folder is
touched; no root needed.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from wm_studio.core.errors import ConfigError

ENTRY_NAME = "wm-studio.desktop"
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
ICONS = {"icon.svg": Path("icons/hicolor/scalable/apps/wm-studio.svg"),
         "icon.png": Path("icons/hicolor/256x256/apps/wm-studio.png")}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "install-desktop", help="add World Models Studio to the desktop's application menu",
        description="Install a desktop entry (wm-studio.desktop) and the icon for the current user, so the "
                    "studio starts from the application menu. Writes under $XDG_DATA_HOME (default "
                    "~/.local/share); Exec points at this installation's wm-studio.")
    parser.add_argument("--uninstall", action="store_true", help="remove the entry and the icon instead")
    parser.add_argument("--data-home", default=None,
                        help="where to install (default $XDG_DATA_HOME, else ~/.local/share)")
    parser.set_defaults(func=run)


def data_home(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def studio_command() -> str:
    """The command line that starts this installation's studio, with absolute paths."""
    script = Path(sys.executable).with_name("wm-studio")
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m wm_studio"


def entry_text(template: str, command: str, icon: Path) -> str:
    """The template with Exec and Icon replaced (absolute paths, so no PATH or icon theme is needed)."""
    lines = []
    for line in template.splitlines():
        if line.startswith("Exec="):
            line = f"Exec={command}"
        elif line.startswith("Icon="):
            line = f"Icon={icon}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def install(home: Path) -> list[Path]:
    template = RESOURCES / ENTRY_NAME
    if not template.is_file():
        raise ConfigError(f"{template} is missing: this installation has no resources folder (install from a "
                          f"checkout: pip install -e .)")
    written = []
    for source, target in ICONS.items():
        if (RESOURCES / source).is_file():
            destination = home / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(RESOURCES / source, destination)
            written.append(destination)
    if not written:
        raise ConfigError(f"no icon in {RESOURCES} (icon.svg or icon.png)")
    entry = home / "applications" / ENTRY_NAME
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(entry_text(template.read_text(encoding="utf-8"), studio_command(), written[0]),
                     encoding="utf-8")
    entry.chmod(0o755)   # some desktops only launch entries that are marked executable
    return [entry] + written


def uninstall(home: Path) -> list[Path]:
    removed = []
    for path in [home / "applications" / ENTRY_NAME] + [home / target for target in ICONS.values()]:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def _refresh_menu(home: Path) -> None:
    """Tell the desktop the menu changed, where the tool exists (optional; menus also rescan by themselves)."""
    tool = shutil.which("update-desktop-database")
    if tool:
        subprocess.run([tool, str(home / "applications")], capture_output=True, check=False)


def run(args) -> int:
    home = data_home(args.data_home)
    if args.uninstall:
        removed = uninstall(home)
        print("wm-studio: removed " + (", ".join(map(str, removed)) if removed else "nothing (not installed)"))
    else:
        written = install(home)
        print(f"wm-studio: installed {written[0]} (Exec: {studio_command()}); icon {written[1]}")
    _refresh_menu(home)
    return 0
