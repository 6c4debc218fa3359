#!/usr/bin/env bash
# Create (or reuse) the build-time virtualenv used by `faceagent models build`.
#
# The conversion toolchain (torch 2.13 CPU, onnx2tf 1.29.24, tensorflow 2.19) pins numpy 1.26
# and weighs about 3 GB, so it lives in $FACEAGENT_CACHE_DIR/venvs/build, never in the project
# venv. It is rebuilt only when models/requirements-build.txt changes (a stamp records its hash).
# The logic lives in rpi_agent/models/buildenv.py (standard library only), shared with
# `faceagent models build`, which calls it on demand.
#
# Usage: scripts/build_env.sh      prints the build venv's python on its last line
# Env:   FACEAGENT_CACHE_DIR       cache root (default $XDG_CACHE_HOME/faceagent or ~/.cache/faceagent)
#        FACEAGENT_BOOT_PYTHON     interpreter that creates the venv (default python3.11)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The torch 2.13 CPU wheel on this machine image is for CPython 3.11.
python="${FACEAGENT_BOOT_PYTHON:-$(command -v python3.11 || command -v python3)}"
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m rpi_agent.models.buildenv
