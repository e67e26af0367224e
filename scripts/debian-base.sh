#!/usr/bin/env bash
# The clean Debian bookworm root the tests start from, made once with mmdebstrap and cached as a
# tarball outside the repository (SNOWFLAKE_TEST_CACHE, default ~/.cache/specialsnowflake): the
# base of the container image (scripts/podman-image.sh) and the root the Debian package is
# installed into (tests/deb.rs). Prints the tarball's path.
#
#   scripts/debian-base.sh
set -euo pipefail

die() { echo "debian-base.sh: $*" >&2; exit 1; }
CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
tarball="$CACHE/debian-bookworm-base.tar"

if [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed; scripts/deps.sh installs it"
    mkdir -p "$CACHE"
    # Test processes running at once make it once.
    exec 9>"$CACHE/debian-bookworm-base.lock"
    flock 9
    if [ ! -s "$tarball" ]; then
        echo "debian-base.sh: making a Debian bookworm base with mmdebstrap (first run only, about a minute)" >&2
        mmdebstrap --quiet --format=tar --variant=minbase --include=bash,curl,jq,procps,tini,ca-certificates \
            bookworm "$tarball.partial" >&2 || die "mmdebstrap failed; is deb.debian.org reachable?"
        mv "$tarball.partial" "$tarball"
    fi
fi
echo "$tarball"
