"""--version, --info and --help work with no display (the test runs them with DISPLAY unset)."""
import os
import subprocess
import sys

import wm_studio


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run([sys.executable, "-m", "wm_studio", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"wm-studio {wm_studio.__version__}"


def test_info_lists_the_stack():
    result = run_cli("--info")
    assert result.returncode == 0, result.stderr
    for name in ("Python", "Qt", "pyqtgraph", "numpy", "Chainer", "CuPy", "GPU"):
        assert any(line.startswith(name) for line in result.stdout.splitlines()), name
    assert "Qt 5.15" in result.stdout


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: wm-studio" in result.stdout and "gui" in result.stdout


def test_a_lost_worker_is_told_once_on_stderr(tmp_path, capsys, monkeypatch):
    from test_parallel import die_once

    from wm_studio.cli import main
    from wm_studio.commands import es
    from wm_studio.core.parallel import make_runner

    def a_command_whose_worker_dies(*args):
        with make_runner("processes", workers=2) as runner:
            dict(runner.run(die_once, [(i, str(tmp_path / "died")) for i in range(8)]))

    monkeypatch.setattr(es, "animate_to_file", a_command_whose_worker_dies)
    assert main(["es-animate"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "worker process" in line]
    assert len(lines) == 1 and lines[0].startswith("wm-studio: warning: task 3: its worker process died")
