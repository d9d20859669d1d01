"""Go binaries: the module list the Go linker embeds (``go version -m``), read from the file bytes.

Go 1.18+ writes a 32-byte header starting ``\\xff Go buildinf:`` at a 16-byte aligned offset; with flag
bit 2 set the Go version and the module info follow it as varint-length strings. Module info lines:
``path``, ``mod PATH VERSION SUM`` (the main module), ``dep PATH VERSION SUM`` and ``=> PATH VERSION
SUM`` (a replacement of the dep above). Older binaries (pointer-based header) are not read.
"""

from __future__ import annotations

from dockyard.record import field, record

MAGIC = b"\xff Go buildinf:"
ELF_MAGIC = b"\x7fELF"


@record(frozen=True, slots=True)
class BuildInfo:
    """The Go version (``go1.21.3``), main module and dependency modules of one binary."""

    go_version: str
    main: tuple[str, str] | None = None
    deps: list[tuple[str, str]] = field(default_factory=list)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    return -1, pos


def _string(data: bytes, pos: int) -> tuple[str | None, int]:
    n, pos = _uvarint(data, pos)
    if n < 0 or pos + n > len(data):
        return None, pos
    return data[pos:pos + n].decode("utf-8", "replace"), pos + n


def find_buildinfo(data: bytes) -> tuple[str, str] | None:
    """(Go version, module info text) of a Go 1.18+ binary's bytes; None if there is none."""
    pos = data.find(MAGIC)
    while pos >= 0 and pos % 16:
        pos = data.find(MAGIC, pos + 1)
    if pos < 0 or pos + 32 > len(data):
        return None
    flags = data[pos + 15]
    if not flags & 2:
        return None  # pre-1.18 layout: strings are pointers into the data segment
    version, p = _string(data, pos + 32)
    modinfo, _ = _string(data, p)
    if not version:
        return None
    modinfo = modinfo or ""
    # The module info is framed by 16-byte sentinels (cmd/go's infoStart/infoEnd).
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]
    return version, modinfo


def parse_modinfo(go_version: str, modinfo: str) -> BuildInfo:
    """The main module and dependencies (replacements applied) from ``go version -m`` text."""
    main: tuple[str, str] | None = None
    deps: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] == "mod" and len(parts) >= 3:
            main = (parts[1], parts[2])
        elif parts[0] == "dep" and len(parts) >= 3:
            deps.append((parts[1], parts[2]))
        elif parts[0] == "=>" and len(parts) >= 3 and deps:
            deps[-1] = (parts[1], parts[2])
    return BuildInfo(go_version, main, deps)
