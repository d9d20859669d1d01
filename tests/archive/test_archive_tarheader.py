"""The header codec field by field: the bytes encode writes (against tarfile's ustar writer), where
it switches to PAX and what each record holds, every field decode reads, and the exact error texts
of malformed numbers, checksums and PAX records."""

from __future__ import annotations

import io
import tarfile

import pytest

from dockyard.archive import TarReader
from dockyard.archive.tarheader import (
    AREGTYPE,
    BLKTYPE,
    BLOCK,
    CHRTYPE,
    CONTTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    XHDTYPE,
    TarEntry,
    _num,
    _pax_record,
    _raw_header,
    apply_pax,
    decode,
    encode,
    is_zero_block,
    padding,
    parse_number,
    parse_pax,
)
from dockyard.errors import CorruptData

MAX7 = 0o7777777
MAX11 = 0o77777777777


def ascii_id(value: object) -> str:
    """Test ids in ASCII: the mutation runs turn id escaping off, which bytes values do not survive."""
    return ascii(value)[:40]


def checksum_ok(block: bytes) -> bool:
    return int(block[148:154], 8) == sum(block[:148]) + 8 * 32 + sum(block[156:]) \
        and block[154:156] == b"\0 "


def tarfile_header(entry: TarEntry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type, info.mode, info.uid, info.gid = entry.type, entry.mode, entry.uid, entry.gid
    info.size, info.mtime, info.linkname = entry.size, entry.mtime, entry.linkname
    info.uname, info.gname = entry.uname, entry.gname
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    return info.tobuf(tarfile.USTAR_FORMAT)


# -- encode: plain ustar -----------------------------------------------------------------------------

@pytest.mark.parametrize("entry", [
    TarEntry("etc/hosts", mode=0o644, uid=1, gid=2, size=10, mtime=1_700_000_000, uname="root",
             gname="wheel"),
    TarEntry("n" * 100, mode=0o7777, uid=MAX7, gid=MAX7, size=MAX11, mtime=MAX11, uname="u" * 32,
             gname="g" * 32),
    TarEntry("l", type=SYMTYPE, mode=0o777, linkname="t" * 100),
    TarEntry("h", type=LNKTYPE, linkname="etc/hosts"),
    TarEntry("dev/sda", type=BLKTYPE, mode=0o660, devmajor=8, devminor=MAX7),
    TarEntry("dev/null", type=CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    TarEntry("fifo", type=FIFOTYPE),
], ids=lambda e: e.name[:8])
def test_a_plain_entry_is_one_ustar_block_as_tarfile_writes_it(entry: TarEntry) -> None:
    ours, theirs = encode(entry), tarfile_header(entry)
    assert len(ours) == BLOCK and checksum_ok(ours)
    if entry.type not in (CHRTYPE, BLKTYPE):  # tarfile leaves a non-device's dev fields empty
        theirs = theirs[:329] + b"0000000\0" * 2 + theirs[345:]
    assert ours[:148] == theirs[:148] and ours[156:] == theirs[156:]
    got = decode(ours, 512)
    for f in ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "uname", "gname",
              "devmajor", "devminor"):
        assert getattr(got, f) == getattr(entry, f), f
    assert got.offset == 512


def test_a_directory_gets_one_trailing_slash_and_mode_keeps_only_permission_bits() -> None:
    raw = encode(TarEntry("a/dir", type=DIRTYPE, mode=0o40755))
    assert raw[:7] == b"a/dir/\0" and raw[100:108] == b"0000755\0" and raw[156:157] == DIRTYPE
    assert encode(TarEntry("b/", type=DIRTYPE))[:3] == b"b/\0"
    assert encode(TarEntry("f/", type=REGTYPE))[:3] == b"f/\0"  # only directories get one
    assert decode(raw).name == "a/dir/"  # the reader, not decode, drops it


# -- encode: when PAX is needed and what it holds ----------------------------------------------------

def split_pax(raw: bytes) -> tuple[bytes, dict[str, bytes], bytes]:
    """(the extended header block, its records, the main header block)."""
    assert raw[156:157] == XHDTYPE and checksum_ok(raw[:BLOCK])
    size = int(raw[124:135], 8)
    body = raw[BLOCK:BLOCK + size]
    assert raw[BLOCK + size:BLOCK + size + padding(size).__len__()] == padding(size)
    main = raw[BLOCK + size + len(padding(size)):]
    assert len(main) == BLOCK and checksum_ok(main)
    return raw[:BLOCK], parse_pax(body), main


@pytest.mark.parametrize("entry,records", [
    (TarEntry("n" * 101), {"path": b"n" * 101}),
    (TarEntry("ä"), {"path": "ä".encode()}),
    (TarEntry("l", type=SYMTYPE, linkname="t" * 101), {"linkpath": b"t" * 101}),
    (TarEntry("l", type=SYMTYPE, linkname="é"), {"linkpath": "é".encode()}),
    (TarEntry("s", size=MAX11 + 1), {"size": b"%d" % (MAX11 + 1)}),
    (TarEntry("u", uid=MAX7 + 1), {"uid": b"2097152"}),
    (TarEntry("g", gid=MAX7 + 1), {"gid": b"2097152"}),
    (TarEntry("m", mtime=MAX11 + 1), {"mtime": b"%d" % (MAX11 + 1)}),
    (TarEntry("m", mtime=-1), {"mtime": b"-1"}),
    (TarEntry("un", uname="u" * 33), {"uname": b"u" * 33}),
    (TarEntry("un", uname="ü"), {"uname": "ü".encode()}),
    (TarEntry("gn", gname="g" * 33), {"gname": b"g" * 33}),
    (TarEntry("gn", gname="ß"), {"gname": "ß".encode()}),
    (TarEntry("x", xattrs={"user.b": b"2", "security.a": b"\0\1"}),
     {"SCHILY.xattr.security.a": b"\0\1", "SCHILY.xattr.user.b": b"2"}),
    (TarEntry("p", pax={"zz": "last", "aa": "ü"}), {"aa": "ü".encode(), "zz": b"last"}),
], ids=lambda v: v.name if isinstance(v, TarEntry) else "")
def test_each_field_that_does_not_fit_gets_its_record_and_nothing_else(entry: TarEntry,
                                                                        records: dict[str, bytes]) -> None:
    head, got, main = split_pax(encode(entry))
    assert got == records
    e = decode(main)
    assert e.uid == min(entry.uid, MAX7) and e.gid == min(entry.gid, MAX7)
    assert e.size == min(entry.size, MAX11) and e.mtime == max(0, min(entry.mtime, MAX11))
    assert e.mode == entry.mode and e.type == entry.type
    h = decode(head)
    assert (h.mode, h.uid, h.gid, h.mtime, h.uname, h.gname) == (0o644, 0, 0, e.mtime, "", "")


def test_records_come_in_a_fixed_order() -> None:
    entry = TarEntry("n" * 101, type=SYMTYPE, linkname="t" * 101, size=MAX11 + 1, uid=MAX7 + 1,
                     gid=MAX7 + 1, mtime=-5, uname="u" * 33, gname="g" * 33,
                     xattrs={"b": b"2", "a": b"1"}, pax={"z": "1", "y": "2"})
    _, got, _ = split_pax(encode(entry))
    assert list(got) == ["path", "linkpath", "size", "uid", "gid", "mtime", "uname", "gname",
                         "SCHILY.xattr.a", "SCHILY.xattr.b", "y", "z"]


@pytest.mark.parametrize("name,pax_name", [
    ("n" * 101, b"PaxHeaders.0/" + b"n" * 87),
    ("dir/" + "n" * 101, b"dir/PaxHeaders.0/" + b"n" * 83),
], ids=["top", "in-dir"])
def test_the_extended_header_is_named_like_archive_tars(name: str, pax_name: bytes) -> None:
    head, _, _ = split_pax(encode(TarEntry(name, type=DIRTYPE if name.startswith("dir") else REGTYPE)))
    assert head[:100].rstrip(b"\0") == pax_name[:100]


def test_a_directory_with_a_long_name_names_its_extended_header_without_the_slash() -> None:
    head, got, _ = split_pax(encode(TarEntry("d/" + "x" * 120, type=DIRTYPE)))
    assert head[:100].rstrip(b"\0") == b"d/PaxHeaders.0/" + b"x" * 85
    assert got == {"path": b"d/" + b"x" * 120 + b"/"}


@pytest.mark.parametrize("n", range(1, 130))
def test_a_pax_record_counts_its_own_length(n: int) -> None:
    record = _pax_record("k", b"v" * n)
    length, _, rest = record.partition(b" ")
    assert int(length) == len(record) and rest == b"k=" + b"v" * n + b"\n"
    assert parse_pax(record) == {"k": b"v" * n}


def test_a_pax_record_key_keeps_undecodable_bytes() -> None:
    assert _pax_record("k\udcff", b"v") == b"7 k\xff=v\n"


# -- GNU base-256 numbers ----------------------------------------------------------------------------

def test_numbers_too_large_for_octal_are_base_256() -> None:
    assert _num(MAX7, 8, MAX7) == b"7777777\0"
    assert _num(MAX7 + 1, 8, MAX7) == b"\x80" + (MAX7 + 1).to_bytes(7, "big")
    assert _num(0, 8, MAX7) == b"0000000\0"
    with pytest.raises(OverflowError):
        _num(-1, 8, MAX7)
    head = _raw_header(b"x", 0o644, MAX7 + 1, MAX7 + 2, 0, 0, CHRTYPE, b"", b"", b"", MAX7 + 3, MAX7 + 4)
    assert head[108:116] == b"\x80" + (MAX7 + 1).to_bytes(7, "big")
    assert head[116:124] == b"\x80" + (MAX7 + 2).to_bytes(7, "big")
    assert head[329:337] == b"\x80" + (MAX7 + 3).to_bytes(7, "big")
    assert head[337:345] == b"\x80" + (MAX7 + 4).to_bytes(7, "big")
    e = decode(head)
    assert (e.uid, e.gid, e.devmajor, e.devminor) == (MAX7 + 1, MAX7 + 2, MAX7 + 3, MAX7 + 4)
    with tarfile.open(fileobj=io.BytesIO(head + bytes(1024))) as tf:
        (m,) = tf.getmembers()
        assert (m.uid, m.gid, m.devmajor, m.devminor) == (MAX7 + 1, MAX7 + 2, MAX7 + 3, MAX7 + 4)


def test_a_large_device_number_survives_encode() -> None:
    e = decode(encode(TarEntry("d", type=CHRTYPE, devmajor=MAX7 + 1, devminor=1 << 40)))
    assert (e.devmajor, e.devminor) == (MAX7 + 1, 1 << 40)


@pytest.mark.parametrize("field,value", [
    (b"0000644\0", 0o644), (b"  644 \0", 0o644), (b"644", 0o644), (b"\0" * 8, 0), (b" " * 8, 0),
    (b"", 0), (b"12\0zz", 0o12),
    (b"\x80" + bytes(6) + b"\x01", 1), (b"\x80" + (2**40).to_bytes(11, "big"), 2**40),
    (b"\xff" * 12, -1), (b"\xff" * 7 + b"\xfe", -2), (b"\xff" + bytes(7), -(1 << 56)),
], ids=ascii_id)
def test_parse_number(field: bytes, value: int) -> None:
    assert parse_number(field) == value


@pytest.mark.parametrize("field,text", [
    (b"\x81" + bytes(7), "tar header at offset 77: bad base-256 uid field"),
    (b"\xfe" + bytes(7), "tar header at offset 77: bad base-256 uid field"),
    (b"9", "tar header at offset 77: bad uid field b'9'"),
    (b"0123456789abcdef", "tar header at offset 77: bad uid field b'0123456789ab'"),
], ids=ascii_id)
def test_parse_number_errors_name_the_field_and_offset(field: bytes, text: str) -> None:
    with pytest.raises(CorruptData) as err:
        parse_number(field, 77, "uid")
    assert str(err.value) == text


def test_parse_number_defaults_name_a_number_at_offset_0() -> None:
    with pytest.raises(CorruptData) as err:
        parse_number(b"x")
    assert str(err.value) == "tar header at offset 0: bad number field b'x'"


# -- decode ------------------------------------------------------------------------------------------

def header(**fields: bytes) -> bytes:
    """A ustar header with fields overridden by offset name, checksum recomputed."""
    where = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12),
             "mtime": (136, 12), "type": (156, 1), "linkname": (157, 100), "magic": (257, 8),
             "uname": (265, 32), "gname": (297, 32), "devmajor": (329, 8), "devminor": (337, 8),
             "prefix": (345, 155)}
    raw = bytearray(_raw_header(b"name", 0o644, 1, 2, 3, 4, REGTYPE, b"", b"", b"", 0, 0))
    for key, value in fields.items():
        start, width = where[key]
        raw[start:start + width] = value.ljust(width, b"\0")
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw)
    return bytes(raw)


