"""Read a stored blob for export while checking it: the bytes handed on must hash to the blob's name.

    blob = VerifiedBlob(store, digest, size, what="image app:1: layer sha256:...")
    with blob.open() as f:          # any number of readers (a push re-opens for each chunk or retry)
        f.seek(start); f.read(n)

The digest is computed over the bytes as they are read, in order, across readers; a reader that goes
back over bytes already hashed (a retried chunk) does not hash them twice. When the last byte is read
(or the file turns out to have another size) and the digest differs, the blob is moved to the store's
quarantine and ``CorruptBlob`` names ``what``: the bad bytes never leave as the end of a good blob.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from dockyard.errors import CorruptData, DigestMismatch, NotFound
from dockyard.oci.digest import Digest, Hasher

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from dockyard.content import ContentStore

CHUNK = 1 << 20

__all__ = ["CorruptBlob", "VerifiedBlob", "quarantined"]


class CorruptBlob(DigestMismatch):
    """A stored blob does not match its digest; it has been moved to the quarantine."""

    def __init__(self, message: str, digest: Digest, actual: str = "") -> None:
        CorruptData.__init__(self, message)
        self.digest = digest
        self.expected = str(digest)
        self.actual = actual


class VerifiedBlob:
    """Readers of one stored blob that verify it as it streams; see the module docstring."""

    def __init__(self, store: ContentStore, digest: Digest | str, size: int | None = None, *,
                 what: str = "") -> None:
        self.store = store
        self.digest = Digest(digest)
        self.size = size
        self.what = what or f"blob {self.digest}"
        self._hasher = Hasher(self.digest.algorithm)
        self.verified = False

    def open(self) -> io.BufferedReader:
        """A new reader at offset 0 (size checked against the expected one first)."""
        path = self.store.path(self.digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"{self.what}: blob {self.digest} is missing from the content store") from None
        actual = os.fstat(fd).st_size
        if self.size is None:
            self.size = actual
        elif actual != self.size:
            os.close(fd)
            self._fail(f"{actual} bytes instead of {self.size}")
        return io.BufferedReader(BlobReader(self, fd), CHUNK)

    def _feed(self, pos: int, data: bytes | memoryview) -> None:
        hashed = self._hasher.size
        end = pos + len(data)
        if pos <= hashed < end:
            self._hasher.update(data[hashed - pos:])
        if not self.verified and self._hasher.size == self.size:
            actual = self._hasher.digest()
            if actual != self.digest:
                self._fail(f"content hashes to {actual}", actual)
            self.verified = True

    def _fail(self, why: str, actual: str = "") -> None:
        raise quarantined(self.store, self.digest, why, self.what, actual)


def quarantined(store: ContentStore, digest: Digest, why: str, what: str, actual: str = "") -> CorruptBlob:
    """Move the corrupt blob ``digest`` to the quarantine and return the error that says so."""
    moved = store.quarantine(digest)
    where = f"; moved to {moved}" if moved is not None else ""
    return CorruptBlob(f"{what}: blob {digest} is corrupt in the local store ({why}){where}", digest, actual)


class BlobReader(io.RawIOBase):
    """One raw reader of a ``VerifiedBlob`` (reads at its own offset; seeks from the start)."""

    def __init__(self, blob: VerifiedBlob, fd: int) -> None:
        super().__init__()
        self._blob = blob
        self._fd = fd
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1, /) -> bytes:
        size = self._blob.size
        assert size is not None
        want = size - self._pos if n is None or n < 0 else min(n, size - self._pos)
        if want <= 0:
            return b""
        buf = bytearray(want)
        got = self.readinto(buf)
        del buf[got:]
        return bytes(buf)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        size = self._blob.size
        assert size is not None
        view = memoryview(buffer).cast("B")
        want = min(len(view), size - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [view[:want]], self._pos)  # straight into the caller's buffer
        if n == 0:  # the file shrank under us: what was promised cannot be delivered
            self._blob._fail(f"it ends at byte {self._pos} of {size}")
        self._blob._feed(self._pos, view[:n])
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self._blob.size or 0
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
