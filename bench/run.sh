#!/usr/bin/env bash
# Benchmarks SpecialSnowflake next to what operators use today and writes docs/benchmarks.md.
#
#   bench/run.sh                  # everything: about an hour, 30 minutes of it the memory soak
#   bench/run.sh --quick          # smaller and fewer runs, a 3-minute soak: a smoke test
#   bench/run.sh --skip-soak ...  # other options go to bench/bench.py (see --help)
#   bench/run.sh --sections splay,exec,scale --cycles 2 --baseline ../main/target/release/snowflake
#                                 # issue 18's measurements only, about 12 minutes
#
# Needs what scripts/test.sh needs (python3, PyPI on the first run) and a machine left alone
# while it runs: the numbers are wall and CPU times.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(scripts/localstack.sh install)"
cargo build --release --quiet --bin snowflake
# The focused sections (splay, exec, scale) do not report the spool.
if [[ "$*" != *--sections* || "$*" =~ one-shot|daemon|soak ]]; then
    echo "bench: measuring spool throughput (cargo bench --bench spool)" >&2
    cargo bench --quiet --bench spool > target/bench-spool.md
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
scripts/localstack.sh with "$venv/bin/python" bench/bench.py --snowflake target/release/snowflake --venv "$venv" \
    --work "$work" --spool-table target/bench-spool.md "$@"
