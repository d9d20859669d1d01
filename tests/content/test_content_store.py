"""The content store: ingest verifies while writing, commits atomically, survives races and SIGKILL."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.errors import CorruptData, DigestMismatch, InvalidArgument, NotFound
from dockyard.imageops import Store
from dockyard.imageops.check import check
from dockyard.imageops.gc import collect
from dockyard.oci.digest import Digest
from tests.content.storekit import root

__all__ = ["root"]


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def test_ingest_read_info_walk_delete(root: Path) -> None:
    store = ContentStore(root / "content", fsync=False)
    assert not root.exists()  # nothing is created until the first write
    assert list(store.walk()) == []
    info = store.ingest(b"hello")
    assert info.digest == sha(b"hello") and info.size == 5
    assert store.exists(info.digest)
    assert store.read(info.digest) == b"hello"
    assert store.info(info.digest).size == 5
    with store.open(info.digest) as f:
        assert f.read() == b"hello"
    assert [b.digest for b in store.walk()] == [info.digest]
    assert store.delete(info.digest) is True
    assert store.delete(info.digest) is False
    with pytest.raises(NotFound, match="not found in the content store"):
        store.info(info.digest)
    with pytest.raises(NotFound):
        store.open(info.digest)


def test_ingest_chunks_and_file(root: Path, tmp_path: Path) -> None:
    store = ContentStore(root / "content", fsync=True)
    data = os.urandom(3 << 20)
    assert store.ingest([data[:100], data[100:]]).digest == sha(data)
    src = tmp_path / "blob"
    src.write_bytes(data)
    with open(src, "rb") as f:
        assert store.ingest(f, expected=sha(data), size=len(data)).size == len(data)


def test_wrong_digest_or_size_leaves_nothing(root: Path) -> None:
    store = ContentStore(root / "content", fsync=False)
    with pytest.raises(DigestMismatch, match="expected sha256:"):
        store.ingest(b"bad", expected=sha(b"good"))
    with pytest.raises(CorruptData, match="size mismatch"):
        store.ingest(b"good", expected=sha(b"good"), size=5)
    with pytest.raises(CorruptData, match="more data"):
        store.ingest(b"good!", size=4)
    assert list(store.walk()) == []
    assert store.ingest_files() == []


def test_writer_is_invisible_until_commit_and_aborts_on_error(root: Path) -> None:
    store = ContentStore(root / "content", fsync=False)
    digest = sha(b"abcdef")
    with store.writer(expected=digest) as w:
        w.write(b"abc")
        assert not store.exists(digest)
        w.write(b"def")
        assert not store.exists(digest)
        seen: list[Digest] = []
        w.commit(before_publish=seen.append)
    assert seen == [digest] and store.exists(digest)
    with pytest.raises(RuntimeError), store.writer() as w2:
        w2.write(b"x")
        raise RuntimeError("boom")
    assert store.ingest_files() == []


def test_known_blob_is_not_read_again(root: Path) -> None:
    store = ContentStore(root / "content", fsync=False)
    store.ingest(b"same")

    class Exploding:
        def read(self, n: int = -1) -> bytes:
            raise AssertionError("source read although the blob exists")

    assert store.ingest(Exploding(), expected=sha(b"same")).size == 4  # type: ignore[arg-type]


def test_invalid_digest_is_refused(root: Path) -> None:
    store = ContentStore(root / "content")
    with pytest.raises(InvalidArgument):
        store.path("sha256:../../etc/passwd")


def _ingest_same(path: str, data: bytes, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = ContentStore(path, fsync=False)
    barrier.wait()
    with store.writer(expected=sha(data)) as w:
        for i in range(0, len(data), 65536):
            w.write(data[i:i + 65536])
        w.commit()


def test_concurrent_processes_ingest_the_same_blob(root: Path) -> None:
    data = os.urandom(4 << 20)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_ingest_same, args=(str(root / "content"), data, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = ContentStore(root / "content")
    assert store.read(sha(data)) == data
    assert store.ingest_files() == []


def _slow_writer(path: str) -> None:
    store = ContentStore(path, fsync=False)
    w = store.writer()
    while True:
        w.write(b"x" * 4096)
        time.sleep(0.001)


def test_sigkill_during_ingest_leaves_a_clean_store(root: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_slow_writer, args=(str(root / "content"),))
    proc.start()
    assert proc.pid is not None
    try:
        store = Store(root, fsync=False)
        deadline = time.monotonic() + 10
        while not store.content.ingest_files() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:  # never leave the writer looping, even when the store misbehaves
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    assert list(store.content.walk()) == []  # nothing half-written became visible
    assert len(store.content.ingest_files()) == 1
    report = check(store)
    assert report.ok, report.problems
    assert any("leftover ingest file" in n for n in report.notes)
    collect(store)
    assert store.content.ingest_files() == []
    assert check(store).notes == []


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


def test_verified_reader_passes_good_bytes_in_chunks_with_retries(root: Path) -> None:
    store = ContentStore(root / "content", fsync=False)
    data = os.urandom(3 << 20)
    info = store.ingest(data)
    blob = store.verified(info.digest, info.size, "image x: layer y")
    got = bytearray()
    for start in range(0, len(data), 1 << 20):  # as a chunked push: one reader per chunk, seeking
        with blob.open() as f:
            f.seek(start)
            got += f.read(1 << 20)
        if start == 1 << 20:  # a retried chunk: read again, hashed once
            with blob.open() as f:
                f.seek(start)
                assert f.read(1 << 20) == data[start:start + (1 << 20)]
    assert bytes(got) == data and blob.verified and store.quarantined() == []


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_verified_reader_fails_naming_the_blob_and_quarantines_it(root: Path, damage: str) -> None:
    store = ContentStore(root / "content", fsync=False)
    data = os.urandom(2 << 20)
    info = store.ingest(data)
    if damage == "flip":
        _flip(store.path(info.digest), len(data) - 10)
    else:
        os.truncate(store.path(info.digest), len(data) - 1)
    blob = store.verified(info.digest, info.size, "image app:1: layer sha256:abc")
    with pytest.raises(CorruptData) as exc, blob.open() as f:
        while f.read(1 << 16):
            pass
    assert str(exc.value).startswith(f"image app:1: layer sha256:abc: blob {info.digest} is corrupt")
    assert not store.exists(info.digest) and store.quarantined() == [info.digest]
    assert store.quarantine_path(info.digest).stat().st_size == len(data) - (damage == "truncate")
    with pytest.raises(NotFound, match="missing from the content store"):
        store.verified(info.digest, info.size).open()
    assert store.unquarantine(info.digest) and store.quarantined() == []


def test_a_blob_is_published_with_one_rename(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A build stores a config per step: publishing one is a rename, not a mkdir (EEXIST) and a stat
    # first; the first blob of an algorithm makes the directory, as does the next after a removal.
    store = ContentStore(root)
    made: list[Path] = []
    real = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        made.append(self)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    first = store.ingest(b"first")
    blobs = store.path(first.digest).parent
    assert blobs in made
    made.clear()
    for i in range(5):
        assert store.read(store.ingest(b"more %d" % i).digest) == b"more %d" % i
    assert blobs not in made
    for entry in os.listdir(blobs):
        os.unlink(blobs / entry)
    os.rmdir(blobs)
    assert store.read(store.ingest(b"again").digest) == b"again"
    assert blobs in made
