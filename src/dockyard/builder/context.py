"""The local build context: what COPY and ADD may read, and content checksums for the cache.

A step's cache key covers the content of the files it copies (path, type, mode, owner, size, link
target, hard links among them and bytes; never mtime), as BuildKit's content hash does. File
digests are remembered by (size, mtime, ctime, inode) in a small SQLite table, so an unchanged file
is never read twice.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.builder.copy import has_wildcard, resolve_sources
from dockyard.builder.fsutil import clean_path

ExcludeFn = Callable[[str, bool], bool]


class HashCache:
    """Digests of files by path and stat signature, shared by every build on one store."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, str]] = []
        # Switching to WAL can fail at once (no busy wait) while another build opens the same file.
        for attempt in range(100):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS file_hash"
                                 " (path TEXT PRIMARY KEY, sig TEXT NOT NULL, digest TEXT NOT NULL)")
                break
            except sqlite3.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.05)

    def get(self, path: str, sig: str) -> str | None:
        """The remembered digest, or None (also when the table is busy: the cache only saves work)."""
        try:
            with self._lock:
                row = self._db.execute("SELECT sig, digest FROM file_hash WHERE path = ?", (path,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return str(row[1]) if row is not None and row[0] == sig else None

    def put(self, path: str, sig: str, digest: str) -> None:
        with self._lock:
            self._pending.append((path, sig, digest))

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                try:
                    # One transaction: in autocommit mode each row would be a commit of its own
                    # (0.4 s for a context of 2,000 files).
                    with self._db:
                        self._db.execute("BEGIN")
                        self._db.executemany("INSERT OR REPLACE INTO file_hash VALUES (?, ?, ?)",
                                             self._pending)
                except sqlite3.OperationalError:
                    pass  # busy for longer than the timeout: these digests are simply computed again
                self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()


class LocalContext:
    """A directory used as build context, with its ``.dockerignore`` rules applied."""

    def __init__(self, root: str, exclude: ExcludeFn | None = None, cache: HashCache | None = None) -> None:
        self.root = os.path.realpath(root)
        self.exclude = exclude
        self.cache = cache

    def is_excluded(self, rel: str, is_dir: bool) -> bool:
        return self.exclude is not None and bool(rel) and self.exclude(rel, is_dir)

    def sources(self, pattern: str) -> list[tuple[str, str]]:
        """What ``pattern`` names in the context, less what ``.dockerignore`` drops."""
        found = resolve_sources(self.root, pattern)
        return [(p, h) for p, h in found if not self.is_excluded(p.strip("/"), os.path.isdir(h))]

    def checksum(self, patterns: list[str], *, follow: bool = True) -> str:
        """One digest over everything the patterns copy; missing non-wildcard sources count as absent."""
        h = hashlib.sha256()
        links: dict[tuple[int, int], str] = {}
        for pattern in patterns:
            h.update(b"\x00pattern\x00" + clean_path(pattern).encode())
            matches = self.sources(pattern)
            if not matches and not has_wildcard(pattern):
                h.update(b"\x00missing")
            for image_path, host in matches:
                self._hash_entry(h, image_path.strip("/"), host, links, follow_link=follow)
        if self.cache is not None:
            self.cache.flush()
        return "sha256:" + h.hexdigest()

    def file_digests(self, patterns: list[str]) -> dict[str, str]:
        """Path -> short content digest of each regular file the patterns copy (what a cache-miss
        explanation compares); the hash cache makes this a walk of stats."""
        out: dict[str, str] = {}
        for pattern in patterns:
            for _image_path, host in self.sources(pattern):
                rel_root = os.path.relpath(host, self.root)
                for rel, path in self._files(rel_root if rel_root != "." else "", host):
                    st = os.stat(path)
                    out[rel] = self._file_digest(path, st)[:16]
        if self.cache is not None:
            self.cache.flush()
        return out

    def _files(self, rel: str, host: str) -> list[tuple[str, str]]:
        if os.path.isfile(host):
            return [(rel, host)]
        found: list[tuple[str, str]] = []
        if not os.path.isdir(host) or os.path.islink(host):
            return found
        with os.scandir(host) as it:
            for entry in sorted(it, key=lambda e: e.name):
                child = f"{rel}/{entry.name}" if rel else entry.name
                if self.is_excluded(child, entry.is_dir(follow_symlinks=False)):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    found.extend(self._files(child, entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append((child, entry.path))
        return found

    def _hash_entry(self, h: hashlib._Hash, rel: str, host: str, links: dict[tuple[int, int], str], *,
                    follow_link: bool) -> None:
        st = os.stat(host) if follow_link else os.lstat(host)
        mode = st.st_mode
        h.update(f"\x00{rel}\x00{mode:o}\x00{st.st_uid}:{st.st_gid}".encode())
        if stat.S_ISDIR(mode):
            with os.scandir(host) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if self.is_excluded(child, entry.is_dir(follow_symlinks=False)):
                    continue
                self._hash_entry(h, child, entry.path, links, follow_link=False)
        elif stat.S_ISLNK(mode):
            h.update(b"\x00link\x00" + os.readlink(host).encode())
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                # COPY keeps hard links between the files it copies: which path an inode was
                # first seen at is part of the content.
                first = links.setdefault((st.st_dev, st.st_ino), rel)
                if first != rel:
                    h.update(b"\x00hardlink\x00" + first.encode())
            h.update(f"\x00{st.st_size}\x00".encode() + self._file_digest(host, st).encode())
        else:
            h.update(f"\x00dev\x00{st.st_rdev}".encode())

    def _file_digest(self, host: str, st: os.stat_result) -> str:
        sig = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"
        if self.cache is not None:
            known = self.cache.get(host, sig)
            if known is not None:
                return known
        fh = hashlib.sha256()
        with open(host, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                fh.update(chunk)
        digest = fh.hexdigest()
        if self.cache is not None:
            self.cache.put(host, sig, digest)
        return digest
