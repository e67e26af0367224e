"""Issue 18's measurements, runnable on their own in about 12 minutes with `--cycles 2`:

  splay  the daemon with 1,000 `* * * * *` flakes, without and with `--splay 20s`: lateness
         against each flake's planned start, the largest CPU seconds in any one-second window,
         PutMetricData calls per firing;
  exec   CPU per 1,000 runs of `date +%s%N` through `snowflake once`, with and without direct
         starts, against the floors (xargs running `sh -c CMD`, and xargs running the command);
  scale  the daemon with 10,000 flakes: idle RSS, one firing's CPU and lateness against the
         floors, and the same for a baseline binary (`--baseline`) in the same run.

Every ratio is against a floor or baseline measured in the same run, so a busy machine moves
both sides; the load average during each measurement is recorded next to it.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import time
from pathlib import Path

CORES = os.cpu_count() or 1
WORKLOAD = "date +%s%N"
SPLAY = 20.0


def fnv1a(*parts: str) -> int:
    """src/daemon/splay.rs's stable hash: FNV-1a 64 over each part followed by a zero byte."""
    value = 0xCBF29CE484222325
    for part in parts:
        for byte in part.encode() + b"\0":
            value = ((value ^ byte) * 0x100000001B3) % (1 << 64)
    return value


def planned_offset_ms(flake: str, splay_s: float) -> float:
    window = int(min(splay_s, 60.0) * 1000)
    return float(fnv1a(socket.gethostname(), flake) % window) if window else 0.0


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def quantiles(values: list) -> dict:
    values = sorted(values)
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "count": 0}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {"p50": pick(0.5), "p99": pick(0.99), "max": values[-1], "count": len(values)}


