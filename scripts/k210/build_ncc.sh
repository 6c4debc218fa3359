#!/usr/bin/env bash
# Build `ncc` of nncase v0.2.0-beta2 (the compiler that writes kmodel V4, the format released K210
# firmware loads) from the pinned source archives in $FACEAGENT_NCC_SRC (default
# ${FACEAGENT_SHARED_DIR:-../shared}/src/k210-ncc),
# with Debian's compiler and libraries instead of conan:
#   * boost (filesystem) and protobuf from apt;
#   * range-v3 0.5.0 and flatbuffers 1.11.0 (headers and flatc) from the shipped archives, the versions
#     upstream's conanfile pins for these sources (Debian ships range-v3 0.12 and flatbuffers 2.0);
#   * or-tools (not in Debian; its CP-SAT solver packed buffers into memory) replaced by a greedy packer,
#     and OpenCV dropped (only the image dataset reader used it; we feed raw tensors): both in
#     scripts/k210/patches/nncase-v0.2.0-beta2-debian.patch.
# The result is cached under $FACEAGENT_CACHE_DIR/k210-ncc/<key>/bin/ncc, keyed by the archives' SHA-256
# and the patch's hash, so a re-run is instant. Prints the path of ncc on stdout.
set -euo pipefail

# The whole script is one function, so bash has parsed all of it before running any of it.
main() {

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src="${FACEAGENT_NCC_SRC:-${FACEAGENT_SHARED_DIR:-$repo/../shared}/src/k210-ncc}"
cache="${FACEAGENT_CACHE_DIR:-$repo/.cache}/k210-ncc"
jobs="${FACEAGENT_NCC_JOBS:-2}"
archives=(nncase-v0.2.0-beta2 clipp-2c32b2f xtl-0d1f896 xtensor-e192cec range-v3-0.5.0 flatbuffers-1.11.0)
patch_file="$here/patches/nncase-v0.2.0-beta2-debian.patch"

log() { echo "build_ncc: $*" >&2; }

for a in "${archives[@]}"; do
  if [[ ! -f "$src/$a.tar.gz" ]]; then
    log "missing source archive $src/$a.tar.gz (set FACEAGENT_NCC_SRC)"
    exit 1
  fi
done
if ! (cd "$src" && grep -E "($(IFS='|'; echo "${archives[*]}")).tar.gz" SHA256SUMS | sha256sum --quiet -c -); then
  log "source archives in $src do not match their SHA256SUMS"
  exit 1
fi

# Bump when a change to this script changes the binary (flags, steps).
recipe=1
key="$( (cd "$src" && for a in "${archives[@]}"; do sha256sum "$a.tar.gz"; done; sha256sum "$patch_file" | cut -d' ' -f1; echo "recipe $recipe") \
  | sha256sum | cut -c1-16)"
out="$cache/$key"
if [[ -x "$out/bin/ncc" ]]; then
  ln -sfn "$key" "$cache/current"  # what faceagent uses: <cache>/k210-ncc/current/bin/ncc
  echo "$out/bin/ncc"
  exit 0
fi

missing=()
for pkg in cmake g++ make libprotobuf-dev protobuf-compiler libboost-filesystem-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work="$cache/build-$key.$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
for a in "${archives[@]}"; do tar -xzf "$src/$a.tar.gz" -C "$work"; done
tree="$work/nncase-v0.2.0-beta2"
for sub in clipp xtl xtensor; do
  rm -rf "$tree/third_party/$sub"
  mv "$work/$sub" "$tree/third_party/$sub"
done
patch -d "$tree" -p1 --quiet --forward < "$patch_file"

log "flatc 1.11.0"
# -Wno-error in the release flags comes after the project's -Werror: newer g++ warns where 2019's did not.
nice -n 10 cmake -S "$work/flatbuffers-1.11.0" -B "$work/flatc-build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -Wno-error" -DFLATBUFFERS_BUILD_TESTS=OFF \
  -DFLATBUFFERS_BUILD_FLATHASH=OFF -DFLATBUFFERS_BUILD_FLATLIB=OFF -DFLATBUFFERS_INSTALL=OFF >/dev/null
nice -n 10 make -s -C "$work/flatc-build" -j"$jobs" flatc >/dev/null

log "ncc (nncase v0.2.0-beta2), -j$jobs"
nice -n 10 cmake -S "$tree" -B "$work/ncc-build" -DCMAKE_BUILD_TYPE=Release -DNNCASE_TARGET=k210 \
  -DCMAKE_CXX_FLAGS="-O2 -w" \
  -DRANGE_V3_INCLUDE_DIR="$work/range-v3-0.5.0/include" \
  -DFLATBUFFERS_INCLUDE_DIR="$work/flatbuffers-1.11.0/include" \
  -DFLATBUFFERS_FLATC_EXECUTABLE="$work/flatc-build/flatc" >/dev/null
nice -n 10 make -s -C "$work/ncc-build" -j"$jobs" ncc >&2

mkdir -p "$out/bin"
cp "$work/ncc-build/src/cli/ncc" "$out/bin/ncc.tmp"
mv "$out/bin/ncc.tmp" "$out/bin/ncc"
{
  echo "nncase v0.2.0-beta2 ncc built $(date -u +%FT%TZ) in $((SECONDS - start)) s on $(nproc) cores"
  echo "g++ $(g++ -dumpfullversion), protobuf $(dpkg-query -W -f='${Version}' libprotobuf-dev), boost $(dpkg-query -W -f='${Version}' libboost-filesystem-dev)"
  echo "patch sha256 $(sha256sum "$patch_file" | cut -d' ' -f1)"
} > "$out/BUILD-INFO.txt"
ln -sfn "$key" "$cache/current"
log "built in $((SECONDS - start)) s"
echo "$out/bin/ncc"
}

main "$@"
