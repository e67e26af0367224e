#!/usr/bin/env python3
"""The datums, PutMetricData calls and statistics of `flakeAggregate` (SPEC 8.1), side by side.

Two daemons run at the same time against one LocalStack, each with the same N flakes at
`@every 10s`: one plain, one with `flakeAggregate: "60s"`. Every flake prints a number derived
from its scheduled time and its index, so both daemons produce exactly the same values. Each
daemon talks to LocalStack through a small counting proxy of its own that decodes every
PutMetricData request (CBOR, gzip or not) and counts its datums and the values in them: a count
independent of SpecialSnowflake's own. After the run both daemons are stopped (a stop sends the
open window), and GetMetricStatistics reads back SampleCount, Sum, Minimum, Maximum and Average
of every flake for every minute in which both daemons ran all firings: they must be identical.

    scripts/localstack.sh with ~/.cache/specialsnowflake/venv/bin/python bench/aggregate.py \\
        --snowflake target/debug/snowflake --flakes 20 --minutes 8

Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import cbor2

COMMAND = 'echo $(( ($(date -u -d "$SNOWFLAKE_SCHEDULED_TIME" +%s) * 7919 + {index} * 104729) % 1000 ))'


def log(message: str) -> None:
    print(f"aggregate-bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    """What one daemon sent: (arrival time, datums, values) per accepted PutMetricData request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[float, int, int]] = []


def counting_proxy(upstream: str, counter: Counter) -> int:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, reply, reply_headers = response.status, response.read(), response.getheaders()
            except urllib.error.HTTPError as error:
                status, reply, reply_headers = error.code, error.read(), error.headers.items()
            if status == 200 and "PutMetricData" in self.path:
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                data = cbor2.loads(raw).get("MetricData", [])
                values = sum(int(sum(d.get("Counts") or [1] * len(d["Values"]))) if d.get("Values") else 1 for d in data)
                with counter.lock:
                    counter.requests.append((time.time(), len(data), values))
            self.send_response(status)
            for key, value in reply_headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


def write_flakes(root: Path, namespace: str, count: int, aggregate: str | None) -> None:
    for directory in ("flakes", "logs", "state"):
        (root / directory).mkdir(parents=True)
    for index in range(count):
        flake = {"flakeName": f"f{index:03d}", "flakeCronstring": "@every 10s", "flakeCommand": COMMAND.format(index=index),
                 "flakeMetricNamespace": namespace, "flakeUnit": "Milliseconds"}
        if aggregate:
            flake["flakeAggregate"] = aggregate
        (root / "flakes" / f"f{index:03d}.json").write_text(json.dumps(flake))


def start_daemon(snowflake: str, root: Path, endpoint: str) -> subprocess.Popen:
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
               SNOWFLAKE_FLAKES=str(root / "flakes"), SNOWFLAKE_LOG_DIR=str(root / "logs"), SNOWFLAKE_STATE_DIR=str(root / "state"),
               SNOWFLAKE_LOG_LEVEL="warn", SNOWFLAKE_TIMEZONE="UTC")
    env.pop("AWS_PROFILE", None)
    output = open(root / "daemon.log", "w")
    daemon = subprocess.Popen([snowflake, "run", "--listen", "off"], env=env, stdout=output, stderr=output, cwd=root)
    time.sleep(2)
    if daemon.poll() is not None:
        sys.exit(f"the daemon in {root} exited at start: {(root / 'daemon.log').read_text()}")
    return daemon


