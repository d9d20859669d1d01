"""TarReader against Python's tarfile on the same bytes, whatever the stream's read sizes.

The reader keeps one buffer over a stream that may return fewer bytes than asked (a socket, a
decompressor): these tests feed the same archives through streams that return 1, 7, 511, 513 ...
bytes per read and through buffers smaller and larger than a block, and read bodies every way the
reader offers (``read`` whole or in pieces, ``chunks``, ``copy_to_fd``, not at all), so a slip in
the buffer arithmetic shows as a wrong name, body or offset.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
import tempfile
from collections.abc import Callable

import pytest

from dockyard.archive.reader import TarReader
from dockyard.errors import CorruptData


class Trickle:
    """A stream returning at most ``step`` bytes per read (``step`` 0: random 1..4096); counts reads."""

    def __init__(self, data: bytes, step: int, seed: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self._rand = random.Random(seed)
        self.reads = 0
        self.asked: list[int] = []

    def read(self, n: int = -1, /) -> bytes:
        self.reads += 1
        self.asked.append(n)
        step = self._step or self._rand.randint(1, 4096)
        if n < 0:
            n = len(self._data)
        take = min(n, step)
        out = self._data[self._pos : self._pos + take]
        self._pos += len(out)
        return out

    @property
    def consumed(self) -> int:
        return self._pos


def _archive(fmt: int = tarfile.PAX_FORMAT, trailer: bytes = b"") -> bytes:
    """Files of awkward sizes around the block size, links, a long name, a PAX record, a directory."""
    rand = random.Random(7)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        def add(name: str, body: bytes | None = None, **attrs: object) -> None:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)

        add("dir", type=tarfile.DIRTYPE, mode=0o755, mtime=1_700_000_000)
        for size in (0, 1, 511, 512, 513, 1023, 1024, 5000, 70_000):
            add(f"dir/f{size}", bytes(rand.getrandbits(8) for _ in range(size)), mode=0o640, uid=7, gid=8,
                uname="u7", gname="g8", mtime=1_600_000_000 + size)
        add("dir/" + "long" * 40, b"a body under a long name")
        add("dir/sym", type=tarfile.SYMTYPE, linkname="f1")
        add("dir/hard", type=tarfile.LNKTYPE, linkname="dir/f511")
        add("dir/fifo", type=tarfile.FIFOTYPE)
        if fmt == tarfile.PAX_FORMAT:
            add("dir/paxed", b"pax", pax_headers={"comment": "x" * 600, "SCHILY.xattr.user.k": "v"})
    return buf.getvalue() + trailer


def _expected(data: bytes) -> list[tuple[object, ...]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            body = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            out.append((info.name.rstrip("/"), info.type, info.linkname, info.size if info.isreg() else 0,
                        info.mode, info.uid, info.gid, int(info.mtime), info.offset, body))
    return out


def _got(entry: object, body: bytes) -> tuple[object, ...]:
    e = entry
    size = e.size if e.type in (b"0", b"\0", b"7") else 0  # type: ignore[attr-defined]
    return (e.name, e.type, e.linkname, size, e.mode, e.uid, e.gid, int(e.mtime),  # type: ignore[attr-defined]
            e.offset, body)  # type: ignore[attr-defined]


def _read_whole(r: TarReader) -> bytes:
    return r.read()


def _read_pieces(r: TarReader) -> bytes:
    parts = []
    for n in (1, 2, 509, 700, 4096):
        parts.append(r.read(n))
    while piece := r.read(333):
        parts.append(piece)
    return b"".join(parts)


def _read_chunks(r: TarReader) -> bytes:
    return b"".join(bytes(c) for c in r.chunks())


def _copy_fd(r: TarReader) -> bytes:
    with tempfile.TemporaryFile() as f:
        n = r.copy_to_fd(f.fileno())
        f.seek(0)
        body = f.read()
    assert n == len(body)
    return body


READERS: dict[str, Callable[[TarReader], bytes]] = {
    "read": _read_whole, "pieces": _read_pieces, "chunks": _read_chunks, "copy_to_fd": _copy_fd,
}


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
@pytest.mark.parametrize("how", sorted(READERS))
@pytest.mark.parametrize(
    "step,bufsize", [(1, 512), (7, 100), (511, 1), (513, 4096), (0, 1000), (1 << 20, 1 << 20)]
)
def test_same_entries_and_bodies_as_tarfile(fmt: int, how: str, step: int, bufsize: int) -> None:
    data = _archive(fmt)
    stream = Trickle(data, step, seed=step + bufsize)
    r = TarReader(stream, bufsize=bufsize)
    got = []
    for entry in r:
        got.append(_got(entry, READERS[how](r)))
    assert got == _expected(data)
    # the two zero blocks end it: the reader has consumed them and nothing is unaccounted for
    assert r.offset <= stream.consumed
    assert r.next() is None


@pytest.mark.parametrize("step,bufsize", [(1, 512), (513, 4096), (0, 3), (1 << 20, 1 << 20)])
def test_skipped_and_half_read_bodies(step: int, bufsize: int) -> None:
    """Unread rest of a body is skipped exactly: the next header is the right one."""
    data = _archive()
    expected = _expected(data)
    r = TarReader(Trickle(data, step), bufsize=bufsize)
    got = []
    for i, entry in enumerate(r):
        if i % 3 == 0:
            body = b""  # not read at all
            want = (*expected[i][:-1], b"")
        elif i % 3 == 1:
            body = r.read(100)
            want = (*expected[i][:-1], expected[i][-1][:100])  # type: ignore[index]
        else:
            body = r.read()
            want = expected[i]
        got.append(_got(entry, body))
        assert got[-1] == want
    assert len(got) == len(expected)


@pytest.mark.parametrize("step", [1, 300, 1 << 20])
def test_offset_counts_every_byte_and_drain_reads_to_eof(step: int) -> None:
    trailer = bytes(3 * 512) + b"tail"  # more zeros and junk after the end marker
    data = _archive(trailer=trailer)
    stream = Trickle(data, step)
    r = TarReader(stream, bufsize=700)
    entries = [(e.name, e.offset) for e in r]
    end = r.offset
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        last = tar.getmembers()[-1]
        assert [(i.name.rstrip("/"), i.offset) for i in tar.getmembers()] == entries
    # the reader stops right after the first zero block: header + body + padding of the last entry
    assert end == last.offset_data + last.size + (-last.size % 512) + 512
    assert r.drain() == len(data) - end
    assert r.offset == len(data) == stream.consumed
    assert stream.read(10) == b""


def test_drain_mid_entry_discards_the_rest() -> None:
    data = _archive()
    r = TarReader(Trickle(data, 1000), bufsize=512)
    entry = r.next()
    while entry is not None and entry.size < 5000:
        entry = r.next()
    assert entry is not None
    assert r.read(10)
    rest_of_entry = entry.size - 10 + (-entry.size % 512)  # skipped, not counted as discarded
    before = r.offset
    assert r.drain() == len(data) - before - rest_of_entry
    assert r.offset == len(data)
    assert r.next() is None


def test_reads_ask_for_the_buffer_size_not_single_blocks() -> None:
    """Headers are served from the buffer: a 2,000-entry archive takes few stream reads."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(2000):
            info = tarfile.TarInfo(f"f{i}")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    data = buf.getvalue()
    stream = Trickle(data, 1 << 22)
    assert sum(1 for _ in TarReader(stream, bufsize=1 << 16)) == 2000
    assert stream.reads <= len(data) // (1 << 16) + 3
    assert all(n >= 1 << 16 or n < 0 for n in stream.asked[:-1])


