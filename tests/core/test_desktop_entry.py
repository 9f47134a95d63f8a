"""The desktop entry: resources/wm-studio.desktop is a valid freedesktop entry, and `wm-studio install-desktop`
installs it for the user (absolute Exec and Icon that exist) and removes it again, on a scratch HOME."""
import configparser
import os
import shutil
import subprocess

import pytest

from wm_studio.cli import main
from wm_studio.commands.desktop import RESOURCES


def read_entry(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_the_bundled_entry_has_what_a_menu_needs():
    entry = read_entry(RESOURCES / "wm-studio.desktop")
    assert entry["Type"] == "Application" and entry["Name"] == "World Models Studio"
    assert entry["Exec"] == "wm-studio" and entry["Terminal"] == "false"
    assert {"Science", "Education"} <= set(entry["Categories"].strip(";").split(";"))
    assert (RESOURCES / "icon.svg").is_file() and (RESOURCES / "icon.png").is_file()


def test_install_desktop_writes_an_entry_with_absolute_paths_and_uninstall_removes_it(tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert main(["install-desktop"]) == 0
    installed = tmp_path / ".local/share/applications/wm-studio.desktop"
    entry = read_entry(installed)
    executable = entry["Exec"].split()[0]
    assert os.path.isabs(executable) and os.access(executable, os.X_OK)
    assert os.path.isabs(entry["Icon"]) and os.path.isfile(entry["Icon"])
    assert entry["Icon"].startswith(str(tmp_path / ".local/share/icons/hicolor"))
    assert entry["Categories"] == read_entry(RESOURCES / "wm-studio.desktop")["Categories"]
    assert f"installed {installed}" in capsys.readouterr().out
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(["desktop-file-validate", str(installed)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert main(["install-desktop", "--uninstall"]) == 0
    assert not installed.exists() and not os.path.exists(entry["Icon"])


@pytest.mark.parametrize("how", ["env", "option"])
def test_install_desktop_honours_xdg_data_home(tmp_path, monkeypatch, how):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    target = tmp_path / "data"
    if how == "env":
        monkeypatch.setenv("XDG_DATA_HOME", str(target))
        assert main(["install-desktop"]) == 0
    else:
        assert main(["install-desktop", "--data-home", str(target)]) == 0
    assert (target / "applications/wm-studio.desktop").is_file()
    assert not (tmp_path / "home/.local").exists()
