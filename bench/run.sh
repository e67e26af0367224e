#!/usr/bin/env bash
# Benchmarks SpecialSnowflake next to what operators use today and writes docs/benchmarks.md.
#
#   bench/run.sh                  # everything: about an hour, 30 minutes of it the memory soak
#   bench/run.sh --quick          # smaller and fewer runs, a 3-minute soak: a smoke test
#   bench/run.sh --skip-soak ...  # other options go to bench/bench.py (see --help)
#
# Needs what scripts/test.sh needs (python3, PyPI on the first run) and a machine left alone
# while it runs: the numbers are wall and CPU times.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(scripts/localstack.sh install)"
cargo build --release --quiet --bin snowflake
echo "bench: measuring spool throughput (cargo bench --bench spool)" >&2
cargo bench --quiet --bench spool > target/bench-spool.md

work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-bench.XXXXXX")"
pid=""
cleanup() {
    [ -n "$pid" ] && scripts/localstack.sh stop "$pid"
    rm -rf "$work"
}
trap cleanup EXIT
read -r port pid < <(scripts/localstack.sh start "$work/localstack")
echo "bench: LocalStack on 127.0.0.1:$port" >&2

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
"$venv/bin/python" bench/bench.py --snowflake target/release/snowflake --venv "$venv" \
    --localstack-log "$work/localstack/localstack.log" --work "$work" --spool-table target/bench-spool.md "$@"
