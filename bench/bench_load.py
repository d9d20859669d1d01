"""``dockyard load`` vs ``docker load`` of the same ~100 MB docker-save tar, in the same run.

Goal (issue 2): dockyard at most 1.0x docker's time. Both stores live on the same disk (docker's data
root is under $PEERS_DIR); each run starts from a store without the image (a fresh dockyard root;
``docker rmi`` before each docker run). Runs are interleaved; medians are compared.
Run: .venv/bin/python bench/bench_load.py [--runs N] [--mb M]   (needs start-dockerd.sh)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
ENV = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock"}
TAG = "dockyard-bench-load:1"


def write_archive(path: Path, mb: int, layers: int = 4) -> str:
    """A classic docker-save tar: ``layers`` layers of 64 KiB random files, ``mb`` MiB in all."""
    rng = random.Random(7)
    files = max(1, (mb << 20) // (64 << 10) // layers)
    blobs = []
    for n in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for i in range(files):
                info = tarfile.TarInfo(f"l{n}/d{i % 32}/f{i}.bin")
                info.size = 64 << 10
                info.mtime = 1_700_000_000
                tf.addfile(info, io.BytesIO(rng.randbytes(info.size)))
        blobs.append(buf.getvalue())
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(layers)]}).encode()
    with tarfile.open(path, "w") as tf:
        paths = []
        for blob, diff_id in zip(blobs, diff_ids, strict=True):
            info = tarfile.TarInfo(f"{diff_id[7:]}/layer.tar")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
            paths.append(info.name)
        for name, data in ((hashlib.sha256(config).hexdigest() + ".json", config),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        manifest = json.dumps([{"Config": name, "RepoTags": [TAG], "Layers": paths}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tf.addfile(info, io.BytesIO(manifest))
    return "sha256:" + hashlib.sha256(config).hexdigest()


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {proc.stderr.decode().strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    if subprocess.run([DOCKER, "version"], env=ENV, capture_output=True).returncode != 0:
        sys.exit("dockerd does not answer: run scripts/peers/start-dockerd.sh")
    dockyard = shutil.which("dockyard") or str(Path(sys.executable).parent / "dockyard")
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-load-", dir="/var/tmp"))
    try:
        archive = work / "image.tar"
        image_id = write_archive(archive, args.mb)
        size_mb = archive.stat().st_size / 1e6
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(args.runs):
            subprocess.run([DOCKER, "rmi", "-f", TAG], env=ENV, capture_output=True)
            subprocess.run(["sync"])
            theirs.append(timed([DOCKER, "load", "-q", "-i", str(archive)], ENV))
            root = work / f"root{run}"
            subprocess.run(["sync"])
            env = {**os.environ, "DOCKYARD_ROOT": str(root)}
            ours.append(timed([dockyard, "load", "-q", "-i", str(archive)], env))
            shutil.rmtree(root, ignore_errors=True)
            print(f"run {run + 1}: docker {theirs[-1]:.2f} s, dockyard {ours[-1]:.2f} s", flush=True)
        subprocess.run([DOCKER, "rmi", "-f", TAG], env=ENV, capture_output=True)
        d, o = statistics.median(theirs), statistics.median(ours)
        print(f"load of a {size_mb:.0f} MB image ({image_id[:19]}), median of {args.runs}:")
        print(f"  docker load    {d:6.2f} s  ({size_mb / d:6.0f} MB/s)")
        print(f"  dockyard load  {o:6.2f} s  ({size_mb / o:6.0f} MB/s)")
        print(f"  ratio dockyard/docker: {o / d:.2f}x (goal <= 1.0x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
