"""The copying snapshotter: overlay semantics without a mount, for where mounts are refused.

Inside an unprivileged container (no CAP_SYS_ADMIN, Docker's seccomp profile) neither overlayfs nor
fuse-overlayfs can be mounted. :class:`CopiedTree` then copies a stack of overlay-form layers (0/0
character-device whiteouts, opaque directories by xattr) into a plain directory, remembers what each
entry looked like (inode, change time), and after a process has worked in it writes what changed into
an upper directory in overlay form, as overlayfs would have: changed or new entries with their parent
directories, a whiteout for each removed name, and an opaque directory for one that was replaced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterable, Sequence

from dockyard.archive.whiteout import (
    OPAQUE,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    make_whiteout,
    opaque_xattr,
)

__all__ = ["CopiedTree", "copy_entry"]

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_MARK = "user.dockyard.recorded"
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.", _MARK)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    for name in _OPAQUE:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_SKIPPED_XATTRS):
            continue
        with contextlib.suppress(OSError):  # unsupported names are skipped, as when unpacking
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)


def _set_meta(dst: str, st: os.stat_result, src: str) -> None:
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears set-id bits
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_entry(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    """Copy one non-directory (file, symlink, fifo, device) with owner, mode, xattrs and times; a
    second path of an inode already in ``links`` becomes a hard link to the first copy."""
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        os.link(links[key], dst, follow_symlinks=False)
        return
    mode = st.st_mode
    if stat.S_ISREG(mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst, 0o600)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    else:
        return  # sockets are not content
    _set_meta(dst, st, src)
    if st.st_nlink > 1:
        links[key] = dst


def _mark(path: str) -> None:
    """Tag a directory as recorded: one removed and made again often gets the same inode number, but
    never the tag (it is never copied into an upper directory or a layer)."""
    with contextlib.suppress(OSError):
        os.setxattr(path, _MARK, str(os.lstat(path).st_ino).encode(), follow_symlinks=False)


def _marked(path: str) -> bool:
    try:
        return os.getxattr(path, _MARK, follow_symlinks=False) == str(os.lstat(path).st_ino).encode()
    except OSError as exc:
        return exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)  # no user xattrs here: inodes must do


class CopiedTree:
    """A layer stack copied into ``root``, and the record to find the changes made there later."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._seen: dict[str, tuple[int, int, int]] = {}  # rel path -> (inode, ctime ns, mode)
        self._children: dict[str, set[str]] = {}

    # -- making the tree ------------------------------------------------------------------------------

    def materialize(self, lowers_top_first: Sequence[str | os.PathLike[str]]) -> None:
        """Copy the layers (top first, as in ``lowerdir=``) into the empty directory ``root``."""
        for layer in reversed(lowers_top_first):
            top = os.path.realpath(layer)  # lowers may be named through symlinks
            dirs: list[tuple[str, os.stat_result, str]] = [(self.root, os.stat(top), top)]
            self._apply_dir(top, self.root, dirs, {})
            for dst, st, src in reversed(dirs):  # directory times after their contents
                _set_meta(dst, st, src)

    def _apply_dir(self, src_dir: str, dst_dir: str, dirs: list[tuple[str, os.stat_result, str]],
                   links: dict[tuple[int, int], str]) -> None:
        with os.scandir(src_dir) as it:
            entries = [(e.name, e.path) for e in it]
        if any(name == OPAQUE for name, _ in entries):  # file form of an opaque directory
            for child in os.listdir(dst_dir):
                _remove(os.path.join(dst_dir, child))
        for name, src in entries:
            st = os.lstat(src)
            dst = os.path.join(dst_dir, name)
            if name.startswith(WHITEOUT_PREFIX) and stat.S_ISREG(st.st_mode):
                if not name.startswith(WHITEOUT_META_PREFIX):  # file form of a whiteout
                    _remove(os.path.join(dst_dir, name[len(WHITEOUT_PREFIX):]))
            elif _is_whiteout(st):
                _remove(dst)
            elif stat.S_ISDIR(st.st_mode):
                if not os.path.isdir(dst) or os.path.islink(dst):
                    _remove(dst)
                    os.mkdir(dst, 0o700)
                elif _opaque(src):
                    for child in os.listdir(dst):
                        _remove(os.path.join(dst, child))
                dirs.append((dst, st, src))
                self._apply_dir(src, dst, dirs, links)
            else:
                _remove(dst)
                copy_entry(src, dst, st, links)

    def record(self) -> None:
        """Remember every entry as it is now (call after :meth:`materialize` and any mount stubs)."""
        self._seen.clear()
        self._children.clear()
        self._record_dir("")

    def _record_dir(self, rel: str) -> None:
        names: set[str] = set()
        with os.scandir(os.path.join(self.root, rel)) as it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                names.add(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    _mark(entry.path)
                    self._record_dir(child)
                st = entry.stat(follow_symlinks=False)
                self._seen[child] = (st.st_ino, st.st_ctime_ns, st.st_mode)
        self._children[rel] = names

    # -- finding the changes --------------------------------------------------------------------------

    def write_changes(self, upper: str | os.PathLike[str], ignore: Iterable[str] = ()) -> None:
        """Write what changed since :meth:`record` into the empty directory ``upper``, overlay-style.

        ``ignore``: paths relative to the root (mount points and what the executor put there) that are
        neither compared nor copied nor whited out.
        """
        skip = {p.strip("/") for p in ignore}
        self._diff_dir("", os.fspath(upper), skip, fresh=False, links={})

    def _diff_dir(self, rel: str, upper: str, skip: set[str], fresh: bool,
                  links: dict[tuple[int, int], str]) -> bool:
        """Copy the changes under directory ``rel`` into ``upper``; whether there were any. ``fresh``: the
        directory is new or replaced, so everything in it is new and nothing below needs a whiteout."""
        here = os.path.join(self.root, rel)
        changed = False
        with os.scandir(here) as it:
            current = sorted(e.name for e in it)
        for name in current:
            child = f"{rel}/{name}" if rel else name
            if child in skip:
                continue
            src = os.path.join(here, name)
            st = os.lstat(src)
            old = None if fresh else self._seen.get(child)
            if stat.S_ISDIR(st.st_mode):
                new = old is None or old[0] != st.st_ino or not stat.S_ISDIR(old[2]) or not _marked(src)
                below = self._diff_dir(child, upper, skip, new, links)
                if new or below or old is None or old[1] != st.st_ctime_ns:
                    self._emit_dir(child, upper, st, src, opaque=new and old is not None)
                    changed = True
            elif old is None or old[0] != st.st_ino or old[1] != st.st_ctime_ns:
                dst = self._upper_path(upper, child)
                _remove(dst)
                copy_entry(src, dst, st, links)
                changed = True
        if not fresh:
            for name in self._children.get(rel, set()) - set(current):
                child = f"{rel}/{name}" if rel else name
                if child in skip:
                    continue
                where = os.path.dirname(self._upper_path(upper, child))
                parent = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    make_whiteout(parent, name)
                finally:
                    os.close(parent)
                changed = True
        return changed

    def _upper_path(self, upper: str, rel: str) -> str:
        """The path of ``rel`` in ``upper``, its parent directories made (metadata set later)."""
        parent = os.path.dirname(rel)
        if parent:
            os.makedirs(os.path.join(upper, parent), 0o755, exist_ok=True)
        return os.path.join(upper, rel)

    def _emit_dir(self, rel: str, upper: str, st: os.stat_result, src: str, *, opaque: bool) -> None:
        dst = self._upper_path(upper, rel)
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o700)
        if opaque:
            os.setxattr(dst, opaque_xattr(), b"y")
        _set_meta(dst, st, src)

