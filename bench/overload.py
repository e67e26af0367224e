#!/usr/bin/env python3
"""Overload: thousands of long-running flakes at once, their timeouts and /healthz.

Two scenarios (--mode):

- `steady`: N job flakes start at once (`@reboot`) and keep running (`sleep 3600`); after
  --warmup seconds, while all N run, 20 probe flakes (`@every 5s`, `sleep 600`, flakeTimeout 2 s)
  time out again and again. This is "N long-running flakes": what the daemon adds per timeout
  and per request while it carries N runs.
- `wave`: N job flakes run `sleep 600` with a short flakeTimeout, all due at the same instant
  every --interval: N spawns and N timeouts at once. On a small machine this measures the
  machine (starting N processes) as much as the daemon.

Both add one healthy 1-second flake, and measure for --duration seconds:

- how late each timeout is enforced, two ways: (1) from the command's own process: the kernel's
  start time of its shell (/proc/<pid>/stat) to the moment its SIGTERM trap ran, minus the
  flakeTimeout: the daemon's enforcement, without the time the machine took to start the process;
  (2) a timed-out run's logged duration minus its flakeTimeout (the duration runs from before the
  spawn to the end of its output, so in a wave it also holds the queue of 5,000 spawns);
- how many times the healthy 1-second flake ran (of the seconds measured);
- how long GET /healthz takes, polled every 100 ms (a failed or slower-than-2 s request counts
  as 2 s);
- the daemon's CPU time and its peak RSS.

    python3 bench/overload.py --snowflake target/release/snowflake --flakes 5000

Prints one Markdown table row per run (see docs/benchmarks.md, "Overload"). No AWS is needed.
"""

