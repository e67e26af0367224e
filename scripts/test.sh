#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages the tests run against when
# missing (scripts/deps.sh: podman, mmdebstrap, exporters, Nagios plugins), LocalStack and the
# validators from PyPI (cached venv), starts LocalStack on a free loopback port, runs `cargo test`
# with the AWS SDK pointed at it, and stops it afterwards, also when tests fail. Extra arguments
# go to `cargo test` (e.g. scripts/test.sh --test daemon).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# The Debian packager tests/deb.rs uses, from crates.io when missing (about 90 s, once).
scripts/cargo-deb.sh >/dev/null

venv="$(scripts/localstack.sh install)"
# The schedule fixture must be what the croniter generator produces today.
"$venv/bin/python" scripts/gen_cron_fixture.py --check

# Every test by default (benchmarks are measurements, run by `cargo bench` and bench/run.sh);
# given arguments (say `--test daemon`) choose instead.
[ $# -gt 0 ] || set -- --lib --bins --tests
exec scripts/localstack.sh with cargo test --no-fail-fast "$@"