class Focused:
    def __init__(self, bench, helpers, baseline: str | None):
        self.bench = bench
        self.h = helpers  # bench.py's module: free_port, http_get, metric, proc_cpu, proc_status, ...
        self.baseline = str(Path(baseline).resolve()) if baseline else None

    # -- one-shot CPU per 1,000 runs -----------------------------------------------------------
    def floor_shell(self, n: int) -> dict:
        root = self.bench.fresh("floor-shell")
        (root / "commands").write_text(f"{WORKLOAD}\n" * n)
        return self.bench.measured(["xargs", "-P", str(CORES), "-I{}", "sh", "-c", "{}"], stdin_path=root / "commands")

    def floor_direct(self, n: int) -> dict:
        root = self.bench.fresh("floor-direct")
        (root / "commands").write_text("+%s%N\n" * n)
        return self.bench.measured(["xargs", "-P", str(CORES), "-n", "1", "date"], stdin_path=root / "commands")

    def once(self, binary: str, n: int, extra: tuple = ()) -> dict:
        root = self.bench.fresh("once")
        self.bench.write_flakes(root / "flakes", n, "* * * * *")
        before = self.bench.puts()
        result = self.bench.measured([binary, *extra, "once", "--publish-timeout", "300s"], env=self.bench.snowflake_env(root), output=root / "out")
        summary = (root / "out").read_text().strip().splitlines()[-1]
        assert summary.startswith(f"published: {n} of {n}"), summary
        return {**result, "puts": self.bench.puts() - before}

    def exec_section(self, n: int, runs: int) -> list:
        systems = [
            ("floor: xargs -P %d, sh -c CMD" % CORES, self.floor_shell),
            ("floor: xargs -P %d, CMD directly" % CORES, self.floor_direct),
            ("snowflake once (direct start)", lambda n: self.once(self.bench.snowflake, n)),
            ("snowflake once --no-direct-exec", lambda n: self.once(self.bench.snowflake, n, ("--no-direct-exec",))),
        ]
        if self.baseline:
            systems.append(("baseline: snowflake once (main)", lambda n: self.once(self.baseline, n)))
        rows = []
        # Interleaved, so a change in the machine's load touches every system alike.
        results = {name: [] for name, _ in systems}
        loads = []
        for _ in range(runs):
            for name, system in systems:
                self.bench_log(f"exec: {name}, N={n}")
                loads.append(load_average())
                results[name].append(system(n))
        for name, _ in systems:
            rows.append({"name": name, "runs": results[name]})
        return [{"n": n, "rows": rows, "load": (min(loads), max(loads))}]

    # -- the daemon over scheduled minutes -----------------------------------------------------
    def daemon(self, binary: str, n: int, cycles: int, splay_s: float = 0.0, min_lead: float = 8) -> dict:
        bench, h = self.bench, self.h
        root = bench.fresh("daemon")
        bench.write_flakes(root / "flakes", n, "* * * * *")
        port = h.free_port()
        run_flags = ["--splay", f"{splay_s:g}s"] if splay_s else []
        output = open(root / "daemon.log", "w")
        process = subprocess.Popen([binary, "run", "--listen", f"127.0.0.1:{port}", *run_flags], env=bench.snowflake_env(root),
                                   stdout=output, stderr=subprocess.STDOUT)
        cycles_out = []
        try:
            h.wait_until(lambda: h.http_get(port, "/healthz") == 200, 120, "the daemon to start")
            time.sleep(3)
            idle_rss = h.proc_status(process.pid)["VmRSS"]
            for _ in range(cycles):
                boundary = h.next_boundary(min_lead=min_lead)
                h.sleep_until(boundary - 2)
                load = load_average()
                puts_before = bench.puts()
                published_before = h.metric(port, "snowflake_datapoints_published_total")
                samples = [(time.time(), h.proc_cpu(process.pid))]
                next_poll = time.time() + 0.5
                deadline = time.time() + 240
                while True:
                    time.sleep(0.1)
                    samples.append((time.time(), h.proc_cpu(process.pid)))
                    if time.time() >= next_poll:
                        next_poll = time.time() + 0.5
                        if h.metric(port, "snowflake_datapoints_published_total") >= published_before + n:
                            break
                    if time.time() > deadline:
                        raise SystemExit(f"gave up waiting for {n} datapoints")
                wall = time.time() - boundary
                cycles_out.append({"wall": wall, "cpu": samples[-1][1] - samples[0][1], "burst": burst(samples),
                                   "puts": bench.puts() - puts_before, "load": load})
            time.sleep(5)
            status = h.proc_status(process.pid)
        finally:
            process.terminate()
            process.wait(60)
            output.close()
        return {"cycles": cycles_out, "idle_rss": idle_rss, "peak_rss": status["VmHWM"],
                "lateness": planned_lateness(root / "logs", splay_s)}

    def splay_section(self, n: int, cycles: int) -> list:
        rows = []
        for splay_s in (0.0, SPLAY):
            self.bench_log(f"splay: daemon, N={n}, --splay {splay_s:g}s, {cycles} minutes")
            rows.append({"splay": splay_s, **self.daemon(self.bench.snowflake, n, cycles, splay_s)})
        return rows

    def scale_section(self, n: int) -> dict:
        self.bench_log(f"scale: floors at N={n}")
        floors = {"shell": self.floor_shell(n), "direct": self.floor_direct(n), "lateness": self.bench.floor_lateness(n),
                  "load": load_average()}
        systems = [("this build", self.bench.snowflake)] + ([("baseline (main)", self.baseline)] if self.baseline else [])
        daemons = {}
        for name, binary in systems:
            self.bench_log(f"scale: daemon {name}, N={n}")
            daemons[name] = self.daemon(binary, n, 1, min_lead=25)
        return {"n": n, "floors": floors, "daemons": daemons}

    def bench_log(self, message: str) -> None:
        self.h.log(message)


def loads(cycles: list) -> str:
    return ", ".join("%.1f" % cycle["load"] for cycle in cycles)


def burst(samples: list) -> float:
    """The most CPU seconds spent in any one-second window of the samples."""
    best, start = 0.0, 0
    for end in range(len(samples)):
        while samples[end][0] - samples[start][0] > 1.0:
            start += 1
        best = max(best, samples[end][1] - samples[start][1])
    return best


def planned_lateness(logs: Path, splay_s: float) -> dict:
    """Command start (its own clock) minus its planned start: the scheduled time plus the flake's
    splay offset, as the daemon computes it."""
    import datetime as dt
    import re
    values = []
    for path in logs.glob("*.log"):
        offset = planned_offset_ms(path.stem, splay_s)
        for line in path.read_text().splitlines():
            scheduled = re.search(r"scheduled=(\S+)", line)
            value = re.search(r"value=(\d+)", line)
            if " ok " in line and scheduled and value:
                scheduled_ms = dt.datetime.fromisoformat(scheduled.group(1).replace("Z", "+00:00")).timestamp() * 1000
                values.append(int(value.group(1)) / 1e6 - scheduled_ms - offset)
    result = quantiles(values)
    result["min"] = min(values) if values else float("nan")
    return result


