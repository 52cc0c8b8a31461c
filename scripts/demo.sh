#!/usr/bin/env bash
# The main job (README): a real emulated ARM build of the sample crate, as a normal user, the
# way a user on a fresh machine does it: nothing but cargo-for-arm.
#
#   scripts/demo.sh [armhf|arm64]     (armhf: Debian 12 rootfs, cargo 1.63; arm64: Debian 13, 1.85)
#
# As root it prepares an unprivileged user first (scripts/as-user.sh) and runs as that user.
# With no rootfs configured, `cargo for-arm build` bootstraps the default Debian rootfs with
# cargo from the Debian mirror of the host's apt sources (a few minutes, once) and fetches
# Debian's static qemu if none is installed; both are verified and cached in
# ~/.cache/cargo-for-arm. Then it builds examples/hello-arm and runs the ARM binary; then it
# builds the same crate in native mode (creating the C tools rootfs once) and runs that binary.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" scripts/demo.sh "$@"
fi
arch=${1:-armhf}
case $arch in
armhf) rootfs=debian-bookworm-armhf ;;
arm64) rootfs=debian-trixie-arm64 ;;
*) echo "demo.sh: armhf or arm64" >&2; exit 2 ;;
esac
cd "$repo"
cargo build --release -q
export PATH=$repo/target/release:$PATH
cd examples/hello-arm
# --mode emulate: the rootfs's own cargo under qemu, even once a tools rootfs exists (auto
# would then compile natively, as the second part of the demo does).
echo "==> cargo for-arm build --release --arch $arch --mode emulate"
cargo for-arm build --release --arch "$arch" --mode emulate
echo "==> cargo for-arm run --rootfs $rootfs -- uname -m"
cargo for-arm run --rootfs "$rootfs" -- uname -m
echo "==> a shell inside: cargo for-arm run --rootfs $rootfs -- sh -c '…'  (interactive: -- sh)"
cargo for-arm run --rootfs "$rootfs" -- sh -c '. /etc/os-release; echo "sh in $PRETTY_NAME on $(uname -m), uid $(id -u) inside"'
# The finals land in cargo's cross layout, target/<triple>/<profile>, in every mode.
triple=$([ "$arch" = armhf ] && echo armv7-unknown-linux-gnueabihf || echo aarch64-unknown-linux-gnu)
echo "==> cargo for-arm run --rootfs $rootfs -- target/$triple/release/hello-arm"
cargo for-arm run --rootfs "$rootfs" -- "target/$triple/release/hello-arm"
# Native mode: the same crate compiled at host speed against the ARM rootfs, by the rustup
# toolchain when it has the ARM target, else by Debian's rustc of the same suite (the tools
# rootfs is created once, a minute or two).
echo "==> cargo for-arm build --release --arch $arch --mode native"
cargo for-arm build --release --arch "$arch" --mode native
echo "==> cargo for-arm run --rootfs $rootfs -- target/$triple/release/hello-arm"
cargo for-arm run --rootfs "$rootfs" -- "target/$triple/release/hello-arm"
