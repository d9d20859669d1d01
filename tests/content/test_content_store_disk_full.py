"""A full disk met by the content store is ``NoSpace`` naming the path it could not write, never an
``OSError`` traceback; nothing half-written is published or left in ``ingest/``.

The disk is a real tmpfs of this test's own, limited in bytes or in inodes (creating a directory or a
file on a filesystem out of inodes fails with ENOSPC too). A filesystem that delays allocation reports
a full disk only at ``fsync``; that one is played by an ``os.fsync`` that fails with ENOSPC.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.errors import NoSpace
from dockyard.oci.digest import Digest
from tests import tmpfs


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


@pytest.fixture
def few_inodes() -> Iterator[Path]:
    """A tmpfs with room for bytes but only 16 inodes (its root directory takes one)."""
    yield from tmpfs.mounted("size=4m,nr_inodes=16")


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A tmpfs of 256 KiB."""
    yield from tmpfs.mounted("size=256k")


def use_up_inodes(fs: Path) -> None:
    """Create empty files in ``fs/filler`` until the filesystem has no inode left."""
    (fs / "filler").mkdir()
    for n in range(1000):
        try:
            (fs / "filler" / str(n)).touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            return
    raise AssertionError("the tmpfs never ran out of inodes")


def test_a_store_that_cannot_make_its_directories_says_the_disk_is_full(few_inodes: Path) -> None:
    use_up_inodes(few_inodes)
    store = ContentStore(few_inodes, fsync=False)
    with pytest.raises(NoSpace) as caught:
        store.ingest(b"x")
    assert str(caught.value) == f"create content store in {few_inodes}: no space left on device"
    assert not (few_inodes / "blobs").exists()


def test_a_writer_that_cannot_create_its_file_names_it(few_inodes: Path) -> None:
    store = ContentStore(few_inodes, fsync=False)
    first = store.ingest(b"first")  # the store's directories exist
    use_up_inodes(few_inodes)
    for expected, tag in ((None, "new"), (sha(b"second"), sha(b"second").hex[:16])):
        with pytest.raises(NoSpace) as caught:
            store.writer(expected)
        message = str(caught.value)
        assert message.startswith(f"write {few_inodes}/ingest/{tag}.{os.getpid()}."), message
        assert message.endswith(": no space left on device") and "\n" not in message
    assert os.listdir(few_inodes / "ingest") == []
    assert store.read(first.digest) == b"first"  # what was stored is untouched


def test_a_write_past_the_free_space_names_the_temp_file_and_leaves_nothing(small_fs: Path) -> None:
    store = ContentStore(small_fs, fsync=False)
    data = os.urandom(1 << 20)  # four times the room: the first write(2) is short, the next one fails
    with store.writer() as w, pytest.raises(NoSpace) as caught:
        w.write(data)
    assert str(caught.value) == f"write {w.temp_path}: no space left on device"
    assert os.listdir(small_fs / "ingest") == []
    with pytest.raises(NoSpace):
        store.ingest(data, expected=sha(data))
    assert not store.exists(sha(data)) and list(store.walk()) == []
    assert os.listdir(small_fs / "ingest") == []
    assert store.ingest(data[:1000]).digest == sha(data[:1000])  # a blob that fits still goes in


def test_a_full_disk_reported_by_fsync_names_the_temp_file(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync
    refused: list[str] = []

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if "/ingest/" in target:
            refused.append(target)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = ContentStore(tmp_path)  # fsync is the default
    with pytest.raises(NoSpace) as caught:
        store.ingest(b"delayed allocation")
    assert len(refused) == 1 and refused[0].startswith(f"{tmp_path}/ingest/new.{os.getpid()}.")
    assert str(caught.value) == f"write {refused[0]}: no space left on device"
    assert not store.exists(sha(b"delayed allocation")) and os.listdir(tmp_path / "ingest") == []
