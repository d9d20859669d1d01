"""Layer tars from changes: an overlayfs upperdir, or a directory compared with its base.

Both write Docker's layout (relative names, directories with ``/``, sorted depth-first) with OCI
whiteouts: ``.wh.<name>`` for a deleted path and ``.wh..wh..opq`` right after an opaque directory.
"""

from __future__ import annotations

import os
import stat

from dockyard.archive.tarheader import REGTYPE, TarEntry
from dockyard.archive.whiteout import OPAQUE, OVERLAY_OPAQUE_XATTR, USER_OPAQUE_XATTR, whiteout_name
from dockyard.archive.writer import (
    TarWriter,
    TreeOptions,
    TreeWalker,
    Writable,
    _TreeAdder,
    entry_from_stat,
    os_error,
)
from dockyard.errors import CorruptData, NotFound, StoreError
from dockyard.record import record

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(path: str | os.PathLike[str]) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"directory {os.fspath(path)!r} does not exist")
    except NotADirectoryError:
        raise CorruptData(f"{os.fspath(path)!r} is not a directory")


def _is_opaque(dir_fd: int, name: str) -> bool:
    for key in (OVERLAY_OPAQUE_XATTR, USER_OPAQUE_XATTR):
        try:
            if os.getxattr(f"/proc/self/fd/{dir_fd}/{name}", key, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _whiteout_entry(name: str, st: os.stat_result, opts: TreeOptions, mode: int = 0o600) -> TarEntry:
    uid, gid = st.st_uid, st.st_gid
    if opts.owner is not None:
        uid, gid = opts.owner(uid, gid)
    mtime = st.st_mtime_ns // 1_000_000_000
    if opts.mtime_clamp is not None:
        mtime = min(mtime, opts.mtime_clamp)
    return TarEntry(name=opts.prefix + name, type=REGTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime)


def write_overlay_diff(
    upperdir: str | os.PathLike[str], out: Writable | int, opts: TreeOptions | None = None
) -> TarWriter:
    """Write the layer tar of an overlayfs ``upperdir`` (e.g. after a RUN step).

    A 0/0 character device becomes ``.wh.<name>``; a directory with ``trusted.overlay.opaque=y`` is
    followed by its ``.wh..wh..opq`` entry; overlay xattrs themselves are dropped (Docker's rules).
    """
    opts = opts or TreeOptions()
    root_fd = _open_dir(upperdir)
    tw = TarWriter(out)
    adder = _TreeAdder(tw, opts)
    try:
        walker = TreeWalker(root_fd)
        for dir_fd, name, rel, st in walker:
            is_dir = stat.S_ISDIR(st.st_mode)
            if opts.exclude is not None and opts.exclude(rel, is_dir):
                if is_dir:
                    walker.skip()
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                parent = rel[: len(rel) - len(name)]
                tw.add(_whiteout_entry(parent + whiteout_name(name), st, opts))
                continue
            try:
                adder.add(dir_fd, name, rel, st)
            except OSError as exc:
                raise os_error(rel, exc)
            if is_dir and _is_opaque(dir_fd, name):
                tw.add(_whiteout_entry(rel + "/" + OPAQUE, st, opts, stat.S_IMODE(st.st_mode)))
    finally:
        os.close(root_fd)
    tw.close()
    return tw


@record(slots=True)
class _Pending:
    dir_fd: int
    name: str
    rel: str
    st: os.stat_result
    written: bool = False


def _same(a: os.stat_result, b: os.stat_result, a_link: str | None, b_link: str | None) -> bool:
    """Docker's naive-diff test: type, mode, owner and device always; size and mtime for non-dirs."""
    if a.st_mode != b.st_mode or a.st_uid != b.st_uid or a.st_gid != b.st_gid:
        return False
    fmt = stat.S_IFMT(a.st_mode)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK) and a.st_rdev != b.st_rdev:
        return False
    if fmt == stat.S_IFDIR:
        return True
    if fmt == stat.S_IFLNK:
        return a_link == b_link
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


class _DirDiff:
    def __init__(self, tw: TarWriter, opts: TreeOptions) -> None:
        self.tw = tw
        self.opts = opts
        self.adder = _TreeAdder(tw, opts)

    def _flush_parents(self, parents: list[_Pending]) -> None:
        for p in parents:
            if not p.written:
                p.written = True
                self.adder.add(p.dir_fd, p.name, p.rel, p.st)

    def _listing(self, fd: int) -> dict[str, os.stat_result]:
        with os.scandir(fd) as it:
            return {e.name: e.stat(follow_symlinks=False) for e in it}

    def diff(self, base_fd: int | None, new_fd: int, rel: str, parents: list[_Pending]) -> None:
        new = self._listing(new_fd)
        old = self._listing(base_fd) if base_fd is not None else {}
        for name in sorted(new.keys() | old.keys(), key=os.fsencode):
            path = rel + name
            st = new.get(name)
            if st is None:
                if self.opts.exclude is not None and self.opts.exclude(path, False):
                    continue
                self._flush_parents(parents)
                self.tw.add(_whiteout_entry(rel + whiteout_name(name), old[name], self.opts))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.opts.exclude is not None and self.opts.exclude(path, is_dir):
                continue
            ost = old.get(name)
            if is_dir:
                pending = _Pending(new_fd, name, path, st)
                sub_old: int | None = None
                if ost is not None and stat.S_ISDIR(ost.st_mode):
                    if not _same(ost, st, None, None) or ost.st_mtime_ns != st.st_mtime_ns:
                        self._flush_parents([*parents, pending])
                    assert base_fd is not None
                    sub_old = os.open(name, _O_DIR, dir_fd=base_fd)
                else:
                    self._flush_parents([*parents, pending])  # new directory (or type change)
                sub_new = os.open(name, _O_DIR, dir_fd=new_fd)
                try:
                    self.diff(sub_old, sub_new, path + "/", [*parents, pending])
                finally:
                    os.close(sub_new)
                    if sub_old is not None:
                        os.close(sub_old)
                continue
            if ost is not None:
                new_link = os.readlink(name, dir_fd=new_fd) if stat.S_ISLNK(st.st_mode) else None
                old_link = None
                if stat.S_ISLNK(ost.st_mode):
                    assert base_fd is not None
                    old_link = os.readlink(name, dir_fd=base_fd)
                if _same(ost, st, old_link, new_link):
                    continue
            self._flush_parents(parents)
            entry = entry_from_stat(path, st, self.opts)
            if entry is not None:
                self.adder.add(new_fd, name, path, st, entry)


def write_dir_diff(
    base: str | os.PathLike[str], new: str | os.PathLike[str], out: Writable | int,
    opts: TreeOptions | None = None,
) -> TarWriter:
    """Write the layer that turns directory ``base`` into ``new`` (when overlayfs is not used).

    Changed or added paths are written with their parent directories; a path gone from ``new``
    becomes ``.wh.<name>`` (only the topmost deleted path). Files count as unchanged when type, mode,
    owner, size and mtime (ns) match, as in Docker's naive diff; contents are not compared.
    """
    opts = opts or TreeOptions()
    base_fd = _open_dir(base)
    try:
        new_fd = _open_dir(new)
        try:
            tw = TarWriter(out)
            try:
                _DirDiff(tw, opts).diff(base_fd, new_fd, "", [])
            except OSError as exc:
                raise os_error(exc.filename or "?", exc)
            except RecursionError:
                raise StoreError(f"cannot diff {os.fspath(new)!r}: directory tree too deep")
        finally:
            os.close(new_fd)
    finally:
        os.close(base_fd)
    tw.close()
    return tw
