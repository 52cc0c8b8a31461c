#!/bin/sh
# Build a test fixture once and print its path; later calls print the cached path.
#
#   fixtures.sh busybox-armhf | busybox-arm64 | busybox-amd64   small rootfs: busybox-static
#   fixtures.sh qemu                                           dir with static qemu-arm, qemu-aarch64
#
# Packages come from the Debian mirror of the host's apt sources, verified (debfetch.py).
# Cache: $CARGO_FOR_ARM_TEST_CACHE, default ~/.cache/cargo-for-arm-tests. One lock serialises
# concurrent tests; a fixture appears by rename, so nobody sees half of one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${CARGO_FOR_ARM_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cargo-for-arm-tests}
mkdir -p "$cache/debs"
exec 9>"$cache/.lock"
flock 9
dest=$cache/$1
if [ -e "$dest" ]; then
    echo "$dest"
    exit 0
fi
rm -rf "$cache"/.tmp-*
tmp=$(mktemp -d "$cache/.tmp-XXXXXX")
case $1 in
busybox-*)
    arch=${1#busybox-}
    deb=$(python3 "$here/debfetch.py" --suite bookworm --arch "$arch" --cache "$cache/debs" busybox-static)
    dpkg-deb -x "$deb" "$tmp"
    for applet in sh ash ls cat echo uname id sleep touch mkdir stat grep kill ps true false env \
        readlink test wc head tail mount ln rm cp chmod printf dd seq sed tr cut sort whoami; do
        ln -s busybox "$tmp/bin/$applet"
    done
    ;;
qemu)
    # Debian 13's qemu-user ships static qemu 10 (Debian 12's qemu 7.2 deadlocks under load).
    deb=$(python3 "$here/debfetch.py" --suite trixie --arch amd64 --cache "$cache/debs" qemu-user)
    x=$(mktemp -d "$cache/.tmp-XXXXXX")
    dpkg-deb -x "$deb" "$x"
    for q in arm aarch64; do
        cp "$x/usr/bin/qemu-$q" "$tmp/qemu-$q"
    done
    rm -rf "$x"
    ;;
*)
    echo "fixtures.sh: unknown fixture $1" >&2
    rm -rf "$tmp"
    exit 2
    ;;
esac
mv "$tmp" "$dest"
echo "$dest"
