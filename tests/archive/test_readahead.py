"""``ReadAhead``: the wrapped stream is read on another thread; bytes, errors and early stops."""

from __future__ import annotations

import io
import os
import threading

import pytest

from dockyard.archive.readahead import ReadAhead
from dockyard.errors import CorruptData


class Recording(io.BytesIO):
    """Remembers which threads read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.threads: set[int] = set()
        self.reads = 0

    def read(self, n: int | None = -1) -> bytes:
        self.threads.add(threading.get_ident())
        self.reads += 1
        return super().read(n)


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) + 17])
def test_bytes_come_through_unchanged_in_any_read_size(size: int) -> None:
    data = os.urandom(size)
    for step in (1, 7, 4096, 1 << 20, -1):
        src = Recording(data)
        out = bytearray()
        with ReadAhead(src, piece=5000) as r:
            while chunk := r.read(step):
                out += chunk
                if step < 0:
                    break
            assert r.read(10) == b""
        assert bytes(out) == data
        assert src.threads and threading.get_ident() not in src.threads


def test_an_error_of_the_stream_reaches_the_reader_after_the_good_bytes() -> None:
    class Failing(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            if not data:
                raise CorruptData("gzip stream truncated")
            return data

    with ReadAhead(Failing(b"x" * 10_000), piece=4096) as r:
        assert r.read(10_000) == b"x" * 4096
        got = len(r.read(10_000)) + len(r.read(10_000))
        with pytest.raises(CorruptData, match="truncated"):
            r.read(10)
    assert got == 10_000 - 4096


def test_closing_early_stops_the_reading_thread() -> None:
    src = Recording(bytes(64 << 20))
    r = ReadAhead(src, piece=1 << 16, depth=2)
    assert len(r.read(100)) == 100
    r.close()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
    assert src.reads < 16  # it stopped reading ahead after a few pieces, not at the end
