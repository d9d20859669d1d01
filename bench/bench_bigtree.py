"""``COPY . /app`` of a big context (50,000 files, 1 GB): ``dockyard build`` vs Docker's BuildKit.

The context is made on a fresh ext4 filesystem (a loop-mounted image file): on this machine file
creation slows down after mass deletes (ext4 delays inode reuse) for every tool, so a context made
on an aged disk would time the disk's history, not the tools. The stores stay where they are
(docker's in its data root, dockyard's under /var/tmp), so both write to the same disk.

Scenarios, interleaved (each round runs both tools, the order alternating between rounds so that
neither always pays for the other's writeback): cold (build cache and image removed, base kept)
and change1 (one file of the context rewritten, built again); with ``--save``, also ``save -o`` of
the image after the cold build (dockyard keeps a built layer only as its snapshot and writes its
tar again for a save: this row shows that cost against ``docker save``). Prints medians of wall
time (and dockyard's CPU time, from ``getrusage``) and dockyard's store size after the build
against the context's size. Goals (issue 19): cold at most 0.5x BuildKit, one-file change at most
0.7x, store at most 1.1x the context.

Run: .venv/bin/python bench/bench_bigtree.py [--runs 2] [--files 50000] [--mb 1024] [--save]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dockyard
from agedfs import loop_ext4

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
GOALS = {"cold": 0.5, "change1": 0.7}


def make_context(ctx: Path, files: int, total_mb: int) -> int:
    """``files`` files in directories of 100: most small, a few large (1 % carry half the bytes)."""
    rng = random.Random(19)
    large = max(1, files // 100)
    small_bytes = (total_mb << 19) // max(1, files - large)
    large_bytes = (total_mb << 19) // large
    block = rng.randbytes(1 << 20)
    total = 0
    for i in range(files):
        d = ctx / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        size = large_bytes if i % 100 == 99 else rng.randint(small_bytes // 2, small_bytes * 3 // 2)
        with open(d / f"f{i:06d}.dat", "wb") as f:
            left = size
            offset = i % 4096
            while left:
                n = min(left, len(block) - offset)
                f.write(block[offset:offset + n])
                left -= n
                offset = 0
        total += size
    (ctx / "Dockerfile").write_text("FROM busybox:local\nCOPY . /app\n")
    return total


def du(path: Path) -> int:
    """Bytes of disk the tree uses (hard links once)."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.stdout else 0


def timed(cmd: str, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--save", action="store_true", help="also time `save -o` of the built image")
    args = parser.parse_args()
    compileall.compile_dir(str(Path(dockyard.__file__).parent), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    root = Path(tempfile.mkdtemp(prefix="dy-bench-bigtree-", dir="/var/tmp"))
    venv_bin = Path(sys.executable).parent
    store = root / "store"
    env = {**os.environ, "DOCKYARD_ROOT": str(store), "DOCKER_BUILDKIT": "1",
           "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    stack = contextlib.ExitStack()
    try:
        # Room for two contexts and to spare.
        fs = stack.enter_context(loop_ext4(root / "fs.img", root / "fs", args.mb * 3 + 1024))
        contexts = {"dockyard": fs / "ctx-dockyard", "docker": fs / "ctx-docker"}
        t0 = time.perf_counter()
        size = make_context(contexts["dockyard"], args.files, args.mb)
        shutil.copytree(contexts["dockyard"], contexts["docker"])
        made = time.perf_counter() - t0
        tar = root / "busybox.tar"
        subprocess.run([DOCKER, "save", "-o", str(tar), "busybox:local"], env=env, check=True)
        subprocess.run(["dockyard", "load", "-q", "-i", str(tar)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        build = {"dockyard": "dockyard build -q -t bigtree:bench . >/dev/null",
                 "docker": f"{DOCKER} build -q --network=none -t bigtree:bench . >/dev/null"}
        saved = root / "saved.tar"
        save = {"dockyard": f"dockyard save -o {saved} bigtree:bench",
                "docker": f"{DOCKER} save -o {saved} bigtree:bench"}
        scenarios = ("cold", "save", "change1") if args.save else ("cold", "change1")
        # The image an earlier round's one-file change left dangling goes too (image prune): the store
        # after a cold build is then that build's alone, as in the first round.
        reset = {tool: f"{cmd} rmi -f bigtree:bench >/dev/null 2>&1; {cmd} image prune -f >/dev/null; "
                       f"{cmd} builder prune -af >/dev/null"
                 for tool, cmd in (("dockyard", "dockyard"), ("docker", DOCKER))}
        walls: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        stores: dict[str, list[int]] = {}
        loads: list[float] = []
        for i in range(args.runs):
            order = ["dockyard", "docker"] if i % 2 == 0 else ["docker", "dockyard"]
            for scenario in scenarios:
                for tool in order:
                    ctx = contexts[tool]
                    if scenario == "cold":
                        timed(reset[tool], ctx, env)
                    elif scenario == "change1":
                        changed = ctx / "d0007" / "f000713.dat"
                        changed.write_bytes(changed.read_bytes()[::-1] + f"run {i}".encode())
                    subprocess.run(["sync"], check=True)  # the previous build's writeback is not ours
                    wall, cpu = timed(save[tool] if scenario == "save" else build[tool], ctx, env)
                    saved.unlink(missing_ok=True)
                    walls.setdefault((tool, scenario), []).append(wall)
                    cpus.setdefault((tool, scenario), []).append(cpu)
                    line = f"# round {i + 1} {scenario:8s} {tool:9s} {wall:7.2f} s wall"
                    if tool == "dockyard" and scenario != "save":
                        stores.setdefault(scenario, []).append(du(store))
                        line += f", {cpu:6.2f} s cpu, store {stores[scenario][-1] / 2**20:.0f} MiB"
                    print(line, flush=True)
            loads.append(os.getloadavg()[0])
        print(f"COPY . /app of {args.files} files, {size / 2**20:.0f} MiB (context made in {made:.0f} s on a "
              f"fresh ext4); {args.runs} interleaved rounds; load average {min(loads):.1f}-{max(loads):.1f} "
              f"on {os.cpu_count()} cpus")
        for scenario in scenarios:
            ours = statistics.median(walls[("dockyard", scenario)])
            theirs = statistics.median(walls[("docker", scenario)])
            ratio = ours / theirs
            goal = GOALS.get(scenario)
            verdict = ("no goal" if goal is None
                       else f"goal <= {goal}x: {'met' if ratio <= goal else 'MISSED'}")
            cpu = statistics.median(cpus[("dockyard", scenario)])
            print(f"  {scenario:8s} dockyard {ours:6.2f} s (cpu {cpu:5.2f} s)   docker {theirs:6.2f} s   "
                  f"ratio {ratio:.2f}x   {verdict}")
        context_disk = du(contexts["dockyard"])
        cold, both = max(stores["cold"]), max(stores["change1"])
        print(f"  dockyard store after a cold build: {cold / 2**20:.0f} MiB = {cold / context_disk:.2f}x the "
              f"context ({context_disk / 2**20:.0f} MiB on disk)   goal <= 1.1x: "
              f"{'met' if cold <= 1.1 * context_disk else 'MISSED'}; after the one-file change (both "
              f"images kept): {both / 2**20:.0f} MiB")
        return 0
    finally:
        subprocess.run([DOCKER, "rmi", "-f", "bigtree:bench"], env=env, capture_output=True, check=False)
        subprocess.run([DOCKER, "builder", "prune", "-af"], env=env, capture_output=True, check=False)
        subprocess.run(["umount", "-R", "-l", str(store)], stderr=subprocess.DEVNULL, check=False)
        stack.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
