#!/usr/bin/env bash
# The test command (README): the whole suite, run as an UNPRIVILEGED user.
#
# As root (CI, or `sudo scripts/test.sh`): scripts/as-user.sh installs what the tests need,
# creates the test user with subordinate id ranges and re-runs this script as that user.
# As a normal user: runs `cargo test` (extra arguments go to it). Fixtures are built on first
# use and cached in ~/.cache/cargo-for-arm-tests.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    exec bash "$repo/scripts/as-user.sh" scripts/test.sh "$@"
fi
cd "$repo"
echo "test.sh: running the tests as $(id -un) (uid $(id -u))"
exec cargo test "$@"
