#!/usr/bin/env bash
# Benchmark (not a test): the cost of a no-op rebuild (nothing changed) of benches/sample,
# `build --release`, side by side in one run:
#   - the machine's own `cargo build --release` (rustup toolchain, x86_64), the reference;
#   - `cargo for-arm build --release --mode native` (armhf, auto rustc: the rustup toolchain
#     when it has the armv7 std, else the tools rootfs's);
#   - `cargo for-arm build --release --mode emulate` (armhf, the rootfs's cargo under qemu).
# Each is warmed up once, then timed RUNS times (mean). Goal: native ≤ cargo + 50 ms.
# With strace installed it also counts how often a no-op native build opens the tool's own
# binary (the glibc check reads it in full; cached, it should be 0).
#
#   benches/noop.sh [RUNS]        as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/noop.sh "$runs"
fi
cd "$repo"
cargo build --release -q
tool=$repo/target/release/cargo-for-arm
qemu=$(sh tests/support/fixtures.sh qemu)
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm
export CARGO_FOR_ARM_HOME=$(dirname "$qemu")/native-home
ensure() {
    [ -e "$CARGO_FOR_ARM_HOME/rootfs/$1/entry.toml" ] ||
        "$tool" -q rootfs create "$1" --suite "$2" --arch "$3" --include "$4"
}
ensure debian-bookworm-amd64-tools bookworm amd64 cargo,clang,lld,llvm,pkg-config
arm=native-bookworm-armhf
ensure "$arm" bookworm armhf cargo,zlib1g-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r benches/sample/. "$work/"
cd "$work"

mean_ms() { # command… → mean wall milliseconds of RUNS runs, after one warm-up run
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    local start end
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
    end=$(date +%s%N)
    awk -v a="$start" -v b="$end" -v n="$runs" 'BEGIN { printf "%.1f", (b - a) / n / 1e6 }'
}
cargo_ms=$(mean_ms cargo build --release)
native_ms=$(mean_ms "$tool" build --release --mode native --rootfs "$arm" --no-report)
emulate_ms=$(mean_ms "$tool" build --release --mode emulate --rootfs "$arm" --no-report)
opens=n/a
if command -v strace >/dev/null; then
    log=$work/strace.txt
    strace -f -qq -e trace=openat,open -o "$log" \
        "$tool" build --release --mode native --rootfs "$arm" --no-report >/dev/null 2>&1 || true
    opens=$(grep -cF "\"$tool\"" "$log" || true)
fi
cat <<EOT
no-op rebuild of benches/sample (build --release, nothing changed), mean of $runs runs:
  cargo build (rustup, x86_64)         ${cargo_ms} ms
  cargo for-arm --mode native (armhf)  ${native_ms} ms   (+$(awk -v a="$native_ms" -v b="$cargo_ms" 'BEGIN { printf "%.1f", a - b }') ms over cargo)
  cargo for-arm --mode emulate (armhf) ${emulate_ms} ms   ($(awk -v a="$emulate_ms" -v b="$native_ms" 'BEGIN { printf "%.1f", a / b }')x native)
  opens of the tool's own binary in a no-op native build: ${opens}
EOT
