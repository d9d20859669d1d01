"""The local build context: what COPY and ADD may read, and content checksums for the cache.

A step's cache key covers the content of the files it copies (path, type, mode, owner, size, link
target, hard links among them and bytes; never mtime), as BuildKit's content hash does. File
digests are remembered by (size, mtime, ctime, inode) in a small SQLite table, so an unchanged file
is never read twice; a context's rows are read in one query, not one per file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from dockyard.builder.copy import has_wildcard, resolve_sources
from dockyard.builder.fsutil import clean_path
from dockyard.errors import Interrupted
from dockyard.interruptible import in_background, result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.builder.prehash import Prehashed

ExcludeFn = Callable[[str, bool], bool]


_ONE_READ = 1 << 20
MAX_EXPLAINED_FILES = 20000  # context files whose digests a COPY's cache record keeps


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


class HashCache:
    """Digests of files by path and stat signature, shared by every build on one store."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, str]] = []
        self._loaded: tuple[str, ...] = ()  # directories (with a trailing /) whose rows are in _known
        self._known: dict[str, tuple[str, str]] = {}  # path -> (sig, digest)
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            # Not a database: a machine crash tore the file (it is written without fsync). It only
            # saves work: start it again empty.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        # Switching to WAL can fail at once (no busy wait) while another build opens the same file.
        for attempt in range(100):
            try:
                # No fsync, at commit or at the checkpoint of close (5-15 ms of each build), nor when
                # a new file switches to WAL (as much again): losing the latest digests costs only
                # hashing those files again.
                db.execute("PRAGMA synchronous=OFF")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS file_hash"
                           " (path TEXT PRIMARY KEY, sig TEXT NOT NULL, digest TEXT NOT NULL)")
                return db
            except sqlite3.OperationalError:
                if attempt == 99:
                    db.close()
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def load(self, root: str) -> None:
        """Read the digests remembered for every file under directory ``root`` at once: a query per
        file cost more than hashing a small file (15 ms of a 2,000-file context)."""
        prefix = root.rstrip("/") + "/"
        with self._lock:
            if prefix.startswith(self._loaded):
                return
            # The paths under prefix sort between "prefix" and the same with its last "/" + 1.
            query = "SELECT path, sig, digest FROM file_hash WHERE path >= ? AND path < ?"
            try:
                rows = self._db.execute(query, (prefix, prefix[:-1] + "0")).fetchall()
            except sqlite3.DatabaseError:
                return  # busy: get() asks row by row
            self._known.update((str(p), (str(s), str(d))) for p, s, d in rows)
            self._loaded += (prefix,)

    def get(self, path: str, sig: str) -> str | None:
        """The remembered digest, or None (also when the table is busy: the cache only saves work)."""
        # Read without the lock: a dict lookup is atomic, and _known only gains rows.
        row: tuple[str, str] | None = self._known.get(path)
        if row is None and not path.startswith(self._loaded):
            try:
                with self._lock:
                    row = self._db.execute("SELECT sig, digest FROM file_hash WHERE path = ?",
                                           (path,)).fetchone()
            except sqlite3.DatabaseError:
                return None
        return str(row[1]) if row is not None and row[0] == sig else None

    def put(self, path: str, sig: str, digest: str) -> None:
        with self._lock:
            self._pending.append((path, sig, digest))
            self._known[path] = (sig, digest)

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
                except sqlite3.DatabaseError:
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
        self.cancel: threading.Event | None = None  # set: a checksum under way stops (Interrupted)
        self._warm_lock = threading.Lock()
        self._warming: dict[tuple[str, ...], Future[str]] = {}
        self.prehashed: Prehashed | None = None  # checksums a child process computes (builder.prehash)
        # file_digests' answer for the patterns a checksum walked (the walk saw every file already),
        # or how many files it saw when a prehash child kept them to itself (more than a record keeps)
        self._digests: dict[tuple[str, ...], dict[str, str] | int] = {}

    def is_excluded(self, rel: str, is_dir: bool) -> bool:
        return self.exclude is not None and bool(rel) and self.exclude(rel, is_dir)

    def sources(self, pattern: str) -> list[tuple[str, str]]:
        """What ``pattern`` names in the context, less what ``.dockerignore`` drops."""
        found = resolve_sources(self.root, pattern)
        return [(p, h) for p, h in found if not self.is_excluded(p.strip("/"), os.path.isdir(h))]

    def warm(self, patterns: list[str]) -> None:
        """Start computing ``checksum(patterns)`` in the background: a build does it for the COPY
        steps it will reach, so hashing the context overlaps the steps before them."""
        with self._warm_lock:
            if tuple(patterns) not in self._warming:
                future = in_background(lambda: self._sum(patterns, True, flush=False),
                                       name="context-checksum")
                # The new digests are written once the step waiting for the sum has it.
                future.add_done_callback(lambda _: self.cache.flush() if self.cache is not None else None)
                self._warming[tuple(patterns)] = future

    def checksum(self, patterns: list[str], *, follow: bool = True) -> str:
        """One digest over everything the patterns copy; missing non-wildcard sources count as absent."""
        with self._warm_lock:
            warmed = self._warming.pop(tuple(patterns), None) if follow else None
        if warmed is not None:
            return result(warmed)
        return self._sum(patterns, follow)

    def _sum(self, patterns: list[str], follow: bool, *, flush: bool = True) -> str:
        if follow and self.prehashed is not None:
            found = self.prehashed.checksum(patterns)  # the same computation, done in the child
            if found is not None:
                digests = self.prehashed.digests(patterns)
                if digests is not None:
                    self._digests[tuple(patterns)] = digests
                return found
        checksum, digests = self.walk_sum(patterns, follow, flush=flush, collect=follow)
        if digests is not None:
            self._digests[tuple(patterns)] = digests
        return checksum

    def walk_sum(self, patterns: list[str], follow: bool, *, flush: bool = True,
                 collect: bool = False) -> tuple[str, dict[str, str] | None]:
        """The checksum and, with ``collect``, what ``file_digests(patterns)`` answers, seen on the
        same walk (None where the two walks differ: a source that is a symlink or resolves
        elsewhere)."""
        digests: dict[str, str] | None = {} if collect else None
        h = hashlib.sha256()
        links: dict[tuple[int, int], str] = {}
        if self.cache is not None:
            self.cache.load(self.root)
        for pattern in patterns:
            h.update(b"\x00pattern\x00" + clean_path(pattern).encode())
            matches = self.sources(pattern)
            if not matches and not has_wildcard(pattern):
                h.update(b"\x00missing")
            for image_path, host in matches:
                rel = image_path.strip("/")
                if digests is not None and (os.path.islink(host)
                                            or os.path.relpath(host, self.root) != (rel or ".")):
                    digests = None
                self._hash_entry(h, rel, host, links, follow_link=follow, digests=digests)
        if self.cache is not None and flush:
            self.cache.flush()
        return "sha256:" + h.hexdigest(), digests

    def file_digests(self, patterns: list[str], *, limit: int | None = None) -> dict[str, str]:
        """Path -> short content digest of each regular file the patterns copy (what a cache-miss
        explanation compares), or nothing if there are more than ``limit``: what the checksum of the
        same patterns saw, else a walk of stats (the hash cache has the digests)."""
        known = self._digests.get(tuple(patterns))
        count = known if isinstance(known, int) else None if known is None else len(known)
        if count is not None and limit is not None and count > limit:
            return {}
        if isinstance(known, dict):
            return dict(known)
        out: dict[str, str] = {}
        if self.cache is not None:
            self.cache.load(self.root)
        try:
            for pattern in patterns:
                for _image_path, host in self.sources(pattern):
                    rel_root = os.path.relpath(host, self.root)
                    for rel, path in self._files(rel_root if rel_root != "." else "", host):
                        st = os.stat(path)
                        out[rel] = self._file_digest(path, st)[:16]
                        if limit is not None and len(out) > limit:
                            return {}
        finally:
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
                    follow_link: bool, digests: dict[str, str] | None = None) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted("Canceled: context canceled")
        st = os.stat(host) if follow_link else os.lstat(host)
        mode = st.st_mode
        h.update(f"\x00{rel}\x00{mode:o}\x00{st.st_uid}:{st.st_gid}".encode())
        if stat.S_ISDIR(mode):
            self._hash_dir(h, rel, host, links, digests)
        elif stat.S_ISLNK(mode):
            h.update(b"\x00link\x00" + os.readlink(host).encode())
        elif stat.S_ISREG(mode):
            h.update(self._file_part(rel, host, st, links, digests).encode())
        else:
            h.update(f"\x00dev\x00{st.st_rdev}".encode())

    def _hash_dir(self, h: hashlib._Hash, rel: str, host: str, links: dict[tuple[int, int], str],
                  digests: dict[str, str] | None = None) -> None:
        # What _hash_entry does for each entry, with a regular file's (most of a context) inline: a
        # call and an lstat of a path the scan already split were a third of a cached checksum.
        with os.scandir(host) as it:
            entries = sorted(it, key=_name)
        prefix = f"{rel}/" if rel else ""
        excluded = self.exclude
        cancel = self.cancel
        for entry in entries:
            child = prefix + entry.name
            if excluded is not None and excluded(child, entry.is_dir(follow_symlinks=False)):
                continue
            if cancel is not None and cancel.is_set():
                raise Interrupted("Canceled: context canceled")
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                h.update(f"\x00{child}\x00{mode:o}\x00{st.st_uid}:{st.st_gid}"
                         f"{self._file_part(child, entry.path, st, links, digests)}".encode())
            else:
                self._hash_entry(h, child, entry.path, links, follow_link=False, digests=digests)

    def _file_part(self, rel: str, host: str, st: os.stat_result, links: dict[tuple[int, int], str],
                   digests: dict[str, str] | None = None) -> str:
        """What a regular file adds after its header: where it was first seen if hard-linked, its size
        and digest (also put in ``digests``, shortened as ``file_digests`` keeps it)."""
        digest = self._file_digest(host, st)
        if digests is not None:
            digests[rel] = digest[:16]
        part = f"\x00{st.st_size}\x00{digest}"
        if st.st_nlink > 1:
            # COPY keeps hard links between the files it copies: which path an inode was
            # first seen at is part of the content.
            first = links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                return f"\x00hardlink\x00{first}{part}"
        return part

    def _file_digest(self, host: str, st: os.stat_result) -> str:
        sig = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"
        if self.cache is not None:
            known = self.cache.get(host, sig)
            if known is not None:
                return known
        fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)  # no file object: a third of a small file's cost
        try:
            # A file up to 1 MiB in one read: a read shorter than asked is the end of a regular file,
            # so no second read to see it.
            want = st.st_size + 1 if st.st_size < _ONE_READ else _ONE_READ
            chunk = os.read(fd, want)
            fh = hashlib.sha256(chunk)
            while len(chunk) == want:
                chunk = os.read(fd, _ONE_READ)
                want = _ONE_READ
                fh.update(chunk)
        finally:
            os.close(fd)
        digest = fh.hexdigest()
        if self.cache is not None:
            self.cache.put(host, sig, digest)
        return digest
