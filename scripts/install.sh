#!/usr/bin/env bash
# Install faceagent as a systemd service on Raspberry Pi OS Bookworm (64-bit).
#
# Usage: sudo bash scripts/install.sh [options]
#
#   --dry-run            print every step, change nothing (no root needed)
#   --models-from DIR    copy built models from DIR: a models folder holding NAME/NAME-int8.tflite
#                        (e.g. a PC's ~/.cache/faceagent/models) or one NAME folder
#   --build-models       build the configured model on this machine instead (downloads about 3 GB of
#                        build tools into a separate venv; needs 4 GB RAM; not tried on a Pi: building
#                        on a PC and copying is the supported way)
#   --no-models          install without a model (the service then refuses to start until one is copied)
#   --wheel FILE         install this faceagent wheel instead of building one from this checkout
#   --root DIR           install into the (chroot) root DIR: files go under DIR, commands run in
#                        `chroot DIR`, the unit is enabled with `systemctl --root` and not started
#   --no-pi-steps        skip what needs Raspberry Pi OS: apt python3-picamera2/python3-lgpio, starting
#                        the service (for a plain Debian arm64 root)
#   --no-start           enable the service but do not start it now
#   --force              install on an unsupported system (32-bit, not Bookworm) anyway
#
# Models: the INT8 model is built from the pretrained weights with a heavy toolchain (PyTorch, ONNX,
# TensorFlow) that a Pi does not need at run time. Build it on a PC from this repository: the default
# config's detector.model = "auto" runs RFB-landmark-320 on a Pi 4 and retinaface-mnet-640 on a Pi 5
# (`faceagent models auto --board "..."` tells), so `faceagent models build RFB-landmark-320
# retinaface-mnet-640` (it fetches their weights), then pass
# --models-from ~/.cache/faceagent/models. Models live in /var/lib/faceagent/models (FACEAGENT_CACHE_DIR
# of the service).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PREFIX=/opt/faceagent
VENV=$PREFIX/venv
ETC=/etc/faceagent
STATE=/var/lib/faceagent
UNIT_DIR=/etc/systemd/system
USER_NAME=faceagent

DRY_RUN=0 ROOT="" WHEEL="" MODELS_FROM="" BUILD_MODELS=0 NO_MODELS=0 PI_STEPS=1 START=1 FORCE=0

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --wheel) WHEEL=${2:?--wheel needs a file}; shift ;;
        --models-from) MODELS_FROM=${2:?--models-from needs a directory}; shift ;;
        --build-models) BUILD_MODELS=1 ;;
        --no-models) NO_MODELS=1 ;;
        --no-pi-steps) PI_STEPS=0 ;;
        --no-start) START=0 ;;
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
if [ -n "$ROOT" ]; then
    given=$ROOT
    ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root $given: no such directory"
    [ "$ROOT" = / ] && ROOT=""
fi
[ -n "$WHEEL" ] && { [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"; }
[ -n "$MODELS_FROM" ] && { [ -d "$MODELS_FROM" ] || die "--models-from $MODELS_FROM: no such directory"; }
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo bash scripts/install.sh), or try --dry-run"
fi

# run CMD...: a command on the target system (inside the chroot with --root); printed, and only
# printed in a dry run.
run() {
    if [ -n "$ROOT" ]; then set -- chroot "$ROOT" "$@"; fi
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] || "$@"
}
# host CMD...: a command on this machine (file copies into the target).
host() {
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] || "$@"
}
# target PATH: the host path of a path on the target system.
target() { echo "$ROOT$1"; }

check_platform() {
    local arch codename msg
    if [ -n "$ROOT" ]; then
        arch=$(chroot "$ROOT" dpkg --print-architecture 2>/dev/null || echo unknown)
    else
        arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    fi
    codename=unknown
    if [ -f "$(target /etc/os-release)" ]; then
        codename=$(sed -n 's/^VERSION_CODENAME=//p' "$(target /etc/os-release)" | tr -d '"')
    fi
    say "target: $(target /) architecture $arch, Debian/Raspberry Pi OS '$codename'"
    case "$arch" in
        arm64|aarch64) ;;
        armhf|armv7l|armel)
            msg="32-bit Raspberry Pi OS is not supported: ai-edge-litert has no 32-bit ARM wheels; install the 64-bit OS"
            [ "$FORCE" = 1 ] || [ "$DRY_RUN" = 1 ] || die "$msg (or --force)"
            say "warning: $msg" ;;
        *) say "note: $arch is not a Raspberry Pi; fine for testing, use --no-pi-steps if apt lacks picamera2" ;;
    esac
    if [ "$codename" != bookworm ]; then
        [ "$FORCE" = 1 ] || [ "$DRY_RUN" = 1 ] || die "made for Bookworm (Debian 12), found '$codename' (or --force)"
        say "warning: made for Bookworm, found '$codename'"
    fi
}

