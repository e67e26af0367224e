#!/usr/bin/env bash
# Makes the Debian bookworm base image the podman tests build from, where no image registry is
# reachable: scripts/debian-base.sh's cached mmdebstrap tarball, imported once as
# localhost/specialsnowflake-base:bookworm.
# Prints the image's name. Used by scripts/podman-image.sh and tests/container_flakes.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "podman-base.sh: $*" >&2; exit 1; }
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool is not installed; scripts/deps.sh installs it"
done
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
base=localhost/specialsnowflake-base:bookworm

if ! podman image exists "$base"; then
    tarball="$(scripts/debian-base.sh)"
    podman import --quiet "$tarball" "$base" >/dev/null
fi
echo "$base"
