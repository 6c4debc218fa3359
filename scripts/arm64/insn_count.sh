#!/usr/bin/env bash
# Count the arm64 instructions one INT8 inference executes, by running it under qemu's TCG with a counting
# plugin (scripts/arm64/insn_count.c), and print one JSON object per CPU model and stage.
#
# Usage: sudo bash scripts/arm64/insn_count.sh [--model NAME] [--image JPG] [--n N] [--cpus "cortex-a72 ..."]
#                                              [--stages "invoke run detect"] [--repeat R]
#        sudo bash scripts/arm64/insn_count.sh --engine mnn|ncnn --model /shared/.../FILE [--n N] ...
#
# For each CPU model and stage the workload (scripts/arm64/infer_n.py) runs twice, with N loops and with 0;
# the difference over N is the count per frame, free of interpreter start-up, imports and model loading.
# The CPU model matters: XNNPACK picks its kernels from the ISA features the (emulated) CPU reports, so
# cortex-a72 (Pi 4; the same ARMv8.0 ISA as the Pi 3B+/Zero 2 W's cortex-a53) runs other code than
# cortex-a76 (Pi 5: dotprod, fp16) or qemu's default "max" (SVE2, i8mm).
# --engine mnn|ncnn counts upstream's runtimes instead (scripts/arm64/peer_n.py, stage "infer"): --model is
# then a .mnn or .param file (/shared/... is ../shared), and PyPI's aarch64 MNN and ncnn wheels are
# installed once into the root's /opt/peers (host pip, --target; the faceagent venv is left alone).
#
# Needs the dynamically linked qemu-aarch64 (package qemu-user; the static one cannot load plugins), gcc,
# and qemu's plugin header, which is taken from Debian's source package of the installed qemu.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/arm64/common.sh
. "$HERE/common.sh"

MODEL=RFB-320
IMAGE=/shared/data/faces/1.jpg
N=20
CPUS="cortex-a72 cortex-a76"
STAGES="invoke detect"
REPEAT=1
ENGINE=litert
PEERS="MNN==3.6.1 ncnn==1.0.20261020"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift 2 ;;
        --image) IMAGE=$2; shift 2 ;;
        --n) N=$2; shift 2 ;;
        --cpus) CPUS=$2; shift 2 ;;
        --stages) STAGES=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --engine) ENGINE=$2; shift 2 ;;
        -h|--help) sed -n "2,19p" "$0"; exit 0 ;;
        *) echo "insn_count: unknown option: $1" >&2; exit 64 ;;
    esac
done

REPO=$(cd "$HERE/../.." && pwd)
SHARED=$(cd "${FACEAGENT_SHARED_DIR:-$REPO/../shared}" && pwd)
TOOLS="$_cache/arm64-tools"
PLUGIN="$TOOLS/libinsn_count.so"
mkdir -p "$TOOLS"

if ! command -v qemu-aarch64 >/dev/null || ! command -v gcc >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user gcc >/dev/null
fi

# qemu-plugin.h comes with qemu's source, not with any binary package; fetch the source package of the
# installed version through apt with a private sources list, leaving the host's apt configuration alone.
qemu_version=$(dpkg-query -W -f '${source:Version}' qemu-user)
header_dir="$TOOLS/qemu-${qemu_version//:/_}"
if [ ! -f "$header_dir/qemu-plugin.h" ]; then
    work=$(mktemp -d)
    mkdir -p "$work/lists/partial"
    echo "deb-src ${FACEAGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian} bookworm main" > "$work/src.list"
    echo "deb-src ${FACEAGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}-security bookworm-security main" \
        >> "$work/src.list"
    opts=(-o "Dir::Etc::SourceList=$work/src.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
    apt-get "${opts[@]}" update -q >/dev/null
    (cd "$work" && apt-get "${opts[@]}" source --download-only "qemu=$qemu_version" >/dev/null 2>&1)
    mkdir -p "$header_dir"
    tar -xJf "$work"/qemu_*.orig.tar.xz -C "$work" --wildcards '*/include/qemu/qemu-plugin.h'
    cp "$work"/qemu-*/include/qemu/qemu-plugin.h "$header_dir/"
    rm -rf "$work"
fi
if [ ! -f "$PLUGIN" ] || [ "$HERE/insn_count.c" -nt "$PLUGIN" ] || [ "$header_dir/qemu-plugin.h" -nt "$PLUGIN" ]; then
    gcc -O2 -shared -fPIC -Wall -Wextra -I"$header_dir" -o "$PLUGIN" "$HERE/insn_count.c"
fi

if [ ! -f "$ARM64_ROOT/opt/faceagent/.installed" ]; then
    echo "insn_count: faceagent is not installed in $ARM64_ROOT: run install_in_root.sh first" >&2
    exit 1
fi
case "$ENGINE" in
    litert) model_path="$ARM64_ROOT/var/lib/faceagent/models/$MODEL/$MODEL-int8.tflite" ;;
    mnn|ncnn) model_path=${MODEL/#\/shared/$SHARED}; STAGES=infer ;;
    *) echo "insn_count: --engine must be litert, mnn or ncnn, not $ENGINE" >&2; exit 64 ;;
