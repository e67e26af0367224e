#!/usr/bin/env python3
"""The status page's cost at 10,000 flakes: /status.json (and /) served while the scheduler
fires every flake each minute, side by side with the same daemon when nobody reads the page.

One daemon (dry run: no AWS needed; its batches go to /dev/null) runs N flakes on `* * * * *`.
The measurement alternates minutes: in a "quiet" minute nothing but the once-a-minute /metrics
read touches the listener; in a "reading" minute a client GETs /status.json back to back, or
--rate times a second (and / every tenth request), the whole minute. For each kind of minute it reports the scheduler's
lateness (the daemon's own histogram, command start minus scheduled time, the difference of
the histogram over those minutes) and, for reading minutes, each request's latency.

    python3 bench/status.py --snowflake target/release/snowflake --flakes 10000 --minutes 2 [--rate 10]

Prints Markdown table rows (docs/benchmarks.md, "Status page").
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

# Requests made in these first seconds of a minute meet the firing of every flake.
FIRING_SECONDS = 15
from pathlib import Path


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 30):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.read()


def buckets(port: int) -> list:
    text = get(port, "/metrics").decode()
    return [(float(m.group(1)), float(m.group(2)))
            for m in re.finditer(r'^snowflake_run_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)]


def quantile(delta: list, q: float) -> float:
    """Quantile (ms) of a cumulative histogram, interpolated inside its bucket."""
    count = delta[-1][1] if delta else 0
    target, previous_le, previous_count = q * count, 0.0, 0.0
    for le, cumulative in delta:
        if cumulative >= target:
            if le == float("inf"):
                return previous_le * 1000
            share = (target - previous_count) / max(cumulative - previous_count, 1)
            return (previous_le + (le - previous_le) * share) * 1000
        previous_le, previous_count = le, cumulative
    return previous_le * 1000


def pick(values: list, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snowflake", required=True)
    parser.add_argument("--flakes", type=int, default=10000)
    parser.add_argument("--minutes", type=int, default=2, help="minutes of each kind, alternating")
    parser.add_argument("--rate", type=float, default=0,
                        help="requests a second in a reading minute (a page or `status --watch` on that many screens); 0: back to back")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="snowflake-status-bench."))
    flakes = work / "flakes"
    flakes.mkdir()
    for i in range(args.flakes):
        flake = {"flakeName": f"f{i:05d}", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1",
                 "flakeMetricNamespace": "Bench/Status", "flakeMetricName": "Value"}
        (flakes / f"f{i:05d}.json").write_text(json.dumps(flake))
    env = dict(os.environ, SNOWFLAKE_FLAKES=str(flakes), SNOWFLAKE_LOG_DIR=str(work / "logs"), SNOWFLAKE_STATE_DIR=str(work / "state"),
               SNOWFLAKE_LOG_LEVEL="warn", SNOWFLAKE_TIMEZONE="UTC", AWS_REGION="us-east-1")
    port = free_port()
    daemon = subprocess.Popen([args.snowflake, "--dry-run", "run", "--listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "w"))
    print(f"daemon pid {daemon.pid}", flush=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if len(json.loads(get(port, "/status.json"))["flakes"]) == args.flakes:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                raise SystemExit("the daemon did not load the flakes within 2 minutes")
            time.sleep(1)
        size = len(get(port, "/status.json"))
        page_size = len(get(port, "/"))
        results = {kind: {"delta": None, "json": [], "page": [], "firing": [], "between": []} for kind in ("quiet", "reading")}
        loads = [os.getloadavg()]
        # Start at a minute boundary plus 30 s: each measured minute holds exactly one firing.
        time.sleep((30 - time.time() % 60) % 60)
        for minute in range(2 * args.minutes):
            kind = "reading" if minute % 2 else "quiet"
            before = buckets(port)
            end = time.time() + 60
            if kind == "reading":
                count = 0
                next_at = time.time()
                while time.time() < end:
                    if args.rate:
                        # Paced: a slow answer delays the next request, never makes a burst of them.
                        next_at = max(next_at + 1 / args.rate, time.time())
                        time.sleep(max(0, next_at - time.time()))
                    path = "/" if count % 10 == 9 else "/status.json"
                    second = time.time() % 60
                    start = time.perf_counter()
                    get(port, path)
                    took = (time.perf_counter() - start) * 1000
                    results[kind]["page" if path == "/" else "json"].append(took)
                    if path != "/":
                        results[kind]["firing" if second < FIRING_SECONDS else "between"].append(took)
                    count += 1
            else:
                time.sleep(max(0, end - time.time()))
            after = buckets(port)
            loads.append(os.getloadavg())
            delta = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
            previous = results[kind]["delta"]
            results[kind]["delta"] = delta if previous is None else [(le, a + b) for (le, a), (_, b) in zip(delta, previous)]
    finally:
        daemon.terminate()
        daemon.wait(60)
    # Only after a run that got this far: 10,000 flake files and their logs are ~80 MB.
    shutil.rmtree(work, ignore_errors=True)
    print(f"binary {args.snowflake}; 1-minute load average at the start and after each measured minute: "
          + ", ".join(f"{load[0]:.1f}" for load in loads))
    print(f"readers: {'back to back' if not args.rate else f'{args.rate:g} requests a second'}")
    print(f"{args.flakes} flakes, /status.json {size / 1e6:.1f} MB, / {page_size / 1e6:.1f} MB, {args.minutes} minutes of each kind")
    print("| minutes | runs measured | lateness p50 / p99 ms | /status.json requests | /status.json p50 / p99 / max ms | / requests | / p50 / p99 / max ms |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("quiet", "reading"):
        result = results[kind]
        delta = result["delta"]
        runs = int(delta[-1][1]) if delta else 0
        lateness = f"{quantile(delta, 0.5):.1f} / {quantile(delta, 0.99):.1f}"
        if result["json"]:
            json_cell = f"{len(result['json'])} | {pick(result['json'], 0.5):.1f} / {pick(result['json'], 0.99):.1f} / {max(result['json']):.1f}"
            page_cell = f"{len(result['page'])} | {pick(result['page'], 0.5):.1f} / {pick(result['page'], 0.99):.1f} / {max(result['page']):.1f}"
        else:
            json_cell, page_cell = "0 | -", "0 | -"
        print(f"| {kind} | {runs} | {lateness} | {json_cell} | {page_cell} |")
    reading = results["reading"]
    for part, label in (("firing", f"in the first {FIRING_SECONDS} s of a minute (the firing)"), ("between", "in the rest of the minute")):
        values = reading[part]
        if values:
            print(f"/status.json requests {label}: {len(values)}, p50 / p99 / max {pick(values, 0.5):.1f} / {pick(values, 0.99):.1f} / {max(values):.1f} ms")


if __name__ == "__main__":
    main()