def test_copy_to_fd_of_a_large_body_spans_reads() -> None:
    body = os.urandom(3 << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo("after")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"after"))
    r = TarReader(Trickle(buf.getvalue(), 100_000), bufsize=4096)
    assert r.next() is not None
    r.read(5)
    with tempfile.TemporaryFile() as f:
        assert r.copy_to_fd(f.fileno()) == len(body) - 5
        f.seek(0)
        assert f.read() == body[5:]
    after = r.next()
    assert after is not None and after.name == "after" and r.read() == b"after"


@pytest.mark.parametrize("how", sorted(READERS))
def test_a_cut_inside_a_body_is_an_error_with_its_place(how: str) -> None:
    data = _archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        big = next(i for i in tar.getmembers() if i.size == 70_000)
    cut = data[: big.offset_data + 30_000]
    r = TarReader(Trickle(cut, 4000), bufsize=1024)
    where = rf"truncated: tar entry 'dir/f70000' at offset {big.offset} ends early"
    with pytest.raises(CorruptData, match=where):
        for _ in r:
            READERS[how](r)


def test_a_cut_inside_the_padding_is_an_error() -> None:
    data = _archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        one = next(i for i in tar.getmembers() if i.size == 1)
    cut = data[: one.offset_data + 1 + 100]  # body read, padding short
    r = TarReader(io.BytesIO(cut))
    with pytest.raises(CorruptData, match="truncated: tar entry 'dir/f1' at offset"):
        for _ in r:
            pass


