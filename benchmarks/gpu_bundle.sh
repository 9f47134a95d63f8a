#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine that reaches no package index into
# .whl/gpu_site.tar.xz (git ignores .whl/), on a machine that does reach one. Run from the repository root:
#
#   bash benchmarks/gpu_bundle.sh                       # for Python 3.12 and CUDA 13 (the lent H200 machines)
#   bash benchmarks/gpu_bundle.sh --python 3.11 --cuda 12
#
# Inside: numpy 1.26.4, cupy-cuda{12,13}x 13.6.0 and fastrlock (CuPy 14 needs numpy 2, on which Chainer 7.8.1
# does not import), Chainer 7.8.1 (built here from its sdist with setuptools < 70), setuptools < 70 (Chainer
# imports pkg_resources), six, filelock and typing_extensions, installed for that Python and
# manylinux x86_64 into one folder. Everything else (pytest, psutil, Pillow, imageio, threadpoolctl) and the
# CUDA libraries come from the GPU machine. To fit the device tool's 64 MiB a call (the repository's files
# count too), CuPy's Thrust module (15 MB; used only by cupy.sort and the like, which wm_studio does not call on
# the GPU; CuPy runs without it) and numpy's own tests are left out, and the folder is xz-compressed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=3.12
CUDA=13
XZ_LEVEL=${WM_BUNDLE_XZ:--9e}
BUNDLE_PATH=${WM_BUNDLE_OUT:-.whl/gpu_site.tar.xz}
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PYV=$2; shift 2 ;;
    --cuda) CUDA=$2; shift 2 ;;
    *) echo "usage: $0 [--python 3.12] [--cuda 13|12]"; exit 2 ;;
  esac
done
PY=${WM_BUNDLE_PIP_PYTHON:-$(command -v python3.11 || command -v python3)}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Chainer's sdist imports pkg_resources in its setup: setuptools < 70 in the build environment (pip < 26 reads
# PIP_CONSTRAINT there, pip 26 PIP_BUILD_CONSTRAINT).
export PIP_CONSTRAINT=$PWD/constraints-build.txt PIP_BUILD_CONSTRAINT=$PWD/constraints-build.txt
PLATFORMS=""
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
           manylinux_2_5_x86_64 manylinux1_x86_64; do PLATFORMS="$PLATFORMS --platform $tag"; done
TARGET="--only-binary=:all: --python-version $PYV --implementation cp $PLATFORMS"

echo "== downloading for Python $PYV, CUDA $CUDA"
"$PY" -m pip download -q --no-deps $TARGET -d "$TMP/wheels" numpy==1.26.4 "cupy-cuda${CUDA}x==13.6.0" \
  fastrlock==0.8.4 "setuptools>=65,<70" six filelock typing_extensions
echo "== building Chainer 7.8.1's wheel (pure Python)"
"$PY" -m pip wheel -q --no-deps -w "$TMP/wheels" chainer==7.8.1
ls -l "$TMP/wheels"

echo "== installing into one folder"
"$PY" -m pip install -q --no-deps --no-compile $TARGET --target "$TMP/site" "$TMP"/wheels/*.whl
rm -f "$TMP"/site/cupy/cuda/thrust.*.so
rm -rf "$TMP"/site/numpy/tests "$TMP"/site/numpy/*/tests "$TMP"/site/numpy/*/*/tests "$TMP"/site/bin
find "$TMP/site" -name __pycache__ -prune -exec rm -rf {} +
{
  echo "python=$PYV"
  echo "cuda=$CUDA"
  echo "made=$(date -u +%Y-%m-%dT%H:%M:%SZ) by benchmarks/gpu_bundle.sh"
  (cd "$TMP/wheels" && ls *.whl)
  echo "left out: cupy/cuda/thrust (optional in CuPy), numpy's tests"
} > "$TMP/site/BUNDLE.txt"
du -sh "$TMP/site"

echo "== compressing (xz $XZ_LEVEL; a few minutes)"
mkdir -p "$(dirname "$BUNDLE_PATH")"
tar -C "$TMP/site" -cf - . | xz "$XZ_LEVEL" -T1 > "$BUNDLE_PATH.tmp"
mv "$BUNDLE_PATH.tmp" "$BUNDLE_PATH"
BUNDLE=$(stat -c %s "$BUNDLE_PATH")
TREE=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
LIMIT=$((64 * 1024 * 1024))
echo "bundle $((BUNDLE / 1024 / 1024)) MiB + the repository's travelling files $((TREE / 1024 / 1024)) MiB" \
     "= $(((BUNDLE + TREE) / 1024 / 1024)) MiB of the device tool's 64 MiB a call"
if [ $((BUNDLE + TREE)) -ge $LIMIT ]; then
  echo "TOO LARGE for one call: carry less (e.g. leave untracked files out of the tree)"; exit 1
fi
echo "carry it: run(command='bash benchmarks/gpu_check.sh', carry=['.whl'])"
