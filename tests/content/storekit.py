"""Helpers for the store tests: layer tars, images made through the public API, a tmpfs store root."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.image import ImageRecord
from dockyard.oci.config import History, ImageConfig

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


def make_tar(files: dict[str, bytes], *, whiteouts: Sequence[str] = (), dirs: Sequence[str] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            head, _, base = name.rpartition("/")
            info = tarfile.TarInfo(f"{head}/.wh.{base}" if head else f".wh.{base}")
            tf.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


@pytest.fixture
def root() -> Iterator[Path]:
    """A fresh store root on tmpfs (not yet created: the store must create it lazily)."""
    parent = Path(tempfile.mkdtemp(prefix="dy-store-", dir=SHM))
    try:
        yield parent / "store"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def client(root: Path) -> Iterator[Client]:
    c = Client(root, fsync=False)
    try:
        yield c
    finally:
        c.close()


def make_image(client: Client, layers: Sequence[bytes] = (), *, names: Sequence[str] = (),
               created: str = "2024-01-02T03:04:05Z", labels: dict[str, str] | None = None,
               parent: str = "", repo_digests: Sequence[str] = (), compression: str = "none",
               history: Sequence[str] = (), extra: str = "") -> ImageRecord:
    """Store ``layers`` (tars) and commit an image of them; ``extra`` varies the config (and ID)."""
    with client.lease() as lease:
        diff_ids = [client.store_layer(t, compression=compression, lease=lease).diff_id for t in layers]
        config = ImageConfig(
            created=created, config={"Cmd": ["sh"], "Labels": labels or {}, "Env": [f"X={extra}"]},
            diff_ids=diff_ids,
            history=[History(created=created, created_by=h) for h in history]
            or [History(created=created, created_by=f"layer {i}") for i in range(len(layers))],
        )
        return client.commit_image(config, names=names, repo_digests=repo_digests, parent=parent)
