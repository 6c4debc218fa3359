#!/usr/bin/env bash
# Count the arm64 instructions one INT8 inference executes, by running it under qemu's TCG with a counting
# plugin (scripts/arm64/insn_count.c), and print one JSON object per model, CPU model and stage.
#
# Usage: sudo bash scripts/arm64/insn_count.sh [--model "NAME|FILE.tflite ..."] [--image JPG] [--n N]
#                                              [--cpus "cortex-a72 ..."] [--stages "invoke detect"] [--repeat R]
#        sudo bash scripts/arm64/insn_count.sh --engine mnn|ncnn --model /shared/.../FILE [--n N] ...
#
# --model takes one or more built variants (RFB-320 slim-landmark-640 retinaface-mnet-640@768x576 ...; their
# INT8 TFLite in $FACEAGENT_CACHE_DIR/models, else the copy installed in the root) or .tflite files
# (/shared/... is ../shared). For each model, CPU model and repeat the workload (scripts/arm64/infer_n.py)
# runs once with 0 loops and once per stage with N; the difference over N is the count per frame, free of
# interpreter start-up, imports and model loading. Stages (infer_n.py): invoke (the network alone), run
# (+ setting the input, reading the outputs), detect (FaceDetector.detect on the photo: resize, network,
# decode, NMS, landmarks), resize (fitting the photo to the input alone). Defaults: RFB-320, 1.jpg, N = 20,
# cortex-a72 and cortex-a76, invoke and detect. Each JSON object also says what ran: the network's input
# size, the resize mode (corner for the landmark models), whether landmarks were decoded, the faces found
# and the model file's SHA-256. scripts/arm64/insn_table.py turns the lines into a table.
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

MODELS=RFB-320
IMAGE=/shared/data/faces/1.jpg
N=20
CPUS="cortex-a72 cortex-a76"
STAGES="invoke detect"
REPEAT=1
ENGINE=litert
PEERS="MNN==3.6.1 ncnn==1.0.20261020"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODELS=$2; shift 2 ;;
        --image) IMAGE=$2; shift 2 ;;
        --n) N=$2; shift 2 ;;
        --cpus) CPUS=$2; shift 2 ;;
        --stages) STAGES=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --engine) ENGINE=$2; shift 2 ;;
        -h|--help) sed -n "2,27p" "$0"; exit 0 ;;
        *) echo "insn_count: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
for value in "$N" "$REPEAT"; do
    if ! [[ $value =~ ^[1-9][0-9]*$ ]]; then
        echo "insn_count: --n and --repeat take a whole number of at least 1, not '$value'" >&2
        exit 2
    fi
done
for stage in $STAGES; do
    case "$stage" in
        invoke|run|detect|resize) ;;
        *) echo "insn_count: --stages takes invoke, run, detect and resize, not '$stage'" >&2; exit 2 ;;
    esac
done
for cpu in $CPUS; do
    write_cpuinfo "$cpu" /dev/null || exit 2
done

REPO=$(cd "$HERE/../.." && pwd)
SHARED=$(cd "${FACEAGENT_SHARED_DIR:-$REPO/../shared}" 2>/dev/null && pwd) \
    || { echo "insn_count: no shared data at ${FACEAGENT_SHARED_DIR:-$REPO/../shared}: set FACEAGENT_SHARED_DIR" >&2; exit 1; }
case "$ENGINE" in
    litert) ;;
    mnn|ncnn) STAGES=infer ;;
    *) echo "insn_count: --engine must be litert, mnn or ncnn, not $ENGINE" >&2; exit 2 ;;
esac
# model_file MODEL -> the file to run. The cache's build first: it is what `faceagent models build` made last,
# while the root holds only what install_in_root.sh copied (the configured model) and may hold an older build.
model_file() {
    case "$ENGINE:$1" in
        *:*/*|*:*.*|mnn:*|ncnn:*) echo "${1/#\/shared/$SHARED}" ;;
        *) if [ -f "$_cache/models/$1/$1-int8.tflite" ]; then
               echo "$_cache/models/$1/$1-int8.tflite"
           else
               echo "$ARM64_ROOT/var/lib/faceagent/models/$1/$1-int8.tflite"
           fi ;;
    esac
}
for model in $MODELS; do
    path=$(model_file "$model")
    if [ ! -f "$path" ]; then
        case "$ENGINE:$model" in
            *:*/*|*:*.*) echo "insn_count: no model file $path" >&2 ;;
            litert:*) echo "insn_count: no INT8 build of $model in $_cache/models: run faceagent models build $model" >&2 ;;
            *) echo "insn_count: --engine $ENGINE runs a .mnn or .param file, not $model" >&2 ;;
        esac
        exit 1
    fi
