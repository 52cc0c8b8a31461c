#!/usr/bin/env bash
# The test command (README): run the whole suite as an UNPRIVILEGED user.
#
# As root (CI, or `sudo scripts/test.sh`): installs what the tests need, creates the test user
# (default cfa-test) with /etc/subuid and /etc/subgid ranges, makes a Rust toolchain reachable
# for it (hard links of root's rustup toolchain under /opt/cargo-for-arm-ci), copies this tree
# into its home and re-runs itself there as that user. As a normal user: runs `cargo test`.
# Extra arguments go to `cargo test`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
user=${CARGO_FOR_ARM_TEST_USER:-cfa-test}

if [ "$(id -u)" = 0 ]; then
    missing=()
    for pair in newuidmap:uidmap gpgv:gpgv xz:xz-utils python3:python3 flock:util-linux \
        dpkg-deb:dpkg bwrap:bubblewrap; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test.sh: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
    fi
    id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
    grep -q "^$user:" /etc/subuid 2>/dev/null || usermod --add-subuids 200000-265535 "$user"
    grep -q "^$user:" /etc/subgid 2>/dev/null || usermod --add-subgids 200000-265535 "$user"
    home=$(getent passwd "$user" | cut -d: -f6)

    # The toolchain lives under /root (mode 700): give the user hard links to it.
    sysroot=$(rustc --print sysroot)
    tc=/opt/cargo-for-arm-ci/toolchain
    if ! cmp -s "$sysroot/bin/rustc" "$tc/bin/rustc" 2>/dev/null; then
        rm -rf "$tc.new"
        mkdir -p /opt/cargo-for-arm-ci
        cp -al "$sysroot" "$tc.new" 2>/dev/null || cp -a "$sysroot" "$tc.new"
        rm -rf "$tc"
        mv "$tc.new" "$tc"
    fi
    chmod 755 /opt/cargo-for-arm-ci

    # The tree, owned by the user (target/ is kept between runs for incremental builds).
    work=$home/cargo-for-arm
    mkdir -p "$work"
    find "$work" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
    if git -C "$repo" rev-parse >/dev/null 2>&1; then
        (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
            tar --null -T - -cf -) | tar -C "$work" -xf -
    else
        tar -C "$repo" --exclude=./target -cf - . | tar -C "$work" -xf -
    fi
    chown -R "$user:" "$work"
    exec runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
        PATH="$tc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        CI="${CI:-}" TERM=dumb LANG=C.UTF-8 bash "$work/scripts/test.sh" "$@"
fi

cd "$repo"
echo "test.sh: running the tests as $(id -un) (uid $(id -u))"
exec cargo test "$@"