# -- the report ---------------------------------------------------------------------------------
def report(args, started, exec_rows, splay_rows, scale) -> str:
    median = lambda runs, key: statistics.median(run[key] for run in runs)
    spread = lambda values, fmt="{:.2f}": f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"
    lines = []
    add = lines.append
    add("## Splay, direct starts and 10,000 flakes (issue 18)\n")
    add(f"Generated on {started:%Y-%m-%d %H:%M} UTC by `bench/run.sh --sections {args.sections}"
        + (f" --baseline {args.baseline}" if args.baseline else "") + f" --cycles {args.cycles}`, in one run, "
        f"{CORES} cores. Every ratio is against a floor or baseline measured in the same run; the 1-minute load average "
        "at each measurement is given, because the machine may be shared.\n")
    if exec_rows:
        for block in exec_rows:
            n = block["n"]
            floor_shell = median(block["rows"][0]["runs"], "cpu")
            floor_direct = median(block["rows"][1]["runs"], "cpu")
            add(f"### CPU per 1,000 runs: `{WORKLOAD}`, N = {n}, {len(block['rows'][0]['runs'])} runs each, interleaved "
                f"(load average {block['load'][0]:.1f}–{block['load'][1]:.1f})\n")
            add("| system | CPU s | CPU s per 1,000 runs | vs `sh -c` floor | vs direct floor | wall s | PutMetricData calls |")
            add("|---|---:|---:|---:|---:|---:|---:|")
            for row in block["rows"]:
                cpu = median(row["runs"], "cpu")
                puts = f"{median(row['runs'], 'puts'):.0f}" if "puts" in row["runs"][0] else "0"
                add(f"| {row['name']} | {spread([r['cpu'] for r in row['runs']])} | {cpu / n * 1000:.2f} | {cpu / floor_shell:.2f}× | "
                    f"{cpu / floor_direct:.2f}× | {spread([r['wall'] for r in row['runs']])} | {puts} |")
            add("")
    if splay_rows:
        add(f"### Splay: the daemon with {args.splay_n:,} flakes on `* * * * *`, {args.cycles} minutes each\n")
        add("Lateness is each command's start (its own clock) minus its planned start: the scheduled minute plus its "
            "splay offset (recomputed from the host and flake names as the daemon does). CPU burst is the most CPU "
            "seconds the daemon and its commands used in any one-second window.\n")
        add("| --splay | lateness p50 / p99 / max ms | earliest ms | CPU s per firing | CPU burst s in 1 s | PutMetricData calls per firing | wall s | idle RSS MB | load avg |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for row in splay_rows:
            lat, cycles = row["lateness"], row["cycles"]
            add(f"| {row['splay']:g}s | {lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} | {lat['min']:.1f} | "
                f"{spread([c['cpu'] for c in cycles])} | {spread([c['burst'] for c in cycles])} | "
                f"{spread([c['puts'] for c in cycles], '{:.0f}')} | {spread([c['wall'] for c in cycles])} | {row['idle_rss']:.1f} | "
                f"{loads(cycles)} |")
        add("")
    if scale:
        n, floors = scale["n"], scale["floors"]
        add(f"### {n:,} flakes: one scheduled minute, against the floors and the baseline\n")
        add(f"Floors in the same run (load average {floors['load']:.1f}): `xargs -P {CORES} sh -c CMD` "
            f"{floors['shell']['cpu']:.2f} CPU s, `xargs -P {CORES} CMD` {floors['direct']['cpu']:.2f} CPU s; `xargs -P {n}` "
            f"starting all at once: lateness p50 / p99 / max {floors['lateness']['p50']:.0f} / {floors['lateness']['p99']:.0f} / "
            f"{floors['lateness']['max']:.0f} ms.\n")
        add("| daemon | CPU s | vs `sh -c` floor | vs direct floor | lateness p50 / p99 / max ms | p99 vs floor | PutMetricData calls | wall s | idle RSS MB | peak RSS MB | load avg |")
        add("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for name, d in scale["daemons"].items():
            c, lat = d["cycles"][0], d["lateness"]
            add(f"| {name} | {c['cpu']:.2f} | {c['cpu'] / floors['shell']['cpu']:.2f}× | {c['cpu'] / floors['direct']['cpu']:.2f}× | "
                f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f} | {lat['p99'] / floors['lateness']['p99']:.2f}× | "
                f"{c['puts']:.0f} | {c['wall']:.1f} | {d['idle_rss']:.1f} | {d['peak_rss']:.1f} | {c['load']:.1f} |")
        add("")
    return "\n".join(lines) + "\n"
