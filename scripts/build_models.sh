#!/usr/bin/env bash
# Fetch the pretrained weights from the shared folder and build every model variant
# (INT8 + FP32 TFLite) into the cache, sequentially and at low priority, printing the wall time.
# Creates the build venv first if needed (scripts/build_env.sh, about 90 s the first time).
# Re-running is cheap: unchanged variants are cache hits.
#
# Usage: scripts/build_models.sh [NAME...]     (default: all variants of models/manifest.toml)
# Env:   FACEAGENT_CACHE_DIR     cache root (CI: <repo>/.cache)
#        FACEAGENT_WEIGHTS_DIR   weights folder (default ../shared/models/upstream)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
faceagent="${FACEAGENT:-$repo/.venv/bin/faceagent}"
weights="${FACEAGENT_WEIGHTS_DIR:-$repo/../shared/models/upstream}"
start=$SECONDS
nice -n 10 bash "$repo/scripts/build_env.sh" >/dev/null
echo "build_models: build venv ready (t=$((SECONDS - start))s)"
"$faceagent" models fetch --from "$weights"
nice -n 10 "$faceagent" models build "$@"
echo "build_models: done in $((SECONDS - start))s"