def test_decode_every_field() -> None:
    e = decode(header(name=b"file", mode=b"0104755\0", uid=b"0000017\0", gid=b"0000021\0",
                      size=b"00000000144\0", mtime=b"00000001750\0", linkname=b"target\0junk",
                      uname=b"alice\0junk", gname=b"staff\0junk"), 1024)
    assert (e.name, e.type, e.mode, e.uid, e.gid, e.size, e.mtime, e.linkname, e.uname, e.gname,
            e.devmajor, e.devminor, e.xattrs, e.pax, e.offset) == (
        "file", REGTYPE, 0o4755, 15, 17, 100, 1000, "target", "alice", "staff", 0, 0, {}, {}, 1024)


def test_decode_fields_that_take_the_careful_path() -> None:
    e = decode(header(uid=b"\x80" + bytes(6) + b"\x07", gid=b" 12 \0", mode=b"755 \0",
                      size=b"\x80" + bytes(10) + b"\x09", mtime=b"\xff" * 12))
    assert (e.uid, e.gid, e.mode, e.size, e.mtime) == (7, 0o12, 0o755, 9, -1)
    e = decode(header(uid=b"\x80" + bytes(6) + b"\x07", mode=b"", gid=b"", size=b"", mtime=b""))
    assert (e.uid, e.mode, e.gid, e.size, e.mtime) == (7, 0, 0, 0, 0)


