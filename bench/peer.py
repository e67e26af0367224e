#!/usr/bin/env python3
"""Scrape flakes side by side with a real peer: Prometheus in agent mode (Debian's `prometheus`,
`--enable-feature=agent`), which does our job's shape (scrape, parse, write-ahead log, remote write)
where we do ours (scrape, parse, spool, PutMetricData). Run it through bench/peer.sh, which builds
the release binary, starts LocalStack and sets the AWS environment.

Both scrape the same targets in turn, one system at a time, never together:

  - a live prometheus-node-exporter (the Debian package, started here on a free port);
  - a static exposition server (in this process) holding large scrapes made from a real
    node_exporter capture (tests/fixtures/formats/prometheus/node_exporter.prom): each family's
    samples repeated with a `shard` label, so 1,000 to 100,000 series keep real names, label shapes,
    summaries and histograms.

Prometheus agent remote-writes to a local sink that reads and discards the body (its CPU is not
counted); `snowflake run` publishes for real through the AWS SDK, by default to a local PutMetricData
sink that reads, counts and discards the datums the same way (`--cloudwatch sink`), or to LocalStack
(`--cloudwatch localstack`), which stores them but on a busy two-core machine takes seconds per
1,000-datum request, so at 10,000 series a second it measures our backlog rather than our work.
Neither sink's CPU is counted.

Measured per point, over a steady window after a warm-up: the scraper's own CPU (utime + stime
from /proc, the process only), its RSS (largest and last sample, once a second), and the scrapes
it made (counted by the exposition server, per system). CPU per 1,000 series = CPU seconds /
(scrapes x series per scrape) x 1,000, where a series is a sample line of the exposition: the same
denominator for both. The load average is read at each point.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.server
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "tests/fixtures/formats/prometheus/node_exporter.prom"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(f"peer: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the workload ------------------------------------------------------------------------------
def families(text: str) -> list[tuple[list[str], list[str]]]:
    """The capture as (header lines, sample lines) per metric family, in order."""
    result: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# HELP"):
            result.append(([line], []))
        elif line.startswith("#"):
            if not result:
                result.append(([], []))
            result[-1][0].append(line)
        elif line.strip():
            if not result:
                result.append(([], []))
            result[-1][1].append(line)
    return result


SAMPLE = re.compile(r"^([^{\s]+)(\{[^}]*\})?\s+(.*)$")


def with_shard(line: str, shard: int) -> str:
    match = SAMPLE.match(line)
    if not match:
        raise SystemExit(f"peer: cannot read the capture's sample line {line!r}")
    name, labels, rest = match.groups()
    inner = labels[1:-1] if labels else ""
    inner = f'shard="{shard}",{inner}' if inner else f'shard="{shard}"'
    return f"{name}{{{inner}}} {rest}"


MAX_SERIES = 10_000  # the most flakeMaxSeries allows: no target serves more, so nothing is dropped


def exposition(series: int) -> tuple[bytes, int]:
    """An exposition of about `series` sample lines made from the real capture; the exact count."""
    blocks = families(CAPTURE.read_text())
    base = sum(len(samples) for _, samples in blocks)
    copies = max(1, min(round(series / base), MAX_SERIES // base))
    lines: list[str] = []
    for header, samples in blocks:
        lines.extend(header)
        for shard in range(copies):
            lines.extend(with_shard(sample, shard) for sample in samples)
    return ("\n".join(lines) + "\n").encode(), base * copies



def serve_in_background(handler: type) -> tuple[http.server.ThreadingHTTPServer, int]:
    """An HTTP server of `handler` on a free loopback port, serving from a thread of its own."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]

