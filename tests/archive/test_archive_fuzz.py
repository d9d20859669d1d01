"""Mutated archives: applying any byte soup either works or raises a dockyard error, and nothing is
ever written outside the root."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.archive import TarWriter, apply_layer
from dockyard.archive.tarheader import DIRTYPE, LNKTYPE, SYMTYPE, TarEntry
from dockyard.errors import DockyardError


def seed_archive() -> bytes:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        tw.add(TarEntry("d", type=DIRTYPE, mode=0o755))
        tw.add(TarEntry("d/f", mode=0o644, xattrs={"user.x": b"1"}), b"hello" * 30)
        tw.add(TarEntry("d/" + "n" * 150, mode=0o600), b"long")
        tw.add(TarEntry("s", type=SYMTYPE, linkname="../../outside"))
        tw.add(TarEntry("s/x", mode=0o644), b"through the link")
        tw.add(TarEntry("h", type=LNKTYPE, linkname="d/f"))
        tw.add(TarEntry("d/.wh.f"))
        tw.add(TarEntry("d/.wh..wh..opq"))
        tw.add(TarEntry("e", type=DIRTYPE, mode=0o700, uid=3_000_000))
    return buf.getvalue()


SEED = seed_archive()
_counter = itertools.count()


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, len(SEED))),
)
def test_mutated_archives_fail_cleanly_and_stay_inside(flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(SEED)
    for pos, value in flips:
        data[pos] = value
    if cut is not None:
        del data[cut:]
    base = Path(tempfile.mkdtemp(prefix=f"dy-fuzz-{next(_counter)}-", dir="/dev/shm"))
    try:
        outside = base / "outside"
        outside.mkdir()
        try:
            apply_layer(io.BytesIO(bytes(data)), base / "root")
        except DockyardError:
            pass
        assert os.listdir(outside) == []
        assert sorted(os.listdir(base)) == ["outside", "root"]
    finally:
        shutil.rmtree(base)


def _header_offsets(data: bytes) -> list[int]:
    from dockyard.archive.tarheader import decode

    found = []
    for off in range(0, len(data) - 511, 512):
        try:
            decode(data[off : off + 512], off)
        except DockyardError:
            continue
        found.append(off)
    return found


HEADERS = _header_offsets(SEED)


def _fix_checksums(data: bytearray) -> None:
    for off in HEADERS:
        if off + 512 > len(data):
            continue
        block = data[off : off + 512]
        block[148:156] = b" " * 8
        data[off + 148 : off + 156] = b"%06o\x00 " % sum(block)


def _apply_and_check(data: bytes) -> None:
    base = Path(tempfile.mkdtemp(prefix=f"dy-fuzz-{next(_counter)}-", dir="/dev/shm"))
    try:
        outside = base / "outside"
        outside.mkdir()
        try:
            apply_layer(io.BytesIO(data), base / "root")
        except DockyardError:
            pass
        assert os.listdir(outside) == []
        assert sorted(os.listdir(base)) == ["outside", "root"]
    finally:
        shutil.rmtree(base)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(
        st.tuples(st.sampled_from(HEADERS), st.integers(0, 511),
                  st.sampled_from(list(b"./\x00 0x7L5K2\xff\x80") + list(range(256)))),
        min_size=1, max_size=6),
)
def test_header_mutations_with_valid_checksums(flips: list[tuple[int, int, int]]) -> None:
    data = bytearray(SEED)
    for off, pos, value in flips:
        data[off + pos] = value
    _fix_checksums(data)
    _apply_and_check(bytes(data))


COMPONENTS = st.sampled_from(["..", ".", "", "s", "d", "x", ".wh.x", ".wh..wh..opq", "outside", "/"])
PATHS = st.lists(COMPONENTS, min_size=1, max_size=5).map("/".join)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([b"0", b"1", b"2", b"5"]), PATHS, PATHS), min_size=1, max_size=8))
def test_hostile_name_soup_stays_inside(members: list[tuple[bytes, str, str]]) -> None:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        for typeflag, name, target in members:
            entry = TarEntry(name or ".", type=typeflag, mode=0o755,
                             linkname=target if typeflag in (b"1", b"2") else "")
            tw.add(entry, b"data" if typeflag == b"0" else None)
    _apply_and_check(buf.getvalue())