@pytest.mark.parametrize("field,what", [("mode", "mode"), ("uid", "uid"), ("gid", "gid"),
                                        ("size", "size"), ("mtime", "mtime")])
def test_a_bad_number_names_its_field(field: str, what: str) -> None:
    with pytest.raises(CorruptData) as err:
        decode(header(**{field: b"8x"}), 512)
    assert str(err.value) == f"tar header at offset 512: bad {what} field b'8x'"


def test_a_bad_checksum_field_is_named() -> None:
    raw = bytearray(header())
    raw[148:156] = b"zz\0     "
    with pytest.raises(CorruptData) as err:
        decode(bytes(raw), 3)
    assert str(err.value) == "tar header at offset 3: bad checksum field b'zz'"


def test_a_wrong_checksum_shows_both_sums_and_the_name() -> None:
    raw = bytearray(header(name=b"victim"))
    stored = int(raw[148:154], 8)
    raw[148:156] = b"%06o\0 " % (stored + 1)
    with pytest.raises(CorruptData) as err:
        decode(bytes(raw), 9)
    assert str(err.value) == \
        f"tar header at offset 9 ('victim'): bad checksum (stored {stored + 1}, computed {stored})"
    raw[148:156] = b"%06o\0 " % (stored - 256)  # a signed sum of a header without high bytes: wrong
    with pytest.raises(CorruptData):
        decode(bytes(raw))


