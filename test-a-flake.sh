#!/usr/bin/env bash
# Try a flake before deploying it: runs `snowflake once PATTERN` with your AWS credentials.
#
#   ./test-a-flake.sh [--local] [--dry-run] [PATTERN]
#
# PATTERN selects flakes whose file name contains it or whose flakeName equals it
# (default: example-perminute). Without --local it builds the Docker image and runs the flake in
# it, exactly as production does; --local runs a local build without Docker. --dry-run prints
# what would be sent instead of calling AWS.
#
# Credentials are passed at run time only, never baked into the image: the AWS_* variables of
# your environment are passed by name (their values never appear on a command line), ~/.aws is
# mounted read-only if it exists, and ./creds.json is mounted read-only if it exists.
# SNOWFLAKE_BIN=path uses an existing binary for --local instead of `cargo build --release`.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

mode=docker
snowflake_flags=()
while [ $# -gt 0 ]; do
    case "$1" in
        --local) mode=local ;;
        --dry-run) snowflake_flags+=(--dry-run) ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        -*) echo "test-a-flake.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
[ $# -le 1 ] || { echo "test-a-flake.sh: give at most one PATTERN" >&2; exit 2; }
pattern="${1:-example-perminute}"
cd "$(dirname "$0")"

if [ "$mode" = local ]; then
    bin="${SNOWFLAKE_BIN:-}"
    if [ -z "$bin" ]; then
        cargo build --release --quiet
        bin=./target/release/snowflake
    fi
    exec "$bin" "${snowflake_flags[@]}" once -- "$pattern"
fi

command -v docker >/dev/null || { echo "test-a-flake.sh: docker is not installed; use --local to run without Docker" >&2; exit 1; }
image="${SNOWFLAKE_IMAGE:-specialsnowflake:test}"
docker build --tag "$image" .

run_args=(run --rm)
for variable in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_PROFILE \
    AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CLOUDWATCH; do
    # `-e NAME` without a value hands the variable over without writing its value anywhere.
    if [ -n "${!variable:-}" ]; then run_args+=(--env "$variable"); fi
done
if [ -d "${HOME:-/nonexistent}/.aws" ]; then run_args+=(--volume "$HOME/.aws:/home/snowflake/.aws:ro"); fi
if [ -f creds.json ]; then run_args+=(--volume "$PWD/creds.json:/app/creds.json:ro"); fi
exec docker "${run_args[@]}" "$image" snowflake "${snowflake_flags[@]}" once -- "$pattern"
