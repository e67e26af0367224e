#!/usr/bin/env bash
# cargo-deb, the Debian packager scripts/deb.sh runs, installed from crates.io only when missing:
# `cargo install --locked` of a pinned version into the cache outside the repository
# (SNOWFLAKE_TEST_CACHE, default ~/.cache/specialsnowflake), about a minute and a half on two
# cores the first time. Prints the path of the cargo-deb binary, nothing else on stdout.
#
#   scripts/cargo-deb.sh
set -euo pipefail

VERSION=3.8.0
CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
root="$CACHE/cargo-deb-$VERSION"
binary="$root/bin/cargo-deb"

if [ ! -x "$binary" ]; then
    mkdir -p "$CACHE"
    # Test processes running at once install it once.
    exec 9>"$CACHE/cargo-deb.lock"
    flock 9
    if [ ! -x "$binary" ]; then
        echo "cargo-deb.sh: installing cargo-deb $VERSION into $root (first run only, about 90 s)" >&2
        cargo install --quiet --locked --version "$VERSION" --root "$root" cargo-deb >&2 \
            || { echo "cargo-deb.sh: cargo install cargo-deb failed; is crates.io reachable?" >&2; exit 1; }
    fi
fi
echo "$binary"
