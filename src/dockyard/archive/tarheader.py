"""Tar header encoding and decoding: ustar, PAX extended headers, GNU long names and base-256 numbers.

Hand-rolled because ``tarfile`` costs ~10x more per entry on the hot path (see ARCHITECTURE.md).
Names and link names are ``str`` decoded with ``os.fsdecode`` (UTF-8 + surrogateescape), so any byte
string round-trips.
"""

from __future__ import annotations

import os
import struct

from dockyard.errors import CorruptData
from dockyard.record import field, record

BLOCK = 512

REGTYPE = b"0"
AREGTYPE = b"\0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
CONTTYPE = b"7"
XHDTYPE = b"x"
XGLTYPE = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

#: Largest PAX header / GNU long-name body accepted (archive/tar uses the same bound).
MAX_SPECIAL_SIZE = 1 << 20

_OCTAL_MAX_7 = 0o7777777
_OCTAL_MAX_11 = 0o77777777777
_ZERO_BLOCK = bytes(BLOCK)
_PAX_XATTR = "SCHILY.xattr."
_NUL_SP = b"\0 "
# name mode uid gid size mtime chksum typeflag linkname magic+version uname gname devmajor devminor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12x")


@record(slots=True)
class TarEntry:
    """One archive member's metadata.

    ``type`` is the one-byte typeflag (``REGTYPE``, ``DIRTYPE``...); ``name`` has no trailing slash;
    ``mode`` holds permission and setuid/setgid/sticky bits only; ``xattrs`` maps names to raw values;
    ``pax`` keeps PAX records this module does not interpret; ``offset`` is the header's byte offset.
    """

    name: str
    type: bytes = REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)
    offset: int = 0

    def isreg(self) -> bool:
        """True for a regular file (typeflag ``0``, NUL or ``7``)."""
        return self.type in (REGTYPE, AREGTYPE, CONTTYPE)

    def isdir(self) -> bool:
        """True for a directory."""
        return self.type == DIRTYPE


# ---------------------------------------------------------------------------------------------------
# encoding


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    # The length prefix counts itself, so its digit count may grow the total by one.
    n = len(body) + len(str(len(body)))
    if len(str(n)) != len(str(len(body))):
        n += 1
    return b"%d" % n + body


def _num(value: int, width: int, limit: int) -> bytes:
    if value > limit or value < 0:
        # Only reached for fields PAX cannot carry (devmajor/devminor): use GNU base-256.
        return b"\x80" + value.to_bytes(width - 1, "big", signed=False)
    return b"%0*o\0" % (width - 1, value)


def _raw_header(
    name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
    linkname: bytes, uname: bytes, gname: bytes, devmajor: int, devminor: int,
) -> bytes:
    head = _HEADER.pack(
        name,
        b"%07o\0" % mode,
        b"%07o\0" % uid if uid <= _OCTAL_MAX_7 else _num(uid, 8, _OCTAL_MAX_7),
        b"%07o\0" % gid if gid <= _OCTAL_MAX_7 else _num(gid, 8, _OCTAL_MAX_7),
        b"%011o\0" % size,
        b"%011o\0" % mtime,
        b"        ",
        typeflag,
        linkname,
        b"ustar\x0000",
        uname,
        gname,
        b"%07o\0" % devmajor if devmajor <= _OCTAL_MAX_7 else _num(devmajor, 8, _OCTAL_MAX_7),
        b"%07o\0" % devminor if devminor <= _OCTAL_MAX_7 else _num(devminor, 8, _OCTAL_MAX_7),
        b"",
    )
    return head[:148] + b"%06o\0 " % sum(head.translate(None, b"\0")) + head[156:]


