"""Exported cache mounts: a pip install whose built wheels a second runner restores (issue 12).

The bench makes everything offline: a Python base image from this machine's Debian python3.11
(its pip, setuptools and wheel), and a directory of source distributions (``--find-links``, no
index). The Dockerfile installs them with ``RUN --mount=type=cache,target=/root/.cache/pip``: pip
builds a wheel from each sdist and keeps it in its wheel cache, so a later install only unpacks it.

- runner A (not timed) builds with ``--cache-to type=registry,ref=...,mode=max,mounts=true`` to the
  peers' distribution 2.8: the step records and the pip cache mount go to the registry;
- then one dependency is added (requirements.txt and a new sdist), so the RUN step runs again;
- cold: a fresh store builds the changed context with nothing imported: every wheel is built;
- second runner: a fresh store builds it with ``--cache-from`` A's cache: the RUN step runs, its
  cache mount restored first, so pip builds only the new package's wheel.

Both interleaved over ``--runs`` rounds (medians). Goal (issue 12): second runner >= 3x faster.
Run: .venv/bin/python bench/bench_cache_mounts.py [--runs N] [--packages N]
(needs the peers' registry on 127.0.0.1:5000 and /usr/bin/python3.11 with python3-pip, -wheel)
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REGISTRY = "127.0.0.1:5000"
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
DIST = Path("/usr/lib/python3/dist-packages")
# Only the build tools from the system's dist-packages (not the rest of the machine's packages).
TOOLS = ("pip", "setuptools", "pkg_resources", "wheel", "_distutils_hack", "distutils-precedence.pth")
DOCKERFILE = """FROM pybase:bench
COPY sdists /sdists
RUN --mount=type=cache,target=/root/.cache/pip \\
    python3 -m pip install -q --no-index --find-links /sdists --no-build-isolation \\
        --disable-pip-version-check --root-user-action=ignore -r /sdists/requirements.txt
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", type=int, default=24, help="sdists runner A installs")
    args = parser.parse_args()
    for need in (PYTHON, STDLIB, *(DIST / t for t in TOOLS)):
        if not need.exists():
            print(f"bench_cache_mounts: {need} is missing (apt-get install python3-pip python3-wheel)")
            return 1
    dockyard = str(Path(sys.executable).parent / "dockyard")
    root = Path(tempfile.mkdtemp(prefix="dy-bench-cachemount-", dir="/var/tmp"))
    cache = f"{REGISTRY}/bench-cachemount/cache:{os.getpid()}-{int(time.time())}"
    stores: list[Path] = []

    def run(*cmd: str) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")

    def fresh_store() -> Path:
        store = root / f"store-{len(stores)}"
        stores.append(store)
        run(dockyard, "--root", str(store), "load", "-q", "-i", str(root / "pybase.tar"))
        return store

    def build(store: Path, ctx: Path, *flags: str) -> float:
        start = time.perf_counter()
        run(dockyard, "--root", str(store), "build", "-q", "-t", "app:bench", *flags, str(ctx))
        return time.perf_counter() - start

    try:
        # The base image: imported once, then saved and loaded into each runner (the same image ID).
        base_tar = root / "rootfs.tar"
        write_rootfs(base_tar)
        seed = root / "seed"
        stores.append(seed)
        run(dockyard, "--root", str(seed), "import", "-c", "ENV PYTHONDONTWRITEBYTECODE=1", str(base_tar),
            "pybase:bench")
        run(dockyard, "--root", str(seed), "save", "-o", str(root / "pybase.tar"), "pybase:bench")
        before, after = root / "ctx-a", root / "ctx-b"
        make_context(before, args.packages)
        make_context(after, args.packages + 1)  # one dependency added: the RUN step runs again
        a = fresh_store()
        build(a, before, "--cache-to", f"type=registry,ref={cache},mode=max,mounts=true")
        times: dict[str, list[float]] = {"cold": [], "second runner": []}
        for _ in range(args.runs):
            times["cold"].append(build(fresh_store(), after))
            times["second runner"].append(build(fresh_store(), after, "--cache-from",
                                                f"type=registry,ref={cache}"))
            for store in stores[2:]:
                _remove(store)
            del stores[2:]
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"median seconds over {args.runs} interleaved rounds: pip install of {args.packages + 1} "
              f"sdists (one new), RUN --mount=type=cache,target=/root/.cache/pip")
        for name, value in med.items():
            print(f"  {name:<14} {value:7.3f}   (runs: {', '.join(f'{t:.3f}' for t in times[name])})")
        print(f"cold / second runner: {med['cold'] / med['second runner']:.2f}x faster  (goal >= 3x)")
        return 0
    finally:
        for store in stores:
            _remove(store)
        shutil.rmtree(root, ignore_errors=True)


