"""The content store (layer L2): immutable blobs addressed by digest.

Layout under its root (``<store>/content``)::

    blobs/<algorithm>/<hex>     committed blobs, never written in place
    ingest/<name>               blobs being written (one private file per writer)
    quarantine/<algorithm>/<hex>  blobs found corrupt, kept aside for ``system check`` to repair

API::

    store = ContentStore(root)
    with store.writer(expected=digest_or_None, size=size_or_None) as w:
        w.write(chunk)                       # hashes and counts while writing
        info = w.commit()                    # verifies, fsyncs, renames into place -> BlobInfo
    info = store.ingest(stream_or_bytes_or_chunks, expected=None, size=None)
    store.exists(d); store.info(d); store.open(d); store.read(d); store.path(d)
    store.delete(d); store.walk(); store.verify(d); store.clean_ingest(max_age)
    store.verified(d, size, what).open()     # a reader that checks the digest while streaming
    store.quarantine(d); store.quarantined(); store.unquarantine(d)

A blob is never visible half-written: it appears only by ``rename`` of a complete, verified file.
Two processes ingesting the same blob at once both succeed (the second rename replaces identical
bytes). Deleting a blob that a reader has open is safe (POSIX keeps the inode alive).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dockyard.content.verify import VerifiedBlob, quarantined
from dockyard.errors import (
    NO_SPACE_ERRNOS,
    CorruptData,
    DigestMismatch,
    InvalidArgument,
    NotFound,
    StoreError,
    no_space,
    writing,
)
from dockyard.oci.digest import Digest, Hasher, is_valid
from dockyard.record import record
from dockyard.snapshot import pid_of, process_alive

CHUNK = 1 << 20

__all__ = ["BlobInfo", "ContentStore", "Writer"]


@record(frozen=True, slots=True)
class BlobInfo:
    """A committed blob: digest, size in bytes, modification time (seconds since the epoch)."""

    digest: Digest
    size: int
    mtime: float = 0.0


class Writer:
    """Writes one blob into ``ingest/``; ``commit`` verifies it and publishes it atomically.

    Used as a context manager: leaving the block without ``commit`` (or by an exception) removes the
    temporary file.
    """

    def __init__(self, store: ContentStore, expected: Digest | None, size: int | None) -> None:
        self._store = store
        self.expected = expected
        self.expected_size = size
        self._hasher = Hasher(expected.algorithm if expected else "sha256")
        store._ensure_dirs()
        tag = expected.hex[:16] if expected else "new"
        self.temp_path = store.ingest_dir / f"{tag}.{os.getpid()}.{os.urandom(6).hex()}"
        with writing(self.temp_path):
            self._fd: int | None = os.open(self.temp_path,
                                           os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.committed: BlobInfo | None = None

    @property
    def hasher(self) -> Hasher:
        """The running hash of the bytes written so far (read it, do not update it)."""
        return self._hasher

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._hasher.size

    @property
    def digest(self) -> Digest:
        """Digest of the bytes written so far."""
        return self._hasher.digest()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._fd is None:
            raise StoreError(f"content writer for {self.temp_path.name} is closed")
        view = memoryview(data)
        total = len(view)
        with writing(self.temp_path):
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        self._hasher.update(data)
        if self.expected_size is not None and self._hasher.size > self.expected_size:
            raise CorruptData(
                f"blob {self.expected or '(new)'}: more data than the expected {self.expected_size} bytes")
        return total

    def commit(self, before_publish: Callable[[Digest], None] | None = None, *,
               sync_dir: bool = True, durable: bool = True) -> BlobInfo:
        """Verify size and digest, flush to disk and rename into place.

        ``before_publish(digest)`` runs after verification and before the blob becomes visible
        (e.g. to add it to a lease so a concurrent GC cannot remove it). ``sync_dir=False`` leaves the
        rename to a later commit's directory sync (all blobs share one directory): for blobs that
        nothing durable references yet. ``durable=False`` syncs nothing: for a blob whose loss or
        tearing by a machine crash its readers take as absent (a build step's config: a cache miss).
        """
        if self.committed is not None:
            return self.committed
        if self._fd is None:
            raise StoreError(f"content writer for {self.temp_path.name} is closed")
        actual = self._hasher.digest()
        where = f"blob {self.expected or actual}"
        if self.expected_size is not None and self._hasher.size != self.expected_size:
            raise CorruptData(f"{where}: size mismatch: expected {self.expected_size} bytes, "
                              f"got {self._hasher.size}")
        if self.expected is not None and actual != self.expected:
            raise DigestMismatch(self.expected, actual, where)
        if self._store.fsync and durable:
            with writing(self.temp_path):  # a filesystem that delays allocation says "full" here
                os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        if before_publish is not None:
            before_publish(actual)
        target = self._store.path(actual)
        try:
            os.rename(self.temp_path, target)
        except FileNotFoundError:  # the first blob of its algorithm: make its directory
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.temp_path, target)
        if self._store.fsync and sync_dir and durable:
            _fsync_dir(target.parent)
        self.committed = BlobInfo(actual, self._hasher.size, time.time())
        return self.committed

    def abort(self) -> None:
        """Close and remove the temporary file (no-op after commit)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.committed is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp_path)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ContentStore:
    """Blobs by digest under ``root``; directories are created lazily on first write."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"
        self.quarantine_dir = self.root / "quarantine"
        self.fsync = fsync
        self._dirs_ready = False

    def _ensure_dirs(self) -> None:
        if not self._dirs_ready:
            try:
                (self.blobs_dir / "sha256").mkdir(parents=True, exist_ok=True)
                self.ingest_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in NO_SPACE_ERRNOS:
                    raise no_space(self.root, "create content store in") from None
                raise StoreError(f"cannot create content store in {self.root}: {exc.strerror}") from None
            self._dirs_ready = True

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        algorithm, _, hexpart = digest.partition(":")
        if not is_valid(digest):
            raise InvalidArgument(f"invalid blob digest {digest!r}")
        return self.blobs_dir / algorithm / hexpart

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        try:
            st = os.stat(self.path(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None
        return BlobInfo(Digest(digest), st.st_size, st.st_mtime)

    def open(self, digest: str) -> BinaryIO:
        """Open a blob for reading; the caller closes it."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: str, what: str = "") -> bytes:
        """The whole blob, verified against its digest (for small blobs: configs, manifests).

        A mismatch moves the blob to the quarantine and raises ``CorruptBlob`` naming ``what``.
        """
        with self.open(digest) as f:
            data = f.read()
        actual = Digest.from_bytes(data, Digest(digest).algorithm)
        if actual != digest:
            raise quarantined(self, Digest(digest), f"content hashes to {actual}", what or f"blob {digest}",
                              actual)
        return data

    def writer(self, expected: Digest | str | None = None, size: int | None = None) -> Writer:
        """A ``Writer`` for a new blob; ``expected``/``size`` are verified on commit when given."""
        return Writer(self, Digest(expected) if expected is not None else None, size)

    def ingest(self, source: bytes | BinaryIO | Iterable[bytes], expected: Digest | str | None = None,
               size: int | None = None,
               before_publish: Callable[[Digest], None] | None = None, *, sync_dir: bool = True,
               durable: bool = True) -> BlobInfo:
        """Store ``source`` (bytes, a binary file, or an iterable of chunks) and return its info.

        If ``expected`` is given and already present, ``source`` is not read at all. ``sync_dir`` and
        ``durable`` as for ``Writer.commit``.
        """
        if expected is not None and self.exists(expected):
            if before_publish is not None:
                before_publish(Digest(expected))
            if self.exists(expected):  # still there after the caller protected it
                return self.info(expected)
        with self.writer(expected, size) as w:
            if isinstance(source, bytes | bytearray | memoryview):
                w.write(source)
            elif hasattr(source, "read"):
                reader: BinaryIO = source  # type: ignore[assignment]
                while chunk := reader.read(CHUNK):
                    w.write(chunk)
            else:
                for chunk in source:
                    w.write(chunk)
            return w.commit(before_publish, sync_dir=sync_dir, durable=durable)

    def delete(self, digest: str) -> bool:
        """Remove a blob; True if it existed."""
        try:
            os.unlink(self.path(digest))
            return True
        except FileNotFoundError:
            return False

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob (entries with invalid names are skipped; ``check`` reports them)."""
        if not self.blobs_dir.is_dir():
            return
        for algo_dir in sorted(self.blobs_dir.iterdir()):
            if not algo_dir.is_dir():
                continue
            with os.scandir(algo_dir) as entries:
                for entry in entries:
                    name = f"{algo_dir.name}:{entry.name}"
                    if not is_valid(name) or not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    yield BlobInfo(Digest(name), st.st_size, st.st_mtime)

    def stray_entries(self) -> list[Path]:
        """Files under ``blobs/`` whose names are not valid digests (left by hand or by a bug)."""
        out: list[Path] = []
        if not self.blobs_dir.is_dir():
            return out
        for algo_dir in self.blobs_dir.iterdir():
            if not algo_dir.is_dir():
                out.append(algo_dir)
                continue
            for entry in algo_dir.iterdir():
                if not is_valid(f"{algo_dir.name}:{entry.name}") or not entry.is_file():
                    out.append(entry)
        return out

    def verify(self, digest: str) -> Digest:
        """Re-hash a blob; return the actual digest (equal to ``digest`` when intact)."""
        hasher = Hasher(Digest(digest).algorithm)
        with self.open(digest) as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        return hasher.digest()

    def verified(self, digest: Digest | str, size: int | None = None, what: str = "") -> VerifiedBlob:
        """Readers of a blob that verify it while streaming (for export: save, push, build outputs);
        ``what`` names the blob's role in errors (``image app:1: layer sha256:...``)."""
        return VerifiedBlob(self, digest, size, what=what)

    def quarantine(self, digest: str) -> Path | None:
        """Move a corrupt blob out of ``blobs/`` (so nothing serves it) into ``quarantine/``; return
        its new path, or None when it was already gone."""
        target = self.quarantine_path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.path(digest), target)
        except FileNotFoundError:
            return target if target.is_file() else None
        return target

    def quarantined(self) -> list[Digest]:
        """Blobs in quarantine, sorted."""
        if not self.quarantine_dir.is_dir():
            return []
        return sorted(Digest(f"{algo.name}:{entry.name}") for algo in self.quarantine_dir.iterdir()
                      if algo.is_dir() for entry in algo.iterdir() if is_valid(f"{algo.name}:{entry.name}"))

    def quarantine_path(self, digest: str) -> Path:
        return self.quarantine_dir / self.path(digest).relative_to(self.blobs_dir)

    def is_quarantined(self, digest: str) -> bool:
        return self.quarantine_path(digest).is_file()

    def unquarantine(self, digest: str) -> bool:
        """Forget a quarantined copy (once a good copy is back, or nothing uses the blob any more)."""
        try:
            os.unlink(self.quarantine_path(digest))
            return True
        except FileNotFoundError:
            return False

    def ingest_files(self) -> list[Path]:
        if not self.ingest_dir.is_dir():
            return []
        return sorted(self.ingest_dir.iterdir())

    def clean_ingest(self, max_age: float = 3600.0) -> list[Path]:
        """Remove temporary files whose writer process is gone, or older than ``max_age`` seconds."""
        removed: list[Path] = []
        now = time.time()
        for path in self.ingest_files():
            if process_alive(pid_of(path.name)) and now - _mtime(path) < max_age:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