def encode(entry: TarEntry) -> bytes:
    """Return the header block(s) for ``entry``: a PAX extended header first when any field needs one.

    A directory's name gets its trailing ``/`` here (as Docker writes it).
    """
    name_s = entry.name + "/" if entry.type == DIRTYPE and not entry.name.endswith("/") else entry.name
    name = name_s.encode("utf-8", "surrogateescape")
    link = entry.linkname.encode("utf-8", "surrogateescape") if entry.linkname else b""
    uname = entry.uname.encode("utf-8", "surrogateescape") if entry.uname else b""
    gname = entry.gname.encode("utf-8", "surrogateescape") if entry.gname else b""
    size, uid, gid, mtime = entry.size, entry.uid, entry.gid, entry.mtime
    if (
        len(name) <= 100 and len(link) <= 100 and len(uname) <= 32 and len(gname) <= 32
        and name.isascii() and link.isascii() and uname.isascii() and gname.isascii()
        and 0 <= size <= _OCTAL_MAX_11 and 0 <= mtime <= _OCTAL_MAX_11
        and uid <= _OCTAL_MAX_7 and gid <= _OCTAL_MAX_7 and not entry.xattrs and not entry.pax
    ):
        return _raw_header(name, entry.mode & 0o7777, uid, gid, size, mtime, entry.type, link,
                           uname, gname, entry.devmajor, entry.devminor)
    records: list[bytes] = []
    if len(name) > 100 or not name.isascii():
        records.append(_pax_record("path", name))
    if len(link) > 100 or not link.isascii():
        records.append(_pax_record("linkpath", link))
    if size > _OCTAL_MAX_11:
        records.append(_pax_record("size", b"%d" % size))
    if uid > _OCTAL_MAX_7:
        records.append(_pax_record("uid", b"%d" % uid))
    if gid > _OCTAL_MAX_7:
        records.append(_pax_record("gid", b"%d" % gid))
    if mtime > _OCTAL_MAX_11 or mtime < 0:
        records.append(_pax_record("mtime", b"%d" % mtime))
    if len(uname) > 32 or not uname.isascii():
        records.append(_pax_record("uname", uname))
    if len(gname) > 32 or not gname.isascii():
        records.append(_pax_record("gname", gname))
    for key in sorted(entry.xattrs):
        records.append(_pax_record(_PAX_XATTR + key, entry.xattrs[key]))
    for key in sorted(entry.pax):
        records.append(_pax_record(key, entry.pax[key].encode("utf-8", "surrogateescape")))
    clamped_mtime = max(0, min(mtime, _OCTAL_MAX_11))
    main = _raw_header(
        name, entry.mode & 0o7777, min(uid, _OCTAL_MAX_7), min(gid, _OCTAL_MAX_7),
        min(size, _OCTAL_MAX_11), clamped_mtime, entry.type,
        link, uname, gname, entry.devmajor, entry.devminor,
    )
    if not records:
        return main
    body = b"".join(records)
    # archive/tar's convention for the extended header's own name: dir/PaxHeaders.0/base.
    base = os.path.basename(name.rstrip(b"/"))
    dirname = os.path.dirname(name.rstrip(b"/"))
    pax_name = (dirname + b"/" if dirname else b"") + b"PaxHeaders.0/" + base
    pax = _raw_header(pax_name, 0o644, 0, 0, len(body), clamped_mtime, XHDTYPE, b"", b"", b"", 0, 0)
    return pax + body + padding(len(body)) + main


def padding(size: int) -> bytes:
    """Zero bytes that fill ``size`` bytes of body up to a block boundary."""
    rem = size % BLOCK
    return _ZERO_BLOCK[: BLOCK - rem] if rem else b""


# ---------------------------------------------------------------------------------------------------
# decoding


def _where(offset: int, name: bytes | str = b"") -> str:
    shown = os.fsdecode(name) if isinstance(name, bytes) else name
    return f"tar header at offset {offset}" + (f" ({shown!r})" if shown else "")


def parse_number(field_: bytes, offset: int = 0, what: str = "number") -> int:
    """Decode a numeric header field: NUL/space-terminated octal or GNU base-256."""
    if field_ and field_[0] & 0x80:
        value = int.from_bytes(field_[1:], "big")
        if field_[0] == 0xFF:  # negative base-256 (two's complement)
            value -= 1 << (8 * (len(field_) - 1))
        elif field_[0] != 0x80:
            raise CorruptData(f"{_where(offset)}: bad base-256 {what} field")
        return value
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise CorruptData(f"{_where(offset)}: bad {what} field {text[:12]!r}")


