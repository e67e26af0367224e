#!/usr/bin/env bash
# Scrape flakes side by side with Prometheus in agent mode (issue 27); the report goes to
# target/bench-peer.md and is copied by hand into docs/benchmarks.md ("Side by side with Prometheus").
#
#   bench/peer.sh                          # every point, our PutMetricData to a local sink: about 28 minutes
#   bench/peer.sh --quick                  # shorter windows, no 100,000-series or 60 s point: about 12 minutes
#   bench/peer.sh --cycles 3               # each point three times, interleaved, median shown
#   bench/peer.sh --cloudwatch localstack  # our PutMetricData to LocalStack instead (slow: see bench/peer.py)
#   bench/peer.sh --only live --before OLD_BINARY --cycles 3   # a change against the build before it, same run
#
# Needs prometheus and prometheus-node-exporter (Debian packages; scripts/deps.sh installs the
# exporter, this script the peer when missing) and a machine left alone while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null; then
    echo "peer.sh: installing the peer, Debian's prometheus package" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >&2
fi
command -v prometheus-node-exporter >/dev/null || scripts/deps.sh
cargo build --release --quiet --bin snowflake
binary="${CARGO_TARGET_DIR:-target}/release/snowflake"

work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-peer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p target
run=(bench/peer.py --snowflake "$binary" --work "$work" --output target/bench-peer.md "$@")
if [[ " $* " == *" localstack "* ]]; then
    venv="$(scripts/localstack.sh install)"
    scripts/localstack.sh with "$venv/bin/python" "${run[@]}"
else
    python3 "${run[@]}"
fi
cat target/bench-peer.md
