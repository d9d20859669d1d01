"""A copy of the image listing beside the metadata database, read without SQLite.

``dockyard images`` is mostly start-up: loading sqlite3 and the metadata layer and opening the
database cost more than ``docker images`` takes in all. ``<root>/image-list.cache`` holds what
``images -a`` lists (each image with whether plain ``images`` hides it) and the identity of the
database files it was read from: ``metadata.db`` and its WAL, each by inode, size, mtime and ctime.
Every write to the database changes one of them, except a write within the same clock tick as the
one before it that leaves a WAL's size as it was. So a copy is only made from a read that found
the files unchanged before and after it and untouched for a second: any later write happens on a
later tick. A copy that does not match the files, or cannot be read, is ignored (the listing is
then read from the database as before); it is never a source of truth.
"""

from __future__ import annotations

import marshal
import os
import time

from dockyard import __version__
from dockyard.fdio import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.imageops.images import ImageSummary

__all__ = ["CACHE_FILE", "Listed", "list_images"]

CACHE_FILE = "image-list.cache"
_DATABASE = ("metadata.db", "metadata.db-wal")
_SETTLED_NS = 1_000_000_000  # how long the database files must be untouched before a copy is made
_FORMAT = (1, __version__)

_Signature = tuple[tuple[int, int, int, int] | None, ...]


class Listed:
    """One image of the copy: what the ``images`` table shows of it (as ``ImageSummary`` names it)."""

    __slots__ = ("created", "id", "repo_digests", "repo_tags", "size")

    def __init__(self, id: str, repo_tags: list[str], repo_digests: list[str], created: float,
                 size: int) -> None:
        self.id = id
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests
        self.created = created
        self.size = size


def list_images(root: str, all: bool = False) -> Sequence[Listed] | Sequence[ImageSummary]:
    """``images.list_images`` of the store at ``root``, from the copy when it is current.

    Otherwise read from the database, and the copy made again when the read allows it.
    """
    found = _read(root, all)
    if found is not None:
        return found
    before = _signature(root)
    from dockyard.imageops import Store
    from dockyard.imageops.images import listing

    store = Store(root)
    try:
        entries = listing(store)
    finally:
        store.close()  # the last connection's checkpoint happens before the files are looked at again
    if before[0] is not None and _settled(before) and _signature(root) == before:
        _write(root, before, entries)
    return [s for s, parent in entries if all or not parent]


def _signature(root: str) -> _Signature:
    out: list[tuple[int, int, int, int] | None] = []
    for name in _DATABASE:
        try:
            st = os.stat(os.path.join(root, name))
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _settled(signature: _Signature) -> bool:
    newest = max(max(s[2], s[3]) for s in signature if s is not None)
    return newest <= time.time_ns() - _SETTLED_NS


def _read(root: str, all: bool) -> list[Listed] | None:
    try:
        with open(os.path.join(root, CACHE_FILE), "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None  # only a copy this user made (a shared or planted file is not read)
            data = marshal.load(f)
        if type(data) is not tuple or len(data) != 3 or data[0] != _FORMAT:
            return None
        signature = _signature(root)
        if data[1] != signature or signature[0] is None:
            return None
        return [Listed(*entry[:5]) for entry in data[2] if all or not entry[5]]
    except (OSError, EOFError, ValueError, TypeError, IndexError):
        return None  # unreadable, or not what this version writes: read the database instead


def _write(root: str, signature: _Signature, entries: Sequence[tuple[ImageSummary, bool]]) -> None:
    rows = [(str(s.id), list(s.repo_tags), list(s.repo_digests), float(s.created), int(s.size), parent)
            for s, parent in entries]
    data = marshal.dumps((_FORMAT, signature, rows))
    # Written beside the store's other scratch files (named with the pid: GC removes a killed one's).
    tmp_dir = os.path.join(root, "tmp")
    tmp = os.path.join(tmp_dir, f"image-list.{os.getpid()}.{os.urandom(6).hex()}")
    try:
        os.makedirs(tmp_dir, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(root, CACHE_FILE))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
