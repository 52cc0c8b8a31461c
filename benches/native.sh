#!/usr/bin/env bash
# Benchmark (not a test): the fixed sample crate benches/sample (8 dependencies),
# `cargo build --release` from clean, with Debian 12's rustc 1.63 everywhere:
#   - host-native: x86_64 for x86_64, cargo of the tools rootfs (no cross, no emulation);
#   - --mode native: armhf, compiled by the same rustc against the ARM rootfs;
#   - --mode emulate: armhf, the ARM rootfs's cargo under qemu;
# then the rustup toolchain of the machine building for x86_64, for reference.
# The rootfs are the native tests' fixtures (created on first use, cached).
#
#   benches/native.sh          as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/native.sh "$@"
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
tools=debian-bookworm-amd64-tools
arm=native-bookworm-armhf
ensure "$tools" bookworm amd64 cargo,clang,lld,llvm,pkg-config
ensure "$arm" bookworm armhf cargo,zlib1g-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r benches/sample/. "$work/"
cd "$work"
# Fetch (vendor) once so that no timing includes the download.
"$tool" build --release --rootfs "$tools" --no-report -q >/dev/null 2>&1 || true

secs() { # command… → wall seconds, from a clean target dir
    local start end
    rm -rf target
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
host=$(secs "$tool" build --release --rootfs "$tools" --no-report)
native=$(secs "$tool" build --release --mode native --rootfs "$arm" --no-report)
emulate=$(secs "$tool" build --release --mode emulate --rootfs "$arm" --no-report)
rustup=$(secs cargo build --release)
cat <<EOT
sample: benches/sample (8 dependencies), cargo build --release from clean
qemu: $("$qemu/qemu-arm" --version | head -1)
host-native x86_64 (tools rootfs, rustc 1.63)   ${host} s
--mode native, armhf (same rustc)              ${native} s   $(ratio "$native" "$host")x host-native
--mode emulate, armhf (qemu)                   ${emulate} s   $(ratio "$emulate" "$host")x host-native
host rustup toolchain, x86_64 ($(rustc -V | cut -d' ' -f2))         ${rustup} s   (reference: another rustc)
EOT