def test_a_signed_checksum_counts_each_high_byte() -> None:
    raw = bytearray(header(name=b"\xe9\xe9t\xe9"))
    unsigned = int(raw[148:154], 8)
    raw[148:156] = b"%06o\0 " % (unsigned - 3 * 256)
    assert decode(bytes(raw)).name == "\udce9\udce9t\udce9"
    raw[148:156] = b"%06o\0 " % (unsigned - 2 * 256)
    with pytest.raises(CorruptData, match="bad checksum"):
        decode(bytes(raw))


@pytest.mark.parametrize("size", [0, 511, 513])
def test_a_short_block_is_truncation(size: int) -> None:
    with pytest.raises(CorruptData) as err:
        decode(bytes(size), 1536)
    assert str(err.value) == f"tar header at offset 1536: truncated header ({size} of 512 bytes)"


def test_the_prefix_field_is_joined_for_posix_ustar_only() -> None:
    assert decode(header(name=b"file", prefix=b"some/dir\0junk")).name == "some/dir/file"
    assert decode(header(name=b"file", prefix=b"")).name == "file"
    gnu = decode(header(name=b"file", magic=b"ustar  \0", prefix=b"atime-ish", uname=b"bob"))
    assert gnu.name == "file" and gnu.uname == "bob"
    v7 = decode(header(name=b"file", magic=b"", uname=b"bob", gname=b"grp", prefix=b"p"))
    assert (v7.name, v7.uname, v7.gname) == ("file", "", "")


