"""Where the registry keeps its state: the ``Storage`` protocol and its filesystem driver.

Every piece of state is a named object that is written whole (blobs, manifest links, tags, referrer
entries) or appended by one upload session; nothing lives only in a process's memory. That is what
lets an object-store driver (S3 and the like, where several registry processes share one bucket) be
added beside ``FilesystemStorage``: each method maps onto a put, get, list or delete of one key, and
"atomic rename" becomes "copy then delete", which is safe because blobs are content-addressed.

Layout of ``FilesystemStorage(root)``::

    blobs/<alg>/<hex[:2]>/<hex>                     the bytes, named by their digest
    repositories/<name>/_layers/<alg>/<hex>         empty: the blob is visible in <name>
    repositories/<name>/_manifests/<alg>/<hex>      the manifest's media type
    repositories/<name>/_tags/<tag>                 the digest the tag points to
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   a referrer's descriptor (JSON)
    uploads/<id>/data, uploads/<id>/repo            one upload session each
    tmp/                                            staging for atomic writes

Repository names never have a path component starting with ``_`` (the server validates them against
the distribution grammar before they get here), so ``_layers`` and friends cannot collide with a name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dockyard.errors import StoreError
from dockyard.fdio import write_all
from dockyard.record import record


@record(frozen=True, slots=True)
class BlobInfo:
    """A stored blob: its size, modification time and, for local drivers, a path to send from."""

    digest: str
    size: int
    mtime: float
    path: Path | None


@record(frozen=True, slots=True)
class UploadInfo:
    """An open upload session; ``updated`` is when bytes last arrived (or when it started)."""

    id: str
    repo: str
    size: int
    started: float
    updated: float = 0.0
    mtime_ns: int = 0  # changes with every write or truncation: tells a cached hash is still valid


class Storage(Protocol):
    """What the registry needs from a storage backend. All names and digests are already validated."""

    # Blobs: global and content-addressed.
    def blob_stat(self, digest: str) -> BlobInfo | None: ...
    def blob_size(self, digest: str) -> int | None: ...
    def blob_read(self, digest: str) -> bytes: ...
    def blob_open(self, digest: str) -> BinaryIO: ...
    def blob_put(self, digest: str, data: bytes) -> None: ...
    def blob_touch(self, digest: str) -> None: ...
    def blob_delete(self, digest: str) -> bool: ...
    def blobs(self) -> Iterator[BlobInfo]: ...

    # Which blobs a repository may serve (pushed or mounted there).
    def link_blob(self, repo: str, digest: str) -> None: ...
    def unlink_blob(self, repo: str, digest: str) -> bool: ...
    def is_linked(self, repo: str, digest: str) -> bool: ...
    def linked_blobs(self, repo: str) -> list[str]: ...

    # Repositories, manifests, tags, referrers.
    def repositories(self) -> list[str]: ...
    def repo_exists(self, repo: str) -> bool: ...
    def manifest_link(self, repo: str, digest: str, media_type: str) -> None: ...
    def manifest_media_type(self, repo: str, digest: str) -> str | None: ...
    def manifest_unlink(self, repo: str, digest: str) -> bool: ...
    def manifests(self, repo: str) -> list[str]: ...
    def tag_get(self, repo: str, tag: str) -> str | None: ...
    def tag_set(self, repo: str, tag: str, digest: str) -> None: ...
    def tag_delete(self, repo: str, tag: str) -> bool: ...
    def tags(self, repo: str) -> dict[str, str]: ...
    def referrer_add(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None: ...
    def referrer_remove(self, repo: str, subject: str, digest: str) -> None: ...
    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]: ...

    # Upload sessions.
    def upload_create(self, repo: str) -> UploadInfo: ...
    def upload_stat(self, upload_id: str) -> UploadInfo | None: ...
    def upload_append(self, upload_id: str) -> BinaryIO: ...
    def upload_touch(self, upload_id: str) -> None: ...
    def upload_truncate(self, upload_id: str, size: int) -> None: ...
    def upload_read(self, upload_id: str) -> BinaryIO: ...
    def upload_commit(self, upload_id: str, digest: str) -> None: ...
    def upload_delete(self, upload_id: str) -> bool: ...
    def uploads(self) -> list[UploadInfo]: ...


def canonical_upload_id(text: str) -> str | None:
    """The one spelling of an upload session id (ids are uuids; URLs may vary case and form)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _split(digest: str) -> tuple[str, str]:
    algorithm, _, hexpart = digest.partition(":")
    return algorithm, hexpart


