"""Content store edges: the documented layout, streaming readers, fsync, info, and ingest clean-up."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from dockyard.content import CHUNK, ContentStore
from dockyard.errors import CorruptData, DigestMismatch, InvalidArgument, NotFound, StoreError
from dockyard.oci.digest import Digest
from dockyard.snapshot import pid_of
from tests.content.storekit import fsyncs, root

__all__ = ["fsyncs", "root"]


def sha(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_layout_is_blobs_algorithm_hex_and_ingest(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    with store.writer() as w:
        w.write(b"x")
        assert w.temp_path.parent == root / "ingest"
        assert sorted(os.listdir(root)) == ["blobs", "ingest"]
        assert os.listdir(root / "blobs") == ["sha256"]
        info = w.commit()
    assert (root / "blobs" / "sha256" / info.digest.hex).read_bytes() == b"x"


def test_a_second_store_on_an_existing_root_works(root: Path) -> None:
    ContentStore(root, fsync=False).ingest(b"one")
    again = ContentStore(root, fsync=False)
    assert again.ingest(b"two").digest == sha(b"two")
    assert {b.digest for b in again.walk()} == {sha(b"one"), sha(b"two")}


def test_root_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = ContentStore(tmp_path / "file" / "store", fsync=False)
    with pytest.raises(StoreError) as caught:
        store.ingest(b"x")
    where = tmp_path / "file" / "store"
    assert str(caught.value) == f"cannot create content store in {where}: Not a directory"


class ReadOnly:
    """A stream with only ``read`` (no iteration), as an HTTP body is; records the sizes asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    def read(self, n: int) -> bytes:
        self.asked.append(n)
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_a_reader_is_streamed_in_bounded_chunks(root: Path) -> None:
    data = os.urandom(CHUNK * 2 + 5)
    source = ReadOnly(data)
    info = ContentStore(root, fsync=False).ingest(source, expected=sha(data), size=len(data))  # type: ignore[arg-type]
    assert info.digest == sha(data) and info.size == len(data)
    assert source.asked == [CHUNK] * 4


