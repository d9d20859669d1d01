"""Header encoding/decoding: ustar fields, PAX records, GNU base-256 numbers, checksums."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.archive import TarReader, apply_layer
from dockyard.archive.tarheader import (
    BLOCK,
    CHRTYPE,
    SYMTYPE,
    TarEntry,
    _raw_header,
    decode,
    encode,
    parse_number,
    parse_pax,
)
from dockyard.errors import CorruptData


def roundtrip(entry: TarEntry) -> TarEntry:
    data = encode(entry) + bytes(-entry.size % BLOCK if entry.size < 1 << 20 else 0)
    reader = TarReader(io.BytesIO(data + bytes(entry.size if entry.size < 1 << 20 else 0) + bytes(1024)))
    got = reader.next()
    assert got is not None
    return got


def test_plain_header_is_one_block_with_valid_checksum() -> None:
    raw = encode(TarEntry("etc/hosts", mode=0o644, uid=1, gid=2, size=10, mtime=1_700_000_000))
    assert len(raw) == BLOCK and raw[257:265] == b"ustar\x0000"
    e = decode(raw)
    assert (e.name, e.mode, e.uid, e.gid, e.size, e.mtime) == ("etc/hosts", 0o644, 1, 2, 10, 1_700_000_000)


@pytest.mark.parametrize(
    "entry",
    [
        TarEntry("n" * 300, size=5),
        TarEntry("l", type=SYMTYPE, linkname="t" * 5000),
        TarEntry("big-ids", uid=3_000_000_000, gid=2_097_152),
        TarEntry("huge", size=100 * 2**30),
        TarEntry("ünï/çødé", uname="ü" * 40, gname="g"),
        TarEntry("x", xattrs={"security.capability": b"\x01\x00\x00\x02\n=", "user.a": b""}),
        TarEntry("future", mtime=2**40),
        TarEntry("dev", type=CHRTYPE, devmajor=259, devminor=3_000_000),
    ],
    ids=lambda e: e.name[:10],
)
def test_pax_and_big_values_round_trip(entry: TarEntry) -> None:
    got = roundtrip(entry)
    for field in ("name", "type", "linkname", "uid", "gid", "size", "mtime", "uname", "gname",
                  "devmajor", "devminor", "xattrs"):
        assert getattr(got, field) == getattr(entry, field), field


def test_tarfile_parses_our_pax_headers() -> None:
    entry = TarEntry("p" * 200, uid=5_000_000, size=3, xattrs={"user.k": b"v"})
    data = encode(entry) + b"abc" + bytes(509) + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        (m,) = tf.getmembers()
        assert m.name == "p" * 200 and m.uid == 5_000_000 and tf.extractfile(m).read() == b"abc"  # type: ignore[union-attr]


def test_numbers_octal_base256_and_garbage() -> None:
    assert parse_number(b"0000644\x00") == 0o644
    assert parse_number(b"  644 \x00") == 0o644
    assert parse_number(b"\x00" * 8) == 0
    assert parse_number(b"\x80" + (2**40).to_bytes(11, "big")) == 2**40
    assert parse_number(b"\xff" * 12) == -1
    with pytest.raises(CorruptData, match="bad mode"):
        parse_number(b"12x4\x00", 0, "mode")


def test_checksum_error_names_offset_and_entry() -> None:
    raw = bytearray(encode(TarEntry("victim")))
    raw[0] = ord("V")
    with pytest.raises(CorruptData, match=r"offset 4096 \('Victim'\): bad checksum"):
        decode(bytes(raw), 4096)


def test_signed_checksum_is_accepted() -> None:
    raw = bytearray(_raw_header(b"caf\xe9", 0o644, 0, 0, 0, 0, b"0", b"", b"", b"", 0, 0))
    signed = sum(b - 256 if b > 127 else b for b in raw[:148] + b" " * 8 + raw[156:])
    raw[148:156] = b"%06o\x00 " % signed
    assert decode(bytes(raw)).name.startswith("caf")


@pytest.mark.parametrize("pax_first", [True, False], ids=["pax-first", "gnu-first"])
def test_gnu_long_name_and_link_beat_pax_path_and_linkpath(
    both_names: Callable[[bool], bytes], shm: Path, pax_first: bool
) -> None:
    # Go's archive/tar (Docker, containerd, BuildKit) takes the GNU record whatever the order; the
    # peer test in test_archive_docker.py holds the engine to the same answer.
    data = both_names(pax_first)
    assert [(e.name, e.linkname) for e in TarReader(io.BytesIO(data))] == [
        ("from-gnu", ""), ("link", "gnu-target")]
    apply_layer(io.BytesIO(data), shm)
    assert sorted(os.listdir(shm)) == ["from-gnu", "link"]
    assert os.readlink(shm / "link") == "gnu-target"


def test_malformed_pax_records() -> None:
    assert parse_pax(b"13 path=abcd\n") == {"path": b"abcd"}
    for bad in (b"99 path=a\n", b"x path=a\n", b"9 patha\n"):
        with pytest.raises(CorruptData):
            parse_pax(bad)


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0/"), min_size=1,
                 max_size=300),
    mode=st.integers(0, 0o7777),
    uid=st.integers(0, 2**40),
    size=st.integers(0, 2**36),
    mtime=st.integers(0, 2**34),
)
def test_property_round_trip(name: str, mode: int, uid: int, size: int, mtime: int) -> None:
    entry = TarEntry(name, mode=mode, uid=uid, gid=uid // 3, size=size, mtime=mtime)
    head = encode(entry)
    r = TarReader(io.BytesIO(head + bytes(1024)))
    got = r.next()
    assert got is not None
    expected = (name, mode, uid, uid // 3, size, mtime)
    assert (got.name, got.mode, got.uid, got.gid, got.size, got.mtime) == expected
