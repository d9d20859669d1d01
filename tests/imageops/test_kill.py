"""Nothing lost: ``dockyard load`` of a ~100 MB image killed with SIGKILL at several points leaves a store
that ``dockyard system check`` finds clean, with no half-loaded image, and the retry succeeds."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCKYARD = [sys.executable, "-m", "dockyard"]


def _layer(rng: random.Random, index: int, files: int, size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(files):
            info = tarfile.TarInfo(f"layer{index}/dir{i % 16}/file{i}.bin")
            info.size = size
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


def write_image_archive(path: Path, *, layers: int = 4, files: int = 400, size: int = 64 << 10,
                        tag: str = "big:1") -> str:
    """A docker-save (classic layout) tar of a ``layers * files * size`` byte image; returns its ID."""
    rng = random.Random(42)
    blobs = [_layer(rng, i, files, size) for i in range(layers)]
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(layers)]}).encode()
    with tarfile.open(path, "w") as tf:
        paths = []
        for blob, diff_id in zip(blobs, diff_ids, strict=True):
            info = tarfile.TarInfo(f"{diff_id[7:]}/layer.tar")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
            paths.append(info.name)
        cfg = tarfile.TarInfo(hashlib.sha256(config).hexdigest() + ".json")
        cfg.size = len(config)
        tf.addfile(cfg, io.BytesIO(config))
        manifest = json.dumps([{"Config": cfg.name, "RepoTags": [tag], "Layers": paths}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tf.addfile(info, io.BytesIO(manifest))
    return "sha256:" + hashlib.sha256(config).hexdigest()


@pytest.fixture(scope="module")
def archive() -> Iterator[tuple[Path, str]]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-kill-") as d:
        path = Path(d) / "big.tar"
        image_id = write_image_archive(path)
        yield path, image_id


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKYARD_ROOT": str(root)}
    return subprocess.run([*DOCKYARD, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.slow
def test_sigkill_during_load_loses_nothing(archive: tuple[Path, str]) -> None:
    path, image_id = archive
    assert path.stat().st_size > 100_000_000
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-kill-root-") as d:
        root = Path(d) / "store"
        start = time.monotonic()
        full = _run(root / "timing", "load", "-i", str(path))
        duration = time.monotonic() - start
        assert full.returncode == 0, full.stderr
        assert full.stdout == "Loaded image: big:1\n"
        env = {**os.environ, "DOCKYARD_ROOT": str(root)}
        for fraction in (0.15, 0.35, 0.55, 0.75, 0.9):
            proc = subprocess.Popen([*DOCKYARD, "load", "-i", str(path)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(duration * fraction)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            check = _run(root, "system", "check")
            assert check.returncode == 0, f"after kill at {fraction:.0%}: {check.stdout}{check.stderr}"
            images = _run(root, "images", "-q", "--no-trunc")
            # Either the image is complete (the kill came after the commit) or it is not there at all.
            assert images.stdout.strip() in ("", image_id), images.stdout
        retry = _run(root, "load", "-i", str(path))
        assert retry.returncode == 0, retry.stderr
        assert retry.stdout == "Loaded image: big:1\n"
        assert _run(root, "images", "-q", "--no-trunc").stdout.strip() == image_id
        assert _run(root, "system", "check").returncode == 0
