"""Push and cold pull of a ~110 MB (compressed) image through the local distribution registry:
dockyard against ``$DOCKER push``/``pull`` and ``skopeo copy``, in the same run.

    .venv/bin/python bench/bench_pull_push.py [--runs N] [--layers L] [--random-mb R] [--text-mb T]
                                              [--cpus C]

The image is made of random (incompressible) and text-like (compressible) files, written once as a
docker-archive tar on /dev/shm and loaded into each tool. Push: docker and dockyard push from their
stores (both compress the uncompressed layers on the way: a cold dockyard push), skopeo copies from
the docker archive. Cold pull with unpack: each tool starts without the image and unpacks it
(docker into its graph driver, skopeo into containers-storage, dockyard into its snapshots).
The tools take turns in a different order every run (the machine may be shared). ``--cpus C`` runs
dockyard and skopeo on the first C CPUs (``taskset``; dockerd runs where it runs): on a machine
with more cores dockyard's ratio should improve, not worsen. Prints one line per measurement (wall
seconds, CPU seconds of the command's processes where they are its children, and those the
registry and dockerd spent meanwhile: the registry shares the machine's cores with every tool, and
docker's push and pull run in dockerd), then medians and dockyard's ratio to each peer (<1: faster).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
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


def daemon_pids() -> dict[str, int]:
    """The pids of the registry (:5000) and dockerd, from the peers' pid files."""
    run = Path(sh('echo "$PEERS_DIR"').strip()) / "run"
    return {name: int((run / f"{name}.pid").read_text().split()[0]) for name in ("registry", "dockerd")}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: str, daemons: dict[str, int]) -> tuple[float, float, dict[str, float]]:
    """Wall seconds, CPU seconds of the processes bash waited for, and CPU seconds each daemon spent
    meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    held = {name: process_cpu(pid) for name, pid in daemons.items()}
    start = time.perf_counter()
    sh(cmd)
    wall = time.perf_counter() - start
    spent = {name: process_cpu(pid) - held[name] for name, pid in daemons.items()}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, spent


def dockyard_command() -> str:
    """The console script next to this interpreter (PYTHONPATH, if set, picks the source tree)."""
    script = Path(sys.executable).with_name("dockyard")
    return str(script) if script.exists() else f"{sys.executable} -m dockyard"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--random-mb", type=int, default=16)
    ap.add_argument("--text-mb", type=int, default=28)
    ap.add_argument("--cpus", type=int, default=0, help="run dockyard and skopeo on this many CPUs")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # users run dockyard from compiled bytecode
    sh(f'bash "{PEERS}/start-registry.sh" >/dev/null && ($DOCKER version >/dev/null 2>&1 '
       f'|| bash "{PEERS}/start-dockerd.sh" >/dev/null)')
    shutil.rmtree(SHM, ignore_errors=True)
    SHM.mkdir(parents=True)
    archive = SHM / "image.tar"
    pin = f"taskset -c 0-{args.cpus - 1} " if args.cpus else ""
    dy = pin + dockyard_command()
    skopeo = pin + "skopeo"
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    registry_cpu: dict[str, list[float]] = {}
    daemons = daemon_pids()

    def record(name: str, measured: tuple[float, float, dict[str, float]]) -> None:
        wall, own, spent = measured
        results.setdefault(name, []).append(wall)
        cpu.setdefault(name, []).append(own)
        registry_cpu.setdefault(name, []).append(spent["registry"])
        print(f"{name},{wall:.2f},cpu {own:.2f},registry cpu {spent['registry']:.2f},"
              f"dockerd cpu {spent['dockerd']:.2f}", flush=True)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; dockyard: {dy}")
    for run in range(args.runs):
        tag = uuid.uuid4().hex[:8]
        # Fresh bytes every run: otherwise every tool finds its blobs already pushed and skips them.
        make_archive(archive, args.layers, args.random_mb, args.text_mb, salt=tag)
        if run == 0:
            print(f"image: {args.layers} layers, {archive.stat().st_size / 1e6:.0f} MB uncompressed")
        # -- push -------------------------------------------------------------------------------
        sh(f"$DOCKER load -q -i {archive} >/dev/null")
        push_root = SHM / f"dy-push-{tag}"
        sh(f"DOCKYARD_ROOT={push_root} {dy} load -q -i {archive} >/dev/null")
        target = f"{REGISTRY}/bench/dockyard-{tag}:v1"
        sh(f"DOCKYARD_ROOT={push_root} {dy} tag dybench:src {target}")
        pull_root = SHM / f"dy-pull-{tag}"
        # (name, before, timed command, after): docker must not hold the image (same config = same
        # image ID) for its pull to be cold.
        pushes = [
            ("push dockyard", "", f"DOCKYARD_ROOT={push_root} {dy} push -q {target}", f"rm -rf {push_root}"),
            ("push docker", f"$DOCKER tag dybench:src {REGISTRY}/bench/docker-{tag}:v1",
             f"$DOCKER push -q {REGISTRY}/bench/docker-{tag}:v1",
             f"$DOCKER rmi {REGISTRY}/bench/docker-{tag}:v1 dybench:src"),
            ("push skopeo", "", f"{skopeo} copy -q --dest-tls-verify=false docker-archive:{archive} "
                                f"docker://{REGISTRY}/bench/skopeo-{tag}:v1", ""),
        ]
        # -- cold pull with unpack (all pull the image dockyard pushed) -------------------------
        pulls = [
            ("pull dockyard", "", f"DOCKYARD_ROOT={pull_root} {dy} pull -q {target}", ""),
            ("pull docker", "", f"$DOCKER pull -q {target}", f"$DOCKER rmi {target}"),
            ("pull skopeo", "", f"{skopeo} copy -q --src-tls-verify=false docker://{target} "
                                f"containers-storage:localhost/bench-{tag}:v1",
             f"buildah rmi localhost/bench-{tag}:v1"),
        ]
        # The order of tools turns every run (the machine may be shared); pushes before pulls.
        for steps in (pushes, pulls):
            for name, before, cmd, after in steps[run % 3:] + steps[: run % 3]:
                if before:
                    sh(f"{before} >/dev/null")
                record(name, timed(f"{cmd} >/dev/null", daemons))
                if after:
                    sh(f"{after} >/dev/null")
        if run == 0:
            size = sum(p.stat().st_size for p in (pull_root / "content" / "blobs").rglob("*") if p.is_file())
            print(f"compressed image (dockyard, isal gzip): {size / 1e6:.0f} MB", flush=True)
        shutil.rmtree(pull_root, ignore_errors=True)
    shutil.rmtree(SHM, ignore_errors=True)
    print(f"\nmedians (s) and dockyard's ratio (<1 = dockyard faster); "
          f"load average {os.getloadavg()[0]:.1f}:")
    for op in ("push", "pull"):
        mine = statistics.median(results[f"{op} dockyard"])
        print(f"  {op}: dockyard {mine:.2f} (cpu {statistics.median(cpu[f'{op} dockyard']):.2f}, "
              f"registry cpu {statistics.median(registry_cpu[f'{op} dockyard']):.2f})")
        for peer in ("docker", "skopeo"):
            theirs = statistics.median(results[f"{op} {peer}"])
            print(f"  {op}: {peer} {theirs:.2f}  ratio {mine / theirs:.2f} "
                  f"(registry cpu {statistics.median(registry_cpu[f'{op} {peer}']):.2f})")


if __name__ == "__main__":
    main()
