#!/usr/bin/env bash
# Benchmark (not a test): the shared compile cache across "runners". The fixed sample crate
# benches/sample (8 dependencies), `cargo build --release --mode native` for armhf with
# Debian 12's rustc 1.63, at one project path:
#   - no cache;
#   - runner 1: --cache sccache, a fresh cargo-for-arm home, an empty cache directory (cold);
#   - runner 2: --cache sccache, another fresh home, the project removed and re-created at the
#     same path, the cache directory runner 1 filled (what a CI runner restoring it sees).
# Vendoring (the host's `cargo vendor`) is done once beforehand in each home's place by a
# warm-up; sccache never caches bin, build-script or proc-macro crates, so what remains is
# measured rather than gated on.
#
#   benches/cache.sh          as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/cache.sh "$@"
fi
cd "$repo"
# CARGO_FOR_ARM_BENCH_TOOL: an already built cargo-for-arm (its own speed is not what is measured).
tool=${CARGO_FOR_ARM_BENCH_TOOL:-}
if [ -z "$tool" ]; then
    cargo build --release -q
    tool=$repo/target/release/cargo-for-arm
fi
sccache=${CARGO_FOR_ARM_SCCACHE:-/opt/cargo-for-arm-ci/sccache/bin/sccache}
[ -x "$sccache" ] || { echo "no sccache at $sccache (scripts/as-user.sh builds it)" >&2; exit 1; }
qemu=$(sh tests/support/fixtures.sh qemu)
export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm
store=$(dirname "$qemu")/native-home
ensure() {
    [ -e "$store/rootfs/$1/entry.toml" ] ||
        CARGO_FOR_ARM_HOME=$store "$tool" -q rootfs create "$1" --suite "$2" --arch "$3" --include "$4"
}
tools=debian-bookworm-amd64-tools
arm=native-bookworm-armhf
ensure "$tools" bookworm amd64 cargo,clang,lld,llvm,pkg-config
ensure "$arm" bookworm armhf cargo,zlib1g-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SCCACHE_DIR=$work/sccache CARGO_FOR_ARM_NATIVE_RUSTC=rootfs
project=$work/project
args=(build --release --mode native --rootfs "$store/rootfs/$arm/root"
    --tools-rootfs "$store/rootfs/$tools/root" --no-report)

fresh() { # a new home and the project re-created at the same path
    rm -rf "$project" "$work/home"
    mkdir -p "$project" "$work/home"
    cp -r benches/sample/. "$project/"
    export CARGO_FOR_ARM_HOME=$work/home
}
secs() { # command… → wall seconds; stderr kept in $work/log
    local start end
    start=$(date +%s.%N)
    (cd "$project" && "$@") >/dev/null 2>"$work/log" || { cat "$work/log" >&2; echo "failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Warm-up: the registry download is not timed.
fresh
(cd "$project" && "$tool" "${args[@]}" -q >/dev/null 2>&1) || true
fresh
plain=$(secs "$tool" "${args[@]}")
fresh
rm -rf "$SCCACHE_DIR"
cold=$(secs "$tool" "${args[@]}" --cache sccache --sccache "$sccache")
cold_line=$(grep -a "sccache:" "$work/log" | sed 's/^ *//')
fresh
warm=$(secs "$tool" "${args[@]}" --cache sccache --sccache "$sccache")
warm_line=$(grep -a "sccache:" "$work/log" | sed 's/^ *//')
cat <<EOT
sample: benches/sample (8 dependencies), cargo build --release --mode native, armhf, rustc 1.63
no cache                          ${plain} s
runner 1, empty cache (cold)      ${cold} s   $(ratio "$cold" "$plain")x no cache
  ${cold_line}
runner 2, runner 1's cache        ${warm} s   $(ratio "$warm" "$cold")x runner 1
  ${warm_line}
cache size: $(du -sh "$SCCACHE_DIR" | cut -f1)
EOT
