# shellcheck shell=bash
# Shared set-up of the benchmarks, sourced by benches/*.sh after `repo` is set:
#   bench_tool          $tool: CARGO_FOR_ARM_BENCH_TOOL, else this tree's release build
#   ensure NAME SUITE ARCH PACKAGES   a rootfs in $CARGO_FOR_ARM_HOME's store, created once
#   secs COMMAND…       wall seconds of COMMAND (stdout dropped, stderr in $bench_log, which the
#                       script sets; a failure prints the log's tail and ends the script)
#   ratio A B           A / B, two decimals
#   fetch_crate NAME@VERSION DIR   a crate from crates.io, checked against the index's sha256,
#                       unpacked into DIR (with a Cargo.lock: its own, else one generated), and
#                       its dependencies fetched into CARGO_HOME
#   built_deps DIR TRIPLE   how many packages a build of DIR for TRIPLE compiles, itself excluded
#   zigbuild_venv DIR   a Python venv at DIR with cargo-zigbuild and ziglang from PyPI
#   bin_names DIR       the names of the binaries of DIR's package
#   check_elf FILE MACHINE   FILE is an ELF file for MACHINE (e_machine in hex), else the end

# CARGO_FOR_ARM_BENCH_TOOL: an already built cargo-for-arm (its own speed is not what is measured).
bench_tool() {
    tool=${CARGO_FOR_ARM_BENCH_TOOL:-}
    if [ -z "$tool" ]; then
        (cd "${repo:?}" && cargo build --release -q)
        tool=$repo/target/release/cargo-for-arm
    fi
}

ensure() { # name suite arch packages
    [ -e "$CARGO_FOR_ARM_HOME/rootfs/$1/entry.toml" ] ||
        "$tool" -q rootfs create "$1" --suite "$2" --arch "$3" --include "$4"
}

secs() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"${bench_log:?}" || {
        tail -30 "$bench_log" >&2
        echo "failed: $*" >&2
        exit 1
    }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The sparse index's path of a crate name (https://doc.rust-lang.org/cargo/reference/registry-index.html).
index_path() {
    local n
    n=$(printf %s "$1" | tr '[:upper:]' '[:lower:]')
    case ${#n} in
    1) echo "1/$n" ;;
    2) echo "2/$n" ;;
    3) echo "3/${n:0:1}/$n" ;;
    *) echo "${n:0:2}/${n:2:2}/$n" ;;
    esac
}

fetch_crate() { # name@version dir
    local name=${1%@*} version=${1#*@} dir=$2 sum file
    [ "$name" != "$1" ] && [ -n "$version" ] ||
        { echo "CRATE=$1: give NAME@VERSION, e.g. ripgrep@14.1.1" >&2; exit 2; }
    sum=$(curl -sSfL "https://index.crates.io/$(index_path "$name")" |
        python3 -c 'import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["vers"] == sys.argv[1]:
        print(e["cksum"])' "$version")
    [ -n "$sum" ] || { echo "crates.io has no $name $version" >&2; exit 1; }
    file=$dir.crate
    curl -sSfL -o "$file" "https://static.crates.io/crates/$name/$name-$version.crate"
    echo "$sum  $file" | sha256sum -c --quiet - ||
        { echo "$name-$version.crate does not match the index's sha256" >&2; exit 1; }
    mkdir -p "$dir"
    tar -xzf "$file" -C "$dir" --strip-components=1
    rm -f "$file"
    [ -e "$dir/Cargo.lock" ] || (cd "$dir" && cargo generate-lockfile -q)
    (cd "$dir" && cargo fetch -q --locked)
}

built_deps() { # dir triple
    (cd "$1" && cargo tree -q --locked --offline --target "$2" -e normal,build --prefix none) |
        awk '{ print $1, $2 }' | sort -u | awk 'END { print NR - 1 }'
}

zigbuild_venv() { python3 -m venv "$1" && "$1/bin/pip" install -q cargo-zigbuild ziglang; }

bin_names() { # dir → the names of its package's binaries, one a line
    (cd "$1" && cargo metadata -q --locked --offline --no-deps --format-version 1) |
        python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(t["name"])'
}

check_elf() { # file machine (e_machine in hex: 28 ARM, b7 AArch64, 3e x86-64)
    [ -f "$1" ] || { echo "no binary $1" >&2; exit 1; }
    [ "$(od -An -tx1 -j18 -N1 "$1" | tr -d ' ')" = "$2" ] ||
        { echo "$1 is not an ELF file for machine 0x$2" >&2; exit 1; }
}
