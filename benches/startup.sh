#!/usr/bin/env bash
# Benchmark (not a test): wall time of `cargo-for-arm run -- /bin/true` in a native-arch
# rootfs against bubblewrap doing the same (new user/mount/pid/uts/ipc namespaces, fresh
# /proc, minimal /dev, tmpfs /tmp, pivot into the rootfs). Goal: at most 1.5x bwrap.
#
#   benches/startup.sh [RUNS]          as a normal user (as root: re-runs itself as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-100}
if [ "$(id -u)" = 0 ]; then
    user=${CARGO_FOR_ARM_TEST_USER:-cfa-test}
    bash "$repo/scripts/test.sh" --no-run >/dev/null
    home=$(getent passwd "$user" | cut -d: -f6)
    exec runuser -u "$user" -- env -i HOME="$home" PATH=/opt/cargo-for-arm-ci/toolchain/bin:/usr/bin:/bin \
        bash "$home/cargo-for-arm/benches/startup.sh" "$runs"
fi
command -v bwrap >/dev/null || { echo "bwrap is not installed (apt-get install bubblewrap)"; exit 1; }
(cd "$repo" && cargo build --release -q)
tool=$repo/target/release/cargo-for-arm
rootfs=$(sh "$repo/tests/support/fixtures.sh" busybox-amd64)
cd "$(mktemp -d)"

time_it() { # name, command...
    local name=$1 start end
    shift
    "$@" >/dev/null # warm-up
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$@" >/dev/null; done
    end=$(date +%s%N)
    echo $(((end - start) / runs / 1000))
}

ours=$(time_it cargo-for-arm "$tool" run --map single --rootfs "$rootfs" -- /bin/true)
bw=$(time_it bwrap bwrap --unshare-user --unshare-pid --unshare-uts --unshare-ipc --die-with-parent \
    --bind "$rootfs" / --proc /proc --dev /dev --tmpfs /tmp --bind "$PWD" "$PWD" --chdir "$PWD" /bin/true)
echo "binary:        $tool"
echo "cargo-for-arm: ${ours} us per run (mean of $runs)"
echo "bwrap:         ${bw} us per run (mean of $runs)"
awk -v a="$ours" -v b="$bw" 'BEGIN { printf "ratio:         %.2fx bwrap (goal <= 1.50x)\n", a / b }'