def test_a_cut_inside_a_header_names_its_offset() -> None:
    data = _archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        second = tar.getmembers()[1]
    r = TarReader(Trickle(data[: second.offset + 100], 7), bufsize=64)
    assert r.next() is not None
    with pytest.raises(CorruptData, match=f"partial header at offset {second.offset}$"):
        r.next()


def test_eof_at_a_header_boundary_ends_the_archive() -> None:
    data = _archive()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
    cut = data[: members[3].offset]
    names = [e.name for e in TarReader(Trickle(cut, 13), bufsize=10)]
    assert names == [m.name.rstrip("/") for m in members[:3]]


# -- extended headers and the edges of next() ----------------------------------------------------

def _file(name: bytes, body: bytes = b"", typeflag: bytes = b"0") -> bytes:
    from dockyard.archive.tarheader import _raw_header, padding

    head = _raw_header(name, 0o644, 0, 0, len(body), 0, typeflag, b"", b"", b"", 0, 0)
    return head + body + padding(len(body))


def _special(typeflag: bytes, body: bytes, name: bytes = b"././@LongLink") -> bytes:
    return _file(name, body, typeflag)


def _pax_record(key: str, value: str) -> bytes:
    rec = f" {key}={value}\n"
    n = len(rec)
    while len(str(n + len(str(n)))) != len(str(n)):
        n += 1
    n += len(str(n))
    return f"{n}{rec}".encode()


def test_a_global_pax_header_applies_to_every_later_entry() -> None:
    from dockyard.archive.tarheader import XGLTYPE, XHDTYPE

    data = (_file(b"before") + _special(XGLTYPE, _pax_record("uname", "globaluser"), b"pax_global_header")
            + _file(b"a") + _special(XHDTYPE, _pax_record("uname", "own"), b"PaxHeaders/b") + _file(b"b")
            + _file(b"c") + bytes(1024))
    r = TarReader(io.BytesIO(data))
    got = [(e.name, e.uname) for e in r]
    assert got == [("before", ""), ("a", "globaluser"), ("b", "own"), ("c", "globaluser")]
    assert r.global_pax == {"uname": b"globaluser"}


@pytest.mark.parametrize("typeflag", [b"x", b"g"], ids=["x", "g"])
def test_a_bad_pax_record_names_the_extended_headers_offset(typeflag: bytes) -> None:
    bad = _special(typeflag, b"9 nokey\n", b"PaxHeaders/x")
    data = _file(b"first", b"12345") + bad + _file(b"x") + bytes(1024)
    with pytest.raises(CorruptData, match=r"^tar header at offset 1024: "):
        list(TarReader(io.BytesIO(data)))


@pytest.mark.parametrize("typeflag", [b"x", b"L", b"K"], ids=["x", "L", "K"])
def test_eof_after_an_extended_header_is_truncation_at_its_offset(typeflag: bytes) -> None:
    body = _pax_record("path", "p") if typeflag == b"x" else b"name\0"
    data = _file(b"first", b"12345") + _special(typeflag, body)
    with pytest.raises(CorruptData, match=r"^tar archive truncated after extended header at offset 1024$"):
        list(TarReader(io.BytesIO(data)))


def test_an_extended_header_cut_short_is_truncation() -> None:
    data = _file(b"first") + _special(b"L", b"n" * 2000)[:512 + 1000]
    with pytest.raises(CorruptData, match=r"^tar archive truncated: extended header at offset 512$"):
        list(TarReader(io.BytesIO(data)))


