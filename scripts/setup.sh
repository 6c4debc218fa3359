#!/usr/bin/env bash
# Create the project virtualenv (.venv) and install faceagent with its test tools.
# Usage: bash scripts/setup.sh            (idempotent; re-run after pulling)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# peers: the benchmark-only runtimes of scripts/bench_peers.py (MNN, ncnn, libfacedetection), never
# needed by the daemon (the Pi installer installs the bare wheel).
.venv/bin/python -m pip install --quiet -e ".[dev,peers]"
echo "setup: installed $(.venv/bin/faceagent --version) into .venv"
