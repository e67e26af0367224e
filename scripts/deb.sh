#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (configured in Cargo.toml, [package.metadata.deb]):
#
#   scripts/deb.sh [OUTDIR]                  # release build; the .deb and its -dbgsym.ddeb
#   scripts/deb.sh --binary BINARY [OUTDIR] [CARGO-DEB-ARGS...]
#                                            # package BINARY instead of building (the tests)
#
# OUTDIR defaults to target/debian. The packaged binary is always stripped of its debug
# information (the release binary's line tables are most of its size); a release build keeps
# them in snowflake-dbgsym_*.ddeb beside the package, for symbolising a backtrace later
# (install it, or point gdb/addr2line at its /usr/lib/debug/.build-id file).
#
# --binary skips cargo's build: BINARY (the one `cargo test` already built) is staged where
# cargo-deb expects a release binary, in a temporary target directory, so the tests never
# compile a second, release build of the AWS SDK. Prints the path of the .deb, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deb.sh: $*" >&2; exit 1; }
binary=
if [ "${1:-}" = --binary ]; then
    [ $# -ge 2 ] || die "usage: scripts/deb.sh --binary BINARY [OUTDIR] [CARGO-DEB-ARGS...]"
    binary="$2"
    shift 2
    [ -x "$binary" ] || die "$binary is not an executable (build it first: cargo build)"
fi
outdir="${1:-target/debian}"
shift $(( $# > 0 ? 1 : 0 ))
command -v strip >/dev/null || die "strip is missing (the binutils package)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (the dpkg package)"
cargo_deb="$(scripts/cargo-deb.sh)"
mkdir -p "$outdir"

if [ -n "$binary" ]; then
    staging="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-deb.XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    mkdir "$staging/release"
    cp "$binary" "$staging/release/snowflake"
    CARGO_TARGET_DIR="$staging" "$cargo_deb" --quiet --no-build --strip --no-dbgsym --output "$outdir" "$@" >"$staging/out" \
        || die "cargo-deb failed"
    grep '\.deb$' "$staging/out"
else
    # --dbgsym strips the packaged binary and keeps what it took in the .ddeb.
    "$cargo_deb" --quiet --locked --dbgsym --compress-debug-symbols=zlib --output "$outdir" "$@" | grep '\.deb$'
fi