def test_before_publish_sees_the_digest_whether_new_or_known(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    seen: list[Digest] = []
    store.ingest(b"abc", before_publish=seen.append)
    store.ingest(b"abc", expected=str(sha(b"abc")), before_publish=seen.append)
    assert seen == [sha(b"abc"), sha(b"abc")]
    assert all(isinstance(d, Digest) for d in seen)


def test_fsync_by_default_covers_blob_and_directory(root: Path, fsyncs: list[str]) -> None:
    synced = fsyncs
    info = ContentStore(root / "a").ingest(b"durable")  # fsync is the default
    assert len(synced) == 2
    assert synced[0].startswith(str(root / "a" / "ingest"))
    assert synced[1] == str(root / "a" / "blobs" / "sha256")
    synced.clear()
    ContentStore(root / "b", fsync=False).ingest(b"fast")
    assert synced == []
    assert info.size == 7


def test_info_reports_digest_size_and_mtime(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    digest = store.ingest(b"12345").digest
    info = store.info(str(digest))
    assert info.digest == digest and isinstance(info.digest, Digest)
    assert info.size == 5
    assert info.mtime == os.stat(store.path(digest)).st_mtime


def test_open_of_a_missing_blob_names_it(root: Path) -> None:
    digest = sha(b"absent")
    with pytest.raises(NotFound) as caught:
        ContentStore(root, fsync=False).open(digest)
    assert str(caught.value) == f"blob {digest} not found in the content store"


def test_clean_ingest_keeps_live_recent_writers_and_removes_the_rest(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    live = store.writer()  # this process: alive, and its file is fresh
    live.write(b"x")
    dead = root / "ingest" / f"zz.{dead_pid()}.abc"
    dead.write_bytes(b"left by a killed writer")
    old = root / "ingest" / f"zzz.{os.getpid()}.old"
    old.write_bytes(b"alive but stale")
    os.utime(old, (1, 1))
    assert store.ingest_files()[0] == live.temp_path  # the live one sorts first
    removed = store.clean_ingest(max_age=3600)
    assert removed == [dead, old]
    assert store.ingest_files() == [live.temp_path]
    live.abort()


def test_clean_ingest_ignores_a_file_already_gone(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContentStore(root, fsync=False)
    gone = root / "ingest" / f"new.{dead_pid()}.abc"
    monkeypatch.setattr(store, "ingest_files", lambda: [gone])
    assert store.clean_ingest() == []


def test_invalid_digest_error_names_it(root: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ContentStore(root).path("sha256:../x")
    assert str(caught.value) == "invalid blob digest 'sha256:../x'"


def test_sha512_blobs_are_written_read_and_verified_with_sha512(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    data = b"long hash"
    expected = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    assert store.ingest(data, expected=expected).digest == expected
    assert store.read(expected) == data
    assert store.verify(expected) == expected


def test_read_and_verify_catch_a_corrupted_blob(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    digest = store.ingest(b"original").digest
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    assert store.verify(digest) == sha(b"tampered")
    with pytest.raises(DigestMismatch) as caught:
        store.read(digest)
    # A corrupt blob is quarantined, and the error says where it went (issue 10, item 7).
    quarantined = root / "quarantine" / "sha256" / digest.removeprefix("sha256:")
    assert str(caught.value) == (f"blob {digest}: blob {digest} is corrupt in the local store (content "
                                 f"hashes to {sha(b'tampered')}); moved to {quarantined}")
    assert quarantined.read_bytes() == b"tampered" and not path.exists()


def test_commit_mismatch_and_overflow_texts(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    with pytest.raises(DigestMismatch) as caught:
        store.ingest(b"bad", expected=sha(b"good"))
    good, bad = sha(b"good"), sha(b"bad")
    assert str(caught.value) == f"digest mismatch (blob {good}): expected {good}, got {bad}"
    with pytest.raises(CorruptData) as overflow:
        store.ingest(b"12345", size=4)
    assert str(overflow.value) == "blob (new): more data than the expected 4 bytes"
    assert store.ingest(b"1234", size=4).size == 4  # exactly the expected size is fine


def test_writer_file_name_mode_and_flags(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    digest = sha(b"named")
    umask = os.umask(0)
    os.umask(umask)
    with store.writer(expected=digest) as known, store.writer() as new:
        assert re.fullmatch(rf"{digest.hex[:16]}\.{os.getpid()}\.[0-9a-f]{{12}}", known.temp_path.name)
        assert re.fullmatch(rf"new\.{os.getpid()}\.[0-9a-f]{{12}}", new.temp_path.name)
        assert pid_of(new.temp_path.name) == os.getpid()
        assert stat.S_IMODE(os.stat(new.temp_path).st_mode) == 0o644 & ~umask
        assert new._fd is not None and fcntl.fcntl(new._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert new.write(b"abc") == 3
        assert new.commit().mtime > 0


def test_writer_after_abort_is_closed_and_abort_tolerates_a_vanished_file(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    w = store.writer()
    w.temp_path.unlink()  # e.g. removed by clean_ingest of another process
    w.abort()
    with pytest.raises(StoreError) as caught:
        w.commit()
    assert str(caught.value) == f"content writer for {w.temp_path.name} is closed"
    with pytest.raises(StoreError) as again:
        w.write(b"x")
    assert str(again.value) == f"content writer for {w.temp_path.name} is closed"


def test_walk_and_stray_entries_tell_blobs_from_debris(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    blobs = [store.ingest(f"blob {i}".encode()).digest for i in range(12)]
    sha_dir = root / "blobs" / "sha256"
    (root / "blobs" / "README").write_text("a file where an algorithm directory belongs")
    (sha_dir / "not-a-digest").write_text("x")
    (sha_dir / ("0" * 64)).mkdir()  # a valid name, but a directory
    link = "f" * 64
    os.symlink(store.path(blobs[0]), sha_dir / link)  # a valid name, but a symlink
    walked = {b.digest: b for b in store.walk()}
    assert set(walked) == set(blobs)
    first = walked[blobs[0]]
    st = os.stat(store.path(blobs[0]))
    assert (first.size, first.mtime) == (st.st_size, st.st_mtime)
    assert sorted(store.stray_entries()) == sorted([root / "blobs" / "README", sha_dir / "not-a-digest",
                                                    sha_dir / ("0" * 64)])


def test_clean_ingest_defaults_to_one_hour(root: Path) -> None:
    store = ContentStore(root, fsync=False)
    young = store.writer()
    old = store.writer()
    now = time.time()
    os.utime(young.temp_path, (now - 3000, now - 3000))
    os.utime(old.temp_path, (now - 3600.5, now - 3600.5))
    assert store.clean_ingest() == [old.temp_path]
    young.abort()
    old.abort()


def test_clean_ingest_removes_a_file_exactly_max_age_old(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContentStore(root, fsync=False)
    now = 1_800_000_000
    young = store.writer()
    due = store.writer()
    os.utime(young.temp_path, ns=((now - 3599) * 10**9,) * 2)
    os.utime(due.temp_path, ns=((now - 3600) * 10**9,) * 2)  # its writer lives, but it is max_age old
    monkeypatch.setattr(time, "time", lambda: float(now))
    assert store.clean_ingest(3600.0) == [due.temp_path]
    young.abort()
    due.abort()


class Reads:
    """A blob file that records the sizes it is asked for."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.asked: list[int | None] = []

    def read(self, n: int | None = -1) -> bytes:
        self.asked.append(n)
        return self.f.read(n)

    def __enter__(self) -> Reads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def test_verify_hashes_a_blob_in_bounded_chunks(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContentStore(root, fsync=False)
    data = os.urandom(CHUNK * 2 + 1)
    digest = store.ingest(data).digest
    opened: list[Reads] = []
    real_open = store.open

    def open_(d: str) -> Reads:
        opened.append(Reads(real_open(d)))
        return opened[-1]

    monkeypatch.setattr(store, "open", open_)
    assert store.verify(digest) == digest
    assert opened[0].asked == [CHUNK, CHUNK, CHUNK, CHUNK]  # 1 MiB, 1 MiB, 1 byte, end
