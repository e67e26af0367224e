#!/usr/bin/env bash
# The picture in docs/dashboards.md, from data the daemon really published.
#
#   scripts/render_dashboard.sh record [--minutes N] [--data FILE]   # run the daemon, fetch its data
#   scripts/render_dashboard.sh draw [--data FILE] [--out PNG]        # draw the picture from that file
#
# record: starts LocalStack, a stand-in instance metadata service (scripts/fake-imds.py, for the
# host-alarms example), and a real nginx serving stub_status with the NGINX Prometheus exporter on
# 127.0.0.1:9113 (where the scrape example looks) and a small client that sends it 0-30 requests
# every 10 s so its graphs move; runs `snowflake once` (every example once, the nightly jobs
# included), then `snowflake run --dashboard docs-example` on the example flakes in flakes/ for N
# minutes (default 30), publishing to LocalStack; then scripts/fetch_dashboard_data.py reads the
# dashboard body, every graph's datapoints (GetMetricData) and the alarms' states back from
# LocalStack into FILE (default docs/dashboard-example.json), and everything it started stops.
#
# draw: scripts/render_dashboard.py draws FILE's widgets to PNG (default docs/dashboard-example.png);
# no AWS needed, so the committed data can be drawn again.
#
# SNOWFLAKE_BIN=path uses an existing binary instead of `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/nginx-stub-status.sh
. scripts/nginx-stub-status.sh
CACHE="${SNOWFLAKE_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/specialsnowflake}"
mode="${1:-draw}"
[ $# -gt 0 ] && shift
minutes=30 data=docs/dashboard-example.json out=docs/dashboard-example.png
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift ;;
        --data) data="$2"; shift ;;
        --out) out="$2"; shift ;;
        *) echo "render_dashboard.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

draw() {
    local venv="$CACHE/render-venv"
    if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet 'matplotlib>=3.8,<4'
    fi
    "$venv/bin/python" scripts/render_dashboard.py --data "$data" --out "$out"
}

record() {
    for program in nginx prometheus-nginx-exporter curl; do
        command -v "$program" >/dev/null || { echo "render_dashboard.sh: missing $program: apt-get install nginx-light prometheus-nginx-exporter curl" >&2; exit 1; }
    done
    if (exec 3<>/dev/tcp/127.0.0.1/9113) 2>/dev/null; then
        echo "render_dashboard.sh: 127.0.0.1:9113 is taken; the scrape example needs it for the NGINX exporter" >&2
        exit 1
    fi
    local bin="${SNOWFLAKE_BIN:-}"
    if [ -z "$bin" ]; then
        cargo build --quiet --bin snowflake
        bin="${CARGO_TARGET_DIR:-target}/debug/snowflake"
    fi
    local venv work
    venv="$(scripts/localstack.sh install)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/snowflake-dashboard.XXXXXX")"
    echo "render_dashboard.sh: working in $work (kept: the daemon's and the flakes' logs)"
    pids=() localstack_pid=""
    stop_everything() {
        for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
        [ -z "$localstack_pid" ] || scripts/localstack.sh stop "$localstack_pid"
        pids=() localstack_pid=""
    }
    trap stop_everything EXIT
    trap 'exit 130' INT TERM

    local port
    read -r port localstack_pid < <(scripts/localstack.sh start "$work/localstack")
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
    coproc IMDS { exec python3 scripts/fake-imds.py --instance-id i-0docs000000000000 --region us-east-1; }
    pids+=("$IMDS_PID")
    local imds_port
    read -r imds_port <&"${IMDS[0]}"
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$imds_port"

    local nginx_port
    nginx_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$work/nginx/logs"
    nginx_stub_status_conf "$work/nginx" "$nginx_port" >"$work/nginx/nginx.conf"
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
    pids+=($!)
    # The exporter gives up at start when nginx does not answer yet.
    for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/stub_status" 2>/dev/null && break; sleep 0.2; done
    prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$nginx_port/stub_status" \
        -web.listen-address=127.0.0.1:9113 >"$work/nginx-exporter.log" 2>&1 &
    pids+=($!)
    # The scrape example runs in `once` below: wait until the exporter answers.
    for _ in $(seq 1 50); do curl -fsS -o /dev/null http://127.0.0.1:9113/metrics 2>/dev/null && break; sleep 0.2; done
    # A small client, so the request graphs move: 0-30 requests every 10 s.
    (while sleep 10; do
        for _ in $(seq 1 $((RANDOM % 31))); do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/" || true; done
    done) &
    pids+=($!)

    mkdir -p "$work/state" "$work/logs" /tmp/snowflake-backups /tmp/snowflake-scratch
    export SNOWFLAKE_FLAKES="$PWD/flakes" SNOWFLAKE_WORKDIR="$PWD" SNOWFLAKE_STATE_DIR="$work/state"
    export SNOWFLAKE_LOG_DIR="$work/logs" SNOWFLAKE_CREDS="$work/creds.json"
    local since started
    since="$(date -u +%Y-%m-%dT%H:%M:00Z)"
    started=$SECONDS
    "$bin" once >"$work/once.log" 2>&1 || echo "render_dashboard.sh: snowflake once: a flake failed (see $work/once.log)"
    "$bin" run --listen off --dashboard docs-example >"$work/daemon.log" 2>&1 &
    local daemon=$!
    pids+=("$daemon")
    local end=$((started + minutes * 60))
    while [ $SECONDS -lt $end ]; do
        kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; echo "render_dashboard.sh: the daemon stopped early" >&2; exit 1; }
        sleep 10
    done
    local note
    note="snowflake once, then snowflake run --dashboard docs-example on the example flakes in flakes/, publishing to LocalStack, $minutes minutes from $since on $(uname -n) ($(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)); nginx with a client sending 0-30 requests every 10 s behind the NGINX exporter; a stand-in instance metadata service"
    "$venv/bin/python" scripts/fetch_dashboard_data.py --dashboard docs-example --since "$since" --out "$data" --note "$note"
    stop_everything
}

case "$mode" in
    record) record ;;
    draw) draw ;;
    *) echo "usage: render_dashboard.sh record [--minutes N] [--data FILE] | draw [--data FILE] [--out PNG]" >&2; exit 2 ;;
esac
