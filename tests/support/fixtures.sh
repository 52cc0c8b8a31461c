#!/bin/sh
# Build a test fixture once and print its path; later calls print the cached path.
#
#   fixtures.sh busybox-armhf | busybox-arm64 | busybox-amd64   small rootfs: busybox-static
#   fixtures.sh qemu                                           dir with static qemu-arm, qemu-aarch64
#   fixtures.sh qemu-old                                       dir with Debian 12's qemu-arm-static (7.2)
#   fixtures.sh cargo-bookworm-armhf | cargo-trixie-arm64      Debian rootfs with cargo (mmdebstrap)
#   fixtures.sh cargo-bookworm-amd64                           the same rustc, native (benchmarks)
#   fixtures.sh cache-dir                                      the cache directory itself
#   fixtures.sh rm-tree DIR                                    remove DIR, subordinate ids too
#
# Packages come from the Debian mirror of the host's apt sources, verified (debfetch.py).
# Cache: $CARGO_FOR_ARM_TEST_CACHE, default ~/.cache/cargo-for-arm-tests. A fixture appears by
# rename, so nobody sees half of one; a lock per fixture makes concurrent tests build it once.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# Bump when a recipe changes, so caches built by an older recipe are not reused.
recipe=2
cache=${CARGO_FOR_ARM_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cargo-for-arm-tests}/v$recipe
mkdir -p "$cache/debs"
if [ "$1" = cache-dir ]; then
    echo "$cache"
    exit 0
fi

# Run a command as root of a user namespace with the user's subordinate ids mapped (1..65536),
# as mmdebstrap needs, and as removing what it made needs.
in_userns() {
    user=$(id -un)
    subuid=$(awk -F: -v u="$user" '$1 == u { print $2; exit }' /etc/subuid 2>/dev/null)
    subgid=$(awk -F: -v u="$user" '$1 == u { print $2; exit }' /etc/subgid 2>/dev/null)
    if [ -z "$subuid" ] || [ -z "$subgid" ]; then
        echo "fixtures.sh: $user needs /etc/subuid and /etc/subgid ranges (scripts/test.sh as root sets them)" >&2
        exit 1
    fi
    unshare --map-root-user --map-users="$subuid,1,65536" --map-groups="$subgid,1,65536" \
        --mount --pid --fork --mount-proc -- "$@"
}

case $1 in
cargo-*) qdir=$(sh "$0" qemu) ;;
rm-tree)
    # A test's directory with files of subordinate ids (a rootfs unpacked with the full map),
    # which the user alone cannot remove.
    in_userns rm -rf "$2"
    exit 0
    ;;
esac

dest=$cache/$1
if [ -e "$dest" ]; then
    echo "$dest"
    exit 0
fi
exec 9>"$cache/.lock-$1"
flock 9
if [ -e "$dest" ]; then
    echo "$dest"
    exit 0
fi
# A build of this fixture that was killed left its temporary tree: remove it.
for stale in "$cache/.tmp-$1-"*; do
    [ -e "$stale" ] || continue
    rm -rf "$stale" 2>/dev/null || in_userns rm -rf "$stale"
done
tmp=$(mktemp -d "$cache/.tmp-$1-XXXXXX")
case $1 in
busybox-*)
    arch=${1#busybox-}
    deb=$(python3 "$here/debfetch.py" --suite bookworm --arch "$arch" --cache "$cache/debs" busybox-static)
    dpkg-deb -x "$deb" "$tmp"
    for applet in sh ash ls cat echo uname id sleep touch mkdir stat grep kill ps true false env \
        readlink test wc head tail mount ln rm cp chmod printf dd seq sed tr cut sort whoami \
        timeout date; do
        ln -s busybox "$tmp/bin/$applet"
    done
    ;;
qemu)
    # Debian 13's qemu-user ships static qemu 10 (Debian 12's qemu 7.2 deadlocks under load).
    deb=$(python3 "$here/debfetch.py" --suite trixie --arch amd64 --cache "$cache/debs" qemu-user)
    x=$tmp.deb
    rm -rf "$x"
    mkdir "$x"
    dpkg-deb -x "$deb" "$x"
    for q in arm aarch64; do
        cp "$x/usr/bin/qemu-$q" "$tmp/qemu-$q"
    done
    rm -rf "$x"
    ;;
qemu-old)
    deb=$(python3 "$here/debfetch.py" --suite bookworm --arch amd64 --cache "$cache/debs" qemu-user-static)
    x=$tmp.deb
    rm -rf "$x"
    mkdir "$x"
    dpkg-deb -x "$deb" "$x"
    cp "$x/usr/bin/qemu-arm-static" "$tmp/qemu-arm-static"
    rm -rf "$x"
    ;;
cargo-*-*)
    # A Debian rootfs with cargo, bootstrapped rootlessly: mmdebstrap runs as root of a user
    # namespace with the full subordinate id range, where a private binfmt_misc hands the
    # foreign maintainer scripts to the static qemu. Nothing touches the host's binfmt_misc.
    suite=$(echo "$1" | cut -d- -f2)
    arch=$(echo "$1" | cut -d- -f3)
    command -v mmdebstrap >/dev/null ||
        { echo "fixtures.sh: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
    case $arch in
    armhf) q=arm machine='\x28' ;;
    arm64) q=aarch64 machine='\xb7' ;;
    amd64) q=none machine= ;;
    *) echo "fixtures.sh: no qemu recipe for $arch" >&2; exit 2 ;;
    esac
    class='\x01'
    [ "$q" = aarch64 ] && class='\x02'
    magic="\\x7f\\x45\\x4c\\x46$class\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00$machine\\x00"
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    mirror=$(python3 "$here/debfetch.py" --print-mirror)
    rmdir "$tmp"
    in_userns sh -euc '
        if [ "$1" != none ]; then
            mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
            printf "%s" ":qemu-$1:M::$2:$3:$4:FP" > /proc/sys/fs/binfmt_misc/register
        fi
        mmdebstrap --quiet --mode=root --variant=minbase --include=cargo --architectures="$5" \
            --skip=check/qemu,chroot/mount/sys "$6" "$7" "$8" >&2
        ' sh "$q" "$magic" "$mask" "$qdir/qemu-$q" "$arch" "$suite" "$tmp" "$mirror"
    ;;
*)
    echo "fixtures.sh: unknown fixture $1" >&2
    rm -rf "$tmp"
    exit 2
    ;;
esac
mv "$tmp" "$dest"
echo "$dest"
