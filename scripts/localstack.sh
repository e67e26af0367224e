#!/usr/bin/env bash
# LocalStack, a real CloudWatch protocol peer for the integration tests, run from PyPI without
# Docker. Used by scripts/test.sh and by tests that need an instance of their own (outages).
#
#   scripts/localstack.sh install          # make sure the cached venv exists; prints its path
#   scripts/localstack.sh start DIR [PORT] # start an instance using DIR; prints "PORT PID"
#   scripts/localstack.sh stop PID         # stop it (the whole process group)
#   scripts/localstack.sh with CMD [ARG...] # run CMD with an instance of its own, then stop it
#
# `with` exports what CMD needs: AWS_ENDPOINT_URL and test credentials for the SDK,
# SNOWFLAKE_TEST_ENDPOINT and SNOWFLAKE_TEST_VENV for the tests, SNOWFLAKE_LOCALSTACK_LOG for
# anything that counts requests. The instance is stopped however CMD ends; CMD's status is kept.
#
# The venv lives outside the repository (SNOWFLAKE_TEST_CACHE, default ~/.cache/specialsnowflake)
# so repeated runs reuse it. Each instance gets its own TMPDIR: LocalStack keeps its metrics
# database under the temp folder and wipes that folder at start and stop, so instances sharing one
# would destroy each other's data.
set -euo pipefail

CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
VENV="$CACHE/venv"
# Pinned: localstack-core 4.13.1 is the last that runs on Python 3.11; the others are versions
# known to work with it. croniter is the schedule reference (scripts/gen_cron_fixture.py), awscli a
# second, independent client for checking what landed, prometheus-client the reference parser of
# /metrics, kubernetes-validate (Kubernetes' own schemas) and cfn-lint the validators of deploy/.
REQUIREMENTS=(
    'localstack-core[runtime]==4.13.1'
    'cbor2<6'
    'service_identity<25'
    'cryptography==43.0.3'
    'pyopenssl==24.2.1'
    'croniter==7.0.0'
    'awscli==1.44.24'
    'prometheus-client==0.21.1'
    'kubernetes-validate==1.35.0'
    'cfn-lint==1.58.0'
)

die() { echo "localstack.sh: $*" >&2; exit 1; }

install() {
    local marker="$VENV/.snowflake-requirements" want
    want="$(printf '%s\n' "${REQUIREMENTS[@]}")"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "$want" ]; then
        echo "$VENV"
        return
    fi
    command -v python3 >/dev/null || die "python3 is needed to install LocalStack from PyPI"
    echo "localstack.sh: installing LocalStack into $VENV (first run only, about a minute)" >&2
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV" || die "python3 -m venv failed; install the python3-venv package"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}" >&2 \
        || die "pip could not install LocalStack; is PyPI reachable?"
    printf '%s' "$want" > "$marker"
    echo "$VENV"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir="${1:?usage: localstack.sh start DIR [PORT]}" port="${2:-}"
    [ -x "$VENV/bin/python" ] || install >/dev/null
    [ -n "$port" ] || port="$(free_port)"
    mkdir -p "$dir/tmp"
    local log="$dir/localstack.log"
    # setsid: the instance leads its own process group, so stop can end all of it.
    setsid env TMPDIR="$dir/tmp" GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=cloudwatch,sns,s3 \
        LOCALSTACK_VOLUME_DIR="$dir" FILESYSTEM_ROOT="$dir" DNS_ADDRESS=0 \
        SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
        "$VENV/bin/python" -m localstack.runtime.main >"$log" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 300); do
        if grep -q '^Ready\.' "$log" 2>/dev/null; then
            echo "$port $pid"
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2
            die "LocalStack exited during start-up; its log is above ($log)"
        fi
        sleep 0.3
    done
    tail -n 30 "$log" >&2
    kill -- "-$pid" 2>/dev/null || true
    die "LocalStack did not report Ready within 90 s on port $port; its log is above ($log)"
}

stop() {
    local pid="${1:?usage: localstack.sh stop PID}"
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}

with() {
    [ $# -gt 0 ] || die "usage: localstack.sh with CMD [ARG...]"
    local venv work port pid status
    venv="$(install)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-localstack.XXXXXX")"
    read -r port pid < <(start "$work/instance") || {
        rm -rf "$work"
        die "LocalStack could not start, so nothing that needs it can run (see above)"
    }
    echo "localstack.sh: LocalStack is ready on 127.0.0.1:$port" >&2
    export SNOWFLAKE_TEST_ENDPOINT="http://127.0.0.1:$port" SNOWFLAKE_TEST_VENV="$venv"
    export SNOWFLAKE_LOCALSTACK_LOG="$work/instance/localstack.log"
    export AWS_ENDPOINT_URL="$SNOWFLAKE_TEST_ENDPOINT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
    status=0
    "$@" || status=$?
    stop "$pid"
    rm -rf "$work"
    return "$status"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    with) shift; with "$@" ;;
    *) die "usage: localstack.sh install | start DIR [PORT] | stop PID | with CMD [ARG...]" ;;
esac
