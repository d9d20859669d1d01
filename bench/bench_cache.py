"""The "second runner": a fresh store building the reference build with ``--cache-from`` a registry.

Three timings per round, interleaved in one run (medians over ``--runs`` rounds):

- dockyard cold: a fresh store (base image loaded, not timed) builds scripts/peers/ref;
- dockyard second runner: a fresh store builds it with ``--cache-from type=registry,ref=...`` of a
  cache another store exported (``--cache-to ...,mode=max``) to the peers' distribution 2.8;
- Docker 20.10 second runner: after ``docker builder prune -af`` and ``docker image rm``, BuildKit
  builds it with ``--cache-from`` an image pushed with ``BUILDKIT_INLINE_CACHE=1``.

Goal (issue 12): second runner <= 0.3x dockyard cold and <= 0.5x Docker's second runner.
Run: .venv/bin/python bench/bench_cache.py [--runs N] [--dir DIR]
(needs scripts/peers-up.sh: dockerd, registry :5000)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "scripts" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
REGISTRY = "127.0.0.1:5000"
SETTLE_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp",
                        help="where the stores and the context go (say, a freshly made filesystem: file "
                             "creation on an aged one slows cold builds, not the second runner)")
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    root = Path(tempfile.mkdtemp(prefix="dy-bench-cache-", dir=args.dir))
    tag = f"{os.getpid()}-{int(time.time())}"
    dy_cache = f"{REGISTRY}/bench-cache/dockyard:{tag}"
    docker_image = f"{REGISTRY}/bench-cache/docker:{tag}"
    env = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "DOCKER_BUILDKIT": "1",
           "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    ctx = root / "ctx"
    base_tar = root / "busybox.tar"
    stores: list[Path] = []

    def run(cmd: list[str], **kw: object) -> None:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]

    def fresh_store() -> Path:
        store = root / f"store-{len(stores)}"
        stores.append(store)
        run([str(venv_bin / "dockyard"), "--root", str(store), "load", "-q", "-i", str(base_tar)])
        return store

    def timed(cmd: list[str]) -> float:
        # Each timed build starts on a settled machine: the previous build's dirty pages written back
        # and the kernel's deferred teardown of its mounts and namespaces done (kernel workers on
        # the other core otherwise slowed the next build by ~70 ms on this 2-core machine).
        os.sync()
        time.sleep(SETTLE_S)
        start = time.perf_counter()
        run(cmd, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    def dockyard(store: Path, *flags: str) -> list[str]:
        return [str(venv_bin / "dockyard"), "--root", str(store), "build", "-q", "-t", "ref:bench", *flags,
                str(ctx)]

    try:
        subprocess.run([sys.executable, str(PEERS / "ref" / "gen-context.py"), str(ctx)], check=True,
                       stdout=subprocess.DEVNULL)
        # Both build on docker's own busybox:local (the same image ID).
        run([DOCKER, "save", "-o", str(base_tar), "busybox:local"])
        # The first runners: they fill the caches (not timed).
        run(dockyard(fresh_store(), "--cache-to", f"type=registry,ref={dy_cache},mode=max"))
        docker_build = [DOCKER, "build", "--network=none", "-q"]  # no bridge network on this machine
        run([*docker_build, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", docker_image, str(ctx)])
        run([DOCKER, "push", docker_image])
        times: dict[str, list[float]] = {"dockyard cold": [], "dockyard second runner": [],
                                         "docker second runner": []}
        for _ in range(args.runs):
            times["dockyard cold"].append(timed(dockyard(fresh_store())))
            times["dockyard second runner"].append(
                timed(dockyard(fresh_store(), "--cache-from", f"type=registry,ref={dy_cache}")))
            run([DOCKER, "builder", "prune", "-af"])
            subprocess.run([DOCKER, "image", "rm", "-f", docker_image, "ref:bench"], env=env,
                           capture_output=True, check=False)
            times["docker second runner"].append(
                timed([*docker_build, "--cache-from", docker_image, "-t", "ref:bench", str(ctx)]))
            for store in stores[1:]:
                _remove(store)
            del stores[1:]
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"median seconds over {args.runs} interleaved rounds (reference build, scripts/peers/ref)")
        for name, value in med.items():
            print(f"  {name:<24} {value:7.3f}   (runs: {', '.join(f'{t:.3f}' for t in times[name])})")
        cold = med["dockyard second runner"] / med["dockyard cold"]
        docker = med["dockyard second runner"] / med["docker second runner"]
        print(f"second runner / dockyard cold:        {cold:.2f}x  (goal <= 0.30x)")
        print(f"second runner / docker second runner: {docker:.2f}x  (goal <= 0.50x)")
        return 0
    finally:
        for store in stores:
            _remove(store)
        subprocess.run([DOCKER, "image", "rm", "-f", docker_image], env=env, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _remove(store: Path) -> None:
    subprocess.run(["umount", "-R", "-l", str(store)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