esac
peers="$ARM64_ROOT/opt/peers"
if [ "$ENGINE" != litert ] && [ ! -f "$peers/.installed" ]; then
    # shellcheck disable=SC2086  # PEERS is a list of requirements
    "${PYTHON:-python3}" -m pip install -q --no-deps --only-binary=:all: --python-version 311 --implementation cp \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --target "$peers" $PEERS
    echo "$PEERS" > "$peers/.installed"
fi
if [ "$ENGINE" != litert ] && [ ! -f "$model_path" ]; then
    echo "insn_count: no model file $model_path" >&2
    exit 1
fi
if [ "$ENGINE" = litert ] && [ ! -f "$model_path" ]; then
    mkdir -p "$(dirname "$model_path")"
    cp "$_cache/models/$MODEL/$MODEL-int8.tflite" "$model_path"  # install.sh copies only the configured one
fi
image_path=${IMAGE/#\/shared/$SHARED}
site=$(cd "$ARM64_ROOT" && ls -d opt/faceagent/venv/lib/python3*/site-packages)

# Run the root's python3 directly under the plugin-capable qemu: -L makes the guest's absolute paths
# (its loader, libraries, site-packages) resolve inside the root, no chroot or binfmt needed.
# The guest's /proc/cpuinfo is the host's then (the root has no /proc mounted): a private mount namespace
# shows it a Pi's instead (see write_cpuinfo in common.sh).
count() {  # cpu stage n -> instructions
    local out cpuinfo
    out=$(mktemp)
    cpuinfo=$(mktemp)
    write_cpuinfo "$1" "$cpuinfo"
    if [ "$ENGINE" = litert ]; then
        workload=("$HERE/infer_n.py" "$model_path" "$image_path" "$3" --stage "$2")
    else
        workload=("$HERE/peer_n.py" "$ENGINE" "$model_path" "$image_path" "$3")
    fi
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private sh -c 'mount --bind "$1" /proc/cpuinfo; shift; exec "$@"' sh "$cpuinfo" \
        env -i PATH=/usr/bin:/bin PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \
        PYTHONPATH="$ARM64_ROOT/$site:$peers" \
        nice qemu-aarch64 -cpu "$1" -L "$ARM64_ROOT" -plugin "$PLUGIN,out=$out" \
        "$ARM64_ROOT/usr/bin/python3" "${workload[@]}" >&2 \
        || { echo "insn_count: the workload failed on $1 (above); no count" >&2; rm -f "$out" "$cpuinfo"; exit 1; }
    awk '/^insns /{print $2}' "$out"
    rm -f "$out" "$cpuinfo"
}

# Start-up differs by a few million instructions from run to run (address-space layout, allocator state);
# a large N shrinks that share per frame, and --repeat shows what is left.
for cpu in $CPUS; do
    for stage in $STAGES; do
        for rep in $(seq 1 "$REPEAT"); do
            start=$(date +%s)
            base=$(count "$cpu" "$stage" 0)
            loop=$(count "$cpu" "$stage" "$N")
            per=$(( (loop - base) / N ))
            printf '{"engine": "%s", "model": "%s", "cpu": "%s", "stage": "%s", "n": %d, "rep": %d, "insns_base": %d, "insns_n": %d, "insns_per_frame": %d, "seconds": %d}\n' \
                "$ENGINE" "$(basename "$MODEL")" "$cpu" "$stage" "$N" "$rep" "$base" "$loop" "$per" $(( $(date +%s) - start ))
        done
    done
done
