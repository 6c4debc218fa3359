#!/usr/bin/env bash
# Fetch the pretrained weights from the shared folder and build every model variant
# (INT8 + FP32 TFLite) into the cache, sequentially and at low priority, printing the wall time.
# Creates the build venv first if needed (scripts/build_env.sh, about 90 s the first time).
# Re-running is cheap: unchanged variants are cache hits.
#
# Usage: scripts/build_models.sh [NAME...]     (default: all variants of models/manifest.toml)
# Env:   FACEAGENT_CACHE_DIR     cache root (CI: <repo>/.cache)
#        FACEAGENT_WEIGHTS_DIR   Ultra-Light weights folder (default ../shared/models/upstream)
#        FACEAGENT_LANDMARK_WEIGHTS_DIR  landmark-network weights folder (default ../shared/models/landmark)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
faceagent="${FACEAGENT:-$repo/.venv/bin/faceagent}"
weights="${FACEAGENT_WEIGHTS_DIR:-$repo/../shared/models/upstream}"
landmark_weights="${FACEAGENT_LANDMARK_WEIGHTS_DIR:-$repo/../shared/models/landmark}"
start=$SECONDS
nice -n 10 bash "$repo/scripts/build_env.sh" >/dev/null
echo "build_models: build venv ready (t=$((SECONDS - start))s)"
# Each family's weights come from its own folder; once verified in the cache, the build finds them there.
"$faceagent" models fetch --from "$weights"
"$faceagent" models fetch --from "$landmark_weights"
nice -n 10 "$faceagent" models build "$@"
echo "build_models: done in $((SECONDS - start))s"
