#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages the tests run against when
# missing (scripts/deps.sh: podman, mmdebstrap, exporters, Nagios plugins), LocalStack and the
# validators from PyPI (cached venv), starts LocalStack on a free loopback port, runs `cargo test`
# with the AWS SDK pointed at it, and stops it afterwards, also when tests fail. With no arguments
# every test runs (scripts/test-lanes.sh: the longest end-to-end tests in lanes of their own, at
# the same time as the rest); extra arguments go to `cargo test` (e.g. scripts/test.sh --test daemon).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# The Debian packager tests/deb.rs uses, from crates.io when missing (about 90 s, once).
scripts/cargo-deb.sh >/dev/null

venv="$(scripts/localstack.sh install)"
# The schedule fixture must be what the croniter generator produces today.
"$venv/bin/python" scripts/gen_cron_fixture.py --check

# Given arguments (say `--test daemon`), exactly those, against one LocalStack.
if [ $# -gt 0 ]; then
    exec scripts/localstack.sh with cargo test --no-fail-fast "$@"
fi
exec scripts/test-lanes.sh
