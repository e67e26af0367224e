#!/usr/bin/env bash
# Renders the dashboard of the shipped example flakes to docs/dashboard-example.png, end to end
# against a LocalStack of its own: `snowflake once` publishes every example's value and creates
# its alarms, `snowflake run --dashboard` creates the dashboard, and scripts/render_dashboard.py
# draws it from LocalStack's data (with an illustrative history seeded first, so the picture has
# lines to show; the last points are the examples' real values).
#
#   scripts/render_dashboard.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/dashboard-example.png}"
CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
VENV="$CACHE/render-venv"
if ! "$VENV/bin/python" -c 'import matplotlib, boto3' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'matplotlib>=3.8,<4' 'boto3>=1.34,<2'
fi
cargo build --quiet --bin snowflake
export SNOWFLAKE_RENDER_VENV="$VENV" SNOWFLAKE_RENDER_OUT="$OUT"
exec scripts/localstack.sh with bash -c '
    set -euo pipefail
    work=$(mktemp -d)
    trap "rm -rf \"$work\"" EXIT
    export SNOWFLAKE_STATE_DIR="$work/state" SNOWFLAKE_LOG_DIR="$work/logs" SNOWFLAKE_CREDS="$work/creds.json" \
        AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9
    ./target/debug/snowflake once >/dev/null || true   # the job example fails without its scratch dir; fine here
    ./target/debug/snowflake run --listen off --dashboard docs-example >"$work/daemon.log" 2>&1 &
    daemon=$!
    for _ in $(seq 1 120); do
        "$SNOWFLAKE_RENDER_VENV/bin/python" -c "import boto3; boto3.client(\"cloudwatch\").get_dashboard(DashboardName=\"docs-example\")" 2>/dev/null && break
        sleep 0.5
    done
    kill -TERM "$daemon"; wait "$daemon" || true
    "$SNOWFLAKE_RENDER_VENV/bin/python" scripts/render_dashboard.py --dashboard docs-example --seed-history --out "$SNOWFLAKE_RENDER_OUT"
'
