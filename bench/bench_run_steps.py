"""50 trivial ``RUN true`` steps, ``--no-cache``: ``dockyard build`` vs Docker's BuildKit, same run.

Both build ``FROM busybox:local`` + N x ``RUN true`` with ``--network=none --no-cache``, interleaved
(each round runs dockyard then docker, or the reverse on odd rounds, so background load hits both
alike). Prints medians of wall time and CPU time: dockyard's is the build process tree's (from
``getrusage(RUSAGE_CHILDREN)``: the CLI, its executor helper and the containers); docker's is the
daemon's (dockerd and what it reaped, runc included, from /proc) plus the client's. On a machine
shared with other work the CPU times are the steadier numbers. Goal (issue 19): at most 0.15x BuildKit.

Run: .venv/bin/python bench/bench_run_steps.py [--runs 5] [--steps 50]   (needs scripts/peers-up.sh)
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dockyard

GOAL = 0.15
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"


def daemon_cpu() -> float:
    """CPU seconds of dockerd and of the children it has reaped (BuildKit's runc runs)."""
    pid = int((PEERS_DIR / "run" / "dockerd.pid").read_text())
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], cwd: Path, env: dict[str, str], daemon: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one build."""
    d0 = daemon_cpu() if daemon else 0.0
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    if daemon:
        cpu += daemon_cpu() - d0
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    # Users run from compiled bytecode (this environment may set PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(str(Path(dockyard.__file__).parent), quiet=1)
    root = Path(tempfile.mkdtemp(prefix="dy-bench-runsteps-", dir="/var/tmp"))
    venv_bin = Path(sys.executable).parent
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    env = {**os.environ, "DOCKYARD_ROOT": str(root / "store"),
           "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    try:
        tar = root / "busybox.tar"
        subprocess.run([DOCKER, "save", "-o", str(tar), "busybox:local"], env=env, check=True)
        subprocess.run(["dockyard", "load", "-q", "-i", str(tar)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        ctx = root / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox:local\n" + "RUN true\n" * args.steps)
        flags = ["build", "-q", "--no-cache", "--network=none", "-t", "runsteps:bench", "."]
        tools = {
            "dockyard": (["dockyard", *flags], False),
            "docker": ([DOCKER, *flags], True),
        }
        env["DOCKER_BUILDKIT"] = "1"
        for cmd, daemon in tools.values():  # warm-up: page cache, bytecode, the daemon's state
            timed(cmd, ctx, env, daemon)
        walls: dict[str, list[float]] = {t: [] for t in tools}
        cpus: dict[str, list[float]] = {t: [] for t in tools}
        loads = []
        for i in range(args.runs):
            order = list(tools) if i % 2 == 0 else list(reversed(tools))
            for name in order:
                cmd, daemon = tools[name]
                wall, cpu = timed(cmd, ctx, env, daemon)
                walls[name].append(wall)
                cpus[name].append(cpu)
            loads.append(os.getloadavg()[0])
        print(f"{args.steps} x RUN true, --no-cache --network=none; {args.runs} interleaved rounds; "
              f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cpus")
        wall = {t: statistics.median(v) for t, v in walls.items()}
        cpu = {t: statistics.median(v) for t, v in cpus.items()}
        for name in tools:
            print(f"  {name:9s} wall median {wall[name]:6.2f} s (min {min(walls[name]):5.2f})   "
                  f"cpu median {cpu[name]:6.2f} s   per step {wall[name] / args.steps * 1000:5.1f} ms wall")
        ratio_wall = wall["dockyard"] / wall["docker"]
        ratio_cpu = cpu["dockyard"] / cpu["docker"]
        verdict = "met" if ratio_wall <= GOAL else "MISSED"
        print(f"dockyard / BuildKit: wall {ratio_wall:.2f}x, cpu {ratio_cpu:.2f}x   "
              f"goal <= {GOAL}x (wall): {verdict}")
        return 0
    finally:
        subprocess.run([DOCKER, "rmi", "-f", "runsteps:bench"], env=env, capture_output=True, check=False)
        subprocess.run(["umount", "-R", "-l", str(root / "store")], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
