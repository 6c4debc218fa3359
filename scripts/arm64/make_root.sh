#!/usr/bin/env bash
# Build (or reuse) a Debian Bookworm arm64 root filesystem for running faceagent under qemu user emulation.
#
# Usage: sudo bash scripts/arm64/make_root.sh [--root DIR] [--mirror URL] [--rebuild]
#
# The root is the Pi's userland minus the Raspberry Pi archive: Debian 12, arm64, python3 3.11, python3-venv,
# mosquitto. It is cached in $FACEAGENT_CACHE_DIR/arm64-root (or ~/.cache/faceagent/arm64-root) and reused
# when its stamp matches the package list below, because the second debootstrap stage runs every maintainer
# script through the emulator and takes minutes.
#
# Needs root, debootstrap, qemu-user-static and binfmt_misc: the second stage execs arm64 binaries from dpkg,
# which only works when the kernel hands them to qemu (the F flag lets that work inside the chroot too).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/arm64/common.sh
. "$HERE/common.sh"

MIRROR=${FACEAGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,mosquitto,ca-certificates,procps
# Bump when the recipe changes so cached roots built by an older recipe are rebuilt.
RECIPE=2
REBUILD=0

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ARM64_ROOT=$2; shift 2 ;;
        --mirror) MIRROR=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "make_root: unknown option: $1" >&2; exit 2 ;;
    esac
done

STAMP_WANT="recipe=$RECIPE suite=$SUITE packages=$PACKAGES"
STAMP="$ARM64_ROOT/.faceagent-root"

if [ "$REBUILD" = 0 ] && [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$STAMP_WANT" ]; then
    echo "make_root: reusing $ARM64_ROOT ($(sed -n 2p "$STAMP"))"
    exit 0
fi

require_root_tools
ensure_binfmt

PARTIAL="$ARM64_ROOT.partial"
rm -rf "$PARTIAL"
mkdir -p "$(dirname "$ARM64_ROOT")"
start=$(date +%s)

echo "make_root: debootstrap first stage ($SUITE arm64 from $MIRROR) into $PARTIAL"
nice debootstrap --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" "$SUITE" "$PARTIAL" "$MIRROR"
first=$(date +%s)

# A static emulator inside the root lets `chroot ROOT /usr/bin/...` work even where binfmt lacks the F flag.
cp "$(command -v qemu-aarch64-static)" "$PARTIAL/usr/bin/qemu-aarch64-static"

echo "make_root: debootstrap second stage (emulated; takes minutes)"
nice chroot "$PARTIAL" /debootstrap/debootstrap --second-stage
second=$(date +%s)

# The same apt sources as the host: only Debian's mirrors are reachable from here and from CI.
cat > "$PARTIAL/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
# mosquitto's package enables a system service; nothing runs services in a chroot, tests start their own.
rm -f "$PARTIAL/etc/systemd/system/multi-user.target.wants/mosquitto.service"
rm -rf "$PARTIAL/var/cache/apt/archives/"*.deb

ver=$(chroot "$PARTIAL" /usr/bin/python3 -c 'import platform, sys; print(platform.machine(), sys.version.split()[0], platform.libc_ver()[1])')
printf '%s\n%s built in %ss (first stage %ss, second stage %ss)\n' "$STAMP_WANT" "$ver" \
    $((second - start)) $((first - start)) $((second - first)) > "$PARTIAL/.faceagent-root"
rm -rf "$ARM64_ROOT"
mv "$PARTIAL" "$ARM64_ROOT"
echo "make_root: done: $ARM64_ROOT ($ver) in $((second - start))s (first stage $((first - start))s, second stage $((second - first))s)"
