#!/usr/bin/env bash
# As root: prepare an unprivileged user and run SCRIPT [ARGS] as that user, from a copy of
# this tree in the user's home. Used by scripts/test.sh and scripts/demo.sh, which call it
# when started as root (CI, or sudo), because cargo-for-arm is for non-root users and must be
# tested as one.
#
# It installs what is missing (uidmap, mmdebstrap, gpgv, gpg (the apt-repository tests sign with it), xz-utils, python3, bubblewrap, the
# Debian archive keyring; clang, lld, llvm and pkg-config for builds without a sandbox,
# isolation rung 3), redis-server, memcached, and sccache 0.19 with its Redis, memcached and
# WebDAV backends under /opt (tests/cache.rs),
# creates the user (default cfa-test, or $CARGO_FOR_ARM_TEST_USER)
# with /etc/subuid and /etc/subgid ranges, and makes root's Rust toolchain reachable through
# hard links under /opt/cargo-for-arm-ci/toolchain.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "as-user.sh: run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
script=$1
shift
user=${CARGO_FOR_ARM_TEST_USER:-cfa-test}

missing=()
for pair in newuidmap:uidmap gpgv:gpgv xz:xz-utils python3:python3 flock:util-linux \
    dpkg-deb:dpkg bwrap:bubblewrap mmdebstrap:mmdebstrap gpg:gpg gpgconf:gpgconf \
    clang:clang ld.lld:lld llvm-ar:llvm pkg-config:pkg-config; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
    echo "as-user.sh: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
        { apt-get update -q >/dev/null || true; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
grep -q "^$user:" /etc/subuid 2>/dev/null || usermod --add-subuids 200000-265535 "$user"
grep -q "^$user:" /etc/subgid 2>/dev/null || usermod --add-subgids 200000-265535 "$user"
home=$(getent passwd "$user" | cut -d: -f6)

# The toolchain lives under /root (mode 700): give the user hard links to it.
command -v rustc >/dev/null || export PATH="$HOME/.cargo/bin:/root/.cargo/bin:$PATH"
command -v rustc >/dev/null || { echo "as-user.sh: no Rust toolchain (rustc) found for root" >&2; exit 1; }
# The ARM standard libraries, for native mode with the rustup toolchain (tests skip that part,
# saying why, when static.rust-lang.org cannot be reached).
if command -v rustup >/dev/null; then
    rustup target add armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu >/dev/null 2>&1 ||
        echo "as-user.sh: rustup target add failed; native mode with the rustup toolchain will not be tested" >&2
fi
sysroot=$(rustc --print sysroot)
tc=/opt/cargo-for-arm-ci/toolchain
if ! cmp -s "$sysroot/bin/rustc" "$tc/bin/rustc" 2>/dev/null ||
    [ "$(ls "$sysroot/lib/rustlib")" != "$(ls "$tc/lib/rustlib" 2>/dev/null)" ]; then
    rm -rf "$tc.new"
    mkdir -p /opt/cargo-for-arm-ci
    cp -al "$sysroot" "$tc.new" 2>/dev/null || cp -a "$sysroot" "$tc.new"
    rm -rf "$tc"
    mv "$tc.new" "$tc"
fi
chmod 755 /opt/cargo-for-arm-ci

# What only the tests need (not the demo): the compile cache's programs, below.
tests_only() {
    # The shared compile cache's tests (tests/cache.rs): Debian's redis-server and memcached,
    # and sccache with those backends and WebDAV (the object store the opt-in test speaks to).
    # Debian 12's sccache (0.4.0~~pre6) is built without Redis, so a current release is built
    # once (minutes on 2 cores) and kept under /opt, with only the backends the tests use (the
    # local disk backend is always there); its `features` file says which.
    for pair in redis-server:redis-server memcached:memcached; do
        command -v "${pair%%:*}" >/dev/null ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pair#*:}" >/dev/null
    done
    sccache_version=0.19.0
    sccache_features=redis,memcached,webdav
    sc=/opt/cargo-for-arm-ci/sccache
    if [ "$("$sc/bin/sccache" --version 2>/dev/null)" != "sccache $sccache_version" ] ||
        [ "$(cat "$sc/features" 2>/dev/null)" != "$sccache_features" ]; then
        echo "as-user.sh: building sccache $sccache_version with $sccache_features (once)"
        rm -rf "$sc.new"
        CARGO_TARGET_DIR=/opt/cargo-for-arm-ci/sccache-build cargo install sccache --version "$sccache_version" \
            --locked --no-default-features --features "$sccache_features" --root "$sc.new" -q
        echo "$sccache_features" >"$sc.new/features"
        rm -rf "$sc" /opt/cargo-for-arm-ci/sccache-build
        mv "$sc.new" "$sc"
    fi
}
if [ "$script" = scripts/test.sh ]; then
    tests_only
fi

# The tree, owned by the user (target/ is kept between runs for incremental builds). cargo
# rebuilds by comparing times: a file copied with its own time, older than the last build of
# the copy, would leave a stale test binary in place. So every file is written with the time
# of this copy (tar -m), and only a file whose content is the same as last time's gets last
# time's time back.
work=$home/cargo-for-arm
new=$work.new
rm -rf "$new"
mkdir -p "$new" "$work"
if git -C "$repo" rev-parse >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        tar --null -T - -cf -) | tar -C "$new" -mxf -
else
    tar -C "$repo" --exclude=./target -cf - . | tar -C "$new" -mxf -
fi
(cd "$new" && find . -type f -print0) | while IFS= read -r -d '' f; do
    if [ -f "$work/$f" ] && [ ! -L "$work/$f" ] && cmp -s "$new/$f" "$work/$f"; then
        touch -r "$work/$f" "$new/$f"
    fi
done
if [ -d "$work/target" ]; then mv "$work/target" "$new/target"; fi
rm -rf "$work"
mv "$new" "$work"
chown -R "$user:" "$work"

# Rung 1 of tests/binfmt.rs: a host binfmt_misc registration of the tests' own name
# (cargo-for-arm-test-arm, never an administrator's qemu-arm) of the fixtures' static qemu,
# root-owned under /opt, removed again when the tests end.
if [ "$script" = scripts/test.sh ]; then
    trap 'sh "$repo/scripts/binfmt-test-entry.sh" remove' EXIT
    trap 'exit 130' INT TERM
    if qdir=$(CARGO_FOR_ARM_TEST_CACHE=/opt/cargo-for-arm-ci/fixtures sh "$repo/tests/support/fixtures.sh" qemu); then
        sh "$repo/scripts/binfmt-test-entry.sh" add "$qdir/qemu-arm" ||
            echo "as-user.sh: no host binfmt_misc registration for the tests; tests/binfmt.rs's rung-1 test fails in CI" >&2
    else
        echo "as-user.sh: no static qemu for the host binfmt_misc registration; tests/binfmt.rs's rung-1 test fails in CI" >&2
    fi
fi

status=0
runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH="$tc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CI="${CI:-}" TERM="${TERM:-dumb}" LANG=C.UTF-8 bash "$work/$script" "$@" || status=$?
exit "$status"
