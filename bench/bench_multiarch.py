"""Two-platform build of the reference Dockerfile (linux/amd64 native + linux/arm64 under qemu).

Three ways, cold each time (build cache pruned, bases kept), interleaved in one run:

- dockyard: ``build --platform linux/amd64,linux/arm64`` (one index; both platforms side by side),
- docker: Docker 20.10's BuildKit building the two platforms one after the other,
- dockyard x2: dockyard's two single-platform builds one after the other.

Prints the seconds and the ratios (goal, issue 13: dockyard's two-platform build no slower than the
sum of its two single-platform builds). Bases: docker's ``busybox:local`` (amd64) and an arm64
busybox (``dockyard bootstrap``) under one dockyard tag; docker gets the arm64 one as ``busybox:arm64``.

Run: .venv/bin/python bench/bench_multiarch.py [--runs N]   (needs the peers: dockerd, qemu binfmt)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = next((p for p in (REPO / "scripts" / "peers", REPO.parent / "shared" / "peers") if p.is_dir()),
             REPO.parent / "shared" / "peers")
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
PLATFORMS = ("linux/amd64", "linux/arm64")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dy-bench-multiarch-", dir="/var/tmp"))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "DOCKYARD_ROOT": str(root / "store"), "DOCKER_BUILDKIT": "1",
           "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "PATH": f"{venv_bin}:{os.environ['PATH']}"}

    def sh(cmd: str, cwd: Path | None = None) -> None:
        done = subprocess.run(["bash", "-c", cmd], env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"failed: {cmd}\n{done.stderr[-2000:]}")

    try:
        tar = root / "busybox.tar"
        sh(f"{DOCKER} save -o {tar} busybox:local && dockyard load -q -i {tar}")
        sh("dockyard bootstrap busybox --platform linux/arm64 -t busybox:local")  # joins the same tag
        sh(f"dockyard tag $(dockyard image inspect --platform linux/arm64 -f '{{{{.Id}}}}' busybox:local) "
           f"busybox:arm64 && dockyard save -o {root / 'arm64.tar'} busybox:arm64 && "
           f"{DOCKER} load -q -i {root / 'arm64.tar'}")
        contexts = {}
        for name in ("dockyard", "docker", "singles"):
            contexts[name] = root / f"ctx-{name}"
            sh(f"python3 {PEERS / 'ref' / 'gen-context.py'} {contexts[name]} busybox:local")

        def dockyard_reset() -> None:
            sh("dockyard builder prune -af; dockyard rmi -f ref:multi ref:single >/dev/null 2>&1; true")

        def docker_reset() -> None:
            sh(f"{DOCKER} rmi -f ref:bench-amd64 ref:bench-arm64 >/dev/null 2>&1; "
               f"{DOCKER} builder prune -af >/dev/null; true")

        def dockyard_multi() -> None:
            sh(f"dockyard build -q --platform {','.join(PLATFORMS)} -t ref:multi .", contexts["dockyard"])

        def docker_two() -> None:
            for platform, base in zip(PLATFORMS, ("busybox:local", "busybox:arm64"), strict=True):
                sh(f"{DOCKER} build -q --network=none --platform {platform} --build-arg BASE={base} "
                   f"-t ref:bench-{platform.split('/')[1]} .", contexts["docker"])

        def dockyard_two() -> None:
            for platform in PLATFORMS:
                sh(f"dockyard build -q --platform {platform} -t ref:single .", contexts["singles"])

        runs: dict[str, list[float]] = {"dockyard": [], "docker": [], "singles": []}
        order: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
            ("dockyard", dockyard_reset, dockyard_multi), ("docker", docker_reset, docker_two),
            ("singles", dockyard_reset, dockyard_two)]
        for i in range(args.runs):
            for name, reset, build in order[i % 3:] + order[:i % 3]:  # rotate who goes first
                reset()
                start = time.monotonic()
                build()
                runs[name].append(time.monotonic() - start)
        med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
        print(f"cold two-platform build of the reference Dockerfile ({', '.join(PLATFORMS)}), "
              f"median of {args.runs} interleaved run(s):")
        for key, label in (("dockyard", "dockyard --platform a,b          "),
                           ("docker", "docker 20.10 BuildKit, a then b  "),
                           ("singles", "dockyard a then b (single builds)")):
            each = " ".join(f"{t:.2f}" for t in runs[key])
            print(f"  {label}  {med[key]:7.2f} s   (runs: {each})")
        print(f"  ratio dockyard / docker:           {med['dockyard'] / med['docker']:.2f}x")
        print(f"  ratio dockyard / its two singles:  {med['dockyard'] / med['singles']:.2f}x (goal <= 1.0)")
        return 0
    finally:
        subprocess.run(["umount", "-R", "-l", str(root / "store")], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