install_apt() {
    local packages=(python3 python3-venv python3-pip ca-certificates)
    if [ "$PI_STEPS" = 1 ]; then
        # picamera2 and the lgpio pin factory come from the Raspberry Pi archive only, not from PyPI.
        packages+=(python3-picamera2 python3-lgpio)
    else
        say "skipped (Pi only): apt-get install python3-picamera2 python3-lgpio (Raspberry Pi archive)"
    fi
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
}

create_user() {
    say "user $USER_NAME (system, no login) in groups video and gpio"
    run sh -c "getent group $USER_NAME >/dev/null || groupadd --system $USER_NAME"
    run sh -c "id -u $USER_NAME >/dev/null 2>&1 || useradd --system --gid $USER_NAME --home-dir $STATE \
--no-create-home --shell /usr/sbin/nologin --comment 'faceagent daemon' $USER_NAME"
    # Raspberry Pi OS has both groups; a plain Debian root may lack gpio, and the unit needs it to exist.
    run sh -c "for g in video gpio; do getent group \$g >/dev/null || groupadd --system \$g; done"
    run usermod --append --groups video,gpio "$USER_NAME"
}

# build_wheel: set WHEEL to the package wheel, built from this checkout unless --wheel was given.
build_wheel() {
    [ -n "$WHEEL" ] && return
    local dist python
    python=$(command -v python3)
    [ -x "$REPO/.venv/bin/python" ] && python=$REPO/.venv/bin/python
    dist=/tmp/faceagent-wheel
    [ "$DRY_RUN" = 1 ] || dist=$(mktemp -d)
    echo "+ $python -m pip wheel --no-deps --wheel-dir $dist $REPO"
    if [ "$DRY_RUN" = 1 ]; then
        WHEEL=$dist/faceagent-VERSION-py3-none-any.whl
    else
        "$python" -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$REPO"
        WHEEL=$(ls "$dist"/faceagent-*.whl)
    fi
}

install_venv() {
    local staged
    build_wheel
    staged=/var/cache/faceagent-install
    host mkdir -p "$(target "$staged")"
    host cp "$WHEEL" "$REPO/scripts/pi-constraints.txt" "$(target "$staged")/"
    say "virtualenv $VENV (with the system site packages, for apt's picamera2)"
    run python3 -m venv --system-site-packages "$VENV"
    run "$VENV/bin/pip" install --quiet --upgrade --only-binary=:all: \
        --constraint "$staged/pi-constraints.txt" "$staged/$(basename "$WHEEL")"
    # A re-run from a newer checkout carries the same version number: replace the package itself.
    run "$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$staged/$(basename "$WHEEL")"
    run ln -sf "$VENV/bin/faceagent" /usr/local/bin/faceagent
}

install_config() {
    local etc
    etc=$(target "$ETC")
    host install -d -m 0750 "$etc"
    run chgrp "$USER_NAME" "$ETC"
    if [ -f "$etc/config.toml" ]; then
        say "keeping $ETC/config.toml; the shipped one is written to $ETC/config.toml.new"
        host install -m 0640 "$REPO/config.toml" "$etc/config.toml.new"
    else
        host install -m 0640 "$REPO/config.toml" "$etc/config.toml"
    fi
    run chgrp "$USER_NAME" "$ETC/config.toml"
    if [ ! -f "$etc/mqtt-password" ]; then
        # LoadCredential= needs the file to exist; empty means no password.
        say "empty $ETC/mqtt-password created: write the broker password there (root only, 0600)"
        host install -m 0600 /dev/null "$etc/mqtt-password"
    fi
}

