"""Streaming tar reader: entries of a binary stream in order, no seeking.

``for entry in reader`` yields ``TarEntry`` objects; while an entry is current its body can be read
with ``read``/``chunks``/``copy_to_fd``; whatever is not read is skipped on the next step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from dockyard.archive.tarheader import (
    BLKTYPE,
    BLOCK,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    GNU_LONGLINK,
    GNU_LONGNAME,
    LNKTYPE,
    MAX_SPECIAL_SIZE,
    SYMTYPE,
    XGLTYPE,
    XHDTYPE,
    TarEntry,
    apply_pax,
    decode,
    parse_pax,
)
from dockyard.errors import CorruptData

_ZERO = bytes(BLOCK)
_HEADER_ONLY = frozenset((LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE))
_SPECIAL = frozenset((XHDTYPE, XGLTYPE, GNU_LONGNAME, GNU_LONGLINK))


class Readable(Protocol):
    """Anything with ``read(n) -> bytes`` (a file, a socket file, a decompressor)."""

    def read(self, n: int = -1, /) -> bytes: ...


class TarReader:
    """Iterate over the entries of a tar stream.

    Accepts ustar, PAX (per-entry and global), GNU long names/links and old V7 headers; GNU sparse
    files are refused. Raises ``CorruptData`` with the header offset on a malformed or truncated
    archive. EOF right at a header boundary ends the archive like the two zero blocks do.
    """

    def __init__(self, stream: Readable, *, bufsize: int = 1 << 20) -> None:
        self._stream = stream
        self._bufsize = bufsize
        self._buf = b""
        self._pos = 0
        self._offset = 0  # stream offset of self._buf[self._pos]
        self._remaining = 0  # unread body bytes of the current entry
        self._pad = 0  # padding after the current entry's body
        self._current: TarEntry | None = None
        self._done = False
        self.global_pax: dict[str, bytes] = {}

    @property
    def offset(self) -> int:
        """Bytes of the stream consumed so far."""
        return self._offset

    # -- buffer ---------------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at EOF)."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            self._offset += n
            return self._buf[pos:end]
        parts = [self._buf[pos:]]
        need = n - (len(self._buf) - pos)
        self._buf = b""
        self._pos = 0
        while need > 0:
            chunk = self._stream.read(max(need, self._bufsize))
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf = chunk
                self._pos = need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        out = b"".join(parts)
        self._offset += len(out)
        return out

    def _skip(self, n: int) -> int:
        """Skip up to ``n`` bytes; return how many were skipped."""
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            self._offset += n
            return n
        done = avail
        self._offset += avail
        self._buf = b""
        self._pos = 0
        while done < n:
            chunk = self._stream.read(self._bufsize)
            if not chunk:
                break
            want = n - done
            if len(chunk) > want:
                self._buf = chunk
                self._pos = want
                self._offset += want
                done = n
            else:
                self._offset += len(chunk)
                done += len(chunk)
        return done

    # -- entries --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarEntry]:
        while (entry := self.next()) is not None:
            yield entry

    def next(self) -> TarEntry | None:
        """Advance to the next entry (skipping the rest of the current body); None at the end."""
        if self._done:
            return None
        self._finish_current()
        pax: dict[str, bytes] = {}
        longname: bytes | None = None
        longlink: bytes | None = None
        first = self._offset
        while True:
            off = self._offset
            block = self._take(BLOCK)
            if not block:
                if pax or longname is not None or longlink is not None:
                    raise CorruptData(f"tar archive truncated after extended header at offset {first}")
                self._done = True
                return None
            if len(block) < BLOCK:
                raise CorruptData(f"tar archive truncated: partial header at offset {off}")
            if block == _ZERO:
                self._done = True
                return None
            entry = decode(block, off)
            if entry.type in _SPECIAL:
                if entry.size > MAX_SPECIAL_SIZE:
                    raise CorruptData(
                        f"tar header at offset {off}: extended header of {entry.size} bytes is too large"
                    )
                padded = entry.size + (-entry.size % BLOCK)
                data = self._take(padded)
                if len(data) < padded:
                    raise CorruptData(f"tar archive truncated: extended header at offset {off}")
                body = data[: entry.size]
                if entry.type == XHDTYPE:
                    pax.update(parse_pax(body, off))
                elif entry.type == XGLTYPE:
                    self.global_pax.update(parse_pax(body, off))
                elif entry.type == GNU_LONGNAME:
                    longname = body.split(b"\0", 1)[0]
                else:
                    longlink = body.split(b"\0", 1)[0]
                continue
            break
        entry.offset = first
        if self.global_pax:
            apply_pax(entry, self.global_pax)
        if pax:
            apply_pax(entry, pax)
        # A GNU long name/link beats a PAX path/linkpath whatever their order, as in Go's archive/tar
        # (so Docker and containerd unpack a layer under the same names we do; GNU tar differs).
        if longname:
            entry.name = os.fsdecode(longname)
        if longlink:
            entry.linkname = os.fsdecode(longlink)
        if entry.type == b"S" or (entry.pax and any(k.startswith("GNU.sparse") for k in entry.pax)):
            raise CorruptData(f"tar entry {entry.name!r} at offset {first}: sparse files are not supported")
        if entry.name.endswith("/") and len(entry.name) > 1:
            entry.name = entry.name.rstrip("/") or "/"
        if entry.type in _HEADER_ONLY:
            # As archive/tar does: these types carry no body whatever the size field says.
            self._remaining = 0
            self._pad = 0
        else:
            self._remaining = entry.size
            self._pad = -entry.size % BLOCK
        self._current = entry
        return entry

    def _finish_current(self) -> None:
        if self._current is None:
            return
        want = self._remaining + self._pad
        if want and self._skip(want) < want:
            self._truncated()
        self._remaining = self._pad = 0
        self._current = None

    def _truncated(self) -> None:
        cur = self._current
        where = f"tar entry {cur.name!r} at offset {cur.offset}" if cur else f"offset {self._offset}"
        raise CorruptData(f"tar archive truncated: {where} ends early")

    # -- bodies ---------------------------------------------------------------------------------

    def chunks(self) -> Iterator[bytes | memoryview]:
        """Yield the unread body of the current entry in pieces (views valid until the next step)."""
        while self._remaining > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                chunk = self._stream.read(max(self._bufsize, min(self._remaining, 8 << 20)))
                if not chunk:
                    self._truncated()
                self._buf = chunk
                self._pos = 0
                avail = len(chunk)
            n = min(avail, self._remaining)
            view = memoryview(self._buf)[self._pos : self._pos + n]
            self._pos += n
            self._offset += n
            self._remaining -= n
            yield view

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all when negative) of the current entry's body."""
        if n < 0 or n > self._remaining:
            n = self._remaining
        data = self._take(n)
        self._remaining -= len(data)
        if len(data) < n:
            self._truncated()
        return data

    def copy_to_fd(self, fd: int) -> int:
        """Write the unread body to file descriptor ``fd``; return the byte count."""
        n = self._remaining
        pos = self._pos
        if n <= len(self._buf) - pos:  # the usual small file: already buffered, one write
            view = memoryview(self._buf)[pos : pos + n]
            written = os.write(fd, view)
            if written == n:
                self._pos = pos + n
                self._offset += n
                self._remaining = 0
                return n
            self._pos = pos + written
            self._offset += written
            self._remaining -= written
            return written + self.copy_to_fd(fd)
        total = 0
        for chunk in self.chunks():
            view = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
                total += written
        return total

    def drain(self) -> int:
        """Read the stream to EOF (so a wrapping hasher sees every byte); return bytes discarded."""
        self._finish_current()
        self._done = True
        n = len(self._buf) - self._pos
        self._offset += n
        self._buf = b""
        self._pos = 0
        while chunk := self._stream.read(self._bufsize):
            n += len(chunk)
            self._offset += len(chunk)
        return n