def write_rootfs(dest: Path) -> None:
    """busybox, python3.11 with its stdlib and build tools, and the shared libraries they load."""
    files: list[Path] = [Path("/usr/bin/busybox"), PYTHON]
    for path in sorted(STDLIB.rglob("*")):
        rel = path.relative_to(STDLIB)
        if rel.parts[0] in ("test", "idlelib", "tkinter", "EXTERNALLY-MANAGED") or "__pycache__" in rel.parts:
            continue
        files.append(path)
    for tool in TOOLS:
        for top in [DIST / tool, *sorted(DIST.glob(f"{tool}-*info"))]:  # the package and its metadata
            files.extend([top, *sorted(top.rglob("*"))] if top.is_dir() else [top])
    libs: set[str] = set()
    for f in files:
        if f.is_file() and not f.is_symlink() and (f.suffix == ".so" or f == PYTHON):
            libs.update(_needed(f))
    with tarfile.open(dest, "w") as tar:
        for d in ("bin", "etc", "root", "tmp", "lib64", "usr/bin"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for name in ("sh", "ls", "cat", "rm", "mkdir", "cp", "mv", "ln", "env"):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(info)
        for name, target in (("usr/bin/python3", "python3.11"),):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
        tar.add("/usr/bin/busybox", "bin/busybox")
        for f in files[1:]:
            tar.add(str(f), str(f).lstrip("/"), recursive=False)
        for lib in sorted(libs):
            real = os.path.realpath(lib)
            tar.add(real, lib.lstrip("/"))  # the link's path, the file's bytes


def _needed(binary: Path) -> set[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        target = parts[parts.index("=>") + 1] if "=>" in parts[:-1] else ""
        if target.startswith("/"):
            found.add(target)
        elif parts and parts[0].startswith("/"):
            found.add(parts[0])  # the dynamic loader
    return found


def make_context(ctx: Path, count: int) -> None:
    """``count`` pure-Python sdists (setup.py, 40 modules each) and a requirements.txt naming them."""
    sdists = ctx / "sdists"
    sdists.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    names = [f"benchpkg{i:03d}" for i in range(count)]
    for name in names:
        members = {
            "setup.py": f"from setuptools import setup\nsetup(name='{name}', version='1.0', "
                        f"packages=['{name}'])\n",
            "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
            f"{name}/__init__.py": "from . import mod00\n",
            **{f"{name}/mod{j:02d}.py": f"def f{j}(x):\n    return x * {j} + {len(name)}\n" * 40
               for j in range(40)},
        }
        with tarfile.open(sdists / f"{name}-1.0.tar.gz", "w:gz") as tar:
            for rel, text in sorted(members.items()):
                data = text.encode()
                info = tarfile.TarInfo(f"{name}-1.0/{rel}")
                info.size, info.mtime = len(data), 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
    (sdists / "requirements.txt").write_text("".join(f"{n}\n" for n in names))


def _remove(store: Path) -> None:
    subprocess.run(["umount", "-R", "-l", str(store)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