def test_names_decode_undecodable_bytes_losslessly() -> None:
    e = decode(header(name=b"caf\xe9", linkname=b"t\xff", uname=b"\xfeu", gname=b"g\xfd"))
    assert (e.name, e.linkname, e.uname, e.gname) == ("caf\udce9", "t\udcff", "\udcfeu", "g\udcfd")
    assert os_bytes(e.name) == b"caf\xe9"


def os_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def test_device_numbers_are_read_only_for_devices() -> None:
    dev = {"devmajor": b"0000010\0", "devminor": b"0000003\0"}
    for t in (CHRTYPE, BLKTYPE):
        e = decode(header(type=t, **dev))
        assert (e.devmajor, e.devminor) == (8, 3)
    e = decode(header(type=REGTYPE, **dev))
    assert (e.devmajor, e.devminor) == (0, 0)
    e = decode(header(type=CHRTYPE, devmajor=b"\x80" + bytes(6) + b"\x05", devminor=b" 7 \0"))
    assert (e.devmajor, e.devminor) == (5, 7)
    with pytest.raises(CorruptData) as err:
        decode(header(type=BLKTYPE, devminor=b"9\0"), 5)
    assert str(err.value) == "tar header at offset 5: bad devminor field b'9'"
    with pytest.raises(CorruptData) as err:
        decode(header(type=BLKTYPE, devmajor=b"x\0"), 5)
    assert str(err.value) == "tar header at offset 5: bad devmajor field b'x'"


def test_a_negative_size_is_refused_with_the_name() -> None:
    with pytest.raises(CorruptData) as err:
        decode(header(name=b"neg", size=b"\xff" * 12), 2048)
    assert str(err.value) == "tar header at offset 2048 ('neg'): negative size -1"


def test_an_old_style_directory_and_the_regular_types() -> None:
    assert decode(header(name=b"olddir/", type=AREGTYPE)).type == DIRTYPE
    assert decode(header(name=b"oldfile", type=AREGTYPE)).type == AREGTYPE
    assert decode(header(name=b"x/", type=REGTYPE)).type == REGTYPE
    for t in (REGTYPE, AREGTYPE, CONTTYPE):
        assert TarEntry("f", type=t).isreg() and not TarEntry("f", type=t).isdir()
    for t in (DIRTYPE, SYMTYPE, LNKTYPE, FIFOTYPE, b"g"):
        assert not TarEntry("f", type=t).isreg()
    assert TarEntry("d", type=DIRTYPE).isdir()