configured_model() {
    local file
    file=$(target "$ETC")/config.toml
    [ -f "$file" ] || file=$REPO/config.toml
    sed -n 's/^[[:space:]]*model[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$file" | head -n 1 || true
}

install_models() {
    local model dest src
    model=$(configured_model)
    model=${model:-auto}
    if [ "${model%%:*}" = auto ]; then
        # An image made with --root may boot a Pi 4 or a Pi 5: "auto" is settled at each start, so
        # name both boards' models; on the board itself, name its own.
        if [ -n "$ROOT" ] || [ "$DRY_RUN" = 1 ]; then
            model="RFB-landmark-320 retinaface-mnet-640"
            say "detector.model auto: RFB-landmark-320 on a Pi 4, retinaface-mnet-640 on a Pi 5, RFB-320 elsewhere"
        else
            model=$("$VENV/bin/faceagent" models auto)
            say "detector.model auto: $model on this board ($(tr -d '\0' </proc/device-tree/model 2>/dev/null || echo 'no device tree name'))"
        fi
    fi
    host install -d -m 0750 "$(target "$STATE")" "$(target "$STATE/models")"
    if [ "$NO_MODELS" = 1 ]; then
        say "skipped: models (--no-models); copy NAME/ folders into $STATE/models before starting"
    elif [ -n "$MODELS_FROM" ]; then
        for src in "$MODELS_FROM"/*/ "$MODELS_FROM/"; do
            ls "$src"*.tflite >/dev/null 2>&1 || continue
            dest=$(target "$STATE/models")/$(basename "$src")
            say "model $(basename "$src") from $src"
            host install -d -m 0750 "$dest"
            host cp "$src"*.tflite "$dest/"
            [ -f "$src/build-info.json" ] && host cp "$src/build-info.json" "$dest/"
        done
    elif [ "$BUILD_MODELS" = 1 ]; then
        say "building $model here (slow: the build tools go into $STATE/venvs)"
        # shellcheck disable=SC2086  # the list of names is meant to split
        run env FACEAGENT_CACHE_DIR="$STATE" "$VENV/bin/faceagent" models build ${model//:fp32/}
    else
        say "no model copied: build it on a PC (faceagent models build ${model//:fp32/}), then re-run with"
        say "  --models-from ~/.cache/faceagent/models   (or copy its NAME/ folder into $STATE/models/)"
    fi
    run chown -R "$USER_NAME:$USER_NAME" "$STATE"
}

install_unit() {
    host install -m 0644 "$REPO/systemd/faceagent.service" "$(target "$UNIT_DIR")/faceagent.service"
    if [ -n "$ROOT" ]; then
        host systemctl --root="$ROOT" enable faceagent.service
        return
    fi
    if ! command -v systemctl >/dev/null; then
        say "skipped: systemctl is not installed here; enable faceagent.service where systemd runs"
        return
    fi
    if [ -d /run/systemd/system ]; then
        run systemctl daemon-reload
    else
        say "systemd is not running here (a chroot or container): the unit is enabled for the next boot"
    fi
    run systemctl enable faceagent.service
}

start_service() {
    if [ -n "$ROOT" ] || [ ! -d /run/systemd/system ]; then
        say "skipped: starting the service (no running systemd in the target)"
        return
    fi
    if [ "$PI_STEPS" = 0 ] || [ "$START" = 0 ] || [ "$CONFIG_OK" = 0 ]; then
        say "skipped: systemctl restart faceagent.service (start it with: sudo systemctl start faceagent)"
    else
        run systemctl restart faceagent.service
        say "started; follow it with: journalctl -fu faceagent"
    fi
}

CONFIG_OK=1
check_install() {
    say "checking the installed config as the service will see it"
    if ! run env FACEAGENT_CACHE_DIR="$STATE" "$VENV/bin/faceagent" check-config "$ETC/config.toml"; then
        CONFIG_OK=0
        say "the config check failed: fix $ETC/config.toml (or copy the model), then: sudo systemctl start faceagent"
    fi
}

main() {
    [ "$DRY_RUN" = 1 ] && say "dry run: printing the steps, changing nothing"
    check_platform
    install_apt
    create_user
    install_venv
    install_config
    install_models
    install_unit
    check_install
    start_service
    say "done. Config: $ETC/config.toml, state and models: $STATE, unit: faceagent.service"
}

main