def test_an_extended_header_of_exactly_the_limit_is_read() -> None:
    from dockyard.archive.tarheader import MAX_SPECIAL_SIZE

    name = b"d/" * ((MAX_SPECIAL_SIZE - 2) // 2) + b"f\0"
    assert len(name) == MAX_SPECIAL_SIZE
    data = _special(b"L", name) + _file(b"short") + bytes(1024)
    assert [e.name for e in TarReader(io.BytesIO(data))] == [name[:-1].decode()]
    too_big = _special(b"L", name + b"\0" * 512) + _file(b"short") + bytes(1024)
    with pytest.raises(CorruptData, match="extended header of 1049088 bytes is too large"):
        list(TarReader(io.BytesIO(too_big)))


def test_gnu_long_name_and_link_end_at_the_first_nul() -> None:
    data = (_special(b"L", b"real-name\0junk\0more\0") + _special(b"K", b"real-target\0junk\0x\0")
            + _file(b"short", typeflag=b"2") + bytes(1024))
    [entry] = TarReader(io.BytesIO(data))
    assert (entry.name, entry.linkname) == ("real-name", "real-target")


@pytest.mark.parametrize("how", ["type S", "pax GNU.sparse.major", "pax GNU.sparse.map"])
def test_sparse_entries_are_refused_with_the_name_and_offset(how: str) -> None:
    from dockyard.archive.tarheader import XHDTYPE

    if how == "type S":
        data = _file(b"first") + _file(b"holes", b"x", typeflag=b"S")
    else:
        key = how.split()[1]
        pax = _special(XHDTYPE, _pax_record(key, "1"), b"PaxHeaders/h")
        data = _file(b"first") + pax + _file(b"holes", b"x")
    r = TarReader(io.BytesIO(data + bytes(1024)))
    assert r.next() is not None
    message = r"^tar entry 'holes' at offset 512: sparse files are not supported$"
    with pytest.raises(CorruptData, match=message):
        r.next()


def test_other_pax_keys_and_a_lowercase_s_type_are_not_sparse() -> None:
    from dockyard.archive.tarheader import XHDTYPE

    data = (_special(XHDTYPE, _pax_record("gnu.sparse.x", "1") + _pax_record("comment", "GNU.sparse"), b"P/a")
            + _file(b"a", b"1") + _file(b"b", b"2", typeflag=b"s") + bytes(1024))
    assert [e.name for e in TarReader(io.BytesIO(data))] == ["a", "b"]


def test_trailing_slashes_are_dropped_but_the_root_stays() -> None:
    data = (_file(b"dir//", typeflag=b"5") + _file(b"/", typeflag=b"5") + _file(b"a", typeflag=b"5")
            + _file(b"./", typeflag=b"5") + _file(b"boX/", typeflag=b"5") + _file(b"//", typeflag=b"5")
            + bytes(1024))
    assert [e.name for e in TarReader(io.BytesIO(data))] == ["dir", "/", "a", ".", "boX", "/"]


def test_read_sizes_at_the_edges() -> None:
    data = _file(b"f", b"0123456789") + bytes(1024)
    r = TarReader(io.BytesIO(data))
    assert r.read() == b"" and r.read(5) == b""  # no current entry yet: nothing to read
    assert r.next() is not None
    assert r.read(0) == b""
    assert r.read(9) == b"012345678"
    assert r.read(5) == b"9"
    assert r.read() == b""
    assert r.next() is None and r.next() is None


def test_after_the_end_next_stays_none_even_with_more_data() -> None:
    data = _file(b"a") + bytes(1024) + _file(b"b") + bytes(1024)
    r = TarReader(io.BytesIO(data))
    assert [e.name for e in r] == ["a"]
    assert [r.next(), r.next(), r.next()] == [None, None, None]
    r2 = TarReader(io.BytesIO(data))
    assert r2.next() is not None
    r2.drain()
    assert r2.next() is None


def test_copy_to_fd_survives_short_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write less than asked (a pipe, a signal): the rest is written, nothing twice."""
    import dockyard.archive.reader as reader_mod

    real_write = os.write
    monkeypatch.setattr(reader_mod.os, "write", lambda fd, view: real_write(fd, view[:1000]))
    small, big = os.urandom(5000), os.urandom(300_000)
    data = _file(b"small", small) + _file(b"big", big) + _file(b"after", b"x") + bytes(1024)
    r = TarReader(Trickle(data, 70_000), bufsize=65536)
    bodies = []
    for _ in r:
        with tempfile.TemporaryFile() as f:
            n = r.copy_to_fd(f.fileno())
            f.seek(0)
            bodies.append((n, f.read()))
    assert bodies == [(5000, small), (300_000, big), (1, b"x")]
    assert r.offset == len(data) - 512


def test_nothing_is_read_after_the_end_or_a_drain() -> None:
    """Past the end marker (or after drain) there is no current entry: reads give nothing, whatever
    bytes follow in the stream."""
    data = _file(b"f", b"body") + bytes(1024) + b"trailing junk" * 100
    r = TarReader(io.BytesIO(data), bufsize=700)
    assert [e.name for e in r] == ["f"]
    assert r.read() == b"" and r.read(10) == b"" and list(r.chunks()) == []
    r.drain()
    assert r.read() == b"" and r.read(10) == b"" and list(r.chunks()) == []
    with tempfile.TemporaryFile() as f:
        assert r.copy_to_fd(f.fileno()) == 0
