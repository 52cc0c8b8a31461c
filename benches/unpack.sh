#!/usr/bin/env bash
# Benchmark (not a test): unpack throughput of a large .tar.xz rootfs (the Debian 12 armhf
# rootfs with cargo, about a gigabyte) by `cargo for-arm rootfs pull FILE` (sha256 of the whole
# file first, then the checked, streaming unpack inside a user namespace) against
# `tar -xJf` of the same file, in one run.
#
#   benches/unpack.sh          as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/unpack.sh "$@"
fi
cd "$repo"
cargo build --release -q
tool=$repo/target/release/cargo-for-arm
rootfs=$(sh tests/support/fixtures.sh cargo-bookworm-armhf)
work=$(mktemp -d)
cleanup() { unshare --map-root-user --map-auto rm -rf "$work" 2>/dev/null || rm -rf "$work"; }
trap cleanup EXIT
archive=$work/rootfs.tar.xz
echo "making $archive from $rootfs (once; xz -T0 -3) ..."
# The fixture has files of subordinate ids: read it as root of a user namespace.
unshare --map-root-user --map-auto tar -C "$rootfs" -cf - . | xz -T0 -3 >"$archive"
size=$(stat -c %s "$archive")
secs() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
mkdir "$work/tar-out"
t_tar=$(secs unshare --map-root-user --map-auto tar -xJf "$archive" -C "$work/tar-out")
t_ours=$(secs env CARGO_FOR_ARM_HOME="$work/home" "$tool" rootfs pull "$archive" --name bench)
unpacked=$(unshare --map-root-user --map-auto du -sb "$work/tar-out" | cut -f1)
cat <<EOT
archive: $((size / 1048576)) MiB .tar.xz, unpacks to $((unpacked / 1048576)) MiB
tar -xJf:                   ${t_tar} s   $(awk -v b="$unpacked" -v t="$t_tar" 'BEGIN { printf "%.0f", b / t / 1048576 }') MiB/s
cargo for-arm rootfs pull:  ${t_ours} s   $(awk -v b="$unpacked" -v t="$t_ours" 'BEGIN { printf "%.0f", b / t / 1048576 }') MiB/s (includes the sha256 pass)
ratio:                      $(awk -v a="$t_ours" -v b="$t_tar" 'BEGIN { printf "%.2f", a / b }')x tar's time (goal <= 1.00x)
EOT
