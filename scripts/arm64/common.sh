# Shared settings for the arm64 emulation scripts; sourced, not run.
# shellcheck shell=bash

_cache=${FACEAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceagent}
ARM64_ROOT=${FACEAGENT_ARM64_ROOT:-$_cache/arm64-root}

require_root_tools() {
    if [ "$(id -u)" != 0 ]; then
        echo "arm64: needs root (debootstrap, chroot, binfmt_misc)" >&2
        exit 77
    fi
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "arm64: installing ${missing[*]} from Debian"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
    fi
}

# binfmt_misc is not mounted on these machines by default; the arm64 handler must be registered for dpkg's
# child processes inside the root to run.
ensure_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64
    fi
    if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        echo "arm64: could not register qemu-aarch64 in binfmt_misc" >&2
        exit 1
    fi
}
