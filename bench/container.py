"""SPEC 14's benchmark: the cost of one run of a flake in its own image, side by side in one run
with the engine's own floor and with the same flake on the host.

  image   `snowflake once` of a job flake whose command (`true`) runs in a container of the base
          image, through podman's API service (create, attach, start, wait, remove);
  floor   `podman run --rm IMAGE true`, the same image, the engine's own CLI;
  host    `snowflake once` of the same flake without an image;
  before  (with --before BINARY) `image` with another build, e.g. main's, to show a change.

The modes are interleaved (image, floor, host, image, ...) so a busy machine weighs on each alike.
Per run: wall time (median and p90) and CPU (mean, median).

What the CPU counts, so the comparison is fair: everything the run causes and nothing else. The
script moves itself into a cgroup of its own before it starts podman's API service, so the
service, `snowflake`, the `podman` CLI and all they start count there; with `cgroups =
"no-conmon"` (for the CLI and the service alike) conmon and the `podman container cleanup`
process that conmon starts stay in that cgroup too. So `image` pays for the service's work on its
requests, `floor` for the CLI's own start and work (it needs no service; the idle service costs
~0 meanwhile), and both for conmon, runc, netavark (the network's setup and teardown) and the
cleanup process. Not counted: the command inside the container (`true` in its own cgroup, a few
ms alike in both) and whatever else the machine does (other builds and tests, other containers).
Without cgroups (not root) it falls back to the busy time of the whole machine (/proc/stat) and
says so. The CPU by part splits it: the command's own process tree (snowflake, or the CLI with
the runc and netavark it waited for), the service (with its waited-for children), the rest
(conmon, the cleanup process, and this script's own few ms: the `host` mode shows them).

With the runner's own debug line it also prints where an `image` run's time goes (median ms from
the create request: created, attached, started, ended, removed).

    python3 bench/container.py [--runs 20] [--binary target/release/snowflake] [--before OTHER]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
CGROUP_NAME = f"snowflake-bench-{os.getpid()}"


class CpuMeter:
    """CPU seconds of this script's own cgroup (and so of all it starts), or of the whole machine."""

    def __init__(self) -> None:
        self.own: Path | None = None
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        try:
            if (v1 / "cpuacct.usage").exists():
                self.own, self.kind = v1 / CGROUP_NAME, "cgroup v1 cpuacct"
            elif v2.exists():
                self.own, self.kind = Path("/sys/fs/cgroup") / CGROUP_NAME, "cgroup v2 cpu.stat"
            else:
                self.kind = "the whole machine's busy time (/proc/stat): no cgroups"
                return
            self.own.mkdir()
            (self.own / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as error:
            self.own = None
            self.kind = f"the whole machine's busy time (/proc/stat): no cgroup of our own ({error})"

    def seconds(self) -> float:
        if self.own is None:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            idle = fields[3] + fields[4]
            return (sum(fields[:8]) - idle) / TICKS
        if (self.own / "cpuacct.usage").exists():
            return int((self.own / "cpuacct.usage").read_text()) / 1e9
        for line in (self.own / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
        return 0.0

    def close(self) -> None:
        if self.own is None:
            return
        (self.own.parent / "cgroup.procs").write_text(str(os.getpid()))
        try:
            self.own.rmdir()
        except OSError:
            pass  # a straggler still in it


def engine_config(base: str, directory: Path) -> Path:
    """The suite's podman settings, and conmon (with the cleanup process it starts) kept in the
    cgroup of whoever started the container (`cgroups = "no-conmon"`), so it is counted; both
    the CLI and the service run with it."""
    text = Path(base).read_text()
    if "[containers]" not in text:
        text = "[containers]\n" + text
    path = directory / "containers.conf"
    path.write_text(text.replace("[containers]", '[containers]\ncgroups = "no-conmon"', 1))
    return path


def service_seconds(pid: int) -> float:
    """The service's own CPU and that of the children it waited for (netavark, runc, ...)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICKS


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PHASES = ("created_ms", "attached_ms", "started_ms", "ended_ms", "removed_ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    default_binary = REPO / "target/release/snowflake"
    if not default_binary.exists():
        default_binary = REPO / "target/debug/snowflake"
    parser.add_argument("--binary", default=str(default_binary))
    parser.add_argument("--before", help="another snowflake binary, measured as mode 'before'")
    args = parser.parse_args()
    suite_config = os.environ.get("CONTAINERS_CONF", str(REPO / "scripts/containers.conf"))
    env = dict(os.environ, CONTAINERS_CONF=suite_config)
    base = subprocess.run([str(REPO / "scripts/podman-base.sh")], env=env, check=True, capture_output=True, text=True).stdout.strip()
    podman = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    meter = CpuMeter()
    phases: dict[str, list[int]] = {phase: [] for phase in PHASES}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["CONTAINERS_CONF"] = str(engine_config(suite_config, tmp))
        socket = tmp / "podman.sock"
        service = subprocess.Popen(podman + ["system", "service", "--time=0", f"unix://{socket}"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not socket.exists():
                time.sleep(0.1)
            flakes = tmp / "flakes"
            flakes.mkdir()
            common = {"flakeCronstring": "* * * * *", "flakeType": "job", "flakeCommand": "true"}
            (flakes / "image.json").write_text(json.dumps({**common, "flakeName": "bench-image", "flakeImage": base, "flakeImagePull": "never"}))
            (flakes / "host.json").write_text(json.dumps({**common, "flakeName": "bench-host"}))
            snowflake_env = dict(env, SNOWFLAKE_FLAKES=str(flakes), SNOWFLAKE_LOG_DIR=str(tmp / "logs"), SNOWFLAKE_STATE_DIR=str(tmp / "state"),
                                 SNOWFLAKE_CONTAINER_ENGINE=str(socket), AWS_REGION="us-east-1",
                                 AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9",
                                 # Only the runner's one line per container run (the phases below).
                                 SNOWFLAKE_LOG_LEVEL="warn,specialsnowflake::runner::container=debug")
            commands = {
                "image": ([args.binary, "--dry-run", "once", "bench-image"], snowflake_env),
                "floor": (podman + ["run", "--rm", base, "true"], env),
                "host": ([args.binary, "--dry-run", "once", "bench-host"], snowflake_env),
            }
            if args.before:
                commands["before"] = ([args.before, "--dry-run", "once", "bench-image"], snowflake_env)
            # One of each first, unmeasured: caches, the image's first mount.
            for command, command_env in commands.values():
                subprocess.run(command, env=command_env, check=True, capture_output=True)
            walls: dict[str, list[float]] = {name: [] for name in commands}
            cpus: dict[str, list[float]] = {name: [] for name in commands}
            # Where the CPU goes: the command's own process tree, the service, the rest (conmon,
            # the cleanup process, and this script's few ms).
            parts: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
            loads = []
            for _ in range(args.runs):
                for name, (command, command_env) in commands.items():
                    own, served = children_seconds(), service_seconds(service.pid)
                    cpu, started = meter.seconds(), time.monotonic()
                    done = subprocess.run(command, env=command_env, check=True, capture_output=True, text=True)
                    walls[name].append(time.monotonic() - started)
                    cpus[name].append(meter.seconds() - cpu)
                    own, served = children_seconds() - own, service_seconds(service.pid) - served
                    parts[name].append((own, served, cpus[name][-1] - own - served))
                    if name == "image":
                        for phase in PHASES:
                            found = re.search(rf"{phase}=(\d+)", done.stderr)
                            if found:
                                phases[phase].append(int(found.group(1)))
                loads.append(os.getloadavg()[0])
        finally:
            service.terminate()
            service.wait()
            meter.close()
    print(f"runs per mode: {args.runs}, cores: {os.cpu_count()}, load average during: {min(loads):.1f}-{max(loads):.1f}, "
          f"binary: {args.binary}")
    print(f"CPU counted: {meter.kind}" + (" of this script and all it starts: the service, snowflake, the CLI, conmon, "
                                           "the cleanup process, runc, netavark (not the command inside the container)" if meter.own else ""))
    print(f"{'mode':<8}{'wall median':>14}{'wall p90':>12}{'CPU mean':>12}{'CPU median':>12}{'wall / floor':>14}{'CPU / floor':>13}")
    floor_wall, floor_cpu = statistics.median(walls["floor"]), statistics.mean(cpus["floor"])
    for name in commands:
        wall = statistics.median(walls[name])
        p90 = sorted(walls[name])[int(0.9 * (len(walls[name]) - 1))]
        cpu = statistics.mean(cpus[name])
        print(f"{name:<8}{wall * 1000:>12.0f}ms{p90 * 1000:>10.0f}ms{cpu * 1000:>10.0f}ms{statistics.median(cpus[name]) * 1000:>10.0f}ms"
              f"{wall / floor_wall:>14.2f}{cpu / floor_cpu:>13.2f}")
    print("CPU mean by part (ms): the command's own processes / the API service / the rest (conmon, the cleanup process)")
    for name in commands:
        means = [statistics.mean(part[index] for part in parts[name]) * 1000 for index in range(3)]
        print(f"  {name:<8}{means[0]:>6.0f} /{means[1]:>5.0f} /{means[2]:>5.0f}")
    if all(phases.values()):
        print("image run, median ms from the create request: " + ", ".join(f"{phase[:-3]} {statistics.median(values):.0f}" for phase, values in phases.items()))


if __name__ == "__main__":
    main()
