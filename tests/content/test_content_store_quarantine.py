"""The content store's quarantine, verified readers, directory syncs and private ingest files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.content.verify import CorruptBlob
from dockyard.errors import CorruptData
from dockyard.oci.digest import Digest
from tests.content.storekit import fsyncs, root

__all__ = ["fsyncs", "root"]


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def test_quarantine_moves_blobs_aside_and_tells_what_it_holds(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    one, two, kept = (store.ingest(data).digest for data in (b"one", b"two", b"kept"))
    assert not store.is_quarantined(one)
    moved = store.quarantine(one)
    assert moved == root / "quarantine" / "sha256" / one.hex and moved.read_bytes() == b"one"
    assert store.quarantine(two) == root / "quarantine" / "sha256" / two.hex  # its directory exists now
    assert store.is_quarantined(one) and store.is_quarantined(two) and not store.is_quarantined(kept)
    assert not store.exists(one) and not store.exists(two) and store.exists(kept)
    assert store.quarantined() == sorted([one, two])
    # already moved (another reader found it corrupt first): the copy in quarantine is named again
    assert store.quarantine(one) == moved
    assert store.quarantine(sha(b"never stored")) is None
    assert store.quarantined() == sorted([one, two])


def test_unquarantine_says_whether_there_was_a_copy(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    digest = store.ingest(b"bad").digest
    store.quarantine(digest)
    assert store.unquarantine(digest) is True
    assert store.unquarantine(digest) is False
    assert store.unquarantine(sha(b"never stored")) is False
    assert not store.is_quarantined(digest) and store.quarantined() == []


def test_read_of_a_corrupt_blob_reports_both_digests(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    digest = store.ingest(b"original").digest
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(CorruptBlob) as caught:
        store.read(digest, "image app:1: config")
    assert caught.value.expected == digest and caught.value.digest == digest
    assert caught.value.actual == sha(b"tampered")
    assert str(caught.value).startswith(f"image app:1: config: blob {digest} is corrupt")


def test_verified_reader_checks_the_size_it_is_given(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    info = store.ingest(b"12345")
    with pytest.raises(CorruptData) as caught:
        store.verified(info.digest, info.size + 1, "layer x").open()
    assert str(caught.value).startswith(f"layer x: blob {info.digest} is corrupt in the local store "
                                        f"(5 bytes instead of 6)")
    assert store.quarantined() == [info.digest]


def test_verified_reader_without_a_role_names_the_blob(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    info = store.ingest(b"abcdef")
    store.path(info.digest).chmod(0o644)
    store.path(info.digest).write_bytes(b"abcdeX")
    with pytest.raises(CorruptData) as caught, store.verified(info.digest).open() as f:
        f.read()
    assert str(caught.value).startswith(f"blob {info.digest}: blob {info.digest} is corrupt in the local "
                                        f"store (")


def test_commit_syncs_the_directory_unless_told_not_to(root: Path, fsyncs: list[str]) -> None:
    synced = fsyncs
    store = ContentStore(root)
    with store.writer() as w:
        w.write(b"durable")
        w.commit()  # the default: the blob's directory is synced so the rename survives a crash
    assert len(synced) == 2 and synced[1] == str(root / "blobs" / "sha256")
    synced.clear()
    with store.writer() as w:
        w.write(b"later")
        w.commit(sync_dir=False)
    assert len(synced) == 1 and synced[0].startswith(str(root / "ingest"))
    synced.clear()
    info = store.ingest(b"scratch", sync_dir=False)  # a blob nothing durable references yet
    assert len(synced) == 1 and synced[0].startswith(str(root / "ingest"))
    assert store.read(info.digest) == b"scratch"


def test_a_writer_never_shares_its_file_with_another(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two writers of one process that drew the same random name: the second must not open (and so
    # interleave its bytes with) the first one's file.
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)
    store = ContentStore(root, fsync=False)
    with store.writer() as first:
        first.write(b"first")
        with pytest.raises(FileExistsError):
            store.writer()
        assert first.commit().digest == sha(b"first")
    assert store.read(sha(b"first")) == b"first"
