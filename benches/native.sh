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
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
cd "$repo"
bench_tool
qemu=$(sh tests/support/fixtures.sh qemu)
CARGO_FOR_ARM_HOME=$(dirname "$qemu")/native-home
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm CARGO_FOR_ARM_HOME
tools=debian-bookworm-amd64-tools
arm="native-bookworm-armhf"
ensure "$tools" bookworm amd64 cargo,clang,lld,llvm,pkg-config
ensure "$arm" bookworm armhf cargo,zlib1g-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_log=$work/log
mkdir "$work/sample"
cp -r benches/sample/. "$work/sample/"
cd "$work/sample"
# Fetch (vendor) once so that no timing includes the download.
"$tool" build --release --rootfs "$tools" --no-report -q >/dev/null 2>&1 || true

clean_secs() { rm -rf target && secs "$@"; } # command… → wall seconds, from a clean target dir
host=$(clean_secs "$tool" build --release --rootfs "$tools" --no-report)
native=$(clean_secs "$tool" build --release --mode native --rootfs "$arm" --no-report)
emulate=$(clean_secs "$tool" build --release --mode emulate --rootfs "$arm" --no-report)
rustup=$(clean_secs cargo build --release)
cat <<EOT
sample: benches/sample (8 dependencies), cargo build --release from clean
qemu: $("$qemu/qemu-arm" --version | head -1)
host-native x86_64 (tools rootfs, rustc 1.63)   ${host} s
--mode native, armhf (same rustc)              ${native} s   $(ratio "$native" "$host")x host-native
--mode emulate, armhf (qemu)                   ${emulate} s   $(ratio "$emulate" "$host")x host-native
host rustup toolchain, x86_64 ($(rustc -V | cut -d' ' -f2))         ${rustup} s   (reference: another rustc)
EOT
