"""Benchmark ``dockyard images`` with 1,000 images in the store (goal: under 0.3 s wall, including
Python start-up). Images are created through the public API (``Client.commit_image``), 10 layers
shared among them, two tags each on half of them.

If dockerd answers at ``$DOCKER_HOST`` and ``--docker`` is given, ``$DOCKER images`` is timed too
(with whatever images that daemon holds) for a ratio.

Run: .venv/bin/python bench/bench_images.py [--images N] [--runs R] [--docker]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.client import Client
from dockyard.oci.config import History, ImageConfig

GOAL_S = 0.3


def fill(root: Path, count: int) -> float:
    """Create ``count`` images; return the seconds it took."""
    import io
    import tarfile

    start = time.perf_counter()
    client = Client(root, fsync=False)
    layers = []
    with client.lease() as lease:
        for i in range(10):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                info = tarfile.TarInfo(f"layer{i}/file")
                data = os.urandom(1000 * (i + 1))
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            layers.append(client.store_layer(buf.getvalue(), lease=lease).diff_id)
        for n in range(count):
            config = ImageConfig(
                created=f"2024-01-{1 + n % 28:02d}T00:00:{n % 60:02d}Z",
                config={"Cmd": ["sh"], "Env": [f"N={n}"], "Labels": {"n": str(n)}},
                diff_ids=layers[: 1 + n % 10],
                history=[History(created_by=f"layer {k}") for k in range(1 + n % 10)],
            )
            names = [f"bench/app{n}:v1", f"localhost:5000/bench/app{n}:latest"] if n % 2 else []
            client.commit_image(config, names=names)
    client.close()
    return time.perf_counter() - start


def time_command(cmd: list[str], runs: int) -> tuple[float, int]:
    """Median wall seconds of ``runs`` runs (after one warm-up run), and the number of output lines.

    Also prints the median CPU time (user + sys), which a loaded machine distorts less than wall time.
    """
    # Time what users get: bytecode cached (a warm-up run writes it), not recompiled every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(cmd, capture_output=True, env=env)
    times = []
    cpu = []
    lines = 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
        lines = len(p.stdout.splitlines())
    print(f"  [{' '.join(os.path.basename(c) for c in cmd[-2:])}] cpu {statistics.median(cpu):.3f} s, "
          f"wall min {min(times):.3f} s")
    return statistics.median(times), lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--docker", action="store_true", help="also time $DOCKER images")
    args = parser.parse_args()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-images-", dir=shm))
    try:
        root = tmp / "store"
        made = fill(root, args.images)
        print(f"created {args.images} images through the API in {made:.2f} s "
              f"({made / args.images * 1000:.2f} ms each)")
        dockyard = [sys.executable, "-m", "dockyard", "--root", str(root), "images"]
        wall, lines = time_command(dockyard, args.runs)
        verdict = "OK" if wall < GOAL_S else "SLOWER THAN GOAL"
        print(f"dockyard images ({lines - 1} rows): {wall:.3f} s median of {args.runs} "
              f"(goal < {GOAL_S} s) {verdict}")
        wall_a, lines_a = time_command([*dockyard, "-a"], args.runs)
        print(f"dockyard images -a ({lines_a - 1} rows): {wall_a:.3f} s")
        wall_q, _ = time_command([*dockyard, "-q"], args.runs)
        print(f"dockyard images -q: {wall_q:.3f} s")
        base, _ = time_command([sys.executable, "-c", "pass"], args.runs)
        print(f"(python start-up alone: {base:.3f} s; load average {os.getloadavg()[0]:.1f})")
        if args.docker:
            docker = os.environ.get("DOCKER", "/usr/bin/docker")
            try:
                dwall, dlines = time_command([docker, "images"], args.runs)
                print(f"{docker} images ({dlines - 1} rows): {dwall:.3f} s; ratio dockyard/docker "
                      f"{wall / dwall:.2f}")
            except (OSError, SystemExit) as exc:
                print(f"docker not timed: {exc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
