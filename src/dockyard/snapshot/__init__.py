"""The snapshot store (layer L2): unpacked layers, one directory per chain ID.

Layout under its root (``<store>/snapshots``)::

    sha256/<chain-hex>/fs       that one layer applied onto an empty directory, overlayfs-style
                                (whiteouts as 0:0 char devices, opaque dirs by xattr), so a stack
                                of ``fs`` dirs is directly an overlay ``lowerdir=`` list
    sha256/<chain-hex>/size     bytes of file content in ``fs`` (written before the rename)
    tmp/                        snapshots being made, and removed ones being deleted

API::

    snaps = SnapshotStore(root)
    path = snaps.create(chain_id, fill)   # fill(tmp_fs_dir) -> None; atomic rename into place
    snaps.exists(c); snaps.path(c); snaps.size(c); snaps.remove(c); snaps.walk(); snaps.clean_tmp()

A snapshot appears only complete (made in ``tmp/`` then renamed). If two processes make the same
one at once, the loser's rename fails, its copy is discarded and both return the same path.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dockyard.errors import InvalidArgument, NoSpace, NotFound, StoreError, writing
from dockyard.fsflags import spread_subdirectories
from dockyard.oci.digest import Digest, is_valid
from dockyard.record import record

__all__ = ["SnapshotInfo", "SnapshotStore", "pid_of", "process_alive", "tree_size"]


@record(frozen=True, slots=True)
class SnapshotInfo:
    chain_id: Digest
    path: Path
    size: int


def tree_size(path: Path) -> int:
    """Docker's layer size of ``path``: bytes of regular files and symlinks (their target's length),
    hard links counted once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += st.st_size
    return total


def _rmtree(path: Path) -> None:
    # Layers may contain read-only directories: make the parent writable and retry once.
    def onerror(func: Callable[[str], object], p: str, exc_info: tuple[type[BaseException], BaseException,
                                                                       object]) -> None:
        exc = exc_info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, PermissionError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
            return
        raise exc

    import shutil  # lazily: shutil pulls in bz2 and lzma, and listing images never removes

    shutil.rmtree(path, onerror=onerror)


class SnapshotStore:
    """Unpacked layers by chain ID under ``root``; directories are created lazily."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"

    def _dir(self, chain_id: str) -> Path:
        if not is_valid(chain_id):
            raise InvalidArgument(f"invalid chain ID {chain_id!r}")
        algorithm, _, hexpart = chain_id.partition(":")
        return self.root / algorithm / hexpart

    def path(self, chain_id: str) -> Path:
        """The ``fs`` directory of a snapshot (whether or not it exists)."""
        return self._dir(chain_id) / "fs"

    def exists(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / "size").is_file()

    def size(self, chain_id: str) -> int:
        try:
            return int((self._dir(chain_id) / "size").read_text() or 0)
        except FileNotFoundError:
            raise NotFound(f"snapshot {chain_id} not found") from None
        except ValueError:
            return 0

    def create(self, chain_id: str, fill: Callable[[Path], None], *, size: int | None = None) -> Path:
        """Make the snapshot by calling ``fill`` on an empty temp dir, unless it exists; return its path.

        ``size``: its content size if the caller knows it (else the filled tree is walked)."""
        target = self._dir(chain_id)
        if self.exists(chain_id):
            return target / "fs"
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create snapshot store in {self.root}: {exc.strerror}") from None
        spread_subdirectories(self.tmp_dir)  # an unpacked layer's files: away from deleted inodes
        work = self.tmp_dir / f"new-{Digest(chain_id).hex[:16]}.{os.getpid()}.{os.urandom(6).hex()}"
        work.mkdir()
        try:
            (work / "fs").mkdir()
            try:
                with writing(work):
                    fill(work / "fs")
                    (work / "size").write_text(str(tree_size(work / "fs") if size is None else size))
            except NoSpace as exc:
                if str(work) in exc.message:
                    raise
                raise NoSpace(f"write {work}: {exc}") from None  # name the store, not just the entry
            try:
                os.rename(work, target)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # Someone else made it first (or a half-removed leftover is in the way).
                if not self.exists(chain_id):
                    self._discard(target)
                    os.rename(work, target)
        finally:
            if work.exists():
                self._discard(work)
        return target / "fs"

    def _discard(self, path: Path) -> None:
        """Rename out of the way first (atomic), then delete at leisure."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        trash = self.tmp_dir / f"rm-{os.getpid()}.{os.urandom(6).hex()}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        _rmtree(trash)

    def remove(self, chain_id: str) -> bool:
        """Remove a snapshot; True if it existed. Readers see it whole or not at all."""
        target = self._dir(chain_id)
        if not target.exists():
            return False
        self._discard(target)
        return True

    def walk(self) -> Iterator[SnapshotInfo]:
        """Every complete snapshot."""
        if not self.root.is_dir():
            return
        for algo_dir in sorted(self.root.iterdir()):
            if algo_dir.name == "tmp" or not algo_dir.is_dir():
                continue
            for entry in sorted(algo_dir.iterdir()):
                name = f"{algo_dir.name}:{entry.name}"
                if not is_valid(name):
                    continue
                size_file = entry / "size"
                try:
                    size = int(size_file.read_text() or 0)
                except (FileNotFoundError, ValueError):
                    continue
                yield SnapshotInfo(Digest(name), entry / "fs", size)

    def incomplete(self) -> list[Path]:
        """Snapshot directories without a ``size`` marker (should not exist; ``check`` reports them)."""
        out: list[Path] = []
        if not self.root.is_dir():
            return out
        for algo_dir in self.root.iterdir():
            if algo_dir.name == "tmp" or not algo_dir.is_dir():
                continue
            out.extend(e for e in algo_dir.iterdir() if not (e / "size").is_file())
        return out

    def clean_tmp(self, max_age: float = 3600.0) -> list[Path]:
        """Delete leftovers in ``tmp/`` whose process is gone or that are older than ``max_age`` s."""
        removed: list[Path] = []
        if not self.tmp_dir.is_dir():
            return removed
        now = time.time()
        for entry in self.tmp_dir.iterdir():
            alive = process_alive(pid_of(entry.name))
            try:
                age = now - entry.lstat().st_mtime
            except FileNotFoundError:
                continue
            if alive and age < max_age:
                continue
            _rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink(missing_ok=True)
            removed.append(entry)
        return removed


def pid_of(name: str) -> int:
    """The writer pid in ``new-<hex>.<pid>.<rand>`` or ``rm-<pid>.<rand>``; 0 if none."""
    parts = name.split(".")
    if name.startswith("rm-"):
        pid = parts[0][3:]
    elif len(parts) >= 3:
        pid = parts[-2]
    else:
        return 0
    return int(pid) if pid.isdigit() else 0


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (this process counts; a pid we may not signal is someone else's, alive)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
