#!/usr/bin/env bash
# The main job (README): a real emulated ARM build of the sample crate, as a normal user.
#
#   scripts/demo.sh [armhf|arm64]     (default armhf: Debian 12 rootfs, cargo 1.63;
#                                      arm64: Debian 13 rootfs, cargo 1.85)
#
# As root it prepares an unprivileged user first (scripts/as-user.sh) and runs as that user.
# It builds cargo-for-arm, gets a static qemu and a Debian rootfs with cargo (bootstrapped
# rootlessly from the Debian mirror of the host's apt sources, cached), then runs
# `cargo for-arm build --release` in examples/hello-arm and the ARM binary it produced.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" scripts/demo.sh "$@"
fi
arch=${1:-armhf}
case $arch in
armhf) fixture=cargo-bookworm-armhf ;;
arm64) fixture=cargo-trixie-arm64 ;;
*) echo "demo.sh: armhf or arm64" >&2; exit 2 ;;
esac
cd "$repo"
cargo build --release -q
tool=$repo/target/release/cargo-for-arm
echo "==> static qemu and a Debian $arch rootfs with cargo (first run: a few minutes, then cached)"
qemu=$(sh tests/support/fixtures.sh qemu)
rootfs=$(sh tests/support/fixtures.sh "$fixture")
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm CARGO_FOR_ARM_QEMU_AARCH64=$qemu/qemu-aarch64
export PATH=$repo/target/release:$PATH
echo "==> cargo for-arm run --rootfs $rootfs -- uname -m"
cargo for-arm run --rootfs "$rootfs" -- uname -m
echo "==> a shell inside: cargo for-arm run --rootfs $rootfs -- sh -c '…'  (interactive: -- sh)"
cargo for-arm run --rootfs "$rootfs" -- sh -c '. /etc/os-release; echo "sh in $PRETTY_NAME on $(uname -m), uid $(id -u) inside"'
cd examples/hello-arm
echo "==> cargo for-arm build --release --rootfs $rootfs"
cargo for-arm build --release --rootfs "$rootfs"
echo "==> cargo for-arm run --rootfs $rootfs -- target/for-arm/$arch/release/hello-arm"
cargo for-arm run --rootfs "$rootfs" -- "target/for-arm/$arch/release/hello-arm"
