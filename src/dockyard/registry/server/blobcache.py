"""Blobs a replica keeps on its own disk, so a pull of a popular layer need not come from the bucket.

Blobs are content-addressed and immutable, so a copy never goes stale; only its presence in the
registry can change, and the caller checks that in the bucket on every GET. An entry is published
only whole and verified: bytes go to a ``*.part`` file while they are relayed, hashed on the way;
the file is renamed into place only when the digest matches (a crash leaves a ``.part``, removed at
the next start). On a hit the file's (inode, size, mtime) must equal what was recorded when it was
verified; an entry this process has not verified (left by an earlier run) or that changed since is
hashed again before it is served, and dropped if it no longer matches. Least recently used entries
go first when the total passes the bound. Calls block (file I/O, hashing): run them on the pool.

An upload's bytes may be kept too (``Spool``): written beside the upload's running hash, published
as the blob's entry by the commit once the digest matched; a spool never outgrows the bound, but the
spools of uploads in progress (at most ``uploads.MAX_SPOOLS``) are not counted in it until published.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Hasher

DEFAULT_SIZE = 10 << 30
_PART = ".part"
REMEMBERED = 1 << 14  # blobs relayed once from a peer, remembered so their next pull keeps them


def parse_option(text: str) -> tuple[Path, int, str | None]:
    """``DIR[,size=N][,peer=URL]`` (N as ``500MB``, ``20GiB`` or bytes) -> (directory, bound in bytes,
    the URL other replicas reach this one at for its cache, or None)."""
    from .team.usage import parse_size

    where, *options = text.split(",")
    size = DEFAULT_SIZE
    peer = None
    for option in options:
        key, eq, value = option.partition("=")
        if key.strip() == "peer" and eq:
            peer = value.strip().rstrip("/")
            if not peer.startswith(("http://", "https://")) or len(peer) <= len("https://"):
                raise InvalidArgument(f"--blob-cache {text!r}: peer=URL wants http:// or https://")
            continue
        if key.strip() != "size" or not eq:
            raise InvalidArgument(f"--blob-cache {text!r}: unknown option {option!r} "
                                  "(expected size=N or peer=URL)")
        try:
            size = parse_size(value)
        except InvalidArgument as exc:
            raise InvalidArgument(f"--blob-cache {text!r}: {exc}") from exc
    if not where.strip():
        raise InvalidArgument(f"--blob-cache {text!r}: expected DIR[,size=N][,peer=URL]")
    return Path(where.strip()), size, peer


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


class Fill:
    """One entry being written while its bytes are relayed; ``commit`` publishes it if they match."""

    def __init__(self, cache: BlobCache, digest: str, size: int) -> None:
        self._cache = cache
        self.digest = digest
        self.size = size
        self._hasher = Hasher(digest.partition(":")[0])
        self.temp = cache.root / f"{digest.replace(':', '-')}.{uuid.uuid4().hex[:8]}{_PART}"
        # Unbuffered: readers following the fill (other GETs) see each piece once write returns.
        self._file: BinaryIO | None = open(self.temp, "xb", buffering=0)  # noqa: SIM115 - closed by commit/abort

    def write(self, data: bytes | memoryview) -> bool:
        """Add the next bytes; False when the entry was given up (a failed write: a full disk), which
        never fails the relay."""
        if self._file is None:
            return False
        self._hasher.update(data)
        try:
            _write_all(self._file, data)
        except OSError:
            self.abort()
            return False
        return True

    def commit(self) -> bool:
        """Publish the entry if the bytes are the blob (size and digest); else drop them. True: published."""
        if self._file is None:
            return False
        try:
            self._file.close()
            self._file = None
            if self._hasher.size != self.size or str(self._hasher.digest()) != self.digest:
                return False
            os.chmod(self.temp, 0o444)  # nobody writes an entry in place
            final = self._cache.path(self.digest)
            os.rename(self.temp, final)  # atomic: the name appears only with every byte behind it
            self._cache._published(self.digest, _stamp(os.stat(final)))
            return True
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the bytes written so far (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)
        self._cache._filled(self.digest)


class Spool:
    """An upload's bytes kept on this replica as they arrive, published as the blob's entry when the
    upload is committed: a pull through the replica that received a push reads nothing from the bucket.

    Nothing is hashed here: the caller writes exactly the pieces it feeds to the upload's running hash,
    in the same call, so the digest the commit checked is the digest of these bytes; ``publish`` also
    wants the hashed size to equal what was written. Gives up quietly (a full disk, or more bytes than
    the cache may hold): the upload goes on without it."""

    def __init__(self, cache: BlobCache) -> None:
        self._cache = cache
        self.size = 0  # bytes written
        self.temp = cache.root / f"upload-{uuid.uuid4().hex}{_PART}"  # removed at the next start if left
        self._file: BinaryIO | None = open(self.temp, "xb", buffering=0)  # noqa: SIM115 - closed by publish/abort

    @property
    def live(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> bool:
        """Append the next bytes; False once the spool was given up."""
        if self._file is None:
            return False
        if self.size + len(data) > self._cache.max_bytes:
            self.abort()  # never kept: larger than the whole cache
            return False
        try:
            _write_all(self._file, data)
        except OSError:
            self.abort()
            return False
        self.size += len(data)
        return True

    def publish(self, digest: str, hashed: int) -> bool:
        """Make the bytes the entry of ``digest``, which the upload's running hash gave for ``hashed``
        bytes (the same pieces): only when every one of them was written. True: published."""
        if self._file is None:
            return False
        try:
            self._file.close()
            self._file = None
            if hashed != self.size or not self._cache._claim(digest, self.size):
                return False  # short, or here already (or being filled by a pull): nothing to add
            try:
                os.chmod(self.temp, 0o444)
                final = self._cache.path(digest)
                os.rename(self.temp, final)  # atomic: the name appears only with every byte behind it
                self._cache._published(digest, _stamp(os.stat(final)))
                return True
            finally:
                self._cache._filled(digest)
        except OSError:
            return False
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the bytes (idempotent; nothing after a publish)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


class BlobCache:
    """A bounded, least-recently-used directory of verified blobs; thread-safe."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_SIZE, peer_url: str | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.peer_url = peer_url  # where other replicas ask for this cache's entries (None: nobody)
        self._lock = threading.Lock()
        # digest -> (size, stamp when verified by this process, or None: to verify before serving)
        self._entries: OrderedDict[str, tuple[int, tuple[int, int, int] | None]] = OrderedDict()
        self._bytes = 0
        self._filling: set[str] = set()
        self._relayed: OrderedDict[str, None] = OrderedDict()  # first pulls relayed from a peer
        root.mkdir(parents=True, exist_ok=True)
        found = []
        for entry in os.scandir(root):
            if entry.name.endswith(_PART):  # a fill a crash cut short
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            elif entry.is_file() and "-" in entry.name:
                st = entry.stat()
                found.append((st.st_mtime_ns, entry.name.replace("-", ":", 1), st.st_size))
        for _, digest, size in sorted(found):  # oldest first, as if used in that order
            self._entries[digest] = (size, None)
            self._bytes += size
        self._evict()

    def path(self, digest: str) -> Path:
        return self.root / digest.replace(":", "-", 1)

    @property
    def used(self) -> int:
        """Bytes in published entries."""
        return self._bytes

    def open(self, digest: str, size: int | None = None) -> BinaryIO | None:
        """The entry's file, open at its start, if it is here and still the blob (of ``size`` bytes,
        if given); else None."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] != (entry[0] if size is None else size):
                return None
            size = entry[0]
            self._entries.move_to_end(digest)
        try:
            f = open(self.path(digest), "rb")  # noqa: SIM115 - the caller serves and closes it
        except FileNotFoundError:
            self._drop(digest)
            return None
        stamp = _stamp(os.fstat(f.fileno()))
        if stamp[1] == size and stamp == entry[1]:
            return f
        hasher = Hasher(digest.partition(":")[0])  # not verified by this process, or changed since
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
        if hasher.size != size or str(hasher.digest()) != digest or _stamp(os.fstat(f.fileno())) != stamp:
            f.close()
            self._drop(digest)
            return None
        with self._lock:
            if digest in self._entries:
                self._entries[digest] = (size, stamp)
        f.seek(0)
        return f

    def first_pull(self, digest: str) -> bool:
        """True the first time a blob another replica holds is pulled through this one (it is
        remembered then, the last ``REMEMBERED`` of them): that pull is relayed, the next one kept."""
        with self._lock:
            if digest in self._relayed:
                self._relayed.move_to_end(digest)
                return False
            self._relayed[digest] = None
            if len(self._relayed) > REMEMBERED:
                self._relayed.popitem(last=False)
            return True

    def fill(self, digest: str, size: int) -> Fill | None:
        """A new entry to write while relaying; None when it is here, being filled, or too large."""
        with self._lock:
            if size > self.max_bytes or digest in self._entries or digest in self._filling:
                return None
            self._filling.add(digest)
        try:
            return Fill(self, digest, size)
        except OSError:
            self._filled(digest)
            return None  # a full or read-only disk: serve without keeping a copy

    def spool(self) -> Spool | None:
        """A new spool for an upload's bytes; None when the disk refuses it."""
        try:
            return Spool(self)
        except OSError:
            return None

    def _claim(self, digest: str, size: int) -> bool:
        """Reserve ``digest`` for a publish (``_filled`` releases it): False when it is here already,
        being filled, or too large."""
        with self._lock:
            if size > self.max_bytes or digest in self._entries or digest in self._filling:
                return False
            self._filling.add(digest)
            return True

    def _filled(self, digest: str) -> None:
        with self._lock:
            self._filling.discard(digest)

    def _published(self, digest: str, stamp: tuple[int, int, int]) -> None:
        with self._lock:
            old = self._entries.pop(digest, None)
            self._bytes += stamp[1] - (old[0] if old else 0)
            self._entries[digest] = (stamp[1], stamp)
        self._evict()

    def _drop(self, digest: str) -> None:
        with self._lock:
            entry = self._entries.pop(digest, None)
            if entry is not None:
                self._bytes -= entry[0]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._bytes <= self.max_bytes or not self._entries:
                    return
                digest, (size, _) = self._entries.popitem(last=False)
                self._bytes -= size
            # A file being served stays readable through its open descriptor after the unlink.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(digest))


def _write_all(file: BinaryIO, data: bytes | memoryview) -> None:
    """Write all of ``data`` to an unbuffered file, continuing short writes (no progress is an OSError)."""
    view = memoryview(data)
    while view:
        n = file.write(view)
        if not n:
            raise OSError("no progress writing a blob cache entry")
        view = view[n:]
