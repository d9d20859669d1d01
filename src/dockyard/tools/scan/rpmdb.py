"""Installed RPM packages from an rpm database: SQLite (``rpmdb.sqlite``, Fedora 33+, RHEL 9) or
Berkeley DB (``Packages``, RHEL/CentOS 7 and 8).

SQLite: table ``Packages(hnum, blob)``. Berkeley DB: a hash database whose values are the blobs; its
pages are read directly (no libdb): hash pages hold key/data item pairs, a value too large for a page
is an off-page item pointing to a chain of overflow pages. Each blob is one package's header without
the on-disk magic:
``il`` index entries and ``dl`` data bytes (both big-endian int32), then ``il`` 16-byte entries
(tag, type, offset, count) into the data store. Strings are NUL-terminated; string arrays are
``count`` strings one after another. The ``gpg-pubkey`` pseudo-packages (imported keys) are skipped.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from dockyard.errors import CorruptData

if TYPE_CHECKING:
    from dockyard.tools.scan.sbom import OSInfo, Package

NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1014, 1022, 1044
PROVIDENAME, REQUIRENAME = 1047, 1049
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9


def parse_header(blob: bytes, where: str) -> dict[int, object]:
    """Tag -> value (str, list[str] or list[int]) of one header blob."""
    if len(blob) < 8:
        raise CorruptData(f"{where}: rpm header of {len(blob)} bytes")
    il, dl = struct.unpack(">ii", blob[:8])
    start = 8 + 16 * il
    if il < 0 or dl < 0 or start + dl > len(blob):
        raise CorruptData(f"{where}: rpm header index ({il} entries, {dl} data bytes) exceeds the blob")
    store = blob[start:start + dl]
    out: dict[int, object] = {}
    for k in range(il):
        tag, kind, offset, count = struct.unpack(">iiii", blob[8 + 16 * k: 24 + 16 * k])
        if not 0 <= offset <= dl:
            raise CorruptData(f"{where}: rpm tag {tag} points outside the data")
        if kind in (_STRING, _STRING_ARRAY, _I18NSTRING):
            items, pos = [], offset
            for _ in range(1 if kind == _STRING else count):
                end = store.find(b"\0", pos)
                if end < 0:
                    raise CorruptData(f"{where}: rpm tag {tag}: unterminated string")
                items.append(store[pos:end].decode("utf-8", "replace"))
                pos = end + 1
            out[tag] = items[0] if kind == _STRING else items
        elif kind == _INT32:
            if offset + 4 * count > dl:
                raise CorruptData(f"{where}: rpm tag {tag}: integers past the data")
            out[tag] = list(struct.unpack(f">{count}i", store[offset:offset + 4 * count]))
    return out


def _text(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _source_name(srpm: str) -> tuple[str, str]:
    """``openssl-3.0.7-16.el9.src.rpm`` -> (``openssl``, ``3.0.7-16.el9``)."""
    base = srpm.removesuffix(".rpm").rsplit(".", 1)[0]  # drop .src / .nosrc
    name_version, _, release = base.rpartition("-")
    name, _, version = name_version.rpartition("-")
    return (name, f"{version}-{release}") if name and version else ("", "")


def parse_rpmdb_sqlite(data: bytes, path: str, os_info: OSInfo) -> list[Package]:
    """The packages of an ``rpmdb.sqlite`` file's bytes."""
    if data[:16] == b"SQLite format 3\0" and data[18:20] == b"\x02\x02":
        # rpm keeps the database in WAL mode; an in-memory copy cannot open WAL, and a checkpointed
        # file (what an image ships) reads the same in rollback mode
        data = data[:18] + b"\x01\x01" + data[20:]
    conn = sqlite3.connect(":memory:")
    try:
        try:
            conn.deserialize(data)
            rows = conn.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
        except sqlite3.DatabaseError as exc:
            raise CorruptData(f"{path}: not an rpm sqlite database: {exc}") from None
    finally:
        conn.close()
    return _packages(((hnum, bytes(blob)) for hnum, blob in rows), path, os_info)


# -- Berkeley DB hash files -----------------------------------------------------------------------------

_HASH_MAGIC = 0x061561
_P_HASH_UNSORTED, _P_HASH, _P_OVERFLOW = 2, 13, 7
_H_KEYDATA, _H_OFFPAGE = 1, 3


