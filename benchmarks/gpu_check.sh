#!/usr/bin/env bash
# The GPU check of issue 15 in one script, run from the repository root; every figure lands as JSON under $OUT.
#
#   bash benchmarks/gpu_check.sh                                    # on a GPU machine (OUT defaults to ./gpu_out)
#   WM_GPU_ENV=project bash benchmarks/gpu_check.sh --device cpu --quick   # a dry run on a CPU machine
#
# Arguments go to benchmarks/gpu_check.py (--device, --quick, --phases, ...). Steps:
#   1. what the machine has: GPU and driver (nvidia-smi), CUDA toolkit and libraries, Python;
#   2. an environment with numpy 1.26, Chainer 7.8.1 and CuPy 13 (WM_GPU_ENV, default auto, first that applies):
#        bundle   .whl/gpu_site.tar.xz, made beforehand by benchmarks/gpu_bundle.sh on a machine that reaches the
#                 package index (a GPU machine that reaches none gets it carried), unpacked into a scratch folder
#                 put first on PYTHONPATH, beside the machine's own Python (its pytest, psutil, Pillow, ...);
#        venv     a fresh venv with the project and cupy-cuda{12,13}x>=13,<14 from the package index, plus the
#                 CUDA libraries as nvidia-* wheels where the machine lacks them;
#        project  ./.venv as it is (the dry run on a development machine);
#        python   WM_GPU_PYTHON as it is (WM_GPU_PYTHON also picks the interpreter for a bundle);
#      then the CUDA libraries that CuPy's modules link are looked up and put on LD_LIBRARY_PATH;
#   3. benchmarks/gpu_check.py: the GPU tests, V and M images/s on GPU and CPU, CMA-ES at n = 10,000 on CuPy and
#      numpy, the slider's p95 while V trains on the GPU; $OUT/gpu_check.json, gpu_check.log, machine.txt.
# The whole run stays under WM_GPU_LIMIT_S seconds (default 450, inside the 8 minutes asked for).
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
T0=$(date +%s)
LIMIT_S=${WM_GPU_LIMIT_S:-450}
ENV_KIND=${WM_GPU_ENV:-auto}
SCRATCH=${WM_GPU_SCRATCH:-/tmp/wm_gpu_check}
BUNDLE=${WM_GPU_BUNDLE:-.whl/gpu_site.tar.xz}
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "== [$(elapsed)s] $*"; }

# ---- 1. what the machine has ----------------------------------------------------------------------------------
say "1. the machine"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -srm), $(nproc) CPUs"
  free -g 2>/dev/null | head -2; df -h /tmp 2>/dev/null | tail -1
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
    nvidia-smi 2>&1 | grep -m1 "CUDA Version"
  else
    echo "nvidia-smi: not found"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "nvcc: not found"
  ls -d /usr/local/cuda* 2>/dev/null
  echo "CUDA libraries known to the loader:"
  ldconfig -p 2>/dev/null | grep -oE "lib(cuda|cudart|cublas|cublasLt|nvrtc|cusolver|curand|cusparse|cufft|cudnn|nccl)\.so[.0-9]*" \
    | sort -u | tr '\n' ' '; echo
  for py in python3 python3.11 python3.12; do command -v $py >/dev/null && echo "$py: $(command -v $py) $($py --version 2>&1)"; done
  python3 -c "import numpy, sys; print('python3 numpy', numpy.__version__)" 2>&1 | tail -1
  python3 -c "import cupy; print('python3 cupy', cupy.__version__)" 2>&1 | tail -1
} | tee "$OUT/machine.txt"
# The CUDA version the driver supports ("CUDA Version: 13.0" -> 13); CuPy's wheel must not be newer.
DRIVER_CUDA=$(nvidia-smi 2>/dev/null | grep -oE "CUDA Version: [0-9]+" | grep -oE "[0-9]+$" || true)
TOOLKIT_CUDA=$(nvcc --version 2>/dev/null | grep -oE "release [0-9]+" | grep -oE "[0-9]+$" || true)
# A toolkit's libraries where there is one (its major version), else CUDA 12 libraries as wheels in a venv.
CUDA_MAJOR=${WM_GPU_CUDA:-${TOOLKIT_CUDA:-12}}
echo "driver's CUDA: ${DRIVER_CUDA:-none}; toolkit's: ${TOOLKIT_CUDA:-none}; CuPy for a venv: cupy-cuda${CUDA_MAJOR}x"

