# Shared settings for the arm64 emulation scripts; sourced, not run.
# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file

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

# The emulated CPU. qemu's default ("max") advertises SVE2 and SME, which no Raspberry Pi has, and XNNPACK
# picks its kernels from what the CPU advertises: emulate a Pi's core instead. cortex-a72 is the Pi 4's,
# cortex-a53 the Pi 3B+'s and Zero 2 W's (the same ARMv8.0 features as the A72), cortex-a76 the Pi 5's.
ARM64_CPU=${FACEAGENT_ARM64_CPU:-cortex-a72}

# write_cpuinfo CPU FILE: a /proc/cpuinfo as the Pi with that core shows it, one entry per host CPU (so it
# agrees with /sys/devices/system/cpu/present). qemu 7.2 does not emulate /proc/cpuinfo for arm64 guests,
# which then read the host's x86 one; XNNPACK's CPU detection (cpuinfo) finds no ARM core in it and LiteRT
# crashes in allocate_tensors. On a real Pi the kernel's arm64 /proc/cpuinfo is there.
write_cpuinfo() {
    local part variant revision features model i
    case "$1" in
        cortex-a53) part=0xd03 variant=0x0 revision=4 features="fp asimd evtstrm crc32 cpuid"
                    model="Raspberry Pi 3 Model B Plus Rev 1.3" ;;
        cortex-a72) part=0xd08 variant=0x0 revision=3 features="fp asimd evtstrm crc32 cpuid"
                    model="Raspberry Pi 4 Model B Rev 1.4" ;;
        cortex-a76) part=0xd0b variant=0x4 revision=1
                    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
                    model="Raspberry Pi 5 Model B Rev 1.0" ;;
        *) echo "arm64: no /proc/cpuinfo preset for CPU $1 (cortex-a53, cortex-a72, cortex-a76)" >&2; return 2 ;;
    esac
    : > "$2"
    for i in $(seq 0 $(( $(nproc --all) - 1 ))); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$i" "$features" "$variant" "$part" "$revision" >> "$2"
    done
    printf 'Model\t\t: %s\n' "$model" >> "$2"
}