class Targets:
    """The static exposition server: /<system>/<target>/metrics, hits counted per system."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        targets = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = self.path.strip("/").split("/")
                body = targets.bodies.get(parts[1]) if len(parts) == 3 else None
                if body is None:
                    self.send_error(404)
                    return
                with targets.lock:
                    targets.hits[parts[0]] = targets.hits.get(parts[0], 0) + 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server, self.port = serve_in_background(Handler)

    def hits_of(self, system: str) -> int:
        with self.lock:
            return self.hits.get(system, 0)


class CloudWatchSink:
    """A PutMetricData receiver for `--cloudwatch sink`: reads each request (the AWS SDK's CBOR
    body, gzipped above 10 KB), counts its datums and answers 200 like CloudWatch, doing nothing
    with them: the same treatment as the peer's remote-write sink. LocalStack (the default when
    asked for `--cloudwatch localstack`) stores every datum and, on a busy two-core machine, takes
    seconds per 1,000-datum request, so at 10,000 series a second the daemon's backlog, not its
    work, would be measured."""

    def __init__(self) -> None:
        self.requests = 0
        self.datums = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if (self.headers.get("Content-Encoding") or "").strip() == "gzip":
                    body = gzip.decompress(body)
                if b"PutMetricData" not in self.path.encode():
                    self.send_error(400, f"not PutMetricData: {self.path}")
                    return
                with sink.lock:
                    sink.requests += 1
                    # Each datum is a CBOR map with the text key MetricName.
                    sink.datums += body.count(b"jMetricName")
                self.send_response(200)
                self.send_header("smithy-protocol", "rpc-v2-cbor")
                self.send_header("Content-Type", "application/cbor")
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"\xa0")

            def log_message(self, *args) -> None:
                pass

        self.server, self.port = serve_in_background(Handler)


class Sink:
    """Prometheus' remote-write receiver: reads each body and answers 204 (Prometheus retries on 5xx)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                sink.requests += 1
                sink.bytes += length
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server, self.port = serve_in_background(Handler)


# -- measuring a process -----------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the systems -------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, targets: Targets, sink: Sink, node_port: int,
                 cloudwatch: CloudWatchSink | None):
        self.args = args
        self.snowflake = str(Path(args.snowflake).resolve())
        self.before = str(Path(args.before).resolve()) if args.before else None
        self.work = Path(args.work)
        self.targets = targets
        self.sink = sink
        self.node_port = node_port
        self.cloudwatch = cloudwatch
        self.localstack_log = None if cloudwatch else Path(os.environ["SNOWFLAKE_LOCALSTACK_LOG"])
        self.counter = 0

    def fresh(self, name: str) -> Path:
        self.counter += 1
        path = self.work / f"{name}-{self.counter}"
        path.mkdir(parents=True)
        return path

    def puts(self) -> int:
        if self.cloudwatch is not None:
            return self.cloudwatch.requests
        return self.localstack_log.read_text(errors="replace").count("AWS cloudwatch.PutMetricData => 200")

    def datums(self) -> int | None:
        return self.cloudwatch.datums if self.cloudwatch is not None else None

    def urls(self, system: str, point: dict) -> list[str]:
        if point["live"]:
            return [f"http://127.0.0.1:{self.node_port}/metrics"]
        return [f"http://127.0.0.1:{self.targets.port}/{system}/{point['key']}/metrics" for _ in range(point["targets"])]

    def prometheus(self, point: dict) -> tuple[subprocess.Popen, Path]:
        root = self.fresh("prometheus")
        interval = f"{point['interval']}s"
        # Each target its own job, so that the same URL listed 50 times is 50 targets (Prometheus
        # drops identical targets within one job).
        jobs = [
            {"job_name": f"t{i}", "scrape_interval": interval, "scrape_timeout": interval,
             "static_configs": [{"targets": [url.split("/")[2]]}], "metrics_path": "/" + url.split("/", 3)[3]}
            for i, url in enumerate(self.urls("prometheus", point))
        ]
        config = {"global": {"scrape_interval": interval},
                  "scrape_configs": jobs,
                  "remote_write": [{"url": f"http://127.0.0.1:{self.sink.port}/write"}]}
        (root / "prometheus.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
        argv = ["prometheus", "--enable-feature=agent", f"--config.file={root / 'prometheus.yml'}",
                f"--storage.agent.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{free_port()}",
                "--log.level=warn"]
        out = open(root / "out.log", "w")
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), root

    def snowflake_run(self, point: dict, system: str, binary: str) -> tuple[subprocess.Popen, Path]:
        root = self.fresh("snowflake")
        (root / "flakes").mkdir()
        for i, url in enumerate(self.urls(system, point)):
            flake = {"flakeName": f"t{i:03d}", "flakeType": "scrape", "flakeUrl": url,
                     "flakeCronstring": f"@every {point['interval']}s", "flakeMaxSeries": MAX_SERIES,
                     "flakeMetricNamespace": f"Bench/Peer{self.counter}"}
            (root / "flakes" / f"t{i:03d}.json").write_text(json.dumps(flake))
        env = dict(os.environ)
        if self.cloudwatch is not None:
            env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.cloudwatch.port}", AWS_REGION="us-east-1",
                       AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
        env.update(SNOWFLAKE_FLAKES=str(root / "flakes"), SNOWFLAKE_LOG_DIR=str(root / "logs"),
                   SNOWFLAKE_STATE_DIR=str(root / "state"), SNOWFLAKE_LOG_LEVEL="warn",
                   SNOWFLAKE_LISTEN="off", SNOWFLAKE_TIMEZONE="UTC")
        out = open(root / "out.log", "w")
        return subprocess.Popen([binary, "run"], env=env, stdout=out, stderr=subprocess.STDOUT), root

    def measure(self, system: str, point: dict) -> dict:
        sink_before = self.sink.requests
        if system == "prometheus":
            process, root = self.prometheus(point)
        else:
            process, root = self.snowflake_run(point, system, self.snowflake if system == "snowflake" else self.before)
        try:
            time.sleep(point["warmup"])
            if process.poll() is not None:
                raise SystemExit(f"peer: {system} exited early:\n{(root / 'out.log').read_text()[-2000:]}")
            hits_before = self.live_hits() if point["live"] else self.targets.hits_of(system)
            cpu_before = cpu_seconds(process.pid)
            puts_before, datums_before = self.puts(), self.datums()
            began = time.monotonic()
            rss: list[float] = []
            while time.monotonic() - began < point["window"]:
                rss.append(rss_mb(process.pid))
                time.sleep(1)
            cpu = cpu_seconds(process.pid) - cpu_before
            puts, datums = self.puts() - puts_before, self.datums()
            hits_after = self.live_hits() if point["live"] else self.targets.hits_of(system)
            loadavg = load_average()
        finally:
            stop(process)
        scrapes = hits_after - hits_before
        if scrapes <= 0:
            raise SystemExit(f"peer: {system} made no scrape at {point['label']}; see {root / 'out.log'}")
        series = point["series_per_target"]
        delivered = None if datums is None else datums - datums_before
        return {"cpu": cpu, "delivered": delivered, "scrapes": scrapes, "series": series,
                "cpu_us_per_series": cpu / (scrapes * series) * 1e6,
                "rss_max": max(rss), "rss_last": rss[-1], "load": loadavg,
                "puts": puts, "remote_writes": self.sink.requests - sink_before}

    def live_hits(self) -> int:
        """The live exporter counts its own scrapes in promhttp_metric_handler_requests_total."""
        with socket.create_connection(("127.0.0.1", self.node_port)) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        match = re.search(rb'promhttp_metric_handler_requests_total\{code="200"\} (\d+)', data)
        return int(match.group(1)) - 1 if match else 0  # this request counted itself


