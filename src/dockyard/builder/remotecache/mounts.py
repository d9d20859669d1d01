"""Cache mounts (``RUN --mount=type=cache``) in a remote cache, content-addressed in chunks.

A mount directory becomes an index blob (``MOUNT_INDEX``: every entry's path, type, mode, owner,
mtime, and where its bytes are) plus chunk blobs (``MOUNT_CHUNK``): a large file is cut into
fixed-size chunks; small files are packed together, a pack ending after a path whose hash says so
(or at the size limit), so adding or changing one file changes only its own pack. Blobs are named
by their digest: an unchanged cache uploads nothing (the destination already has every chunk),
a grown one only its new chunks.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.builder.remotecache.backends import Backend
from dockyard.errors import CorruptData
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.record import field, record

MOUNT_INDEX = "application/vnd.dockyard.buildcache.mount.v1+json"
MOUNT_CHUNK = "application/vnd.dockyard.buildcache.mount.chunk.v1"
CHUNK = 4 << 20          # a large file's chunk, and a pack's size limit
SMALL = 1 << 20          # files below this are packed
PACK_CUT = 16            # a pack ends after a path whose hash is 0 modulo this


@record
class Snapshot:
    """A mount directory as an index and the chunks it needs (bytes read when asked)."""

    index: bytes
    chunks: dict[str, tuple[int, Callable[[], bytes]]] = field(default_factory=dict)


def snapshot(root: Path) -> Snapshot:
    entries: list[dict[str, Any]] = []
    chunks: dict[str, tuple[int, Callable[[], bytes]]] = {}
    order: list[str] = []
    pack: list[tuple[dict[str, Any], bytes, Path]] = []
    where: dict[str, int] = {}

    def add_chunk(data: bytes, reread: Callable[[], bytes]) -> int:
        # Only the digest is kept: the bytes are read again if the destination lacks the chunk.
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest not in where:
            chunks[digest] = (len(data), reread)
            where[digest] = len(order)
            order.append(digest)
        return where[digest]

    def flush() -> None:
        if not pack:
            return
        paths = [p for _e, _d, p in pack]
        index = add_chunk(b"".join(d for _e, d, _p in pack), functools.partial(_read_all, paths))
        offset = 0
        for entry, d, _p in pack:
            entry["c"] = [[index, offset, len(d)]]
            offset += len(d)
        pack.clear()

    for rel, st in _walk(root):
        entry: dict[str, Any] = {"p": rel, "m": stat.S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid,
                                 "t": st.st_mtime_ns}
        host = root / rel
        if stat.S_ISDIR(st.st_mode):
            entry["k"] = "d"
        elif stat.S_ISLNK(st.st_mode):
            entry["k"] = "l"
            entry["l"] = os.readlink(host)
        elif stat.S_ISREG(st.st_mode):
            entry["k"] = "f"
            entry["s"] = st.st_size
            if st.st_size < SMALL:
                pack.append((entry, host.read_bytes(), host))
                if sum(len(d) for _e, d, _p in pack) >= CHUNK or _cut(rel):
                    flush()
            else:
                parts = []
                with open(host, "rb") as f:
                    offset = 0
                    while data := f.read(CHUNK):
                        reread = functools.partial(_read_range, host, offset, len(data))
                        parts.append([add_chunk(data, reread), 0, len(data)])
                        offset += len(data)
                entry["c"] = parts
        else:
            continue  # devices, sockets, fifos: not cache content
        entries.append(entry)
    flush()
    doc = {"version": 1, "chunks": [{"digest": d, "size": chunks[d][0]} for d in order], "entries": entries}
    return Snapshot(json.dumps(doc, separators=(",", ":")).encode(), {d: chunks[d] for d in order})


def chunk_descriptors(index: bytes) -> list[Descriptor]:
    doc = _parse(index)
    return [Descriptor(MOUNT_CHUNK, Digest(c["digest"]), int(c["size"])) for c in doc["chunks"]]


def restore(index: bytes, backend: Backend, dest: Path) -> int:
    """Write the mount's files under ``dest`` (an empty directory); return the bytes fetched."""
    doc = _parse(index)
    descs = [Descriptor(MOUNT_CHUNK, Digest(c["digest"]), int(c["size"])) for c in doc["chunks"]]
    cache: dict[int, bytes] = {}
    fetched = 0

    def chunk(i: int) -> bytes:
        nonlocal fetched
        if i not in cache:
            buf = io.BytesIO()
            backend.fetch(descs[i], buf)
            cache.clear()  # packs are used in order: keep one in memory
            cache[i] = buf.getvalue()
            fetched += descs[i].size
        return cache[i]

    dirs: list[tuple[Path, dict[str, Any]]] = []
    for entry in doc["entries"]:
        rel = str(entry["p"])
        if rel.startswith("/") or ".." in rel.split("/"):
            raise CorruptData(f"cache mount entry {rel!r} leaves its directory")
        host = dest / rel
        kind = entry["k"]
        if kind == "d":
            host.mkdir(exist_ok=True)
            dirs.append((host, entry))
            continue
        if kind == "l":
            os.symlink(str(entry["l"]), host)
            os.lchown(host, int(entry["u"]), int(entry["g"]))
            continue
        with open(host, "wb") as f:
            for index_, offset, length in entry.get("c", []):
                f.write(chunk(int(index_))[int(offset):int(offset) + int(length)])
        _apply(host, entry)
    for host, entry in reversed(dirs):  # after their content, so the mtimes stay
        _apply(host, entry)
    return fetched


def _read_all(paths: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths)


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _apply(host: Path, entry: dict[str, Any]) -> None:
    os.chown(host, int(entry["u"]), int(entry["g"]))
    os.chmod(host, int(entry["m"]))
    os.utime(host, ns=(int(entry["t"]), int(entry["t"])))


def _parse(index: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(index)
    except ValueError as exc:
        raise CorruptData(f"cache mount index: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise CorruptData("cache mount index: unsupported version")
    return doc


def _cut(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % PACK_CUT == 0


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, child)


__all__ = ["MOUNT_CHUNK", "MOUNT_INDEX", "Snapshot", "chunk_descriptors", "restore", "snapshot"]