def _cstr(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def is_zero_block(block: bytes | memoryview) -> bool:
    """True when ``block`` is all zeros (an end-of-archive marker)."""
    return bytes(block) == _ZERO_BLOCK


def _octal(field_: bytes, offset: int, what: str) -> int:
    # Fast path for the usual "0000644\0"; anything odd goes through parse_number.
    try:
        return int(field_.strip(b"\0 ") or b"0", 8)
    except ValueError:
        return parse_number(field_, offset, what)


def decode(block: bytes, offset: int = 0) -> TarEntry:
    """Decode one 512-byte header block (checksum verified) into a ``TarEntry``.

    Raises ``CorruptData`` naming the offset on a bad checksum or malformed field.
    """
    if len(block) != BLOCK:
        raise CorruptData(f"{_where(offset)}: truncated header ({len(block)} of {BLOCK} bytes)")
    (name, mode_f, uid_f, gid_f, size_f, mtime_f, chk, typeflag, linkname, magic, uname_f, gname_f,
     devmajor_f, devminor_f, prefix) = _HEADER.unpack(block)
    try:  # the usual all-octal case in one go; odd fields take the careful path below
        stored = int(chk.strip(_NUL_SP), 8)
        mode = int(mode_f.strip(_NUL_SP) or b"0", 8)
        uid = int(uid_f.strip(_NUL_SP) or b"0", 8)
        gid = int(gid_f.strip(_NUL_SP) or b"0", 8)
        size = int(size_f.strip(_NUL_SP) or b"0", 8)
        mtime = int(mtime_f.strip(_NUL_SP) or b"0", 8)
    except ValueError:
        stored = parse_number(chk, offset, "checksum")
        mode = parse_number(mode_f, offset, "mode")
        uid = parse_number(uid_f, offset, "uid")
        gid = parse_number(gid_f, offset, "gid")
        size = parse_number(size_f, offset, "size")
        mtime = parse_number(mtime_f, offset, "mtime")
    # Zero bytes add nothing: summing only the others is ~2x cheaper on a typical header.
    unsigned = sum(block.translate(None, b"\0")) - sum(chk) + 256
    if stored != unsigned:
        # Some old writers summed signed chars.
        signed = unsigned - 256 * sum(1 for b in block if b & 0x80)
        if stored != signed:
            raise CorruptData(
                f"{_where(offset, _cstr(name))}: bad checksum (stored {stored}, computed {unsigned})"
            )
    name = name.partition(b"\0")[0]
    uname = gname = ""
    devmajor = devminor = 0
    if magic[:6] in (b"ustar\x00", b"ustar "):
        if uname_f[0]:
            uname = uname_f.partition(b"\0")[0].decode("utf-8", "surrogateescape")
        if gname_f[0]:
            gname = gname_f.partition(b"\0")[0].decode("utf-8", "surrogateescape")
        if magic[:6] == b"ustar\x00" and prefix[0]:
            name = prefix.partition(b"\0")[0] + b"/" + name
        if typeflag in (CHRTYPE, BLKTYPE):
            devmajor = _octal(devmajor_f, offset, "devmajor")
            devminor = _octal(devminor_f, offset, "devminor")
    if size < 0:
        raise CorruptData(f"{_where(offset, name)}: negative size {size}")
    if typeflag == AREGTYPE and name.endswith(b"/"):  # old V7 directories
        typeflag = DIRTYPE
    return TarEntry(
        name.decode("utf-8", "surrogateescape"),
        typeflag,
        mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
        linkname.partition(b"\0")[0].decode("utf-8", "surrogateescape") if linkname[0] else "",
        uname,
        gname,
        devmajor,
        devminor,
        {},
        {},
        offset,
    )


def parse_pax(data: bytes, offset: int = 0) -> dict[str, bytes]:
    """Parse the body of a PAX extended header into raw key -> value bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad with NULs
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise CorruptData(f"{_where(offset)}: malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise CorruptData(f"{_where(offset)}: malformed PAX record length")
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise CorruptData(f"{_where(offset)}: malformed PAX record")
        key, eq, value = data[sp + 1 : end - 1].partition(b"=")
        if not eq:
            raise CorruptData(f"{_where(offset)}: PAX record without '='")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return out


def apply_pax(entry: TarEntry, records: dict[str, bytes]) -> None:
    """Override ``entry``'s fields with PAX ``records`` (path, linkpath, size, uid, gid, mtime, xattrs)."""
    for key, value in records.items():
        try:
            if key in ("path", "linkpath") and b"\0" in value:
                raise CorruptData(f"{_where(entry.offset, entry.name)}: NUL byte in PAX {key}")
            if key == "path":
                entry.name = os.fsdecode(value)
            elif key == "linkpath":
                entry.linkname = os.fsdecode(value)
            elif key == "size":
                entry.size = int(value)
            elif key == "uid":
                entry.uid = int(value)
            elif key == "gid":
                entry.gid = int(value)
            elif key == "mtime":
                entry.mtime = int(float(value)) if b"." in value else int(value)
            elif key == "uname":
                entry.uname = value.decode("utf-8", "surrogateescape")
            elif key == "gname":
                entry.gname = value.decode("utf-8", "surrogateescape")
            elif key.startswith(_PAX_XATTR):
                entry.xattrs[key[len(_PAX_XATTR):]] = value
            elif key in ("atime", "ctime", "comment", "charset", "hdrcharset"):
                pass
            else:
                entry.pax[key] = value.decode("utf-8", "surrogateescape")
        except ValueError:
            raise CorruptData(f"{_where(entry.offset, entry.name)}: bad PAX {key} value {value[:20]!r}")
    if entry.size < 0 or entry.uid < 0 or entry.gid < 0:
        raise CorruptData(f"{_where(entry.offset, entry.name)}: negative number in PAX header")
