"""Deterministic tar writer: single entries, and whole directory trees in Docker's order.

``TarWriter`` buffers small writes into large ones; when the output is a raw file descriptor, big
file bodies go kernel-to-kernel with ``copy_file_range``/``sendfile``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Protocol

from dockyard.archive.reader import Readable
from dockyard.archive.tarheader import (
    BLKTYPE,
    BLOCK,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    encode,
    padding,
)
from dockyard.errors import CorruptData, NotFound, StoreError
from dockyard.fdio import write_all
from dockyard.record import record

_FLUSH_AT = 1 << 20
_BIG_FILE = 1 << 20  # bodies at least this large are streamed, not read whole
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | _O_NOATIME
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# overlayfs bookkeeping and host SELinux labels never belong in a layer.
_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")

OwnerMap = Callable[[int, int], tuple[int, int]]
Exclude = Callable[[str, bool], bool]


class Writable(Protocol):
    """Anything with ``write(bytes)`` (a file, a ``CompressingWriter``, a hasher wrapper)."""

    def write(self, data: bytes, /) -> object: ...


class TarWriter:
    """Write tar entries to ``out`` (a writable object or a raw file descriptor ``int``).

    Call ``close()`` (or use as a context manager) to write the two zero blocks that end the archive;
    it does not close ``out``. ``size`` counts the tar bytes written, ``content_size`` docker's size
    of the layer: bytes of regular files plus the length of each symlink target (a hard link is an
    entry of its own, not counted again).
    """

    def __init__(self, out: Writable | int) -> None:
        self._fd = out if isinstance(out, int) else -1
        self._out = None if isinstance(out, int) else out
        self._buf = bytearray()
        self.size = 0
        self.content_size = 0
        self.entries = 0
        self._closed = False

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.flush()

    def flush(self) -> None:
        """Hand buffered bytes to the output."""
        if not self._buf:
            return
        buf, self._buf = self._buf, bytearray()
        self._write_out(buf)

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self.size += len(data)
        if len(self._buf) >= _FLUSH_AT:
            self.flush()

    def add(self, entry: TarEntry, data: bytes | None = None) -> None:
        """Write ``entry``; regular files take their body from ``data`` (``entry.size`` is set to it)."""
        if entry.isreg():
            entry.size = len(data) if data is not None else 0
        else:
            entry.size = 0
        self.content_size += entry.size + (len(entry.linkname.encode()) if entry.type == SYMTYPE else 0)
        self._emit(encode(entry))
        if data:
            self._emit(data)
            self._emit(padding(len(data)))
        self.entries += 1

    def add_fd(self, entry: TarEntry, fd: int) -> None:
        """Write regular-file ``entry`` with ``entry.size`` bytes read from ``fd`` (at its offset).

        A file that shrank while being read is padded with zeros, like GNU tar does; one that grew
        is cut at ``entry.size``, so the archive stays well-formed.
        """
        size = entry.size
        self.content_size += size
        self._emit(encode(entry))
        self.entries += 1
        if size < _BIG_FILE:
            data = os.read(fd, size) if size else b""
            while len(data) < size:
                more = os.read(fd, size - len(data))
                if not more:
                    data += bytes(size - len(data))
                    break
                data += more
            self._emit(data)
        else:
            self._copy_big(fd, size)
        self._emit(padding(size))

    def add_reader(self, entry: TarEntry, reader: Readable) -> None:
        """Write regular-file ``entry`` with exactly ``entry.size`` bytes from ``reader.read``.

        For sources that check what they hand out (a verified blob): the bytes pass through here, so
        a reader that raises before its last byte stops the archive short of a whole entry.
        """
        size = entry.size
        self.content_size += size
        self._emit(encode(entry))
        self.entries += 1
        left = size
        while left > 0:
            data = reader.read(min(left, _BIG_FILE))
            if not data:
                raise CorruptData(f"{entry.name}: source ended {left} bytes short of {size}")
            left -= len(data)
            if len(data) >= _FLUSH_AT:
                self.flush()  # big pieces go straight out instead of through the buffer
                self._write_out(data)
                self.size += len(data)
            else:
                self._emit(data)
        self._emit(padding(size))

    def _write_out(self, data: bytes | bytearray) -> None:
        if self._out is not None:
            self._out.write(bytes(data))
        else:
            write_all(self._fd, data)

    def _copy_big(self, fd: int, size: int) -> None:
        left = size
        if self._fd >= 0:
            self.flush()
            while left > 0:
                try:
                    n = os.copy_file_range(fd, self._fd, min(left, 1 << 30))
                except OSError:
                    n = os.sendfile(self._fd, fd, None, min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
            self.size += size - left
        else:
            self.flush()
            chunk_size = 1 << 20
            while left > 0:
                data = os.read(fd, min(left, chunk_size))
                if not data:
                    break
                assert self._out is not None
                self._out.write(data)
                left -= len(data)
                self.size += len(data)
        if left:
            self._emit(bytes(left))

    def close(self) -> None:
        """End the archive with two zero blocks and flush (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._emit(bytes(2 * BLOCK))
        self.flush()


@record(slots=True)
class TreeOptions:
    """How a directory tree becomes tar entries.

    ``prefix`` is prepended to every name (``"app/"``); ``mtime_clamp`` caps mtimes
    (SOURCE_DATE_EPOCH); ``owner`` maps (uid, gid); ``exclude(relpath, is_dir)`` drops a path (and a
    directory's whole subtree); ``xattrs`` records extended attributes (never overlayfs ones or
    ``security.selinux``).
    """

    prefix: str = ""
    mtime_clamp: int | None = None
    owner: OwnerMap | None = None
    exclude: Exclude | None = None
    xattrs: bool = True


def _sort_key(entry: os.DirEntry[str]) -> bytes:
    # Go's filepath.Walk sorts raw byte names; fsencode gives those bytes back.
    return os.fsencode(entry.name)


class TreeWalker:
    """Depth-first walk below a directory descriptor in Docker's order (names sorted by bytes).

    Iterating yields ``(dir_fd, name, relpath, lstat)``, a directory before its contents; call
    ``skip()`` right after a directory was yielded to leave out its contents.
    """

    def __init__(self, root_fd: int) -> None:
        self._root_fd = root_fd
        self._stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []
        self._last_dir: tuple[int, str] | None = None
        self._skip = False

    def _push(self, fd: int, rel: str) -> None:
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=_sort_key)
        except BaseException:
            os.close(fd)
            raise
        self._stack.append((fd, rel, iter(entries)))

    def skip(self) -> None:
        """Do not descend into the directory yielded last."""
        self._skip = True

    def __iter__(self) -> Iterator[tuple[int, str, str, os.stat_result]]:
        self._push(os.dup(self._root_fd), "")
        try:
            while self._stack:
                if self._last_dir is not None:
                    parent_fd, name = self._last_dir
                    self._last_dir = None
                    if not self._skip:
                        fd = os.open(name, _O_DIR, dir_fd=parent_fd)
                        rel = self._stack[-1][1] + name + "/"
                        self._push(fd, rel)
                    self._skip = False
                fd, rel, it = self._stack[-1]
                entry = next(it, None)
                if entry is None:
                    os.close(fd)
                    self._stack.pop()
                    continue
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    self._last_dir = (fd, entry.name)
                yield fd, entry.name, rel + entry.name, st
        finally:
            for fd, _, _ in self._stack:
                os.close(fd)
            self._stack.clear()


