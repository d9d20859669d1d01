"""FilesystemStorage on its own: layout, atomic writes, session ids, listing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dockyard.errors import StoreError
from dockyard.registry.server import FilesystemStorage, Storage


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_is_a_storage(tmp_path: Path) -> None:
    storage: Storage = FilesystemStorage(tmp_path)
    assert storage.repositories() == []


def test_blobs_links_manifests_tags(tmp_path: Path) -> None:
    s = FilesystemStorage(tmp_path)
    s.blob_put(sha(b"a"), b"a")
    info = s.blob_stat(sha(b"a"))
    assert info is not None and info.size == 1 and info.path == tmp_path / "blobs/sha256" / sha(b"a")[7:9] / \
        sha(b"a")[7:]
    s.link_blob("deep/nested/repo", sha(b"a"))
    s.manifest_link("top", sha(b"a"), "application/vnd.oci.image.manifest.v1+json")
    s.tag_set("top", "latest", sha(b"a"))
    assert s.repositories() == ["deep/nested/repo", "top"]
    assert s.is_linked("deep/nested/repo", sha(b"a")) and not s.is_linked("top", sha(b"a"))
    assert s.tags("top") == {"latest": sha(b"a")} and s.manifests("top") == [sha(b"a")]
    assert [b.digest for b in s.blobs()] == [sha(b"a")]
    assert s.tag_delete("top", "latest") and not s.tag_delete("top", "latest")
    assert os.listdir(tmp_path / "tmp") == []  # every staged write was renamed into place


def test_upload_sessions(tmp_path: Path) -> None:
    s = FilesystemStorage(tmp_path)
    up = s.upload_create("r")
    with s.upload_append(up.id) as f:
        f.write(b"hello")
    info = s.upload_stat(up.id)
    assert info is not None and info.size == 5 and info.repo == "r"
    s.upload_truncate(up.id, 2)
    assert s.upload_stat(up.id).size == 2  # type: ignore[union-attr]
    with s.upload_append(up.id) as f:
        f.write(b"llo")
    s.upload_commit(up.id, sha(b"hello"))
    assert s.blob_read(sha(b"hello")) == b"hello" and s.upload_stat(up.id) is None
    for bad in ("../../blobs", "", "x" * 36, "..", "/etc/passwd"):
        assert s.upload_stat(bad) is None and not s.upload_delete(bad)
    assert s.uploads() == []


def test_unusable_root_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="registry storage"):
        FilesystemStorage(tmp_path / "file" / "sub")


def test_a_write_that_fails_leaves_nothing_staged_and_a_short_write_is_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = FilesystemStorage(tmp_path)
    real_write = os.write

    def short(fd: int, data: bytes) -> int:  # the kernel may take less than it was given
        return real_write(fd, bytes(data)[:3])

    monkeypatch.setattr(os, "write", short)
    s.blob_put(sha(b"a manifest's bytes"), b"a manifest's bytes")
    assert s.blob_read(sha(b"a manifest's bytes")) == b"a manifest's bytes"

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        s.tag_set("r", "v1", sha(b"a manifest's bytes"))
    assert os.listdir(tmp_path / "tmp") == []
    assert s.tag_get("r", "v1") is None
