#!/usr/bin/env bash
# Create (or reuse) the build-time virtualenv used by `faceagent models build`.
#
# The conversion toolchain (torch, onnx2tf, tensorflow) pins numpy 1.26 and weighs
# about 3 GB, so it lives in its own venv under the cache, never in the project venv.
# Re-running is cheap: the venv is rebuilt only when models/requirements-build.txt changes.
#
# Usage: scripts/build_env.sh            (prints the venv's python path on its last line)
# Env:   FACEAGENT_CACHE_DIR  cache root (default $XDG_CACHE_HOME/faceagent or ~/.cache/faceagent)
#        FACEAGENT_BUILD_PYTHON  interpreter to create the venv with (default python3.11)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FACEAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceagent}"
venv="$cache/venvs/build"
reqs="$repo/models/requirements-build.txt"
stamp="$venv/.faceagent-requirements.sha256"
python="${FACEAGENT_BUILD_PYTHON:-python3.11}"

want="$(sha256sum "$reqs" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "build venv up to date: $venv" >&2
    echo "$venv/bin/python"
    exit 0
fi

echo "creating build venv: $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
# One resolve for everything, so pip sees onnx2tf's exact pins and torch together.
"$venv/bin/python" -m pip install --quiet --prefer-binary -r "$reqs" >&2

# A CUDA torch would mean several GB of downloads and a different numeric path: refuse it.
if ! "$venv/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)'; then
    echo "build venv: torch is a CUDA build; expected the CPU build of torch==2.13.0" >&2
    exit 1
fi
"$venv/bin/python" - >&2 <<'EOF'
import importlib.metadata as md
for name in ("torch", "onnx2tf", "tensorflow", "onnx", "onnxruntime", "numpy"):
    print(f"  {name} {md.version(name)}")
EOF
echo "$want" > "$stamp"
echo "$venv/bin/python"
