#!/usr/bin/env bash
# Builds the production image with podman where no image registry is reachable, as the test
# suite does (tests/container.rs):
#
#   scripts/podman-image.sh TAG BINARY
#
# The base is Debian bookworm made with mmdebstrap (the packages the runtime stage installs are
# already in it), cached as a tarball by scripts/debian-base.sh and imported once as
# localhost/specialsnowflake-base:bookworm.
# The Dockerfile's `runtime` stage is built unchanged, word for word; only its `build` stage,
# which compiles the release binary with cargo, is replaced by BINARY (the suite passes the
# binary it already built, so no second compile of the AWS SDK). Prints nothing but errors and,
# at the end, the tag.
#
# Podman runs with scripts/containers.conf unless CONTAINERS_CONF says otherwise, and builds with
# chroot isolation (BUILDAH_ISOLATION), which works without user namespaces or systemd, in
# Docker's image format (BUILDAH_FORMAT), which keeps the HEALTHCHECK.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "podman-image.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: scripts/podman-image.sh TAG BINARY"
tag="$1" binary="$2"
[ -x "$binary" ] || die "$binary is not an executable (build it first: cargo build)"
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool is not installed; scripts/deps.sh installs it"
done

export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
# Docker's image format: the OCI format has no HEALTHCHECK, and podman would drop it.
export BUILDAH_FORMAT=docker
base="$(scripts/podman-base.sh)"

context="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp -r flakes res .dockerignore "$context/"
# Debug information is of no use in the image and makes the layer many times larger.
strip --strip-debug -o "$context/snowflake" "$binary" 2>/dev/null || cp "$binary" "$context/snowflake"
{
    grep '^ARG RUNTIME_IMAGE=' Dockerfile || die "Dockerfile has no ARG RUNTIME_IMAGE"
    printf 'FROM scratch AS build\nLABEL org.specialsnowflake.injected-binary=true\nCOPY snowflake /src/target/release/snowflake\n\n'
    sed -n '/^FROM ${RUNTIME_IMAGE} AS runtime$/,$p' Dockerfile
} > "$context/Dockerfile"
grep -q '^FROM ${RUNTIME_IMAGE} AS runtime$' "$context/Dockerfile" || die "Dockerfile has no 'FROM \${RUNTIME_IMAGE} AS runtime' stage"

podman build --build-arg "RUNTIME_IMAGE=$base" --tag "$tag" --file "$context/Dockerfile" "$context" \
    >"$context/build.log" 2>&1 || { cat "$context/build.log" >&2; die "podman build failed (its output is above)"; }
# The stage that only held the binary is left dangling; it is ours to remove.
podman image prune --force --filter label=org.specialsnowflake.injected-binary=true >/dev/null 2>&1 || true
echo "$tag"
