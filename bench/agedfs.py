"""Filesystems for benches: a fresh ext4 on a loop device, aged on request, and a dockerd on it.

On this machine file creation slows down after mass deletes, for every tool, so the disk's history
changes build times within a day. A bench that wants a known state makes its own filesystem:
``loop_ext4`` (fresh), then ``age`` (a few hundred thousand files created and deleted, the state a
disk reaches after days of builds), and runs both tools on it: dockyard's store through
``DOCKYARD_ROOT``, Docker's data root through a dockerd of its own (``private_dockerd``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "scripts" / "peers"
DOCKER = "/usr/bin/docker"


@contextlib.contextmanager
def loop_ext4(image: Path, mount_point: Path, size_mb: int, *, options: str = "") -> Iterator[Path]:
    """A new ext4 in the sparse file ``image``, mounted (loop) at ``mount_point`` while the block runs."""
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", ",".join(filter(None, ["loop", options])), str(image), str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-R", "-l", str(mount_point)], check=False)
        image.unlink(missing_ok=True)


def age(where: Path, files: int, *, per_dir: int = 1000, size: int = 4096) -> float:
    """Create ``files`` small files under ``where``, sync, delete them all, sync; return the seconds."""
    start = time.perf_counter()
    top = where / ".aging"
    data = os.urandom(size)
    for d in range(-(-files // per_dir)):
        sub = top / f"d{d:05d}"
        sub.mkdir(parents=True)
        for i in range(min(per_dir, files - d * per_dir)):
            fd = os.open(sub / f"f{i:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data[: 1 + (i * 7919) % size])
            finally:
                os.close(fd)
    os.sync()
    shutil.rmtree(top)
    os.sync()
    return time.perf_counter() - start


@contextlib.contextmanager
def private_dockerd(peers_dir: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A dockerd keeping its data root, sockets and logs in ``peers_dir`` (scripts/peers/start-dockerd.sh
    with that PEERS_DIR); yields ``env`` with PEERS_DIR and DOCKER_HOST pointing at it. Stopped after."""
    mine = {**env, "PEERS_DIR": str(peers_dir), "DOCKER_HOST": f"unix://{peers_dir}/run/docker.sock"}
    subprocess.run(["bash", str(PEERS / "start-dockerd.sh")], env=mine, check=True, stdout=subprocess.DEVNULL)
    try:
        yield mine
    finally:
        subprocess.run(["bash", str(PEERS / "stop-dockerd.sh")], env=mine, check=False,
                       stdout=subprocess.DEVNULL)


def copy_image(name: str, tar: Path, source_env: dict[str, str], target_env: dict[str, str]) -> None:
    """``docker save`` ``name`` from one daemon into ``tar`` and ``docker load`` it into another."""
    subprocess.run([DOCKER, "save", "-o", str(tar), name], env=source_env, check=True)
    subprocess.run([DOCKER, "load", "-q", "-i", str(tar)], env=target_env, check=True,
                   stdout=subprocess.DEVNULL)
