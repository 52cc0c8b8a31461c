#!/usr/bin/env bash
# Benchmark (not a test): the cost of a no-op rebuild (nothing changed) of benches/sample,
# `build --release`, side by side in one run:
#   - the machine's own `cargo build --release` (rustup toolchain, x86_64), the reference;
#   - `cargo for-arm build --release --mode native` (armhf, auto rustc: the rustup toolchain
#     when it has the armv7 std, else the tools rootfs's);
#   - `cargo for-arm build --release --mode emulate` (armhf): the fresh stamp's answer
#     (src/build/fresh.rs), and beside it the same with CARGO_FOR_ARM_FRESH=0, where the
#     rootfs's cargo under qemu decides. Goal: half of that or less.
# Each is warmed up once, then timed RUNS times (mean). Goal: native ≤ cargo + 50 ms.
# With strace installed it also counts how often a no-op native build opens the tool's own
# binary (the glibc check reads it in full; cached, it should be 0). With BASE=/path/to/an/older/
# cargo-for-arm the same rows are measured for it too, side by side (emulate mode then builds
# examples/hello-arm, whose lockfile an older tool can use under Debian 12's rustc).
#
#   benches/noop.sh [RUNS]        as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/noop.sh "$runs"
fi
base=${BASE:-}
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
cd "$repo"
bench_tool
qemu=$(sh tests/support/fixtures.sh qemu)
CARGO_FOR_ARM_HOME=$(dirname "$qemu")/native-home
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm CARGO_FOR_ARM_HOME
ensure debian-bookworm-amd64-tools bookworm amd64 cargo,clang,lld,llvm,pkg-config
arm=native-bookworm-armhf
ensure "$arm" bookworm armhf cargo,zlib1g-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sample" "$work/hello"
cp -r benches/sample/. "$work/sample/"
cp -r examples/hello-arm/. "$work/hello/"
cd "$work/sample"

mean_ms() { # command… → mean wall milliseconds of RUNS runs, after one warm-up run
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    local start end
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
    end=$(date +%s%N)
    awk -v a="$start" -v b="$end" -v n="$runs" 'BEGIN { printf "%.1f", (b - a) / n / 1e6 }'
}
opens_of() { # tool → how often a no-op native build opens that binary (strace), or n/a
    command -v strace >/dev/null || { echo n/a; return; }
    # --map single: a traced process cannot run the set-uid newuidmap.
    strace -f -qq -e trace=openat,open -o "$work/strace.txt" \
        "$1" build --release --mode native --rootfs "$arm" --no-report --map single >/dev/null 2>&1 || true
    grep -cF "\"$1\"" "$work/strace.txt" || true
}
row() { # tool → native (sample), emulate (hello-arm), emulate with cargo started, opens
    local n e c o
    n=$(mean_ms "$1" build --release --mode native --rootfs "$arm" --no-report)
    e=$(cd "$work/hello" && mean_ms "$1" build --release --mode emulate --rootfs "$arm" --no-report)
    # The same no-op with the fresh stamp off: the rootfs's cargo under qemu decides.
    c=$(cd "$work/hello" && CARGO_FOR_ARM_FRESH=0 mean_ms "$1" build --release --mode emulate --rootfs "$arm" --no-report)
    o=$(opens_of "$1")
    echo "$n $e $c $o"
}
cargo_ms=$(mean_ms cargo build --release)
cargo_hello=$(cd "$work/hello" && mean_ms cargo build --release)
read -r native_ms emulate_ms emulate_cargo_ms opens < <(row "$tool")
cat <<EOT
no-op rebuild (build --release, nothing changed), mean of $runs runs:
  cargo build (rustup, x86_64), benches/sample           ${cargo_ms} ms
  cargo for-arm --mode native (armhf), benches/sample    ${native_ms} ms   (+$(awk -v a="$native_ms" -v b="$cargo_ms" 'BEGIN { printf "%.1f", a - b }') ms over cargo)
  cargo build (rustup, x86_64), examples/hello-arm       ${cargo_hello} ms
  cargo for-arm --mode emulate (armhf), hello-arm        ${emulate_ms} ms   ($(awk -v a="$emulate_ms" -v b="$emulate_cargo_ms" 'BEGIN { printf "%.2f", a / b }')x of the same with cargo started)
  the same, CARGO_FOR_ARM_FRESH=0 (cargo under qemu)     ${emulate_cargo_ms} ms
  opens of the tool's own binary in a no-op native build: ${opens}
EOT
if [ -n "$base" ]; then
    read -r b_native b_emulate _ b_opens < <(row "$base")
    cat <<EOT
the same with BASE=$base:
  native ${b_native} ms (this tree: $(awk -v a="$native_ms" -v b="$b_native" 'BEGIN { printf "%.2f", a / b }')x), emulate ${b_emulate} ms (this tree: $(awk -v a="$emulate_ms" -v b="$b_emulate" 'BEGIN { printf "%.2f", a / b }')x), opens of itself ${b_opens}
EOT
fi