def read_xattrs(target: int | str) -> dict[str, bytes]:
    """Extended attributes of an open fd or a (not followed) path, minus overlayfs bookkeeping."""
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return {}
    if not names:
        return {}
    out: dict[str, bytes] = {}
    for key in sorted(names):
        if key.startswith(_SKIP_XATTR_PREFIXES):
            continue
        try:
            out[key] = os.getxattr(target, key, follow_symlinks=follow)
        except OSError:
            continue
    return out


def entry_from_stat(name: str, st: os.stat_result, opts: TreeOptions) -> TarEntry | None:
    """A ``TarEntry`` for ``st`` (no body, no xattrs), or None for sockets and other untarrable types."""
    mode = st.st_mode
    mtime = st.st_mtime_ns // 1_000_000_000
    if opts.mtime_clamp is not None and mtime > opts.mtime_clamp:
        mtime = opts.mtime_clamp
    uid, gid = st.st_uid, st.st_gid
    if opts.owner is not None:
        uid, gid = opts.owner(uid, gid)
    entry = TarEntry(name=opts.prefix + name, mode=stat.S_IMODE(mode), uid=uid, gid=gid, mtime=mtime)
    if stat.S_ISREG(mode):
        entry.size = st.st_size
    elif stat.S_ISDIR(mode):
        entry.type = DIRTYPE
    elif stat.S_ISLNK(mode):
        entry.type = SYMTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.type = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
        entry.devmajor = os.major(st.st_rdev)
        entry.devminor = os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        entry.type = FIFOTYPE
    else:
        return None  # sockets: Docker skips them too
    return entry


