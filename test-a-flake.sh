#!/usr/bin/env bash
# Try a flake before deploying it: runs `snowflake once PATTERN` with your AWS credentials.
#
#   ./test-a-flake.sh [--local] [--dry-run] [--image TAG] [PATTERN]
#
# PATTERN selects flakes whose file name contains it or whose flakeName equals it
# (default: example-perminute). Without --local it builds the container image and runs the flake
# in it, exactly as production does; --local runs a local build without containers. --dry-run
# prints what would be sent instead of calling AWS. --image TAG runs an image you already built
# instead of building one.
#
# The container engine is $DOCKER if set, else docker, else podman (both take the same commands).
# SNOWFLAKE_DOCKER_ARGS adds arguments to its `run`, split on spaces (say `--network host` to
# reach a LocalStack on this machine).
#
# Flakes with flakeImage or flakeBuild run in containers of their own through the engine's socket:
# SNOWFLAKE_CONTAINER_ENGINE (a socket path, e.g. /var/run/docker.sock) is used by --local as is,
# and otherwise mounted into the daemon's container (with the socket's group) and handed over.
#
# Credentials are passed at run time only, never baked into the image: the AWS_* variables of
# your environment are passed by name (their values never appear on a command line), ~/.aws is
# mounted read-only if it exists, and ./creds.json is mounted read-only if it exists.
# SNOWFLAKE_BIN=path uses an existing binary for --local instead of `cargo build --release`.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

mode=docker
image=""
snowflake_flags=()
while [ $# -gt 0 ]; do
    case "$1" in
        --local) mode=local ;;
        --image)
            [ $# -ge 2 ] || { echo "test-a-flake.sh: --image needs a TAG" >&2; exit 2; }
            image="$2"
            shift
            ;;
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

engine="${DOCKER:-}"
if [ -z "$engine" ]; then
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null; then engine="$candidate"; break; fi
    done
fi
[ -n "$engine" ] || { echo "test-a-flake.sh: neither docker nor podman is installed; use --local to run without containers" >&2; exit 1; }
command -v "$engine" >/dev/null || { echo "test-a-flake.sh: DOCKER=$engine is not installed" >&2; exit 1; }
echo "test-a-flake.sh: using $engine" >&2
# podman builds OCI images unless told otherwise, and those drop the HEALTHCHECK.
export BUILDAH_FORMAT="${BUILDAH_FORMAT:-docker}"
if [ -z "$image" ]; then
    image="${SNOWFLAKE_IMAGE:-specialsnowflake:test}"
    "$engine" build --tag "$image" .
fi

run_args=(run --rm)
# Word splitting is the point: SNOWFLAKE_DOCKER_ARGS holds several arguments.
# shellcheck disable=SC2206
run_args+=(${SNOWFLAKE_DOCKER_ARGS:-})
for variable in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_PROFILE \
    AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CLOUDWATCH; do
    # `-e NAME` without a value hands the variable over without writing its value anywhere.
    if [ -n "${!variable:-}" ]; then run_args+=(--env "$variable"); fi
done
if [ -d "${HOME:-/nonexistent}/.aws" ]; then run_args+=(--volume "$HOME/.aws:/home/snowflake/.aws:ro"); fi
if [ -f creds.json ]; then run_args+=(--volume "$PWD/creds.json:/app/creds.json:ro"); fi
if [ -n "${SNOWFLAKE_CONTAINER_ENGINE:-}" ]; then
    socket="${SNOWFLAKE_CONTAINER_ENGINE#unix://}"
    [ -S "$socket" ] || { echo "test-a-flake.sh: SNOWFLAKE_CONTAINER_ENGINE=$socket is not a socket" >&2; exit 1; }
    run_args+=(--volume "$socket:/run/snowflake/engine.sock" --env SNOWFLAKE_CONTAINER_ENGINE=/run/snowflake/engine.sock
        --group-add "$(stat -c %g "$socket")")
fi
exec "$engine" "${run_args[@]}" "$image" snowflake "${snowflake_flags[@]}" once -- "$pattern"
