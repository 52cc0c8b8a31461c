#!/usr/bin/env bash
# Benchmark (not a test): cold start, side by side in one run. From a fresh cargo-for-arm home
# (the tool built, the rustup target installed, the Debian package cache empty, this machine's
# Debian mirror), `cargo for-arm build --release` of examples/hello-arm until the ARM binary
# exists, then `cargo for-arm test` of the same; against cargo-zigbuild's cold start: a fresh
# Python venv, `pip install cargo-zigbuild ziglang`, then `cargo zigbuild --release --target
# armv7-unknown-linux-gnueabihf` of the same crate with the same rustc.
# Goal: cargo-for-arm ≤ 60 s here; the next goal is cargo-zigbuild's time.
#
#   benches/coldstart.sh        as a normal user (as root: prepares and runs as cfa-test)
# It downloads the rootfs' packages (about 1 GB for the tools rootfs) and takes minutes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/coldstart.sh "$@"
fi
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
cd "$repo"
bench_tool
triple=armv7-unknown-linux-gnueabihf
rustc --print sysroot >/dev/null
[ -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ] ||
    { echo "the toolchain has no $triple standard library: rustup target add $triple" >&2; exit 1; }
fresh=$(mktemp -d)
trap 'chmod -R u+w "$fresh" 2>/dev/null; rm -rf "$fresh"' EXIT
export CARGO_FOR_ARM_HOME=$fresh/home
unset CARGO_FOR_ARM_QEMU_ARM CARGO_FOR_ARM_OFFLINE CARGO_FOR_ARM_ROOTFS CARGO_FOR_ARM_MODE
mkdir -p "$fresh/cfa" "$fresh/zig"
cp -r examples/hello-arm/. "$fresh/cfa/"
cp -r examples/hello-arm/. "$fresh/zig/"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Each line of the tool's messages, stamped with the seconds since the start: where the time goes.
stamp() { local t0=$1 line; while IFS= read -r line; do
    printf '%6.1f s  %s\n' "$(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { print b - a }')" "$line"
done; }
start=$(now)
(cd "$fresh/cfa" && "$tool" build --release 2> >(stamp "$start" >"$fresh/cfa.log")) ||
    { sleep 1; tail -20 "$fresh/cfa.log"; exit 1; }
cfa_build=$(since "$start")
sleep 0.2 # the stamping of the last lines
[ -x "$fresh/cfa/target/$triple/release/hello-arm" ] || { echo "no ARM binary" >&2; exit 1; }
start=$(now)
(cd "$fresh/cfa" && "$tool" test 2>>"$fresh/cfa.log" >/dev/null) ||
    { tail -20 "$fresh/cfa.log"; exit 1; }
cfa_test=$(since "$start")

start=$(now)
zigbuild_venv "$fresh/venv"
(cd "$fresh/zig" && PATH="$fresh/venv/bin:$PATH" cargo zigbuild --release --target "$triple" -q)
[ -x "$fresh/zig/target/$triple/release/hello-arm" ] || { echo "no zigbuild binary" >&2; exit 1; }
zig=$(since "$start")

echo "where cargo-for-arm's cold start went (its messages):"
grep -E "creating|Resolved|Fetch|Unpack|Install|Created|restor|mode |Native|Emulating|Finished" "$fresh/cfa.log" | sed 's/^/  /' | head -30
cat <<EOT
cold start, examples/hello-arm for $triple, fresh home and package cache:
  cargo for-arm build --release   ${cfa_build} s   ($(awk -v a="$cfa_build" -v b="$zig" 'BEGIN { printf "%.1f", a / b }')x cargo-zigbuild)
  then cargo for-arm test         ${cfa_test} s
  cargo-zigbuild (venv + pip install + build)  ${zig} s
EOT
