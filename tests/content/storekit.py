"""Helpers for the store tests: layer tars, images made through the public API, a tmpfs store root."""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.context
import os
import shutil
import tarfile
import tempfile
import time
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


# -- workers for tests that run several processes on one store ----------------------------------------
# Started with the "spawn" method: a forked child of a long test process would inherit SQLite's
# process-wide state (its table of open database files and their locks), which real dockyard
# processes never share.

def spawn_context() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def commit_many(root: str, prefix: str, count: int = 15) -> None:
    """Commit ``count`` one-layer images named ``prefix:N``."""
    c = Client(root, fsync=False)
    for i in range(count):
        make_image(c, [make_tar({f"{prefix}{i}": prefix.encode() * i})], names=[f"{prefix}:{i}"])


def gc_loop(root: str, seconds: float) -> None:
    """Collect garbage over and over for ``seconds``."""
    from dockyard.imageops import Store
    from dockyard.imageops.gc import collect

    store = Store(root)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        collect(store)


def commit_forever(root: str, ready: str) -> None:
    """Commit and unpack images until killed; touch ``ready`` once the first one is in."""
    c = Client(root)
    i = 0
    while True:
        make_image(c, [make_tar({f"f{i}": os.urandom(20000)})], names=[f"loop:{i}"], compression="gzip")
        c.unpack(f"loop:{i}")
        if i == 0:
            Path(ready).touch()
        i += 1


def tag_many(path: str, prefix: str) -> None:
    """Set 150 tags through a fresh metadata store."""
    from dockyard.metadata import MetadataStore

    meta = MetadataStore(path)
    for i in range(150):
        meta.set_tag(f"docker.io/library/{prefix}:{i}", "sha256:" + "a" * 64)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``os.fsync`` is called on from now on, in order (each call still syncs)."""
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return synced
