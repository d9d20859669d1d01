"""Push and cold pull of a ~110 MB (compressed) image through the local distribution registry:
dockyard against ``$DOCKER push``/``pull`` and ``skopeo copy``, in the same run.

    .venv/bin/python bench/bench_pull_push.py [--runs N] [--layers L] [--random-mb R] [--text-mb T]

The image is made of random (incompressible) and text-like (compressible) files, written once as a
docker-archive tar on /dev/shm and loaded into each tool. Push: docker and dockyard push from their
stores (both compress the uncompressed layers on the way: a cold dockyard push), skopeo copies from
the docker archive. Cold pull with unpack: each tool starts without the image and unpacks it
(docker into its graph driver, skopeo into containers-storage, dockyard into its snapshots).
Prints one line per measurement, then medians and dockyard's ratio to each peer (<1: faster).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import statistics
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "scripts" / "peers"
REGISTRY = "127.0.0.1:5000"
SHM = Path("/dev/shm/dybench-pullpush")


def sh(cmd: str) -> str:
    proc = subprocess.run(["bash", "-c", f'. "{PEERS}/env.sh" && {cmd}'], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{proc.stderr[-3000:]}")
    return proc.stdout


def make_layer(seed: int, random_mb: int, text_mb: int, salt: str = "") -> bytes:
    rng = random.Random(f"{seed}-{salt}")
    words = [rng.randbytes(6).hex() for _ in range(2000)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))

        for i in range(random_mb):
            add(f"layer{seed}/bin/blob{i:03d}.bin", rng.randbytes(1 << 20))
        for i in range(text_mb * 10):
            lines = [" ".join(rng.choices(words, k=12)) for _ in range(1000)]
            add(f"layer{seed}/share/doc{i:04d}.txt", "\n".join(lines).encode()[: 100 << 10])
    return buf.getvalue()


def make_archive(path: Path, layers: int, random_mb: int, text_mb: int, salt: str = "") -> None:
    """A docker-archive tar; a new ``salt`` gives new bytes (no blob is already in the registry)."""
    tars = [make_layer(i, random_mb, text_mb, salt) for i in range(layers)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(layers)]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as out:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            out.addfile(info, io.BytesIO(data))

        names = []
        for diff_id, tar in zip(diff_ids, tars, strict=True):
            names.append(f"{diff_id[7:]}/layer.tar")
            add(names[-1], tar)
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["dybench:src"],
                                          "Layers": names}]).encode())


def timed(cmd: str) -> float:
    start = time.perf_counter()
    sh(cmd)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--random-mb", type=int, default=16)
    ap.add_argument("--text-mb", type=int, default=28)
    args = ap.parse_args()
    sh(f'bash "{PEERS}/start-registry.sh" >/dev/null && ($DOCKER version >/dev/null 2>&1 '
       f'|| bash "{PEERS}/start-dockerd.sh" >/dev/null)')
    shutil.rmtree(SHM, ignore_errors=True)
    SHM.mkdir(parents=True)
    archive = SHM / "image.tar"
    dy = f"{Path(__file__).resolve().parents[1]}/.venv/bin/dockyard"
    results: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(seconds)
        print(f"{name},{seconds:.2f}", flush=True)

    for run in range(args.runs):
        tag = uuid.uuid4().hex[:8]
        # Fresh bytes every run: otherwise every tool finds its blobs already pushed and skips them.
        make_archive(archive, args.layers, args.random_mb, args.text_mb, salt=tag)
        if run == 0:
            print(f"image: {args.layers} layers, {archive.stat().st_size / 1e6:.0f} MB uncompressed")
        # -- push -------------------------------------------------------------------------------
        sh(f"$DOCKER load -q -i {archive} >/dev/null")
        root = SHM / f"dy-push-{tag}"
        sh(f"DOCKYARD_ROOT={root} {dy} load -q -i {archive} >/dev/null")
        target = f"{REGISTRY}/bench/dockyard-{tag}:v1"
        sh(f"DOCKYARD_ROOT={root} {dy} tag dybench:src {target}")
        record("push dockyard", timed(f"DOCKYARD_ROOT={root} {dy} push -q {target} >/dev/null"))
        shutil.rmtree(root, ignore_errors=True)
        sh(f"$DOCKER tag dybench:src {REGISTRY}/bench/docker-{tag}:v1")
        record("push docker", timed(f"$DOCKER push -q {REGISTRY}/bench/docker-{tag}:v1 >/dev/null"))
        # docker must not hold the image (same config = same image ID) for its pull to be cold
        sh(f"$DOCKER rmi {REGISTRY}/bench/docker-{tag}:v1 dybench:src >/dev/null")
        record("push skopeo", timed(f"skopeo copy -q --dest-tls-verify=false docker-archive:{archive} "
                                    f"docker://{REGISTRY}/bench/skopeo-{tag}:v1"))
        # -- cold pull with unpack (all pull the image dockyard pushed) -------------------------
        root = SHM / f"dy-pull-{tag}"
        record("pull dockyard", timed(f"DOCKYARD_ROOT={root} {dy} pull -q {target} >/dev/null"))
        size = sum(p.stat().st_size for p in (root / "content" / "blobs").rglob("*") if p.is_file())
        shutil.rmtree(root, ignore_errors=True)
        record("pull docker", timed(f"$DOCKER pull -q {target} >/dev/null"))
        sh(f"$DOCKER rmi {target} >/dev/null")
        record("pull skopeo", timed(f"skopeo copy -q --src-tls-verify=false docker://{target} "
                                    f"containers-storage:localhost/bench-{tag}:v1"))
        sh(f"buildah rmi localhost/bench-{tag}:v1 >/dev/null")
        if run == 0:
            print(f"compressed image (dockyard, isal gzip): {size / 1e6:.0f} MB", flush=True)
    shutil.rmtree(SHM, ignore_errors=True)
    print("\nmedians (s) and dockyard's ratio (<1 = dockyard faster):")
    for op in ("push", "pull"):
        mine = statistics.median(results[f"{op} dockyard"])
        for peer in ("docker", "skopeo"):
            theirs = statistics.median(results[f"{op} {peer}"])
            print(f"  {op}: dockyard {mine:.2f}  {peer} {theirs:.2f}  ratio {mine / theirs:.2f}")



if __name__ == "__main__":
    main()
