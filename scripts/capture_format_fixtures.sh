#!/usr/bin/env bash
# Capture real programs' output into tests/fixtures/formats/ for the output-format parsers
# (SPEC 8, 8.2): Prometheus exposition text from node_exporter and the NGINX exporter (the latter
# scraping a real nginx serving stub_status), and Nagios plugin stdout + exit status from
# monitoring-plugins-basic.
#
# Needs the Debian packages prometheus-node-exporter, prometheus-nginx-exporter, nginx-light and
# monitoring-plugins-basic, plus curl. Everything it starts listens on loopback only and is
# stopped on exit, even on failure. Run from the repository root:
#
#     scripts/capture_format_fixtures.sh
#
# The fixtures are host-specific (metric counts, disk names, load values); the tests check
# properties that hold on any host, so re-capturing elsewhere must keep them green.
set -euo pipefail
# shellcheck source=scripts/nginx-stub-status.sh
. "$(dirname "$0")/nginx-stub-status.sh"

out=tests/fixtures/formats
plugins=/usr/lib/nagios/plugins
python=${PYTHON:-$HOME/.cache/specialsnowflake/venv/bin/python}
free_port() { # a loopback port nobody listens on now
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for program in prometheus-node-exporter prometheus-nginx-exporter nginx curl; do
    command -v "$program" >/dev/null || { echo "missing $program: apt-get install prometheus-node-exporter prometheus-nginx-exporter nginx-light monitoring-plugins-basic curl" >&2; exit 1; }
done
"$python" -c 'import prometheus_client' 2>/dev/null || { echo "$python lacks prometheus_client: set PYTHON to a Python that has it (scripts/localstack.sh's venv does)" >&2; exit 1; }
[ -x "$plugins/check_load" ] || { echo "missing $plugins/check_load: apt-get install monitoring-plugins-basic" >&2; exit 1; }
node_port=${NODE_EXPORTER_PORT:-$(free_port)}
nginx_port=${NGINX_PORT:-$(free_port)}
nginx_exporter_port=${NGINX_EXPORTER_PORT:-$(free_port)}

work=$(mktemp -d)
started=()
cleanup() {
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # url
    for _ in $(seq 1 50); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "nothing answered at $1" >&2
    return 1
}

# scrape NAME URL ACCEPT: body to NAME, response Content-Type to NAME.content-type.
scrape() {
    curl -fsS -H "Accept: $3" -D "$work/headers" -o "$out/prometheus/$1" "$2"
    grep -i '^content-type:' "$work/headers" | sed 's/^[^:]*: *//' | tr -d '\r' > "$out/prometheus/$1.content-type"
}

# scrape_openmetrics NAME URL: kept only if the program really answers in OpenMetrics (node_exporter
# 1.5 and nginx-exporter 0.11 answer text/plain 0.0.4 even when asked).
scrape_openmetrics() {
    scrape "$1" "$2" "$openmetrics"
    if ! grep -qi 'application/openmetrics-text' "$out/prometheus/$1.content-type"; then
        echo "note: $2 answers $(cat "$out/prometheus/$1.content-type") to an OpenMetrics request; not kept" >&2
        rm -f "$out/prometheus/$1" "$out/prometheus/$1.content-type"
    fi
}

mkdir -p "$out/prometheus" "$out/nagios"

text_format='text/plain;version=0.0.4'
openmetrics='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

# --- node_exporter -------------------------------------------------------------------------
prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" >"$work/node.log" 2>&1 &
started+=($!)
wait_for "http://127.0.0.1:$node_port/metrics"
scrape node_exporter.prom "http://127.0.0.1:$node_port/metrics" "$text_format"
scrape_openmetrics node_exporter.openmetrics "http://127.0.0.1:$node_port/metrics"
sleep 1
# A second scrape a moment later: counters move, so the tests can compute real increases.
scrape node_exporter.second.prom "http://127.0.0.1:$node_port/metrics" "$text_format"

# --- nginx with stub_status, and the NGINX exporter scraping it ------------------------------
mkdir -p "$work/nginx/logs"
nginx_stub_status_conf "$work/nginx" "$nginx_port" >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
started+=($!)
wait_for "http://127.0.0.1:$nginx_port/"
for _ in 1 2 3 4 5; do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/"; done
prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$nginx_port/stub_status" \
    -web.listen-address="127.0.0.1:$nginx_exporter_port" >"$work/nginx-exporter.log" 2>&1 &
started+=($!)
wait_for "http://127.0.0.1:$nginx_exporter_port/metrics"
scrape nginx_exporter.prom "http://127.0.0.1:$nginx_exporter_port/metrics" "$text_format"
scrape_openmetrics nginx_exporter.openmetrics "http://127.0.0.1:$nginx_exporter_port/metrics"
for _ in 1 2 3; do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/"; done
scrape nginx_exporter.second.prom "http://127.0.0.1:$nginx_exporter_port/metrics" "$text_format"

# --- Nagios plugins: stdout to NAME.out, the exit status to NAME.status ----------------------
plugin() { # NAME COMMAND...
    local name=$1
    shift
    local status=0
    "$@" >"$out/nagios/$name.out" 2>/dev/null || status=$?
    echo "$status" > "$out/nagios/$name.status"
    printf '%s\n' "$*" | sed "s|$plugins/||" > "$out/nagios/$name.command"
}
plugin check_load_ok "$plugins/check_load" -w 1000,1000,1000 -c 2000,2000,2000
plugin check_load_per_cpu "$plugins/check_load" -r -w 1000,1000,1000 -c 2000,2000,2000
plugin check_load_critical "$plugins/check_load" -w 0,0,0 -c 0,0,0
plugin check_disk_root "$plugins/check_disk" -w 10% -c 5% -p /
plugin check_disk_two "$plugins/check_disk" -w 10% -c 5% -p / -p /dev/shm
plugin check_disk_gigabytes "$plugins/check_disk" -w 10% -c 5% -u GB -p /
plugin check_disk_critical "$plugins/check_disk" -w 100% -c 100% -p /
plugin check_procs "$plugins/check_procs"
plugin check_procs_metric "$plugins/check_procs" -w 1 -c 100000 --metric=PROCS
plugin check_users "$plugins/check_users" -w 1000 -c 2000
plugin check_swap "$plugins/check_swap" -w 10% -c 5%
plugin check_dummy_ok "$plugins/check_dummy" 0 "all is well"
plugin check_dummy_warning "$plugins/check_dummy" 1 "a bit warm"
plugin check_dummy_critical "$plugins/check_dummy" 2 "on fire"
plugin check_dummy_unknown "$plugins/check_dummy" 3 "cannot tell"
plugin check_dummy_bad_state "$plugins/check_dummy" 7 "no such state"

# --- OpenMetrics: neither exporter above speaks it, so the Prometheus project's own Python client
# (prometheus_client, the reference implementation) writes both formats from one registry that has
# every metric type, label values needing escapes, exemplars and _created samples.
"$python" - "$out/prometheus" <<'PYTHON'
import sys
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

registry = CollectorRegistry()
requests = Counter("app_requests", "Requests served.", ["method", "path"], registry=registry)
requests.labels("GET", "/").inc(7)
requests.labels("POST", '/say "hi"\\now').inc(2)
sent = Counter("app_sent_bytes", "Bytes sent.", registry=registry)
sent.inc(4096, exemplar={"trace_id": "abc123"})
temperature = Gauge("app_temperature_celsius", "Room temperature.", ["room"], registry=registry)
temperature.labels("kitchen").set(21.5)
temperature.labels("line\nbreak").set(-3)
Gauge("app_queue_bytes", "Queue size.", registry=registry).set(1024)
Gauge("app_broken", "Not a number right now.", registry=registry).set(float("nan"))
latency = Histogram("app_latency_seconds", "Request latency.", buckets=(0.1, 0.5, 1.0), registry=registry)
for value in (0.05, 0.2, 0.3, 0.7, 2.0):
    latency.observe(value)
size = Summary("app_payload_bytes", "Payload sizes.", registry=registry)
size.observe(100)
size.observe(300)
Info("app_build", "Build information.", registry=registry).info({"version": "1.2.3"})
Enum("app_state", "Service state.", states=["starting", "running"], registry=registry).state("running")
open(sys.argv[1] + "/python_client.prom", "wb").write(generate_latest(registry))
open(sys.argv[1] + "/python_client.openmetrics", "wb").write(generate_openmetrics(registry))
PYTHON

echo "captured into $out:"
ls -l "$out/prometheus" "$out/nagios"