import argparse
import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signal_lateness(path, measure_from, timeout):
    """Seconds from each timed-out shell's start to its SIGTERM, minus the timeout."""
    if not os.path.exists(path):
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    late = []
    with open(path) as f:
        for line in f:
            stat, _, signalled_ns = line.strip().rpartition("|")
            fields = stat.rpartition(")")[2].split()
            started = boot + int(fields[19]) / ticks  # field 22 of stat; fields[0] is field 3
            if started >= measure_from - 1:
                late.append(int(signalled_ns) / 1e9 - started - timeout)
    return late


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snowflake", required=True, help="the snowflake binary")
    parser.add_argument("--flakes", type=int, default=5000)
    parser.add_argument("--timeout", type=int, default=5, help="flakeTimeout of the long-running flakes, seconds")
    parser.add_argument("--interval", type=int, default=20, help="they fire every this many seconds")
    parser.add_argument("--duration", type=int, default=65, help="measure this long, seconds")
    parser.add_argument("--max-concurrent-runs", type=int, default=None, help="default: flakes + 16, so all run at once")
    parser.add_argument("--label", default="", help="first column of the printed row")
    parser.add_argument("--mode", choices=["steady", "wave"], default="steady")
    parser.add_argument("--warmup", type=int, default=40, help="steady: seconds for the N runs to start before measuring")
    args = parser.parse_args()
    # The daemon runs in a directory of its own: a relative path must be resolved first.
    args.snowflake = os.path.abspath(args.snowflake)

    work = tempfile.mkdtemp(prefix="snowflake-overload.")
    try:
        flakes = os.path.join(work, "flakes")
        logs = os.path.join(work, "logs")
        os.makedirs(flakes)
        os.makedirs(logs)
        signals = os.path.join(work, "signals.txt")
        # The shell records its own start (field 22 of its stat, in clock ticks since boot) and when
        # the SIGTERM reached it; `sleep` in the background so the trap runs at once.
        timed_command = (f"trap 'read -r stat < /proc/$$/stat; echo \"$stat|$(date +%s%N)\" >> {signals}; exit 143' TERM; "
                         "sleep 600 & wait")
        for index in range(args.flakes):
            if args.mode == "wave":
                flake = {"flakeName": f"long{index}", "flakeCronstring": f"@every {args.interval}s", "flakeCommand": timed_command,
                         "flakeType": "job", "flakeTimeout": args.timeout}
            else:
                flake = {"flakeName": f"long{index}", "flakeCronstring": "@reboot", "flakeCommand": "sleep 3600",
                         "flakeType": "job", "flakeTimeout": 3600}
            with open(os.path.join(flakes, f"long{index}.json"), "w") as f:
                json.dump(flake, f)
        if args.mode == "steady":
            args.timeout = 2
            for index in range(20):
                flake = {"flakeName": f"probe{index}", "flakeCronstring": "@every 5s", "flakeCommand": timed_command,
                         "flakeType": "job", "flakeTimeout": args.timeout}
                with open(os.path.join(flakes, f"probe{index}.json"), "w") as f:
                    json.dump(flake, f)
        with open(os.path.join(flakes, "healthy.json"), "w") as f:
            json.dump({"flakeName": "healthy", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeType": "job"}, f)

        port = free_port()
        concurrent = args.max_concurrent_runs or args.flakes + 16
        env = dict(os.environ, SNOWFLAKE_TIMEZONE="UTC", AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9")
        daemon_log = open(os.path.join(work, "daemon.log"), "w")
        daemon = subprocess.Popen(
            [args.snowflake, "--dry-run", "--flakes", flakes, "--log-dir", logs, "--state-dir", os.path.join(work, "state"),
             "--creds", os.path.join(work, "creds.json"), "--max-concurrent-runs", str(concurrent), "--log-level", "warn",
             "run", "--listen", f"127.0.0.1:{port}"],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=daemon_log)
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or daemon.poll() is not None:
                    sys.exit(f"the daemon did not come up; log in {work}/daemon.log")
                time.sleep(0.2)

        if args.mode == "steady":
            time.sleep(args.warmup)
        measure_from = time.time()
        health = []
        stop = threading.Event()

        def poll_health():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    health.append(time.monotonic() - started)
                except OSError:
                    health.append(2.0)
                time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

        poller = threading.Thread(target=poll_health, daemon=True)
        cpu_before, wall_before = cpu_seconds(daemon.pid), time.monotonic()
        poller.start()
        peak_rss = 0.0
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            peak_rss = max(peak_rss, rss_mib(daemon.pid))
            time.sleep(0.5)
        stop.set()
        poller.join()
        cpu = cpu_seconds(daemon.pid) - cpu_before
        wall = time.monotonic() - wall_before
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()

        late = []
        duration_pattern = re.compile(r" timeout scheduled=(\S+) duration=(\d+)ms")
        timed = "long" if args.mode == "wave" else "probe"
        for name in os.listdir(logs):
            if not name.startswith(timed):
                continue
            with open(os.path.join(logs, name)) as f:
                for line in f:
                    match = duration_pattern.search(line)
                    scheduled = match and calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ"))
                    if match and scheduled >= measure_from - 1:
                        late.append(int(match.group(2)) / 1000 - args.timeout)
        signalled = signal_lateness(signals, measure_from, args.timeout)
        healthy_runs = 0
        if os.path.exists(os.path.join(logs, "healthy.log")):
            with open(os.path.join(logs, "healthy.log")) as f:
                for line in f:
                    match = re.search(r" ok scheduled=(\S+)", line)
                    if match and calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ")) >= measure_from - 1:
                        healthy_runs += 1

        daemon_log.close()
        with open(os.path.join(work, "daemon.log")) as f:
            warnings = [line.rstrip() for line in f if " WARN " in line or " ERROR " in line]
        for line in warnings[:3] + (["..."] if len(warnings) > 3 else []):
            print(f"daemon log: {line[:300]}", file=sys.stderr)
        print(f"daemon log: {len(warnings)} warnings and errors", file=sys.stderr)

        ms = lambda seconds: f"{seconds * 1000:.0f}"
        print(f"| {args.label} | {args.mode} | {args.flakes} | {len(late)} | "
              f"{ms(percentile(signalled, 0.5))} | {ms(percentile(signalled, 0.99))} | {ms(max(signalled) if signalled else float('nan'))} | "
              f"{ms(percentile(late, 0.5))} | {ms(percentile(late, 0.99))} | "
              f"{ms(max(late) if late else float('nan'))} | {ms(percentile(health, 0.5))} | {ms(percentile(health, 0.99))} | "
              f"{ms(max(health) if health else float('nan'))} | {healthy_runs}/{int(wall)} | {100 * cpu / wall:.0f}% | {peak_rss:.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
