"""SPEC 14's benchmark: the cost of one run of a flake in its own image, side by side in one run
with the engine's own floor and with the same flake on the host.

  image   `snowflake once` of a job flake whose command (`true`) runs in a container of the base
          image, through podman's API service (create, attach, start, wait, remove);
  floor   `podman run --rm IMAGE true`, the same image, the engine's own CLI;
  host    `snowflake once` of the same flake without an image.

The three are interleaved (image, floor, host, image, ...) so a busy machine weighs on each
alike. Per run: wall time (median and p90), and CPU of the whole machine (busy jiffies of
/proc/stat, everything the run caused: our process, the service, conmon, runc), mean. The load
average is printed next to them.

    python3 bench/container.py [--runs 20] [--binary target/debug/snowflake]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--binary", default=str(REPO / "target/debug/snowflake"))
    args = parser.parse_args()
    env = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", str(REPO / "scripts/containers.conf")))
    base = subprocess.run([str(REPO / "scripts/podman-base.sh")], env=env, check=True, capture_output=True, text=True).stdout.strip()
    podman = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
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
                                 AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9")
            commands = {
                "image": ([args.binary, "--dry-run", "once", "bench-image"], snowflake_env),
                "floor": (podman + ["run", "--rm", base, "true"], env),
                "host": ([args.binary, "--dry-run", "once", "bench-host"], snowflake_env),
            }
            # One of each first, unmeasured: caches, the image's first mount.
            for command, command_env in commands.values():
                subprocess.run(command, env=command_env, check=True, capture_output=True)
            walls = {name: [] for name in commands}
            cpus = {name: [] for name in commands}
            loads = []
            for _ in range(args.runs):
                for name, (command, command_env) in commands.items():
                    cpu, started = busy_seconds(), time.monotonic()
                    subprocess.run(command, env=command_env, check=True, capture_output=True)
                    walls[name].append(time.monotonic() - started)
                    cpus[name].append(busy_seconds() - cpu)
                loads.append(os.getloadavg()[0])
        finally:
            service.terminate()
            service.wait()
    print(f"runs per mode: {args.runs}, cores: {os.cpu_count()}, load average during: {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'mode':<8}{'wall median':>14}{'wall p90':>12}{'CPU mean':>12}{'wall / floor':>14}{'CPU / floor':>13}")
    floor_wall, floor_cpu = statistics.median(walls["floor"]), statistics.mean(cpus["floor"])
    for name in commands:
        wall = statistics.median(walls[name])
        p90 = sorted(walls[name])[int(0.9 * (len(walls[name]) - 1))]
        cpu = statistics.mean(cpus[name])
        print(f"{name:<8}{wall * 1000:>12.0f}ms{p90 * 1000:>10.0f}ms{cpu * 1000:>10.0f}ms{wall / floor_wall:>14.2f}{cpu / floor_cpu:>13.2f}")


if __name__ == "__main__":
    main()