# ---- 2. the environment -----------------------------------------------------------------------------------------
say "2. the environment (WM_GPU_ENV=$ENV_KIND)"
registry_reachable() {   # one tiny download through pip's own index settings; no host named here
  local tmp; tmp=$(mktemp -d)
  timeout 25 "$1" -m pip download -q --no-deps --no-cache-dir -d "$tmp" six >/dev/null 2>&1; local rc=$?
  rm -rf "$tmp"; return $rc
}
pick_python() {   # the first Python >= 3.11 (the bundle's own version when it names one)
  local want=${1:-}
  for py in ${WM_GPU_PYTHON:-} python3 python3.12 python3.11; do
    command -v "$py" >/dev/null || continue
    local version; version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    if [ -n "$want" ]; then [ "$version" = "$want" ] && { echo "$py"; return; }
    else "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo "$py"; return; }; fi
  done
}
if [ "$ENV_KIND" = auto ]; then
  if [ -f "$BUNDLE" ]; then ENV_KIND=bundle
  elif command -v nvidia-smi >/dev/null && registry_reachable "$(pick_python)"; then ENV_KIND=venv
  else ENV_KIND=project; fi
  echo "chose: $ENV_KIND"
fi
export PIP_CONSTRAINT=$REPO/constraints-build.txt PIP_BUILD_CONSTRAINT=$REPO/constraints-build.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1
case "$ENV_KIND" in
  bundle)
    SITE=$SCRATCH/site
    rm -rf "$SITE"; mkdir -p "$SITE"
    tar -xJf "$BUNDLE" -C "$SITE" 2>/dev/null || python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
      "$BUNDLE" "$SITE" || { echo "cannot unpack $BUNDLE"; exit 2; }   # Python's lzma where there is no xz
    cat "$SITE/BUNDLE.txt" 2>/dev/null
    BUNDLE_PY=$(sed -n 's/^python=//p' "$SITE/BUNDLE.txt" 2>/dev/null)
    PY=$(pick_python "$BUNDLE_PY")
    [ -n "$PY" ] || { echo "no Python $BUNDLE_PY here for the bundle (set WM_GPU_PYTHON)"; exit 2; }
    # Modules of the machine's Python built for its numpy 2, which Chainer tries to import: hidden, so that
    # Chainer takes them as absent (it treats them as optional) instead of failing on numpy 1.26.
    export WM_GPU_HIDE=${WM_GPU_HIDE:-scipy,h5py}
    cat > "$SITE/sitecustomize.py" <<'EOF'
# Written by benchmarks/gpu_check.sh into its scratch site folder; runs at the start of every Python there.
import os
import sys

_hidden = {name for name in os.environ.get("WM_GPU_HIDE", "").split(",") if name}


class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _hidden:
            raise ModuleNotFoundError(f"{name} is hidden by gpu_check.sh (built for another numpy)")
        return None


if _hidden:
    sys.meta_path.insert(0, _Hide())
try:
    from wm_studio.core import cupy_compat
    cupy_compat.prepare_chainer_import()