class _TreeAdder:
    """Writes one walked path (shared by ``write_tree`` and the diff writers)."""

    def __init__(self, tw: TarWriter, opts: TreeOptions) -> None:
        self.tw = tw
        self.opts = opts
        self.links: dict[tuple[int, int], str] = {}

    def add(
        self, dir_fd: int, name: str, rel: str, st: os.stat_result, entry: TarEntry | None = None
    ) -> None:
        if entry is None:
            entry = entry_from_stat(rel, st, self.opts)
            if entry is None:
                return
        if entry.type == REGTYPE:
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    entry.type = LNKTYPE
                    entry.linkname = first
                    entry.size = 0
                    self.tw.add(entry)
                    return
                self.links[key] = entry.name
            fd = _open_for_reading(name, dir_fd)
            try:
                if self.opts.xattrs:
                    entry.xattrs = read_xattrs(fd)
                self.tw.add_fd(entry, fd)
            finally:
                os.close(fd)
            return
        if entry.type == SYMTYPE:
            entry.linkname = os.readlink(name, dir_fd=dir_fd)
        if self.opts.xattrs and entry.type != FIFOTYPE:
            entry.xattrs = read_xattrs(f"/proc/self/fd/{dir_fd}/{name}")
        self.tw.add(entry)


def _open_for_reading(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _O_READ, dir_fd=dir_fd)
    except PermissionError:
        # O_NOATIME needs the file's owner (or CAP_FOWNER over it): a readable file of another user,
        # or of an owner outside a rootless user namespace (seen as nobody), is read without it.
        return os.open(name, _O_READ & ~_O_NOATIME, dir_fd=dir_fd)


def write_tree(
    root: str | os.PathLike[str], out: Writable | int, opts: TreeOptions | None = None
) -> TarWriter:
    """Write every path below ``root`` (not ``root`` itself) as a tar archive to ``out``.

    Names are relative, directories end in ``/``, order is Docker's (depth-first, names sorted by
    bytes), owners are numeric with empty user/group names, mtimes are whole seconds, hard links are
    found by (device, inode). Returns the closed ``TarWriter`` (``size``, ``entries``).
    """
    opts = opts or TreeOptions()
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"directory {os.fspath(root)!r} does not exist")
    except NotADirectoryError:
        raise CorruptData(f"{os.fspath(root)!r} is not a directory")
    tw = TarWriter(out)
    adder = _TreeAdder(tw, opts)
    try:
        walker = TreeWalker(root_fd)
        for dir_fd, name, rel, st in walker:
            if opts.exclude is not None and opts.exclude(rel, stat.S_ISDIR(st.st_mode)):
                if stat.S_ISDIR(st.st_mode):
                    walker.skip()
                continue
            try:
                adder.add(dir_fd, name, rel, st)
            except OSError as exc:
                raise os_error(rel, exc)
    finally:
        os.close(root_fd)
    tw.close()
    return tw


def os_error(rel: str, exc: OSError) -> StoreError:
    """A one-line error for a path that could not be archived (unreadable, vanished, disk full)."""
    return StoreError(f"cannot archive {rel!r}: {exc.strerror or exc}")
