"""Installed RPM packages from an rpm database in SQLite form (``rpmdb.sqlite``, Fedora 33+, RHEL 9).

Table ``Packages(hnum, blob)``: each blob is one package's header without the on-disk magic:
``il`` index entries and ``dl`` data bytes (both big-endian int32), then ``il`` 16-byte entries
(tag, type, offset, count) into the data store. Strings are NUL-terminated; string arrays are
``count`` strings one after another. The ``gpg-pubkey`` pseudo-packages (imported keys) are skipped.
"""

from __future__ import annotations

import sqlite3
import struct
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
    from dockyard.tools.scan.sbom import Package

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
    namespace = os_info.id or "rpm"
    distro = f"{os_info.id}-{os_info.version_id}" if os_info.id and os_info.version_id else ""
    out: list[Package] = []
    for hnum, blob in rows:
        h = parse_header(bytes(blob), f"{path} package {hnum}")
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