done
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
peers="$ARM64_ROOT/opt/peers"
if [ "$ENGINE" != litert ] && [ ! -f "$peers/.installed" ]; then
    # shellcheck disable=SC2086  # PEERS is a list of requirements
    "${PYTHON:-python3}" -m pip install -q --no-deps --only-binary=:all: --python-version 311 --implementation cp \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --target "$peers" $PEERS
    echo "$PEERS" > "$peers/.installed"
fi
image_path=${IMAGE/#\/shared/$SHARED}
site=$(cd "$ARM64_ROOT" && ls -d opt/faceagent/venv/lib/python3*/site-packages)

# Run the root's python3 directly under the plugin-capable qemu: -L makes the guest's absolute paths
# (its loader, libraries, site-packages) resolve inside the root, no chroot or binfmt needed; a path that
# the root lacks (the cache's models, ../shared) is the host's.
# The guest's /proc/cpuinfo is the host's then (the root has no /proc mounted): a private mount namespace
# shows it a Pi's instead (see write_cpuinfo in common.sh).
count() {  # cpu stage n model facts_file -> instructions; what the workload printed goes to facts_file
    local out cpuinfo
    out=$(mktemp)
    cpuinfo=$(mktemp)
    write_cpuinfo "$1" "$cpuinfo"
    if [ "$ENGINE" = litert ]; then
        workload=("$HERE/infer_n.py" "$4" "$image_path" "$3" --stage "$2")
    else
        workload=("$HERE/peer_n.py" "$ENGINE" "$4" "$image_path" "$3")
    fi
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private sh -c 'mount --bind "$1" /proc/cpuinfo; shift; exec "$@"' sh "$cpuinfo" \
        env -i PATH=/usr/bin:/bin PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \
        PYTHONPATH="$ARM64_ROOT/$site:$peers" \
        nice qemu-aarch64 -cpu "$1" -L "$ARM64_ROOT" -plugin "$PLUGIN,out=$out" \
        "$ARM64_ROOT/usr/bin/python3" "${workload[@]}" > "$5" \
        || { echo "insn_count: the workload failed on $1 with $4 (above); no count" >&2; rm -f "$out" "$cpuinfo"; exit 1; }
    awk '/^insns /{print $2}' "$out"
    rm -f "$out" "$cpuinfo"
}

# Start-up differs by a few million instructions from run to run (address-space layout, allocator state);
# a large N shrinks that share per frame, and --repeat shows what is left. The run with 0 loops does the
# same work whatever the stage (the loop is all that differs), so one serves every stage.
facts=$(mktemp)
trap 'rm -f "$facts"' EXIT
for model in $MODELS; do
    path=$(model_file "$model")
    sha=$(sha256sum "$path" | cut -c1-16)
    for cpu in $CPUS; do
        for rep in $(seq 1 "$REPEAT"); do
            base=$(count "$cpu" "${STAGES%% *}" 0 "$path" /dev/null)
            for stage in $STAGES; do
                start=$(date +%s)
                loop=$(count "$cpu" "$stage" "$N" "$path" "$facts")
                per=$(( (loop - base) / N ))
                # The workload's facts ({"input": ..., ...}) are merged into the line, after our fields.
                extra=$(grep -m1 '^{' "$facts" | sed 's/^{/, /; s/}$//' || true)
                printf '{"engine": "%s", "model": "%s", "model_sha256": "%s", "cpu": "%s", "stage": "%s", "n": %d, "rep": %d, "insns_base": %d, "insns_n": %d, "insns_per_frame": %d, "seconds": %d%s}\n' \
                    "$ENGINE" "$(basename "$model")" "$sha" "$cpu" "$stage" "$N" "$rep" "$base" "$loop" "$per" \
                    $(( $(date +%s) - start )) "$extra"
            done
        done
    done
done
