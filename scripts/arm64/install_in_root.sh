#!/usr/bin/env bash
# Install faceagent into the emulated arm64 root with the Pi installer, scripts/install.sh.
#
# Usage: sudo bash scripts/arm64/install_in_root.sh [--force] [--models-from DIR]
#
# Builds faceagent's wheel on the host (pure Python, so architecture-independent), then runs
#   scripts/install.sh --root ROOT --no-pi-steps --wheel WHEEL --models-from DIR
# which does inside the root what it does on a Pi: apt packages, the faceagent user, the venv in
# /opt/faceagent/venv with the arm64 cp311 wheels pip picks there from the package index (under the Pi's
# constraints), /etc/faceagent/config.toml, the model in /var/lib/faceagent/models, the unit enabled with
# `systemctl --root`, and `faceagent check-config`. --no-pi-steps skips (and says so) what only Raspberry
# Pi OS has: apt python3-picamera2 / python3-lgpio from the Raspberry Pi archive, and starting the service.
#
# Models default to $FACEAGENT_CACHE_DIR/models/RFB-320 (the model is data, the same on every architecture).
# A stamp with the hashes of the wheel, the model and the installer makes a repeat run a no-op.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/arm64/common.sh
. "$HERE/common.sh"
REPO=$(cd "$HERE/../.." && pwd)
FORCE=0
MODELS_FROM="$_cache/models/RFB-320"
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1; shift ;;
        --models-from) MODELS_FROM=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install_in_root: unknown option: $1" >&2; exit 2 ;;
    esac
done

if [ ! -f "$ARM64_ROOT/.faceagent-root" ]; then
    echo "install_in_root: no arm64 root at $ARM64_ROOT: run scripts/arm64/make_root.sh first" >&2
    exit 1
fi
if ! ls "$MODELS_FROM"/*int8.tflite >/dev/null 2>&1; then
    echo "install_in_root: no INT8 model in $MODELS_FROM: run faceagent models build RFB-320 first" >&2
    exit 1
fi

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
host_python=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$host_python" ] || host_python=python3
"$host_python" -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$REPO" >/dev/null
wheel=$(ls "$dist"/faceagent-*.whl)
# A wheel's zip entries carry build times, so hash what it holds rather than the file itself.
wheel_digest=$("$host_python" -c '
import hashlib, sys, zipfile
digest = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as whl:
    for name in sorted(whl.namelist()):
        digest.update(name.encode() + b"\0" + whl.read(name))
print(digest.hexdigest())
' "$wheel")
digest=$( (echo "$wheel_digest"; cat "$MODELS_FROM"/*int8.tflite "$REPO/scripts/install.sh" \
    "$REPO/scripts/pi-constraints.txt") | sha256sum | cut -c1-16)
stamp="$ARM64_ROOT/opt/faceagent/.installed"
if [ "$FORCE" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    echo "install_in_root: $(basename "$wheel") and $(basename "$MODELS_FROM") already installed ($digest)"
    exit 0
fi

start=$(date +%s)
echo "install_in_root: scripts/install.sh --root $ARM64_ROOT --no-pi-steps"
bash "$HERE/in_root.sh" --outside -- bash "$REPO/scripts/install.sh" --root "$ARM64_ROOT" --no-pi-steps \
    --wheel "$wheel" --models-from "$MODELS_FROM"
echo "$digest" > "$stamp"
echo "install_in_root: installed in $(( $(date +%s) - start ))s; wheels in /opt/faceagent/venv:"
bash "$HERE/in_root.sh" -- /opt/faceagent/venv/bin/pip list --format=freeze | sed 's/^/install_in_root:   /'
