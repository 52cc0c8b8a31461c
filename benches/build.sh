#!/usr/bin/env bash
# Benchmark (not a test): the fixed sample crate benches/sample (8 dependencies), built
#   - natively: cargo-for-arm in a Debian 12 amd64 rootfs (same rustc 1.63, no emulation),
#   - emulated: cargo-for-arm in a Debian 12 armhf rootfs under qemu,
# each from clean, then again with no change. Prints times and ratios for docs/PERFORMANCE.md.
#
#   benches/build.sh          as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/build.sh "$@"
fi
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
cd "$repo"
bench_tool
qemu=$(sh tests/support/fixtures.sh qemu)
native=$(sh tests/support/fixtures.sh cargo-bookworm-amd64)
armhf=$(sh tests/support/fixtures.sh cargo-bookworm-armhf)
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_log=$work/log
cp -r benches/sample/. "$work/"
cd "$work"
# Fetch once so that neither timing includes the download.
"$tool" build --release --rootfs "$native" --no-report -q >/dev/null 2>&1 || true
rm -rf target

n_clean=$(secs "$tool" build --release --rootfs "$native" --no-report)
n_again=$(secs "$tool" build --release --rootfs "$native" --no-report)
e_clean=$(secs "$tool" build --release --rootfs "$armhf" --no-report)
e_again=$(secs "$tool" build --release --rootfs "$armhf" --no-report)
cat <<EOT
sample: benches/sample (8 dependencies), cargo build --release, rustc 1.63 in both rootfs
qemu: $("$qemu/qemu-arm" --version | head -1)
native (amd64 rootfs)   clean ${n_clean} s   no-change ${n_again} s
emulated (armhf rootfs) clean ${e_clean} s   no-change ${e_again} s
ratio emulated/native   clean $(ratio "$e_clean" "$n_clean")x   no-change $(ratio "$e_again" "$n_again")x
EOT
