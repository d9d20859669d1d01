"""Benchmark dockyard.archive against GNU tar: create/extract 50k small files on /dev/shm, and
compress 100 MB through the layer writer (isal gzip level 1, zstd level 3).

Run: .venv/bin/python bench/bench_archive.py [--files N] [--mb M]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from dockyard.archive import (
    CompressingWriter,
    HashingReader,
    LayerDigests,
    apply_layer,
    apply_layer_overlay,
    open_decompressed,
    write_tree,
)


def make_tree(root: Path, files: int) -> int:
    """``files`` small files (0-4 KiB) in 100-file directories two levels deep; returns total bytes."""
    rng = random.Random(42)
    blob = rng.randbytes(8192)
    total = 0
    for i in range(files):
        d = root / f"d{i // 1000:03d}" / f"s{(i // 100) % 10}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(0, 4096)
        (d / f"file{i:06d}.txt").write_bytes(blob[:size])
        total += size
    return total


def corpus(size: int) -> bytes:
    """``size`` bytes of files under /usr (sorted walk), a stand-in for a real layer's contents."""
    parts: list[bytes] = []
    got = 0
    for dirpath, dirnames, filenames in os.walk("/usr"):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                b = Path(p).read_bytes()
            except OSError:
                continue
            parts.append(b)
            got += len(b)
            if got >= size:
                return b"".join(parts)[:size]
    return (b"".join(parts) * (size // max(got, 1) + 1))[:size]


CLOCK = "wall"


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (GNU tar runs as one)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def timed(fn: object) -> float:
    """Seconds ``fn()`` took: wall clock, or CPU time with ``--clock cpu`` (fair on a busy machine)."""
    clock = _cpu if CLOCK == "cpu" else time.perf_counter
    t = clock()
    fn()  # type: ignore[operator]
    return clock() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: rates per CPU-second (self + children), for a loaded machine")
    args = ap.parse_args()
    global CLOCK
    CLOCK = args.clock
    base = Path(tempfile.mkdtemp(prefix="bench-archive-", dir="/dev/shm"))
    try:
        src = base / "src"
        total = make_tree(src, args.files)
        entries = args.files + args.files // 100 + args.files // 1000
        print(f"tree: {args.files} files, {entries} entries, {total / 1e6:.1f} MB on /dev/shm; "
              f"{CLOCK} clock, load average {os.getloadavg()[0]:.1f}")
        ours_tar, gnu_tar = base / "ours.tar", base / "gnu.tar"

        def create_ours() -> None:
            fd = os.open(ours_tar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_tree(src, fd)
            finally:
                os.close(fd)

        def create_gnu() -> None:
            subprocess.run(["tar", "-cf", str(gnu_tar), "-C", str(src), "."], check=True)

        t_ours = min(timed(create_ours) for _ in range(2))
        t_gnu = min(timed(create_gnu) for _ in range(2))
        print(f"create  dockyard {entries / t_ours:9,.0f} entries/s   GNU tar {entries / t_gnu:9,.0f} /s"
              f"   ratio {t_gnu / t_ours:.2f}")

        def extract_ours(dest: Path) -> None:
            with open(ours_tar, "rb") as f:
                apply_layer(f, dest)

        def extract_gnu(dest: Path) -> None:
            dest.mkdir()
            subprocess.run(["tar", "-xf", str(gnu_tar), "-C", str(dest)], check=True)

        res = {}
        for label, fn in (("ours", extract_ours), ("gnu", extract_gnu)):
            best = float("inf")
            for i in range(2):
                dest = base / f"x-{label}-{i}"
                best = min(best, timed(lambda fn=fn, dest=dest: fn(dest)))
                shutil.rmtree(dest)
            res[label] = best
        ours, gnu = entries / res["ours"], entries / res["gnu"]
        print(f"extract dockyard {ours:9,.0f} entries/s   GNU tar {gnu:9,.0f} /s"
              f"   ratio {res['gnu'] / res['ours']:.2f}")

        # Export and pull of the same tree as a gzip layer: ours (isal-1, both digests, verify on pull)
        # against GNU tar piping through gzip (zlib-6), the Docker-equivalent path.
        blob = base / "layer.tar.gz"

        def export_ours() -> None:
            with open(blob, "wb") as out:
                cw = CompressingWriter(out, "gzip")
                write_tree(src, cw)
                cw.close()

        def pull_ours(dest: Path) -> None:
            with open(blob, "rb") as fh:
                h = HashingReader(fh)
                raw, _ = open_decompressed(h)
                apply_layer(raw, dest)
                h.digest  # noqa: B018 - the verify step's cost is in the reads above

        def export_gnu() -> None:
            subprocess.run(["tar", "-czf", str(base / "gnu.tar.gz"), "-C", str(src), "."], check=True)

        def pull_gnu(dest: Path) -> None:
            dest.mkdir()
            subprocess.run(["tar", "-xzf", str(base / "gnu.tar.gz"), "-C", str(dest)], check=True)

        t_ours, t_gnu = timed(export_ours), timed(export_gnu)
        print(f"export  dockyard {entries / t_ours:9,.0f} entries/s   tar|gzip {entries / t_gnu:9,.0f} /s"
              f"   ratio {t_gnu / t_ours:.2f}   (tar+gzip+2 digests)")
        t_ours = timed(lambda: pull_ours(base / "p-ours"))
        t_gnu = timed(lambda: pull_gnu(base / "p-gnu"))
        print(f"pull    dockyard {entries / t_ours:9,.0f} entries/s   gunzip|tar {entries / t_gnu:9,.0f} /s"
              f"   ratio {t_gnu / t_ours:.2f}   (verify+gunzip+extract)")
        shutil.rmtree(base / "p-ours")
        shutil.rmtree(base / "p-gnu")

        # Snapshot of layer N+1 on a 50k-file layer N: naive (copy N, apply the small layer on it) vs
        # overlay form (apply the small layer alone into an empty dir; overlayfs stacks them).
        small = base / "small.tar"
        small_src = base / "small-src"
        for i in range(100):
            (small_src / "d000").mkdir(parents=True, exist_ok=True)
            (small_src / "d000" / f"new{i}").write_bytes(b"n" * i)
        with open(small, "wb") as out:
            write_tree(small_src, out)
        lower = base / "lower"
        with open(ours_tar, "rb") as fh:
            apply_layer(fh, lower)

        def naive() -> None:
            subprocess.run(["cp", "-a", str(lower), str(base / "snap-naive")], check=True)
            with open(small, "rb") as fh:
                apply_layer(fh, base / "snap-naive")

        def overlay() -> None:
            with open(small, "rb") as fh:
                apply_layer_overlay(fh, base / "snap-overlay")

        t_naive, t_overlay = timed(naive), timed(overlay)
        print(f"snapshot on a {args.files // 1000}k-file lower: copy+apply {t_naive * 1000:7.0f} ms   "
              f"overlay-form apply {t_overlay * 1000:5.1f} ms")
        for d in ("snap-naive", "snap-overlay", "lower"):
            shutil.rmtree(base / d)

        # Compression: real-world bytes (binaries, libraries, text from /usr) up to --mb.
        data = corpus(args.mb * 1_000_000)
        chunk = 1 << 20
        for kind in ("gzip", "zstd", "none"):
            blob = base / f"blob.{kind}"
            result: dict[str, LayerDigests] = {}

            def compress(
                blob: Path = blob, kind: str = kind, result: dict[str, LayerDigests] = result
            ) -> None:
                with open(blob, "wb") as out:
                    cw = CompressingWriter(out, kind)  # type: ignore[arg-type]
                    for off in range(0, len(data), chunk):
                        cw.write(data[off : off + chunk])
                    result["d"] = cw.close()

            def decompress(blob: Path = blob) -> None:
                with open(blob, "rb") as fh:
                    reader, _ = open_decompressed(fh)
                    while reader.read(chunk):
                        pass

            dt = timed(compress)
            dt_read = timed(decompress)
            d = result["d"]
            print(f"{kind:5s} compress {d.size_uncompressed / dt / 1e6:5.0f} MB/s (+ both sha256, one pass)"
                  f"  decompress {d.size_uncompressed / dt_read / 1e6:5.0f} MB/s"
                  f"  size {100 * d.size / d.size_uncompressed:5.1f}%")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
