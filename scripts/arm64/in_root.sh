#!/usr/bin/env bash
# Run a command inside the emulated arm64 root, as on a Pi.
#
# Usage: sudo bash scripts/arm64/in_root.sh [--outside] [--bind HOST_DIR:GUEST_DIR[:ro]]... -- COMMAND [ARG...]
#
# The command runs in a private mount namespace (so /proc, /dev and the bind mounts vanish with it, even if
# it is killed) chrooted into $FACEAGENT_ARM64_ROOT (default $FACEAGENT_CACHE_DIR/arm64-root), with a clean
# environment. The network namespace is the host's: 127.0.0.1 inside reaches a broker on the host. By
# default the repository is bound read-only at /src and ../shared at /shared. With --outside the mounts are
# made the same way but COMMAND runs on the host (for installers that chroot into the root themselves).
# The emulated CPU is $FACEAGENT_ARM64_CPU (default cortex-a72, the Pi 4's), with a matching /proc/cpuinfo
# (see common.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/arm64/common.sh
. "$HERE/common.sh"
REPO=$(cd "$HERE/../.." && pwd)
SHARED=${FACEAGENT_SHARED_DIR:-$REPO/../shared}

binds=("$REPO:/src:ro")
outside=0
[ -d "$SHARED" ] && binds+=("$(cd "$SHARED" && pwd):/shared:ro")
while [ $# -gt 0 ]; do
    case "$1" in
        --bind) binds+=("$2"); shift 2 ;;
        --outside) outside=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "in_root: no command given" >&2
    exit 2
fi
if [ ! -f "$ARM64_ROOT/.faceagent-root" ]; then
    echo "in_root: no arm64 root at $ARM64_ROOT: run scripts/arm64/make_root.sh first" >&2
    exit 1
fi
ensure_binfmt

# The host's CA bundle, because it may hold a CA that the network in between requires for HTTPS (PyPI).
cp /etc/ssl/certs/ca-certificates.crt "$ARM64_ROOT/etc/ssl/certs/host-ca-certificates.crt"
cp /etc/resolv.conf "$ARM64_ROOT/etc/resolv.conf"
cpuinfo="$ARM64_ROOT/etc/faceagent-emulated-cpuinfo"
write_cpuinfo "$ARM64_CPU" "$cpuinfo"

# shellcheck disable=SC2016  # expanded by the inner shell
mount_script='set -e
root=$1; outside=$2; cpuinfo=$3; shift 3
mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount --rbind /dev "$root/dev"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/tmp"
n=$1; shift
while [ "$n" -gt 0 ]; do
    IFS=: read -r src dst mode <<EOF
$1
EOF
    mkdir -p "$root$dst"
    mount --bind "$src" "$root$dst"
    [ "$mode" = ro ] && mount -o remount,bind,ro "$root$dst"
    n=$((n - 1)); shift
done
[ "$outside" = 1 ] && exec /usr/bin/env -i "$@"
exec chroot "$root" /usr/bin/env -i "$@"'

env_vars=(
    HOME=/root LANG=C.UTF-8 PATH=/opt/faceagent/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
    PIP_DEFAULT_TIMEOUT=180 PYTHONDONTWRITEBYTECODE=1 FACEAGENT_CACHE_DIR=/var/lib/faceagent DEBIAN_FRONTEND=noninteractive
    FACEAGENT_SHARED_DIR=/shared QEMU_CPU="$ARM64_CPU"
)
for var in FACEAGENT_LOG_LEVEL PYTHONHASHSEED; do
    [ -n "${!var:-}" ] && env_vars+=("$var=${!var}")
done
exec unshare --mount --propagation private nice sh -c "$mount_script" in_root "$ARM64_ROOT" "$outside" "$cpuinfo" \
    "${#binds[@]}" "${binds[@]}" "${env_vars[@]}" "$@"
