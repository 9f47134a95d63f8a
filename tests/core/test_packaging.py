"""What pyproject.toml, the Makefile and the README promise about installing (issue 12). The installs themselves
run in CI (.ci/install_check.sh: pip 23 and the newest pip, empty cache)."""
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_requires_python_admits_3_11_and_3_12_only():
    supported = SpecifierSet(PROJECT["requires-python"])
    assert {"3.11.0", "3.12.9"} <= set(supported.filter(["3.10.14", "3.11.0", "3.12.9", "3.13.0"]))
    assert not supported.contains("3.13.0")          # numpy < 2 has no wheel for 3.13
    assert supported.contains(".".join(map(str, sys.version_info[:3])))


def test_the_gpu_extra_stays_with_cupy_13():
    """CuPy 14 needs numpy 2, and Chainer 7.8.1 does not import beside numpy 2."""
    [cupy] = [Requirement(text) for text in PROJECT["optional-dependencies"]["gpu"]]
    assert cupy.name == "cupy-cuda12x"
    assert cupy.specifier.contains("13.6.0") and not cupy.specifier.contains("14.0.0")
    [numpy] = [Requirement(text) for text in PROJECT["dependencies"] if text.startswith("numpy")]
    assert not numpy.specifier.contains("2.0.0")


def test_every_install_sets_the_build_constraint_for_old_and_new_pips():
    """pip up to 25 reads PIP_CONSTRAINT in build environments, pip 26 only PIP_BUILD_CONSTRAINT: Chainer's sdist
    needs setuptools < 70 from one or the other."""
    assert "setuptools<70" in (ROOT / "constraints-build.txt").read_text().split()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PIP := PIP_CONSTRAINT=\$\(CONSTRAINTS\) PIP_BUILD_CONSTRAINT=\$\(CONSTRAINTS\) ", makefile,
                     re.M)
    readme = (ROOT / "README.md").read_text()
    assert "PIP_CONSTRAINT=constraints-build.txt PIP_BUILD_CONSTRAINT=constraints-build.txt pip install -e ." in readme
