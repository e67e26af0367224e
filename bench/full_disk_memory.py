#!/usr/bin/env python3
"""A full disk during a CloudWatch outage (issue 22, item 8): the daemon's RSS over time.

    sudo bench/full_disk_memory.py --snowflake before=/path/to/old/snowflake --snowflake after=target/release/snowflake

Each binary runs in turn as `snowflake run` with its state directory (the spool) on a 2 MiB
tmpfs, which fills within seconds, and AWS pointed at a closed local port (every PutMetricData
fails). FLAKES Prometheus flakes on `@every 1s` print SERIES gauges each: FLAKES x SERIES
datapoints a second. `--spool-max-bytes` is 8 MiB. Prints one Markdown table row per binary:
RSS at 15 s, 60 s and the end, and the datapoints dropped by size. Needs root (mount).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(port, prefix):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run(label, binary, flakes_count, series, duration):
    work = tempfile.mkdtemp(prefix="snowflake-fulldisk-")
    flakes = os.path.join(work, "flakes")
    state = os.path.join(work, "state")
    os.makedirs(flakes)
    os.makedirs(state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", state], check=True)
    command = f"i=0; while [ $i -lt {series} ]; do echo \"g_$i $i\"; i=$((i+1)); done"
    for index in range(flakes_count):
        with open(os.path.join(flakes, f"f{index}.json"), "w") as file:
            json.dump({"flakeName": f"f{index}", "flakeOutput": "prometheus", "flakeCommand": command,
                       "flakeCronstring": "@every 1s", "flakeMetricNamespace": "Bench", "flakeMaxSeries": series}, file)
    port = free_port()
    env = dict(os.environ, SNOWFLAKE_FLAKES=flakes, SNOWFLAKE_LOG_DIR=os.path.join(work, "logs"), SNOWFLAKE_STATE_DIR=state,
               SNOWFLAKE_CREDS=os.path.join(work, "creds.json"), AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIDBENCH",
               AWS_SECRET_ACCESS_KEY="bench-secret", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9", SNOWFLAKE_TIMEZONE="UTC")
    daemon = subprocess.Popen([binary, "run", "--listen", f"127.0.0.1:{port}", "--spool-max-bytes", "8MiB"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        at_15 = at_60 = None
        while time.monotonic() - started < duration:
            time.sleep(1)
            if at_15 is None and time.monotonic() - started >= 15:
                at_15 = rss_mib(daemon.pid)
            if at_60 is None and time.monotonic() - started >= 60:
                at_60 = rss_mib(daemon.pid)
        at_end = rss_mib(daemon.pid)
        dropped = metric(port, 'snowflake_spool_dropped_datapoints_total{reason="size"}')
        failing = metric(port, "snowflake_spool_write_failing")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        subprocess.run(["umount", state], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"| {label} | {flakes_count * series}/s | {at_15:.0f} MiB | {at_60:.0f} MiB | {at_end:.0f} MiB | {failing:.0f} | {dropped:.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--snowflake", action="append", required=True, help="LABEL=PATH, in the order to run")
    parser.add_argument("--flakes", type=int, default=20)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120)
    options = parser.parse_args()
    print(f"{options.duration:.0f} s per binary, spool on a 2 MiB tmpfs, --spool-max-bytes 8MiB, CloudWatch unreachable", flush=True)
    print(f"| binary | datapoints | RSS at 15 s | RSS at 60 s | RSS at {options.duration:.0f} s | spool_write_failing | dropped by size |")
    print("|---|---|---|---|---|---|---|")
    for spec in options.snowflake:
        label, binary = spec.split("=", 1)
        run(label, binary, options.flakes, options.series, options.duration)


if __name__ == "__main__":
    main()
