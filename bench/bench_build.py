"""``dockyard build`` vs Docker's BuildKit on the reference build (scripts/peers/ref), same run.

Runs ``scripts/peers/bench-peers.sh`` with dockyard side by side with docker (and buildah with
``--buildah``): cold (cache pruned, base kept), warm (no change) and change1 (one source line
appended), interleaved, medians with ratios to docker. Goal (issue 4): each at most 1.0x BuildKit.
Also reports dockyard's peak memory (max RSS of the build process tree, from GNU time).

Run: .venv/bin/python bench/bench_build.py [--runs N] [--buildah]   (needs scripts/peers-up.sh)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "scripts" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--buildah", action="store_true", help="time buildah too")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dy-bench-build-", dir="/var/tmp"))
    mem_log = root / "maxrss.txt"
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "DOCKYARD_ROOT": str(root / "store"),
           "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    try:
        # dockyard's base: docker's own busybox:local, so both build on the same image ID.
        tar = root / "busybox.tar"
        subprocess.run([DOCKER, "save", "-o", str(tar), "busybox:local"], env=env, check=True)
        subprocess.run([str(venv_bin / "dockyard"), "load", "-q", "-i", str(tar)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        env["DOCKYARD_CMD"] = (f"/usr/bin/time -a -o {mem_log} -f %M "
                               "dockyard build -q -t ref:bench . >/dev/null")
        env["DOCKYARD_RESET"] = ("dockyard builder prune -af >/dev/null; "
                                 "dockyard rmi -f ref:bench >/dev/null 2>&1; true")
        tools = ["docker", "buildah"] if args.buildah else ["docker"]
        proc = subprocess.run(["bash", str(PEERS / "bench-peers.sh"), str(args.runs), *tools], env=env,
                              capture_output=True, text=True)
        summary = proc.stdout.split("median seconds", 1)
        print("median seconds" + summary[1] if len(summary) == 2 else proc.stdout)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
        words = mem_log.read_text().split() if mem_log.exists() else []
        rss = [int(w) for w in words if w.isdigit()]
        if rss:
            print(f"dockyard peak memory: {max(rss) / 1024:.1f} MiB (max RSS over {len(rss)} builds; "
                  f"median {sorted(rss)[len(rss) // 2] / 1024:.1f} MiB)")
        return proc.returncode
    finally:
        subprocess.run(["umount", "-R", "-l", str(root / "store")], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
