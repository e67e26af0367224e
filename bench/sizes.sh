#!/usr/bin/env bash
# What ships, in bytes (docs/benchmarks.md "Shipped sizes"): the release binary as cargo builds it
# (with the release profile's line tables), stripped of them, the Debian package, its debug
# symbols, and the container image against its base. Runs the release build (scripts/deb.sh does)
# unless CARGO_TARGET_DIR already holds it: a long cold build, so this is a measurement to run by
# hand, not part of the test suite.
#
#   bench/sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-sizes.XXXXXX")"
tag="localhost/specialsnowflake:sizes-$$"
trap 'rm -rf "$out"; podman rmi --force "$tag" >/dev/null 2>&1 || true' EXIT

deb="$(scripts/deb.sh "$out")"
ddeb="$(ls "$out"/snowflake-dbgsym_*.ddeb)"
binary="$target/release/snowflake"
strip --strip-debug -o "$out/stripped" "$binary"
scripts/podman-image.sh "$tag" "$binary" >/dev/null
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

row() { printf '%-52s %12s\n' "$1" "$2"; }
row "release binary (debug = line-tables-only)" "$(stat -c %s "$binary")"
row "release binary, strip --strip-debug" "$(stat -c %s "$out/stripped")"
row "$(basename "$deb")" "$(stat -c %s "$deb")"
row "  its Installed-Size (KiB)" "$(dpkg-deb --field "$deb" Installed-Size)"
row "  its /usr/bin/snowflake" "$(dpkg-deb --contents "$deb" | awk '$6 == "./usr/bin/snowflake" { print $3 }')"
row "$(basename "$ddeb")" "$(stat -c %s "$ddeb")"
row "image (podman image inspect .Size)" "$(podman image inspect --format '{{.Size}}' "$tag")"
row "  its base, localhost/specialsnowflake-base:bookworm" "$(podman image inspect --format '{{.Size}}' localhost/specialsnowflake-base:bookworm)"