def test_zero_blocks_and_padding() -> None:
    assert is_zero_block(bytes(512)) and is_zero_block(memoryview(bytes(512)))
    assert not is_zero_block(bytes(511) + b"\1") and not is_zero_block(bytes(511))
    assert [len(padding(n)) for n in (0, 1, 511, 512, 513, 1024)] == [0, 511, 1, 0, 511, 0]
    assert padding(1) == bytes(511)


# -- PAX records -------------------------------------------------------------------------------------

def test_parse_pax_records() -> None:
    body = b"13 path=abcd\n" + b"16 linkpath=x=y\n" + b"5 k=\n"
    assert parse_pax(body) == {"path": b"abcd", "linkpath": b"x=y", "k": b""}
    assert parse_pax(b"13 path=abcd\n\0\0\0junk") == {"path": b"abcd"}  # NUL padding ends it
    assert parse_pax(b"") == {}
    assert parse_pax(b"7 k=\xff\xfe\n") == {"k": b"\xff\xfe"}
    assert parse_pax(b"7 \xffk=v\n") == {"\udcffk": b"v"}
    assert parse_pax(b"8 k=a\nb\n") == {"k": b"a\nb"}


@pytest.mark.parametrize("body,text", [
    (b"13path=abcd\n", "malformed PAX record"),
    (b"1x3 path=abcd\n", "malformed PAX record length"),
    (b"x path=a\n", "malformed PAX record length"),
    (b"13", "malformed PAX record"),
    (b"0 k=v\n", "malformed PAX record"),
    (b"-5 k=v\n", "malformed PAX record"),
    (b"99 path=a\n", "malformed PAX record"),
    (b"10 path=ab", "malformed PAX record"),
    (b"10 path=abX", "malformed PAX record"),
    (b"8 patha\n", "PAX record without '='"),
    (b"13 path=abcd\n8 patha\n", "PAX record without '='"),
], ids=ascii_id)
def test_parse_pax_errors(body: bytes, text: str) -> None:
    with pytest.raises(CorruptData) as err:
        parse_pax(body, 4096)
    assert str(err.value) == f"tar header at offset 4096: {text}"


def test_parse_pax_at_exactly_the_end() -> None:
    assert parse_pax(b"11 path=ab\n") == {"path": b"ab"}
    with pytest.raises(CorruptData):
        parse_pax(b"12 path=ab\n")


def test_apply_pax_sets_each_field() -> None:
    e = TarEntry("short", offset=7)
    apply_pax(e, {"path": b"long/\xffname", "linkpath": b"tgt", "size": b"123", "uid": b"4000000",
                  "gid": b"5000000", "mtime": b"1700000000", "uname": b"\xfeu", "gname": b"grp",
                  "SCHILY.xattr.user.a": b"\0v", "atime": b"1", "ctime": b"2", "comment": b"c",
                  "charset": b"x", "hdrcharset": b"BINARY", "custom.key": b"\xffv"})
    assert (e.name, e.linkname, e.size, e.uid, e.gid, e.mtime, e.uname, e.gname) == (
        "long/\udcffname", "tgt", 123, 4_000_000, 5_000_000, 1_700_000_000, "\udcfeu", "grp")
    assert e.xattrs == {"user.a": b"\0v"} and e.pax == {"custom.key": "\udcffv"}


@pytest.mark.parametrize("value,mtime", [(b"1.5", 1), (b"1700000000.999999", 1_700_000_000),
                                         (b"-1.5", -1), (b"12", 12), (b"-3", -3)], ids=ascii_id)
def test_apply_pax_mtime_drops_the_fraction(value: bytes, mtime: int) -> None:
    e = TarEntry("f")
    apply_pax(e, {"mtime": value})
    assert e.mtime == mtime


