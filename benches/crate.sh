#!/usr/bin/env bash
# Benchmark (not a test): a clean `cargo build --release` of a real crate of ~40 dependencies
# (CRATE=NAME@VERSION, default ripgrep@14.1.1, fetched from crates.io and built with its own
# Cargo.lock), side by side in one run, the same rustc for all (the rustup toolchain on PATH,
# which must have the armv7 std):
#   - host: `cargo build --release`, x86_64 for x86_64, the reference;
#   - `cargo for-arm build --release --mode native` for armv7-unknown-linux-gnueabihf;
#   - cargo-zigbuild for the same triple (a Python venv: `pip install cargo-zigbuild ziglang`).
# Only compiling is timed: the crates are fetched, cargo-for-arm's sysroot, C tools rootfs and
# vendor directory made, and zig's libc stubs for the target built, by warm-ups before. ROUNDS
# rounds (default 1), each running the three one after the other; the ratios are of the means.
# CARGO_FOR_ARM_HOME: where cargo-for-arm keeps its store (default: a scratch home, so the
# sysroot and the C tools rootfs are created anew, untimed, in each run).
#
#   benches/crate.sh [ROUNDS]     as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/crate.sh "$@"
fi
rounds=${1:-1}
crate=${CRATE:-ripgrep@14.1.1}
triple=armv7-unknown-linux-gnueabihf
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
bench_tool
[ -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ] ||
    { echo "the toolchain has no $triple standard library: rustup target add $triple" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
bench_log=$work/log
export CARGO_FOR_ARM_HOME=${CARGO_FOR_ARM_HOME:-$work/home}
# The crates in a cargo home of the run's own: the host's and zigbuild's builds read them
# offline, cargo-for-arm vendors from it.
export CARGO_HOME=$work/cargo-home
export ZIG_GLOBAL_CACHE_DIR=$work/zig-cache
unset CARGO_FOR_ARM_MODE CARGO_FOR_ARM_ROOTFS CARGO_FOR_ARM_TOOLS_ROOTFS CARGO_FOR_ARM_CACHE RUSTC_WRAPPER
src=$work/${crate%@*}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "fetching $crate, cargo-zigbuild and ziglang; warming up (untimed) ..." >&2
fetch_crate "$crate" "$src"
deps=$(built_deps "$src" "$triple")
locked=$(grep -c '^name = ' "$src/Cargo.lock")
mapfile -t bins < <(bin_names "$src")
zigbuild_venv "$work/venv"
zigpath=$work/venv/bin:$PATH
# zig's libc stubs and crt files for the target, built on its first link: by a tiny crate.
(cd "$work" && cargo new -q --vcs none warm && cd warm &&
    PATH=$zigpath cargo zigbuild -q --release --target "$triple" --target-dir "$work/t-warm")
# cargo-for-arm's sysroot and C tools rootfs (created on first use) and its vendor directory.
(cd "$src" && "$tool" build --release --mode native --no-report -q --target-dir "$work/t-warm") >/dev/null 2>"$bench_log" ||
    { tail -30 "$bench_log" >&2; exit 1; }
rm -rf "$work/t-warm"

build_host() { secs cargo build --release --locked --offline --target-dir "$work/t-host"; }
build_native() {
    secs "$tool" build --release --mode native --no-report --locked --offline --target-dir "$work/t-native"
}
build_zig() {
    PATH=$zigpath secs cargo zigbuild --release --locked --offline --target "$triple" --target-dir "$work/t-zig"
}
declare -A times
cd "$src"
for _ in $(seq "$rounds"); do
    for how in host native zig; do
        rm -rf "$work/t-$how"
        t=$("build_$how")
        times[$how]+="$t "
    done
done
for b in "${bins[@]}"; do
    check_elf "$work/t-host/release/$b" 3e
    check_elf "$work/t-native/$triple/release/$b" 28
    check_elf "$work/t-zig/$triple/release/$b" 28
done
mean() { echo "$1" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }'; }
row() { # label, times
    local m
    m=$(mean "$2")
    printf '  %-44s %-22s %8s s   %sx host\n' "$1" "$2" "$m" "$(ratio "$m" "$(mean "${times[host]}")")"
}
cat <<EOT
$crate: $deps packages compiled besides itself for $triple (cargo tree, normal and build
  dependencies; $locked packages in its Cargo.lock), binaries: ${bins[*]}
rustc: $(rustc -V) for all three; $("$work/venv/bin/cargo-zigbuild" --version), zig $("$work/venv/bin/python" -m ziglang version)
machine: $(nproc) cores, load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)
clean cargo build --release, $rounds round(s) (each round: the three in this order), mean:
EOT
row "host x86_64, cargo build" "${times[host]}"
row "cargo for-arm --mode native, armv7" "${times[native]}"
row "cargo-zigbuild, armv7" "${times[zig]}"
echo "  native / cargo-zigbuild: $(ratio "$(mean "${times[native]}")" "$(mean "${times[zig]}")")x"
