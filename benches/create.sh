#!/usr/bin/env bash
# Benchmark (not a test): bootstrap Debian 12 armhf (minbase + cargo) rootlessly with
# `cargo for-arm rootfs create` against rootless mmdebstrap (root of a user namespace with the
# full id map, qemu through a private binfmt_misc — as tests/support/fixtures.sh does), in one
# run: mmdebstrap, our create with an empty package cache (which keeps the finished tree),
# our create again (restoring that tree), and again with --no-snapshot (packages cached, but
# bootstrapped and configured anew).
#
#   benches/create.sh          as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/create.sh "$@"
fi
cd "$repo"
cargo build --release -q
tool=$repo/target/release/cargo-for-arm
qdir=$(sh tests/support/fixtures.sh qemu)
export CARGO_FOR_ARM_QEMU_ARM=$qdir/qemu-arm
mirror=$(python3 tests/support/debfetch.py --print-mirror)
user=$(id -un)
subuid=$(awk -F: -v u="$user" '$1 == u { print $2; exit }' /etc/subuid)
subgid=$(awk -F: -v u="$user" '$1 == u { print $2; exit }' /etc/subgid)
work=$(mktemp -d)
cleanup() {
    unshare --map-root-user --map-users="$subuid,1,65536" --map-groups="$subgid,1,65536" rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
secs() {
    local start end
    start=$(date +%s.%N)
    "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log"; return 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}
magic='\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
t_mm=$(secs unshare --map-root-user --map-users="$subuid,1,65536" --map-groups="$subgid,1,65536" \
    --mount --pid --fork --mount-proc -- sh -euc '
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    printf "%s" ":qemu-arm:M::$1:$2:$3:FP" > /proc/sys/fs/binfmt_misc/register
    mmdebstrap --quiet --mode=root --variant=minbase --include=cargo --architectures=armhf \
        --skip=check/qemu,chroot/mount/sys bookworm "$4" "$5"
    ' sh "$magic" "$mask" "$qdir/qemu-arm" "$work/mm" "$mirror")
t_cold=$(secs env CARGO_FOR_ARM_HOME="$work/home" "$tool" rootfs create cold --suite bookworm --arch armhf --include cargo)
t_snap=$(secs env CARGO_FOR_ARM_HOME="$work/home" "$tool" rootfs create warm --suite bookworm --arch armhf --include cargo)
t_debs=$(secs env CARGO_FOR_ARM_HOME="$work/home" "$tool" rootfs create debs --suite bookworm --arch armhf --include cargo --no-snapshot)
cat <<EOT
bookworm armhf, minbase + cargo, rootless, qemu $("$qdir/qemu-arm" --version | head -1 | awk '{print $3}')
mmdebstrap (downloads each time):                        ${t_mm} s
cargo for-arm rootfs create, cold cache:                 ${t_cold} s
cargo for-arm rootfs create, again (kept tree restored): ${t_snap} s
cargo for-arm rootfs create, again with --no-snapshot:   ${t_debs} s
snapshot kept: $(du -sh "$work/home/snapshots" | cut -f1)
EOT
