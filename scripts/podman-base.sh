#!/usr/bin/env bash
# Makes the Debian bookworm base image the podman tests build from, where no image registry is
# reachable: mmdebstrap's tarball, cached outside the repository (SNOWFLAKE_TEST_CACHE, default
# ~/.cache/specialsnowflake), imported once as localhost/specialsnowflake-base:bookworm.
# Prints the image's name. Used by scripts/podman-image.sh and tests/container_flakes.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "podman-base.sh: $*" >&2; exit 1; }
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool is not installed; scripts/deps.sh installs it"
done
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
base=localhost/specialsnowflake-base:bookworm
tarball="$CACHE/debian-bookworm-base.tar"

if ! podman image exists "$base"; then
    if [ ! -s "$tarball" ]; then
        echo "podman-base.sh: making a Debian bookworm base with mmdebstrap (first run only, about a minute)" >&2
        mkdir -p "$CACHE"
        mmdebstrap --quiet --format=tar --variant=minbase --include=bash,curl,jq,procps,tini,ca-certificates \
            bookworm "$tarball.partial.$$" >&2 || die "mmdebstrap failed; is deb.debian.org reachable?"
        mv "$tarball.partial.$$" "$tarball"
    fi
    podman import --quiet "$tarball" "$base" >/dev/null
fi
echo "$base"
