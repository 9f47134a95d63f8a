"""wm_studio/core computes and never draws: importing every module of it must not import Qt."""
import subprocess
import sys
import textwrap


def test_core_imports_with_qt_blocked():
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        BLOCKED = ("PyQt5", "PyQt6", "PySide2", "PySide6", "pyqtgraph", "qtpy")

        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"wm_studio.core imported {name}")
                return None

        sys.meta_path.insert(0, BlockQt())
        import wm_studio.core
        names = [m.name for m in pkgutil.walk_packages(wm_studio.core.__path__, "wm_studio.core.")]
        for name in names:
            importlib.import_module(name)
        leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not leaked, leaked
        print(len(names))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5  # the walk really found the core modules


def test_the_blocker_catches_a_qt_import():
    """The guard above must be able to fail: a module that imports Qt is caught."""
    script = textwrap.dedent("""
        import sys
        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "PyQt5":
                    raise ImportError("blocked")
        sys.meta_path.insert(0, BlockQt())
        import PyQt5.QtCore
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "blocked" in result.stderr