def bdb_values(data: bytes, where: str) -> list[bytes]:
    """Every value stored in a Berkeley DB hash file, in page order."""
    if len(data) < 512:
        raise CorruptData(f"{where}: too short for a Berkeley DB file")
    for endian in ("<", ">"):
        if struct.unpack_from(f"{endian}I", data, 12)[0] == _HASH_MAGIC:
            break
    else:
        raise CorruptData(f"{where}: not a Berkeley DB hash database")
    pagesize = struct.unpack_from(f"{endian}I", data, 20)[0]
    if pagesize < 512 or pagesize > 65536 or len(data) % pagesize:
        raise CorruptData(f"{where}: Berkeley DB page size {pagesize} does not fit the file")
    pages = len(data) // pagesize

    def page(n: int) -> bytes:
        if not 0 < n < pages:
            raise CorruptData(f"{where}: Berkeley DB page {n} is out of the file")
        return data[n * pagesize:(n + 1) * pagesize]

    def overflow(pgno: int, total: int) -> bytes:
        out = bytearray()
        seen = set()
        while pgno and len(out) < total:
            if pgno in seen:
                raise CorruptData(f"{where}: Berkeley DB overflow chain loops at page {pgno}")
            seen.add(pgno)
            pg = page(pgno)
            if pg[25] != _P_OVERFLOW:
                raise CorruptData(f"{where}: page {pgno} is not an overflow page")
            length = struct.unpack_from(f"{endian}H", pg, 22)[0]
            out += pg[26:26 + length]
            pgno = struct.unpack_from(f"{endian}I", pg, 16)[0]
        if len(out) != total:
            raise CorruptData(f"{where}: Berkeley DB overflow item of {total} bytes has {len(out)}")
        return bytes(out)

    values: list[bytes] = []
    for n in range(1, pages):
        pg = data[n * pagesize:(n + 1) * pagesize]
        if pg[25] not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        entries = struct.unpack_from(f"{endian}H", pg, 20)[0]
        offsets = struct.unpack_from(f"{endian}{entries}H", pg, 26)
        for i in range(1, entries, 2):  # (key, data) pairs: the data items
            off = offsets[i]
            kind = pg[off]
            if kind == _H_KEYDATA:
                values.append(pg[off + 1:offsets[i - 1]])
            elif kind == _H_OFFPAGE:
                pgno, total = struct.unpack_from(f"{endian}II", pg, off + 4)
                values.append(overflow(pgno, total))
    return values


def parse_rpmdb_bdb(data: bytes, path: str, os_info: OSInfo) -> list[Package]:
    """The packages of a Berkeley DB ``Packages`` file's bytes (its 4-byte keys are skipped)."""
    return _packages(((n, blob) for n, blob in enumerate(bdb_values(data, path)) if len(blob) > 8),
                     path, os_info)


def _packages(blobs: Iterable[tuple[int, bytes]], path: str, os_info: OSInfo) -> list[Package]:
    from dockyard.tools.scan.sbom import Package

    namespace = os_info.id or "rpm"
    distro = f"{os_info.id}-{os_info.version_id}" if os_info.id and os_info.version_id else ""
    out: list[Package] = []
    for hnum, blob in blobs:
        h = parse_header(blob, f"{path} package {hnum}")
        name, version, release = _text(h.get(NAME)), _text(h.get(VERSION)), _text(h.get(RELEASE))
        if not name or not version or name == "gpg-pubkey":
            continue
        epoch = _text(h.get(EPOCH))
        arch = _text(h.get(ARCH))
        evr = f"{version}-{release}" if release else version
        full = f"{epoch}:{evr}" if epoch and epoch != "0" else evr
        quals = [("arch", arch), ("distro", distro), ("epoch", epoch if epoch != "0" else "")]
        qual = "&".join(f"{k}={quote(v, safe='')}" for k, v in quals if v)
        purl = (f"pkg:rpm/{namespace}/{quote(name, safe='')}@{quote(evr, safe='')}"
                + (f"?{qual}" if qual else ""))
        src_name, src_version = _source_name(_text(h.get(SOURCERPM)))
        lic = _text(h.get(LICENSE))
        requires = tuple(dict.fromkeys(r for r in _strings(h.get(REQUIRENAME))
                                       if not r.startswith(("rpmlib(", "/"))))
        provides = tuple(dict.fromkeys(_strings(h.get(PROVIDENAME))))
        out.append(Package("rpm", name, full, purl, path, arch, src_name or name, src_version or full,
                           (lic,) if lic else (), requires=requires, provides=provides))
    return out
