#!/usr/bin/env bash
# The README's two ways to install, each from a copy of this checkout with an empty pip cache, as on a fresh
# machine: `make install` with the pip that `python -m venv` brings (23.x on Python 3.11), and the manual line
# with the newest pip (26 or later, which no longer applies PIP_CONSTRAINT to build environments). Chainer 7.8.1's
# sdist is built in both. About 2-3 minutes, mostly downloads. WM_INSTALL_CHECK=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${WM_INSTALL_CHECK:-1}" = 0 ]; then
    echo "install check: skipped (WM_INSTALL_CHECK=0)"
    exit 0
fi
PYTHON=${PYTHON:-python3.11}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# A fresh machine's pip: no cache, and none of this machine's pip settings (extra indexes, caps, find-links).
export PIP_NO_CACHE_DIR=1 PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_BUILD_CONSTRAINT PIP_EXTRA_INDEX_URL PIP_INDEX_URL

copy() {   # the tracked and untracked (not ignored) files of the checkout, as a fresh clone holds them
    mkdir -p "$1"
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$1"
}

check() {  # the installed studio imports Chainer and runs its command
    "$1/bin/python" -c "import chainer, numpy, PyQt5, Box2D, pygame, gym, wm_studio; print('  chainer', \
chainer.__version__, 'numpy', numpy.__version__)"
    "$1/bin/wm-studio" --version
}

echo "install check 1/2: make install, pip of python -m venv"
copy "$scratch/make"
"$PYTHON" -m venv "$scratch/make/.venv"
"$scratch/make/.venv/bin/python" -m pip --version
make -C "$scratch/make" install PYTHON="$PYTHON"
check "$scratch/make/.venv"

echo "install check 2/2: the README's manual line, newest pip"
copy "$scratch/manual"
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip --version
line=$(grep -o 'PIP_CONSTRAINT=constraints-build.txt [^`]*pip install -e \.' README.md | head -1)
[ -n "$line" ] || { echo "install check: the README has no manual install line"; exit 1; }
echo "  $line"
(cd "$scratch/manual" && PATH="$scratch/venv/bin:$PATH" && eval "$line")
check "$scratch/venv"
echo "install check: both installs work"