@pytest.mark.parametrize("key", ["size", "uid", "gid", "mtime"])
def test_apply_pax_bad_numbers_name_the_record(key: str) -> None:
    e = TarEntry("f", offset=1024)
    with pytest.raises(CorruptData) as err:
        apply_pax(e, {key: b"12abc" + b"z" * 30})
    assert str(err.value) == f"tar header at offset 1024 ('f'): bad PAX {key} value b'12abczzzzzzzzzzzzzzz'"


@pytest.mark.parametrize("key", ["path", "linkpath"])
def test_apply_pax_refuses_a_nul_in_a_name(key: str) -> None:
    e = TarEntry("f", offset=512)
    with pytest.raises(CorruptData) as err:
        apply_pax(e, {key: b"a\0b"})
    assert str(err.value) == f"tar header at offset 512 ('f'): NUL byte in PAX {key}"
    apply_pax(e, {"comment": b"a\0b", "user.x": b"\0"})  # other records may hold NULs
    assert e.pax == {"user.x": "\0"}


@pytest.mark.parametrize("key", ["size", "uid", "gid"])
def test_apply_pax_refuses_negative_numbers(key: str) -> None:
    e = TarEntry("f", offset=3)
    with pytest.raises(CorruptData) as err:
        apply_pax(e, {key: b"-1"})
    assert str(err.value) == "tar header at offset 3 ('f'): negative number in PAX header"
    ok = TarEntry("f")
    apply_pax(ok, {key: b"0"})
    assert getattr(ok, key) == 0


def test_apply_pax_later_records_win_and_an_empty_name_is_not_shown() -> None:
    e = TarEntry("")
    with pytest.raises(CorruptData) as err:
        apply_pax(e, {"uid": b"x"})
    assert str(err.value) == "tar header at offset 0: bad PAX uid value b'x'"


def test_entry_defaults_are_a_plain_0644_file_of_root() -> None:
    e = TarEntry("x")
    assert (e.type, e.mode, e.uid, e.gid, e.size, e.mtime, e.linkname, e.uname, e.gname, e.devmajor,
            e.devminor, e.xattrs, e.pax, e.offset) == (
        REGTYPE, 0o644, 0, 0, 0, 0, "", "", "", 0, 0, {}, {}, 0)
    assert e.xattrs is not TarEntry("y").xattrs and e.pax is not TarEntry("y").pax


def test_empty_number_fields_read_as_zero_on_the_fast_path() -> None:
    e = decode(header(mode=b"", uid=b"", gid=b"", size=b"", mtime=b"  \0"))
    assert (e.mode, e.uid, e.gid, e.size, e.mtime) == (0, 0, 0, 0, 0)


def test_undecodable_bytes_in_every_name_field_round_trip_through_pax() -> None:
    # Names read from disk carry undecodable bytes as lone surrogates (os.fsdecode); encode must
    # write the original bytes back, never fail.
    entry = TarEntry("caf\udce9", type=SYMTYPE, linkname="t\udcff", uname="\udcfeu", gname="g\udcfd")
    _, records, _ = split_pax(encode(entry))
    assert records == {"path": b"caf\xe9", "linkpath": b"t\xff", "uname": b"\xfeu", "gname": b"g\xfd"}
    got = read_one(encode(entry))
    assert (got.name, got.linkname, got.uname, got.gname) == (entry.name, entry.linkname, entry.uname,
                                                              entry.gname)


def read_one(data: bytes) -> TarEntry:
    got = TarReader(io.BytesIO(data + bytes(1024))).next()
    assert got is not None
    return got