# -- the plan ----------------------------------------------------------------------------------
def points(quick: bool, live_series: int) -> list[dict]:
    """(targets, total series, interval) points: series scaling, target scaling, interval scaling."""
    window = {1: 20, 10: 40, 60: 120} if not quick else {1: 10, 10: 30, 60: 120}
    plan = [
        ("live node_exporter", 1, live_series, 1, True),
        ("series", 1, 1_000, 1, False),
        ("series", 10, 1_000, 10, False),
        ("series", 10, 10_000, 10, False),
        ("series", 10, 100_000, 10, False),
        ("targets", 1, 10_000, 10, False),
        ("targets", 50, 10_000, 10, False),
        ("targets", 50, 100_000, 10, False),
        ("interval", 10, 10_000, 1, False),
        ("interval", 10, 10_000, 60, False),
    ]
    if quick:
        plan = [p for p in plan if not (p[2] == 100_000 or p[3] == 60)]
    result = []
    for axis, targets, total, interval, live in plan:
        result.append({"axis": axis, "targets": targets, "series_total": total, "interval": interval, "live": live,
                       "warmup": interval * 2 + 3, "window": window[interval],
                       "label": f"{axis}: {targets} target(s), {total:,} series, every {interval} s"})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snowflake", required=True, help="the release binary")
    parser.add_argument("--work", required=True, help="a scratch directory")
    parser.add_argument("--quick", action="store_true", help="shorter windows, no 100,000-series or 60 s point")
    parser.add_argument("--cycles", type=int, default=1, help="measure each point this many times, interleaved")
    parser.add_argument("--output", required=True, help="where the Markdown report goes")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="measure only the points whose label contains TEXT (repeatable), e.g. 'live' or '10 target(s), 10,000'")
    parser.add_argument("--before", metavar="BINARY",
                        help="another build of snowflake, measured in the same cycles: the change's effect side by side")
    parser.add_argument("--cloudwatch", choices=("sink", "localstack"), default="sink",
                        help="where our PutMetricData goes: a local sink that counts and discards (default), or LocalStack")
    args = parser.parse_args()

    targets, sink = Targets(), Sink()
    node_port = free_port()
    node = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{node_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        bench = Bench(args, targets, sink, node_port, CloudWatchSink() if args.cloudwatch == "sink" else None)
        live_body = subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{node_port}/metrics"], capture_output=True,
                                   check=True).stdout.decode()
        live_series = sum(1 for line in live_body.splitlines() if line and not line.startswith("#"))
        rows = []
        chosen = [p for p in points(args.quick, live_series) if not args.only or any(t in p["label"] for t in args.only)]
        if not chosen:
            raise SystemExit(f"peer: no point's label contains any of {args.only}")
        systems = ("prometheus", "snowflake") + (("before",) if args.before else ())
        for point in chosen:
            if point["live"]:
                point["series_per_target"] = live_series
                point["key"] = "live"
            else:
                per_target = math.ceil(point["series_total"] / point["targets"])
                body, exact = exposition(per_target)
                point["key"] = f"{point['axis']}-{point['targets']}-{point['series_total']}-{point['interval']}"
                targets.bodies[point["key"]] = body
                point["series_per_target"] = exact
            results = {system: [] for system in systems}
            for _ in range(args.cycles):
                for system in systems:
                    log(f"{point['label']}: {system}")
                    results[system].append(bench.measure(system, point))
                    log(f"  {system}: {results[system][-1]['cpu_us_per_series']:.2f} µs/series, {results[system][-1]['rss_max']:.0f} MB")
            rows.append((point, results))
            log(f"{point['label']}: " + ", ".join(
                f"{system} {median(results[system], 'cpu_us_per_series'):.2f} µs/series {median(results[system], 'rss_max'):.0f} MB"
                for system in systems))
        Path(args.output).write_text(report(rows, args))
    finally:
        stop(node)


