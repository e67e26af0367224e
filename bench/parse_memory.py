#!/usr/bin/env python3
"""Big scrapes beside a 1-second canary (issue 22, item 3): peak RSS, /healthz latency and
skipped firings of a daemon scraping a ~15 MB exposition of ~1 M short series.

    bench/parse_memory.py --snowflake before=/path/to/old/snowflake --snowflake after=target/release/snowflake

Each binary runs in turn as `snowflake --dry-run run` (no AWS call) with SCRAPES scrape flakes on
`@every 10s` against one loopback HTTP server and a job `@every 1s`; /healthz is probed every
100 ms with a 2 s timeout. Prints one Markdown table row per binary.
"""

import argparse
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import json


def body(series):
    return "".join(f"mtr_{index:07} 1\n" for index in range(series)).encode()


def serve(payload):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run(label, binary, url, scrapes, duration, body_bytes):
    work = tempfile.mkdtemp(prefix="snowflake-parse-")
    flakes = os.path.join(work, "flakes")
    os.makedirs(flakes)
    for index in range(scrapes):
        with open(os.path.join(flakes, f"big{index}.json"), "w") as file:
            json.dump({"flakeName": f"big{index}", "flakeType": "scrape", "flakeUrl": url, "flakeCronstring": "@every 10s",
                       "flakeTimeout": 9, "flakeMetricNamespace": "Bench"}, file)
    with open(os.path.join(flakes, "canary.json"), "w") as file:
        json.dump({"flakeName": "canary", "flakeType": "job", "flakeCommand": "true", "flakeCronstring": "@every 1s"}, file)
    port = free_port()
    env = dict(os.environ, SNOWFLAKE_FLAKES=flakes, SNOWFLAKE_LOG_DIR=os.path.join(work, "logs"),
               SNOWFLAKE_STATE_DIR=os.path.join(work, "state"), SNOWFLAKE_CREDS=os.path.join(work, "creds.json"),
               AWS_REGION="us-east-1", AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9", SNOWFLAKE_TIMEZONE="UTC")
    daemon = subprocess.Popen([binary, "--dry-run", "run", "--listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "daemon.log"), "w"))
    latencies = []
    failures = 0
    peak_rss = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < 30:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        started = time.monotonic()
        while time.monotonic() - started < duration:
            before = time.monotonic()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                latencies.append((time.monotonic() - before) * 1000)
            except OSError:
                failures += 1
                latencies.append(2000.0)
            peak_rss = max(peak_rss, status_kib(daemon.pid, "VmRSS"))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - before)))
        peak_rss = max(peak_rss, status_kib(daemon.pid, "VmHWM"))
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    logs = os.path.join(work, "logs")
    canary = open(os.path.join(logs, "canary.log")).read() if os.path.exists(os.path.join(logs, "canary.log")) else ""
    canary_runs = sum(1 for line in canary.splitlines() if " ok scheduled=" in line)
    skipped = sum(1 for line in canary.splitlines() if " skipped " in line)
    scrape_runs = 0
    for index in range(scrapes):
        path = os.path.join(logs, f"big{index}.log")
        if os.path.exists(path):
            scrape_runs += sum(1 for line in open(path) if " scheduled=" in line and "|" not in line)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    shutil.rmtree(work, ignore_errors=True)
    print(f"| {label} | {scrapes} | {scrape_runs} | {peak_rss / 1024:.0f} MiB ({peak_rss * 1024 / body_bytes:.1f}x body) | "
          f"{p50:.1f} ms | {p99:.1f} ms | {failures} | {canary_runs} | {skipped} |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--snowflake", action="append", required=True, help="LABEL=PATH, in the order to run")
    parser.add_argument("--series", type=int, default=1_050_000)
    parser.add_argument("--scrapes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60)
    options = parser.parse_args()
    payload = body(options.series)
    server = serve(payload)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    print(f"body: {len(payload) / 1048576:.1f} MiB, {options.series} series; {options.duration:.0f} s per binary", flush=True)
    print("| binary | scrape flakes | scrape runs | peak RSS | /healthz p50 | /healthz p99 | probes failed | canary runs | canary skipped |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in options.snowflake:
        label, binary = spec.split("=", 1)
        run(label, binary, url, options.scrapes, options.duration, len(payload))


if __name__ == "__main__":
    main()
