"""``dockyard build`` vs Docker's BuildKit on the reference build (scripts/peers/ref), same run.

Runs ``scripts/peers/bench-peers.sh`` with dockyard side by side with docker (and buildah with
``--buildah``, and dockyard as a non-root user with ``--rootless``): cold (cache pruned, base kept), warm
(no change) and change1 (one source line appended), interleaved, medians with ratios to docker. Goal
(issue 4): each at most 1.0x BuildKit; issue 11: rootless no more than 10 % behind root. Also reports
dockyard's peak memory (max RSS of the root build's process tree, from GNU time).

``--aged FILES`` runs both tools on a filesystem of their own that has aged (issue 19): a new ext4
on a loop device (mounted with ``discard``, as this machine's root disk), on which FILES small files
are created and deleted first; dockyard's store, the contexts and the data root of a dockerd started
for the bench (``bench/agedfs.py``) all live there. On this machine file creation slows down after
mass deletes for every tool; the fresh-disk numbers flatter whichever tool creates more files.

Run: .venv/bin/python bench/bench_build.py [--runs N] [--buildah] [--rootless] [--aged FILES]
(needs scripts/peers-up.sh)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from agedfs import age, copy_image, loop_ext4, private_dockerd

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "scripts" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
ROOTLESS_USER, ROOTLESS_SUBIDS = "dybench", "300000-365535"
ROOTLESS_VENV = Path("/var/tmp/dockyard-bench-rootless-venv")


def _rootless_env(root: Path, tar: Path) -> dict[str, str]:
    """bench-peers.sh's ROOTLESS_CMD and ROOTLESS_RESET: dockyard as a non-root user (subordinate ids,
    its store under ``root``), with the base image loaded there."""
    sys.path.insert(0, str(REPO))
    from tests.rootless import userkit

    userkit.require_root()
    python = userkit.make_venv(ROOTLESS_VENV, REPO / "src")
    user = userkit.make_user(ROOTLESS_USER, ROOTLESS_SUBIDS)
    userkit.devices_for_users()
    data = root / "rootless-data"
    data.mkdir()
    shutil.chown(data, user.pw_uid, user.pw_gid)
    root.chmod(0o755)  # the user reads the base image's tar and keeps its store here
    tar.chmod(0o644)

    def cmd(*args: str) -> str:
        return " ".join(shlex.quote(a) for a in userkit.argv(user, python, args, data_home=str(data)))

    subprocess.run(f"{cmd('load', '-q', '-i', str(tar))} >/dev/null", shell=True, check=True)
    return {"ROOTLESS_CMD": f"{cmd('build', '-q', '-t', 'ref:bench', '.')} >/dev/null",
            "ROOTLESS_RESET": (f"{cmd('builder', 'prune', '-af')} >/dev/null; "
                               f"{cmd('rmi', '-f', 'ref:bench')} >/dev/null 2>&1; true")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--buildah", action="store_true", help="time buildah too")
    parser.add_argument("--rootless", action="store_true",
                        help=f"time dockyard as the non-root user {ROOTLESS_USER} too (made if missing)")
    parser.add_argument("--aged", type=int, default=0, metavar="FILES",
                        help="run both tools on a new filesystem where FILES files were created and "
                             "deleted first (say 300000)")
    args = parser.parse_args()
    if args.aged and args.rootless:
        parser.error("--aged and --rootless: one at a time")
    root = Path(tempfile.mkdtemp(prefix="dy-bench-build-", dir="/var/tmp"))
    mem_log = root / "maxrss.txt"
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock",
           "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    store = root / "store"
    stack = contextlib.ExitStack()
    try:
        # dockyard's base: docker's own busybox:local, so both build on the same image ID.
        tar = root / "busybox.tar"
        subprocess.run([DOCKER, "save", "-o", str(tar), "busybox:local"], env=env, check=True)
        if args.aged:
            fs = stack.enter_context(loop_ext4(root / "fs.img", root / "fs", 16 << 10, options="discard"))
            print(f"aged a new ext4 by creating and deleting {args.aged} files in {age(fs, args.aged):.0f} s",
                  flush=True)
            peer_env = stack.enter_context(private_dockerd(fs / "peers", env))
            copy_image("busybox:local", root / "busybox-copy.tar", env, peer_env)
            env, store = peer_env, fs / "store"
        env["DOCKYARD_ROOT"] = str(store)
        subprocess.run([str(venv_bin / "dockyard"), "load", "-q", "-i", str(tar)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        env["DOCKYARD_CMD"] = (f"/usr/bin/time -a -o {mem_log} -f %M "
                               "dockyard build -q -t ref:bench . >/dev/null")
        env["DOCKYARD_RESET"] = ("dockyard builder prune -af >/dev/null; "
                                 "dockyard rmi -f ref:bench >/dev/null 2>&1; true")
        if args.rootless:
            env.update(_rootless_env(root, tar))
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
        subprocess.run(["umount", "-R", "-l", str(store)], stderr=subprocess.DEVNULL, check=False)
        stack.close()
        # The rootless store holds files of the user's subordinate ids: only root removes it.
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
