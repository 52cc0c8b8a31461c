#!/bin/sh
# As root: the host binfmt_misc registration that tests/binfmt.rs's rung-1 test builds
# through (CARGO_FOR_ARM_BINFMT=host), made by the root part of the test set-up
# (scripts/as-user.sh) and removed when the tests end.
#
#   binfmt-test-entry.sh add QEMU_ARM   register QEMU_ARM for ARM ELF files with flags FP
#   binfmt-test-entry.sh remove         remove it again (and unmount binfmt_misc if add mounted it)
#
# The entry has a name of its own, cargo-for-arm-test-arm, so the tool must find it by its
# magic, not by the usual name qemu-arm. An administrator's entries are never touched: when
# one already takes ARM ELF files (the same magic), it is said and left, and nothing is added.
set -eu
[ "$(id -u)" = 0 ] || { echo "binfmt-test-entry.sh: run as root" >&2; exit 2; }
dir=/proc/sys/fs/binfmt_misc
name=cargo-for-arm-test-arm
state=/run/cargo-for-arm-test-binfmt.mounted
magic='7f454c4601010100000000000000000002002800'

case ${1:-} in
add)
    qemu=$2
    if ! [ -e "$dir/register" ]; then
        mount -t binfmt_misc binfmt_misc "$dir"
        : >"$state"
    fi
    if [ -e "$dir/$name" ]; then
        echo "binfmt-test-entry.sh: $dir/$name is already registered" >&2
        exit 0
    fi
    for e in "$dir"/*; do
        case ${e##*/} in register | status) continue ;; esac
        if grep -qx "magic $magic" "$e" 2>/dev/null; then
            echo "binfmt-test-entry.sh: $e already takes ARM ELF files; leaving it, and registering nothing" >&2
            exit 0
        fi
    done
    printf '%s' ":$name:M::\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x28\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$qemu:FP" >"$dir/register"
    echo "binfmt-test-entry.sh: registered $dir/$name -> $qemu (flags FP)" >&2
    ;;
remove)
    if [ -e "$dir/$name" ]; then
        echo -1 >"$dir/$name"
    fi
    if [ -e "$state" ]; then
        # Mounted by `add`: leave the host as it was, unless someone registered more since.
        if [ "$(ls "$dir" | grep -cv '^register$\|^status$')" = 0 ]; then
            umount "$dir"
        fi
        rm -f "$state"
    fi
    ;;
*)
    echo "usage: binfmt-test-entry.sh add QEMU_ARM | remove" >&2
    exit 2
    ;;
esac
