#!/usr/bin/env bash
# One command from a fresh clone to faces found: set up .venv, fetch and verify the pretrained
# weights, build the INT8 models, and run detection on the sample photos (no camera, no broker).
#
# Usage: bash scripts/quickstart.sh [PHOTOS_DIR]
#   PHOTOS_DIR  images to run on (default ../shared/data/faces)
# Env:   FACEAGENT_CACHE_DIR   where weights and models go (default ~/.cache/faceagent)
#        FACEAGENT_WEIGHTS_DIR a folder that already holds the upstream .pth files
#                              (default ../shared/models/upstream when it exists, else download)
set -euo pipefail
cd "$(dirname "$0")/.."
photos=${1:-../shared/data/faces}
out=out/quickstart

bash scripts/setup.sh
fetch_args=()
if [ -z "${FACEAGENT_WEIGHTS_DIR:-}" ] && [ -d ../shared/models/upstream ]; then
    fetch_args=(--from ../shared/models/upstream)
fi
.venv/bin/faceagent models fetch "${fetch_args[@]}"
.venv/bin/faceagent models build RFB-320 slim-320
.venv/bin/faceagent detect "$photos" --model RFB-320 --annotate "$out" --table
echo
echo "quickstart: annotated images are in $out/ ; next: faceagent --help, README.md"