def median(results: list[dict], key: str) -> float:
    values = sorted(r[key] for r in results)
    return values[len(values) // 2]


def report(rows: list, args: argparse.Namespace) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    target = ("a local PutMetricData sink (counts and discards, like the peer's)" if args.cloudwatch == "sink"
              else "LocalStack")
    flags = "".join(f" {flag}" for flag, on in (("--quick", args.quick), (f"--cycles {args.cycles}", args.cycles > 1),
                                                  ("--cloudwatch localstack", args.cloudwatch == "localstack")) if on)
    lines = [
        f"Measured {when} by `bench/peer.sh{flags}` ({args.cycles} cycle(s) a point, median shown), "
        f"{os.cpu_count()} CPUs; peer: {version}, agent mode, remote write to a local sink; SpecialSnowflake: "
        f"`snowflake run` (release) with one scrape flake per target, publishing through the AWS SDK to {target}. "
        "CPU ms per 1,000 series = µs per series.",
        "",
        "| point | series per scrape | Prometheus agent CPU ms per 1,000 series | SpecialSnowflake CPU ms per 1,000 series | "
        "CPU ratio (ours / peer) | peer RSS MB (max) | our RSS MB (max) | RSS ratio | load average (peer; ours) | "
        "our PutMetricData calls (datums) in the window |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for point, results in rows:
        peer, ours = results["prometheus"], results["snowflake"]
        p_cpu, o_cpu = median(peer, "cpu_us_per_series"), median(ours, "cpu_us_per_series")
        p_rss, o_rss = median(peer, "rss_max"), median(ours, "rss_max")
        delivered = ours[len(ours) // 2]["delivered"]
        lines.append(
            f"| {point['axis']}: {point['targets']} x {point['series_per_target']:,} series, every {point['interval']} s | "
            f"{point['series_per_target']:,} | {p_cpu:.2f} | {o_cpu:.2f} | {o_cpu / p_cpu:.2f}x | "
            f"{p_rss:.0f} | {o_rss:.0f} | {o_rss / p_rss:.2f}x | {peer[-1]['load']}; {ours[-1]['load']} | "
            f"{median(ours, 'puts')}{'' if delivered is None else f' ({delivered:,})'} |")
    if args.before:
        lines += ["", f"The change side by side, same cycles: `--before {args.before}` against `--snowflake {args.snowflake}`.", "",
                  "| point | before: CPU µs per series | after | CPU after / before | before: RSS MB (max) | after | RSS after / before |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for point, results in rows:
            b_cpu, a_cpu = median(results["before"], "cpu_us_per_series"), median(results["snowflake"], "cpu_us_per_series")
            b_rss, a_rss = median(results["before"], "rss_max"), median(results["snowflake"], "rss_max")
            lines.append(f"| {point['label']} | {b_cpu:.2f} | {a_cpu:.2f} | {a_cpu / b_cpu:.2f}x | {b_rss:.0f} | {a_rss:.0f} | "
                         f"{a_rss / b_rss:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
