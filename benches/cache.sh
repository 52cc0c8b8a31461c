#!/usr/bin/env bash
# Benchmark (not a test): the shared compile cache across "runners". `cargo build --release
# --mode native` for armhf at one project path, of either
#   - the fixed sample crate benches/sample (8 dependencies), with Debian 12's rustc 1.63 (the
#     native fixtures' rootfs pair), by default; or
#   - CRATE=NAME@VERSION (e.g. ripgrep@14.1.1, ~40 dependencies), fetched from crates.io with its
#     Cargo.lock, with the rustup toolchain on PATH (it must have the armv7 std; the sysroot and
#     C tools rootfs this needs are created by an untimed warm-up in a store home of the run);
# each timed
#   - with no cache;
#   - runner 1: --cache sccache, a fresh cargo-for-arm home, an empty cache directory (cold);
#   - runner 2: --cache sccache, another fresh home, the project removed and re-created at the
#     same path, the cache directory runner 1 filled (what a CI runner restoring it sees).
# The warm-up fills the host's registry cache, so each runner's `cargo vendor` (in its fresh
# home, timed) copies local files. sccache never caches bin, build-script or proc-macro
# crates, so what remains is measured (and counted) rather than gated on.
#
#   [CRATE=NAME@VERSION] benches/cache.sh     as a normal user (as root: prepares and runs as cfa-test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" benches/cache.sh "$@"
fi
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"
crate=${CRATE:-}
triple=armv7-unknown-linux-gnueabihf
bench_tool
sccache=${CARGO_FOR_ARM_SCCACHE:-/opt/cargo-for-arm-ci/sccache/bin/sccache}
[ -x "$sccache" ] || { echo "no sccache at $sccache (scripts/as-user.sh builds it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
bench_log=$work/log
export SCCACHE_DIR=$work/sccache
# The crates in a cargo home of the run's own (the host's `cargo vendor` reads it).
export CARGO_HOME=$work/cargo-home
unset CARGO_FOR_ARM_MODE CARGO_FOR_ARM_ROOTFS CARGO_FOR_ARM_TOOLS_ROOTFS CARGO_FOR_ARM_CACHE RUSTC_WRAPPER
project=$work/project
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

fresh() { # a new home and the project re-created at the same path
    rm -rf "$project" "${work:?}/home"
    mkdir -p "$project" "$work/home"
    cp -r "$source/." "$project/"
    export CARGO_FOR_ARM_HOME=$work/home
}
one_entry() { # store pattern → the root of the one store entry whose name matches
    # shellcheck disable=SC2206 # the pattern is meant to glob
    local found=("$1"/rootfs/$2/root)
    [ ${#found[@]} = 1 ] && [ -d "${found[0]}" ] ||
        { echo "expected one rootfs $2 in $1, found: ${found[*]}" >&2; exit 1; }
    echo "${found[0]}"
}
if [ -n "$crate" ]; then
    source=$work/source
    fetch_crate "$crate" "$source"
    what="$crate ($(built_deps "$source" "$triple") packages besides itself), rustc $(rustc -V | cut -d' ' -f2) (rustup)"
    export CARGO_FOR_ARM_NATIVE_RUSTC=rustup
    # The warm-up creates the sysroot and the C tools rootfs once, in a store home of its own.
    fresh
    export CARGO_FOR_ARM_HOME=$work/store
    (cd "$project" && "$tool" build --release --mode native --no-report -q >/dev/null 2>"$bench_log") ||
        { tail -30 "$bench_log" >&2; exit 1; }
    arm=$(one_entry "$work/store" "*-armhf-sysroot*")
    tools=$(one_entry "$work/store" "*-amd64-tools*")
else
    source=$repo/benches/sample
    what="benches/sample (8 dependencies), rustc 1.63 (Debian 12)"
    qemu=$(sh "$repo/tests/support/fixtures.sh" qemu)
    CARGO_FOR_ARM_HOME=$(dirname "$qemu")/native-home
    export CARGO_FOR_ARM_QEMU_ARM=$qemu/qemu-arm CARGO_FOR_ARM_HOME
    ensure debian-bookworm-amd64-tools bookworm amd64 cargo,clang,lld,llvm,pkg-config
    ensure native-bookworm-armhf bookworm armhf cargo,zlib1g-dev
    arm=$CARGO_FOR_ARM_HOME/rootfs/native-bookworm-armhf/root
    tools=$CARGO_FOR_ARM_HOME/rootfs/debian-bookworm-amd64-tools/root
    export CARGO_FOR_ARM_NATIVE_RUSTC=rootfs
    # Warm-up: the registry download is not timed.
    fresh
    (cd "$project" && "$tool" build --release --mode native --rootfs "$arm" --tools-rootfs "$tools" \
        --no-report -q >/dev/null 2>&1) || true
fi
args=(build --release --mode native --rootfs "$arm" --tools-rootfs "$tools" --no-report)

# What sccache cannot cache, from cargo's metadata of the build (in a copy of the project, as
# the host's cargo may write a lockfile): the units it compiles with a link (bin targets of the
# project, proc macros) and the build scripts.
uncached() {
    cp -r "$source/." "$work/meta/"
    (cd "$work/meta" && cargo metadata -q --offline --format-version 1 --filter-platform "$triple") |
        python3 -c 'import json, sys
m = json.load(sys.stdin)
nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
root = m["resolve"]["root"]
built, todo = {root}, [root]
while todo:  # what the build compiles: normal and build dependencies, not dev ones
    for d in nodes[todo.pop()]["deps"]:
        if any(k["kind"] != "dev" for k in d["dep_kinds"]) and d["pkg"] not in built:
            built.add(d["pkg"])
            todo.append(d["pkg"])
bins = macros = scripts = libs = 0
for p in m["packages"]:
    if p["id"] not in built:
        continue
    kinds = [k for t in p["targets"] for k in t["kind"]]
    scripts += kinds.count("custom-build")
    macros += kinds.count("proc-macro")
    libs += any(k in ("lib", "rlib") for k in kinds)
    if p["id"] == root:
        bins += kinds.count("bin")
print(f"{libs} library crates, {macros} proc-macro crates, {scripts} build scripts, {bins} bin targets")'
}
plain_run() { (cd "$project" && secs "$tool" "${args[@]}"); }
cached_run() { (cd "$project" && secs "$tool" "${args[@]}" --cache sccache --sccache "$sccache"); }
stats_line() { grep -a "sccache:" "$bench_log" | sed 's/^ *//'; }
mkdir "$work/meta"
units=$(uncached) || units="(not counted: cargo metadata failed)"
fresh
plain=$(plain_run)
fresh
rm -rf "$SCCACHE_DIR"
cold=$(cached_run)
cold_line=$(stats_line)
size=$(du -sh "$SCCACHE_DIR" | cut -f1)
fresh
warm=$(cached_run)
warm_line=$(stats_line)
cat <<EOT
$what, cargo build --release --mode native, armhf
  built: $units (sccache caches only the library crates' rustc runs and C objects)
machine: $(nproc) cores, load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg); $("$sccache" --version)
no cache                          ${plain} s
runner 1, empty cache (cold)      ${cold} s   $(ratio "$cold" "$plain")x no cache
  ${cold_line}
runner 2, runner 1's cache        ${warm} s   $(ratio "$warm" "$cold")x runner 1, $(ratio "$warm" "$plain")x no cache
  ${warm_line}
cache size after runner 1: ${size}
EOT