class FilesystemStorage:
    """``Storage`` on a local directory; writes go to ``tmp/`` first and are renamed into place.

    Blob and session times (what garbage collection and upload expiry judge by) are stamped from
    ``clock``, so tests can move time on instead of sleeping."""

    def __init__(self, root: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.clock = clock
        try:
            for sub in ("blobs", "repositories", "uploads", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"registry storage {self.root}: {exc.strerror or exc}") from exc
        self._blobs = self.root / "blobs"
        self._repos = self.root / "repositories"
        self._uploads = self.root / "uploads"
        self._tmp = self.root / "tmp"
        # The same folders as strings: a manifest PUT's dozen paths are built with f-strings, not pathlib
        # (its joins and conversions were a fifth of the PUT's CPU).
        self._blobs_s, self._repos_s, self._tmp_s = str(self._blobs), str(self._repos), str(self._tmp)

    # -- helpers ---------------------------------------------------------------------------------

    def _write_atomic(self, path: str | Path, data: bytes) -> None:
        tmp = f"{self._tmp_s}/{os.urandom(16).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            write_all(fd, data)
        except BaseException:
            os.unlink(tmp)  # a full disk: no staged file left behind
            raise
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)

    def _stamp(self, path: str | Path) -> None:
        now = self.clock()
        os.utime(path, (now, now))

    def _blob_path(self, digest: str) -> Path:
        algorithm, hexpart = _split(digest)
        return self._blobs / algorithm / hexpart[:2] / hexpart

    def _blob_file(self, digest: str) -> str:
        """``_blob_path`` as a string (the hot paths')."""
        algorithm, hexpart = _split(digest)
        return f"{self._blobs_s}/{algorithm}/{hexpart[:2]}/{hexpart}"

    def _repo_file(self, repo: str, kind: str, digest: str) -> str:
        """``<repo>/<kind>/<algorithm>/<hex>`` under the repositories, as a string."""
        algorithm, hexpart = _split(digest)
        return f"{self._repos_s}/{repo}/{kind}/{algorithm}/{hexpart}"

    def _repo(self, repo: str) -> Path:
        return self._repos / repo

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _listdir(path: Path) -> list[str]:
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _digests_under(self, path: Path) -> list[str]:
        return [f"{alg}:{hexpart}" for alg in self._listdir(path) for hexpart in self._listdir(path / alg)]

    # -- blobs -----------------------------------------------------------------------------------

    def blob_stat(self, digest: str) -> BlobInfo | None:
        path = self._blob_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return BlobInfo(digest, st.st_size, st.st_mtime, path)

    def blob_size(self, digest: str) -> int | None:
        try:
            return os.stat(self._blob_file(digest)).st_size
        except FileNotFoundError:
            return None

    def blob_read(self, digest: str) -> bytes:
        return self._blob_path(digest).read_bytes()

    def blob_open(self, digest: str) -> BinaryIO:
        return open(self._blob_path(digest), "rb")

    def blob_put(self, digest: str, data: bytes) -> None:
        path = self._blob_file(digest)
        if os.path.exists(path):
            self.blob_touch(digest)
            return
        self._write_atomic(path, data)
        self._stamp(path)

    def blob_touch(self, digest: str) -> None:
        # A fresh reference restarts the garbage collector's grace period for this blob.
        with contextlib.suppress(FileNotFoundError):
            self._stamp(self._blob_file(digest))

    def blob_delete(self, digest: str) -> bool:
        return self._unlink(self._blob_path(digest))

    def blobs(self) -> Iterator[BlobInfo]:
        for alg in self._listdir(self._blobs):
            for prefix in self._listdir(self._blobs / alg):
                for hexpart in self._listdir(self._blobs / alg / prefix):
                    info = self.blob_stat(f"{alg}:{hexpart}")
                    if info is not None:
                        yield info

    # -- repository links ------------------------------------------------------------------------

    def link_blob(self, repo: str, digest: str) -> None:
        path = self._repo_file(repo, "_layers", digest)
        if not os.path.exists(path):
            self._write_atomic(path, b"")

    def unlink_blob(self, repo: str, digest: str) -> bool:
        algorithm, hexpart = _split(digest)
        return self._unlink(self._repo(repo) / "_layers" / algorithm / hexpart)

    def is_linked(self, repo: str, digest: str) -> bool:
        return os.path.exists(self._repo_file(repo, "_layers", digest))

    def linked_blobs(self, repo: str) -> list[str]:
        return self._digests_under(self._repo(repo) / "_layers")

    # -- repositories, manifests, tags -----------------------------------------------------------

    def repositories(self) -> list[str]:
        found: list[str] = []
        for dirpath, dirnames, _files in os.walk(self._repos):
            if "_layers" in dirnames or "_manifests" in dirnames:
                found.append(os.path.relpath(dirpath, self._repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    def repo_exists(self, repo: str) -> bool:
        path = self._repo(repo)
        return (path / "_manifests").is_dir() or (path / "_layers").is_dir()

    def manifest_link(self, repo: str, digest: str, media_type: str) -> None:
        self._write_atomic(self._repo_file(repo, "_manifests", digest), media_type.encode())

    def manifest_media_type(self, repo: str, digest: str) -> str | None:
        algorithm, hexpart = _split(digest)
        try:
            return (self._repo(repo) / "_manifests" / algorithm / hexpart).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def manifest_unlink(self, repo: str, digest: str) -> bool:
        algorithm, hexpart = _split(digest)
        return self._unlink(self._repo(repo) / "_manifests" / algorithm / hexpart)

    def manifests(self, repo: str) -> list[str]:
        return self._digests_under(self._repo(repo) / "_manifests")

    def tag_get(self, repo: str, tag: str) -> str | None:
        try:
            return (self._repo(repo) / "_tags" / tag).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def tag_set(self, repo: str, tag: str, digest: str) -> None:
        self._write_atomic(f"{self._repos_s}/{repo}/_tags/{tag}", digest.encode())

    def tag_delete(self, repo: str, tag: str) -> bool:
        return self._unlink(self._repo(repo) / "_tags" / tag)

    def tags(self, repo: str) -> dict[str, str]:
        tags_dir = self._repo(repo) / "_tags"
        result: dict[str, str] = {}
        for tag in self._listdir(tags_dir):
            with contextlib.suppress(FileNotFoundError):
                result[tag] = (tags_dir / tag).read_text()
        return result

    def referrer_add(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None:
        algorithm, hexpart = _split(subject)
        name = str(descriptor["digest"]).replace(":", "-")
        path = self._repo(repo) / "_referrers" / algorithm / hexpart / name
        self._write_atomic(path, json.dumps(descriptor).encode())

    def referrer_remove(self, repo: str, subject: str, digest: str) -> None:
        algorithm, hexpart = _split(subject)
        self._unlink(self._repo(repo) / "_referrers" / algorithm / hexpart / digest.replace(":", "-"))

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        algorithm, hexpart = _split(subject)
        folder = self._repo(repo) / "_referrers" / algorithm / hexpart
        found: list[dict[str, Any]] = []
        for name in sorted(self._listdir(folder)):
            with contextlib.suppress(FileNotFoundError, ValueError):
                found.append(json.loads((folder / name).read_bytes()))
        return found

    # -- uploads ---------------------------------------------------------------------------------

    def upload_create(self, repo: str) -> UploadInfo:
        upload_id = str(uuid.uuid4())
        folder = self._uploads / upload_id
        folder.mkdir()
        (folder / "data").touch()
        (folder / "repo").write_text(repo)
        now = self.clock()
        for name in ("data", "repo"):
            os.utime(folder / name, (now, now))
        return UploadInfo(upload_id, repo, 0, now, now)

    def _upload_dir(self, upload_id: str) -> Path:
        # Session ids come from URLs: accept only the uuid form we hand out.
        canonical = canonical_upload_id(upload_id)
        return self._uploads / (canonical or "-invalid-")

    def upload_stat(self, upload_id: str) -> UploadInfo | None:
        folder = self._upload_dir(upload_id)
        try:
            repo = (folder / "repo").read_text()
            st = (folder / "data").stat()
            started = (folder / "repo").stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None
        return UploadInfo(folder.name, repo, st.st_size, started, max(started, st.st_mtime), st.st_mtime_ns)

    def upload_append(self, upload_id: str) -> BinaryIO:
        return open(self._upload_dir(upload_id) / "data", "ab")

    def upload_touch(self, upload_id: str) -> None:
        """Record that bytes arrived now: the session is not abandoned."""
        self._stamp(self._upload_dir(upload_id) / "data")

    def upload_truncate(self, upload_id: str, size: int) -> None:
        os.truncate(self._upload_dir(upload_id) / "data", size)

    def upload_read(self, upload_id: str) -> BinaryIO:
        return open(self._upload_dir(upload_id) / "data", "rb")

    def upload_commit(self, upload_id: str, digest: str) -> None:
        """Move the session's bytes (already verified by the caller) to the blob; ends the session."""
        folder = self._upload_dir(upload_id)
        target = self._blob_path(digest)
        if target.exists():
            self.blob_touch(digest)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / "data", target)
            self._stamp(target)
        shutil.rmtree(folder, ignore_errors=True)

    def upload_delete(self, upload_id: str) -> bool:
        folder = self._upload_dir(upload_id)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def uploads(self) -> list[UploadInfo]:
        found = []
        for name in self._listdir(self._uploads):
            info = self.upload_stat(name)
            if info is not None:
                found.append(info)
        return found

    def clean_tmp(self, older_than: float) -> int:
        """Remove staging files left by a killed process; returns how many were removed."""
        removed = 0
        now = self.clock()
        for name in self._listdir(self._tmp):
            path = self._tmp / name
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
        return removed
