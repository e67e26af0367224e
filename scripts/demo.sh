#!/usr/bin/env bash
# A first look at the real thing, with no AWS account: starts LocalStack (a CloudWatch emulator,
# installed from PyPI on first use), runs every example flake once, runs the daemon on them for a
# couple of minutes, then shows what landed, read back from LocalStack: the metrics with their
# latest values, the alarms with their states, and where the flake logs are. It stops everything
# it started, also on Ctrl-C.
#
#   scripts/demo.sh [--minutes N]      # N may be a fraction; default 2
#
# The liveness example watches a process named demo-app that is not running, so its alarm (which
# treats missing data as breaching) goes to ALARM: silence is the alert. The host-alarms example
# reads its instance id from a stand-in instance metadata service (scripts/fake-imds.py).
# SNOWFLAKE_BIN=path uses an existing binary instead of `cargo build --release`;
# SNOWFLAKE_DEMO_DIR (default /tmp/snowflake-demo) receives the flake logs, state and the daemon's log.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
minutes=2
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes)
            [ $# -ge 2 ] || { echo "demo.sh: --minutes needs a number" >&2; exit 2; }
            minutes="$2"
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "demo.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
seconds="$(awk -v m="$minutes" 'BEGIN { if (m !~ /^[0-9]*\.?[0-9]+$/ || m <= 0) exit 1; printf "%d", m * 60 + 0.5 }')" \
    || { echo "demo.sh: --minutes takes a positive number, not $minutes" >&2; exit 2; }

bin="${SNOWFLAKE_BIN:-}"
if [ -z "$bin" ]; then
    echo "demo.sh: building snowflake (cargo build --release; the first build takes several minutes)"
    cargo build --release --quiet
    bin=./target/release/snowflake
fi
venv="$(scripts/localstack.sh install)"
demo="${SNOWFLAKE_DEMO_DIR:-${TMPDIR:-/tmp}/snowflake-demo}"
rm -rf "$demo"
mkdir -p "$demo/state" "$demo/logs"

localstack_pid="" daemon_pid="" imds_pid=""
stop_everything() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        echo "demo.sh: stopped the daemon (pid $daemon_pid)"
    fi
    if [ -n "$localstack_pid" ]; then
        scripts/localstack.sh stop "$localstack_pid"
        echo "demo.sh: stopped LocalStack (pid $localstack_pid)"
    fi
    if [ -n "$imds_pid" ]; then
        kill "$imds_pid" 2>/dev/null || true
        wait "$imds_pid" 2>/dev/null || true
        echo "demo.sh: stopped the stand-in instance metadata service (pid $imds_pid)"
    fi
    localstack_pid="" daemon_pid="" imds_pid=""
}
trap stop_everything EXIT
trap 'exit 130' INT TERM

echo "demo.sh: starting LocalStack"
read -r port localstack_pid < <(scripts/localstack.sh start "$demo/localstack")
echo "demo.sh: LocalStack is ready on 127.0.0.1:$port (pid $localstack_pid)"

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
# Off EC2 there is no instance metadata service: the host-alarms example reads its instance id and
# region from a stand-in IMDSv2 instead (it stops with everything else).
coproc IMDS { exec python3 scripts/fake-imds.py --instance-id i-0demo0000000000 --region us-east-1; }
imds_pid=$IMDS_PID
read -r imds_port <&"${IMDS[0]}"
export AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$imds_port"
echo "demo.sh: a stand-in instance metadata service answers on 127.0.0.1:$imds_port (instance i-0demo0000000000)"
export SNOWFLAKE_FLAKES="$PWD/flakes" SNOWFLAKE_WORKDIR="$PWD" SNOWFLAKE_STATE_DIR="$demo/state"
export SNOWFLAKE_LOG_DIR="$demo/logs" SNOWFLAKE_CREDS="$demo/creds.json"
export WATCH_PROCESS=demo-app

echo
echo "== snowflake once: every example flake runs now, publishes, and creates its alarms"
echo "   (example-liveness fails on purpose: no process named demo-app is running)"
"$bin" once || true

listen="127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo
echo "== snowflake run: the daemon on the example flakes for $minutes minute(s), /metrics on http://$listen/metrics"
"$bin" run --listen "$listen" --heartbeat-namespace SpecialSnowflake/Demo >"$demo/daemon.log" 2>&1 &
daemon_pid=$!
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        # Ctrl-C reaches the daemon too (one process group), and it may stop before this shell's
        # trap has run: a daemon stopped by a signal means the demo was interrupted.
        grep -qE '(SIGINT|SIGTERM): stopping' "$demo/daemon.log" && exit 130
        cat "$demo/daemon.log"
        echo "demo.sh: the daemon stopped early" >&2
        exit 1
    fi
    printf '.'
    # In the background and waited for, so Ctrl-C is handled at once rather than after the sleep.
    sleep $((end - SECONDS < 10 ? (end - SECONDS > 0 ? end - SECONDS : 1) : 10)) &
    wait $!
done
echo

echo
"$venv/bin/python" scripts/demo_report.py --endpoint "$AWS_ENDPOINT_URL" --logs "$demo/logs" \
    --namespace SpecialSnowflake/Examples --namespace SpecialSnowflake/Demo
echo "The daemon's own log: $demo/daemon.log"
echo
stop_everything