except Exception as exc:  # the check goes on and reports what fails
    print(f"sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)
EOF
    export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}
    ;;
  venv)
    BASE=$(pick_python)
    VENV=$SCRATCH/venv
    [ -x "$VENV/bin/python" ] || "$BASE" -m venv "$VENV" || exit 2
    PY=$VENV/bin/python
    "$PY" -m pip install -q -e . "cupy-cuda${CUDA_MAJOR}x>=13,<14" pytest pytest-timeout psutil || exit 2
    if [ "$CUDA_MAJOR" = 12 ] && ! ldconfig -p | grep -q "libcublas.so.12"; then
      # No CUDA 12 toolkit on the machine: its libraries as wheels (CuPy 13 itself carries no CUDA library).
      "$PY" -m pip install -q nvidia-cublas-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 \
        nvidia-cusolver-cu12 nvidia-curand-cu12 nvidia-cusparse-cu12 nvidia-cufft-cu12 || exit 2
    fi
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    ;;
  project)
    PY=$REPO/.venv/bin/python
    [ -x "$PY" ] || { echo "no .venv here: run make install first, or choose WM_GPU_ENV"; exit 2; }
    ;;
  python)
    PY=${WM_GPU_PYTHON:?set WM_GPU_PYTHON}
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    ;;
  *) echo "unknown WM_GPU_ENV=$ENV_KIND (auto, bundle, venv, project, python)"; exit 2 ;;
esac
echo "python: $PY ($("$PY" --version 2>&1))"

# The CUDA libraries that CuPy's compiled modules link but the loader does not find: look for them where CUDA
# toolkits and nvidia-* wheels put them, and put their folders first on LD_LIBRARY_PATH.
CUPY_DIRS=$("$PY" - <<'EOF' 2>/dev/null
import importlib.util, os
for name in ("cupy", "cupy_backends"):
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        print(list(spec.submodule_search_locations)[0])
EOF
)
if [ -n "$CUPY_DIRS" ]; then
  MISSING=$(find $CUPY_DIRS -name "*.so" -print0 | xargs -0 -r ldd 2>/dev/null | awk '/not found/{print $1}' | sort -u)
  SEARCH="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local /opt /usr/lib /usr/lib64"
  SEARCH="$SEARCH $("$PY" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)"
  for lib in $MISSING; do
    found=$(find $SEARCH -maxdepth 10 -name "$lib" -print -quit 2>/dev/null)
    if [ -n "$found" ]; then
      dir=$(dirname "$found")
      case ":${LD_LIBRARY_PATH:-}:" in *":$dir:"*) ;; *) export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ;; esac
      echo "  $lib: $dir"
    else
      case "$lib" in libnccl*|libcutensor*|libcudnn*) echo "  $lib: not found (optional: wm_studio does not need it)" ;;
                     *) echo "  $lib: NOT FOUND (CuPy needs it on a GPU)" ;; esac
    fi
  done
  # NVRTC compiles CuPy's kernels with CUDA's headers (cuda_fp16.h): a toolkit's, when there is one.
  if [ -z "${CUDA_PATH:-}" ] && [ -f /usr/local/cuda/include/cuda_fp16.h ]; then export CUDA_PATH=/usr/local/cuda; fi
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; echo "CUDA_PATH=${CUDA_PATH:-}"
fi
"$PY" - <<'EOF' 2>&1 | tail -8
import numpy, chainer
from chainer.backends import cuda
print("numpy", numpy.__version__, "| chainer", chainer.__version__, "| chainer's CUDA:", cuda.available,
      getattr(cuda, "_resolution_error", "") or "")
try:
    import cupy
    print("cupy", cupy.__version__, "| GPUs:", cupy.cuda.runtime.getDeviceCount(),
          "| a kernel:", float(cupy.arange(10, dtype=cupy.float32).sum()))
except Exception as exc:
    print("cupy:", type(exc).__name__, exc)
EOF

# ---- 3. tests and figures ---------------------------------------------------------------------------------------
LEFT=$(( LIMIT_S - $(elapsed) ))
say "3. benchmarks/gpu_check.py ($LEFT s left)"
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen SDL_VIDEODRIVER=dummy
timeout --kill-after=10 "$LEFT" "$PY" benchmarks/gpu_check.py --out "$OUT" --budget-s $(( LEFT - 60 )) "$@"
RC=$?
[ $RC -eq 124 ] && echo "gpu_check.py ran out of time; $OUT/gpu_check.json holds the phases that finished"
say "done (exit $RC); figures: $OUT/gpu_check.json"
exit $RC