def test_values_at_the_limits_get_no_record_when_something_else_needs_pax() -> None:
    entry = TarEntry("n" * 100, type=SYMTYPE, linkname="t" * 100, size=MAX11, uid=MAX7, gid=MAX7,
                     mtime=MAX11, uname="u" * 32, gname="g" * 32, xattrs={"user.k": b"v"})
    head, records, main = split_pax(encode(entry))
    assert records == {"SCHILY.xattr.user.k": b"v"}
    e = decode(main)
    assert (e.name, e.linkname, e.size, e.uid, e.gid, e.mtime, e.uname, e.gname) == (
        entry.name, entry.linkname, MAX11, MAX7, MAX7, MAX11, entry.uname, entry.gname)
    h = decode(head)
    assert (h.type, h.linkname, h.size) == (XHDTYPE, "", len(_pax_record("SCHILY.xattr.user.k", b"v")))
    assert head[329:345] == b"0000000\0" * 2 and head[257:265] == b"ustar\x0000"


@pytest.mark.parametrize("name,base", [("d/" + "X" * 120, b"X" * 85),
                                       ("dX/" + "a" * 99 + "X", b"a" * 99 + b"X")],
                         ids=["all-x", "ends-in-x"])
def test_the_extended_header_name_keeps_every_character_of_the_base(name: str, base: bytes) -> None:
    head, _, _ = split_pax(encode(TarEntry(name, type=DIRTYPE)))
    dirname = name.rpartition("/")[0].encode()
    assert head[:100].rstrip(b"\0") == (dirname + b"/PaxHeaders.0/" + base)[:100]


def test_undecodable_bytes_in_other_pax_records_round_trip() -> None:
    _, records, _ = split_pax(encode(TarEntry("f", pax={"k": "v\udcff"})))
    assert records == {"k": b"v\xff"}
    e = TarEntry("f")
    apply_pax(e, {"gname": b"g\xfd", "uname": b"u\xfe", "k": b"v\xff"})
    assert (e.gname, e.uname, e.pax) == ("g\udcfd", "u\udcfe", {"k": "v\udcff"})


def test_an_integer_mtime_keeps_every_digit() -> None:
    e = TarEntry("f")
    apply_pax(e, {"mtime": b"9007199254740993"})  # 2**53 + 1: a float would round it
    assert e.mtime == 9_007_199_254_740_993


def test_one_character_uname_and_prefix_and_the_default_offset() -> None:
    e = decode(header(name=b"file", uname=b"a", gname=b"b", prefix=b"p"))
    assert (e.name, e.uname, e.gname, e.offset) == ("p/file", "a", "b", 0)


@pytest.mark.parametrize("name,shown", [(b"n" * 100, " ('" + "n" * 100 + "')"), (b"", "")],
                         ids=["full-field", "empty"])
def test_a_checksum_error_shows_the_whole_name_field_or_none(name: bytes, shown: str) -> None:
    raw = bytearray(header(name=name))
    stored = int(raw[148:154], 8)
    raw[148:156] = b"%06o\0 " % (stored + 1)
    with pytest.raises(CorruptData) as err:
        decode(bytes(raw))
    assert str(err.value) == \
        f"tar header at offset 0{shown}: bad checksum (stored {stored + 1}, computed {stored})"


@pytest.mark.parametrize("field", [b"\t\0", b"X\0", b"\n"], ids=["tab", "X", "newline"])
def test_a_number_of_only_odd_characters_is_an_error_not_zero(field: bytes) -> None:
    with pytest.raises(CorruptData, match="bad number field"):
        parse_number(field)


def test_parse_pax_edges() -> None:
    with pytest.raises(CorruptData) as err:
        parse_pax(b" 6 k=v\n")
    assert str(err.value) == "tar header at offset 0: malformed PAX record length"
    with pytest.raises(CorruptData, match=r"^tar header at offset 0: malformed PAX record$"):
        parse_pax(b"-1 k=v\n\0")  # a negative length pointing back at a newline and a NUL


def test_a_zero_length_pax_record_after_another_is_malformed() -> None:
    with pytest.raises(CorruptData) as err:
        parse_pax(b"5 k=\n0 k=v\n", 9)
    assert str(err.value) == "tar header at offset 9: malformed PAX record"