def statistics(client, namespace: str, metric: str, start: dt.datetime, end: dt.datetime) -> dict:
    answer = client.get_metric_statistics(Namespace=namespace, MetricName=metric, StartTime=start, EndTime=end, Period=60,
                                          Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"])
    return {p["Timestamp"].timestamp(): (p["SampleCount"], p["Sum"], p["Minimum"], p["Maximum"], p["Average"]) for p in answer["Datapoints"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snowflake", required=True)
    parser.add_argument("--flakes", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=8)
    args = parser.parse_args()
    upstream = os.environ.get("AWS_ENDPOINT_URL") or sys.exit("AWS_ENDPOINT_URL is not set: run under scripts/localstack.sh with")

    work = Path(tempfile.mkdtemp(prefix="snowflake-aggregate-"))
    run_id = int(time.time())
    runs = {}
    for name, aggregate in (("plain", None), ("aggregated", "60s")):
        counter = Counter()
        port = counting_proxy(upstream, counter)
        namespace = f"BenchAggregate/{run_id}/{name}"
        write_flakes(work / name, namespace, args.flakes, aggregate)
        runs[name] = {"counter": counter, "port": port, "namespace": namespace, "root": work / name}
    # Start both just after a minute boundary, so whole minutes are easy to tell.
    time.sleep(60 - time.time() % 60 + 1)
    started = time.time()
    for run in runs.values():
        run["daemon"] = start_daemon(args.snowflake, run["root"], f"http://127.0.0.1:{run['port']}")
    log(f"{args.flakes} flakes at @every 10s, plain and aggregated, for {args.minutes} minutes (work dir {work})")
    time.sleep(args.minutes * 60)
    stopped = time.time()
    for run in runs.values():
        run["daemon"].send_signal(signal.SIGTERM)
    for run in runs.values():
        run["daemon"].wait(timeout=60)
        run["exit"] = run["daemon"].returncode

    # Whole minutes from the middle of the second one: each holds one release of the windows and
    # six rounds of firings.
    steady_from = started - started % 60 + 90
    steady_to = steady_from + 60 * ((stopped - 30 - steady_from) // 60)
    rows = {}
    for name, run in runs.items():
        requests = run["counter"].requests
        steady = [r for r in requests if steady_from <= r[0] < steady_to]
        minutes = (steady_to - steady_from) / 60
        rows[name] = {
            "calls": len(requests),
            "datums": sum(r[1] for r in requests),
            "values": sum(r[2] for r in requests),
            "datums_per_minute": sum(r[1] for r in steady) / minutes,
            "calls_per_minute": len(steady) / minutes,
            "exit": run["exit"],
        }

    client = boto3.client("cloudwatch", endpoint_url=upstream, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    first_full = dt.datetime.fromtimestamp(started - started % 60 + 60, dt.timezone.utc)
    last_full = dt.datetime.fromtimestamp(stopped - stopped % 60, dt.timezone.utc)
    compared = identical = buckets = 0
    differences = []
    for index in range(args.flakes):
        metric = f"f{index:03d}"
        plain = statistics(client, runs["plain"]["namespace"], metric, first_full, last_full)
        aggregated = statistics(client, runs["aggregated"]["namespace"], metric, first_full, last_full)
        compared += 1
        buckets += len(plain)
        if plain == aggregated and plain:
            identical += 1
        else:
            differences.append((metric, plain, aggregated))

    plain, aggregated = rows["plain"], rows["aggregated"]
    ratio = plain["datums"] / aggregated["datums"]
    steady_ratio = plain["datums_per_minute"] / aggregated["datums_per_minute"]
    window = f"{first_full:%H:%M}-{last_full:%H:%M} UTC"
    command = f"scripts/localstack.sh with ~/.cache/specialsnowflake/venv/bin/python bench/aggregate.py --snowflake {args.snowflake} --flakes {args.flakes} --minutes {args.minutes:g}"
    print(f"""## Aggregation: datums and calls with and without `flakeAggregate`

{args.flakes} flakes at `@every 10s` for {args.minutes:g} minutes, two daemons side by side in the same run against one
LocalStack: one plain, one with `flakeAggregate: "60s"`. Both flake sets print the same number for the same scheduled
time, so both daemons produce the same values. Datums and values are counted by a proxy in front of LocalStack that
decodes every PutMetricData request (not by SpecialSnowflake's own counters). Totals include the partial windows at
start and stop (a stop sends the open window); "steady" counts the requests of whole minutes between them.

| daemon | PutMetricData calls | datums | values | datums per minute (steady) | calls per minute (steady) | exit |
|---|---|---|---|---|---|---|
| plain | {plain['calls']} | {plain['datums']} | {plain['values']} | {plain['datums_per_minute']:.1f} | {plain['calls_per_minute']:.1f} | {plain['exit']} |
| `flakeAggregate: "60s"` | {aggregated['calls']} | {aggregated['datums']} | {aggregated['values']} | {aggregated['datums_per_minute']:.1f} | {aggregated['calls_per_minute']:.1f} | {aggregated['exit']} |

- Datums: **{ratio:.2f} times fewer** in total, **{steady_ratio:.2f} times fewer** in steady state (6 runs a minute fold into one datum).
- Statistics read back with GetMetricStatistics (SampleCount, Sum, Minimum, Maximum, Average, 60 s period) for every
  flake and every whole minute both daemons ran ({window}): **{identical} of {compared} flakes identical** over {buckets} minute buckets.
  LocalStack does not compute percentiles in GetMetricStatistics; percentiles are checked against the in-memory
  CloudWatch in tests/aggregate_fake.rs (the values and counts received are the same multiset).
- PutMetricData calls (billed per request): {plain['calls'] / aggregated['calls']:.2f} times fewer. The plain daemon sends
  after each round of firings; the aggregated one when the windows close, once a minute. A request holds at most 1000
  datums, so on a host with more datums than that per flush, fewer datums also means proportionally fewer requests.

Command: `{command}` (the debug build: counts do not depend on the build profile).
""")
    if differences:
        for metric, p, a in differences[:5]:
            log(f"{metric} differs:\n  plain      {p}\n  aggregated {a}")
        sys.exit(1)
    if ratio < 5:
        log(f"only {ratio:.2f} times fewer datums")
        sys.exit(1)


if __name__ == "__main__":
    main()
