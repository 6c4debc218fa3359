#!/usr/bin/env bash
# Everything the test suite needs, then the test suite: the command the README names.
#   * Debian packages: mosquitto (the tests start their own broker), openssl, systemd
#     (systemd-analyze scores the unit), node/npm (MicroPython for the K210 code), chromium and a font
#     (the status page is checked in headless Chromium), unshare and ip (the README's run example gets
#     a network namespace of its own);
#   * .venv with faceagent and its dev tools (scripts/setup.sh);
#   * weights verified and every model variant built into the cache (scripts/build_models.sh);
#   * the K210 toolchain and kmodels (scripts/k210_ci.sh);
#   * a Home Assistant core in its own Python 3.13 venv (scripts/ha_env.sh), the discovery tests' client.
# Each step is skipped quickly when already done. Extra arguments go to pytest.
#
# Usage: bash scripts/test.sh [PYTEST_ARGS...]      e.g. bash scripts/test.sh -k mqtt -x
set -euo pipefail
cd "$(dirname "$0")/.."
export FACEAGENT_CACHE_DIR="${FACEAGENT_CACHE_DIR:-$PWD/.cache}"
start=$SECONDS
step() { echo "::: $* (t=$((SECONDS - start))s)"; }

# command → Debian package; only what is missing is installed (node may come from elsewhere).
declare -A needs=([mosquitto]=mosquitto [mosquitto_sub]=mosquitto-clients [openssl]=openssl
                  [systemd-analyze]=systemd [node]=nodejs [npm]=npm [chromium]=chromium
                  [unshare]=util-linux [ip]=iproute2)
missing=()
for cmd in "${!needs[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${needs[$cmd]}")
done
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "project venv"
bash scripts/setup.sh
step "weights and models"
bash scripts/build_models.sh
step "K210 toolchain and kmodels"
bash scripts/k210_ci.sh
step "Home Assistant core"
bash scripts/ha_env.sh
step "tests"
# Exit status 5 (no test collected) must fail, not pass: keep pytest's own status.
.venv/bin/python -m pytest -p no:cacheprovider "$@"
