#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs LocalStack from PyPI (cached venv), starts it on a
# free loopback port, runs `cargo test` with the AWS SDK pointed at it, and stops it afterwards,
# also when tests fail. Extra arguments go to `cargo test` (e.g. scripts/test.sh --test publish).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(scripts/localstack.sh install)"

# The schedule fixture must be what the croniter generator produces today.
"$venv/bin/python" scripts/gen_cron_fixture.py --check

work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-test.XXXXXX")"
pid=""
cleanup() {
    [ -n "$pid" ] && scripts/localstack.sh stop "$pid"
    rm -rf "$work"
}
trap cleanup EXIT

read -r port pid < <(scripts/localstack.sh start "$work/localstack") || {
    echo "test.sh: LocalStack could not start, so the integration tests cannot run (see above)" >&2
    exit 1
}
echo "test.sh: LocalStack is ready on 127.0.0.1:$port"

export SNOWFLAKE_TEST_ENDPOINT="http://127.0.0.1:$port"
export SNOWFLAKE_TEST_VENV="$venv"
export AWS_ENDPOINT_URL="$SNOWFLAKE_TEST_ENDPOINT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE

cargo test --all-targets --no-fail-fast "$@"
