"""Apply a layer tar to a directory, safely: nothing is ever written outside the root.

Every entry name is cleaned lexically (``..`` may not climb above the root; absolute names are taken
relative to it, as Docker does). Parent directories are opened one component at a time with
``O_NOFOLLOW`` from a root descriptor; a symlink met on the way is resolved *inside* the root as if the
root were ``/`` (containerd's rule), and the entry itself is created with ``*at`` calls that never
follow it. Hard link targets are resolved the same way, so they cannot reach outside either.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable

from dockyard import fs
from dockyard.archive.reader import Readable, TarReader
from dockyard.archive.tarheader import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    SYMTYPE,
    TarEntry,
)
from dockyard.archive.whiteout import (
    OPAQUE,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    make_whiteout,
    opaque_xattr,
)
from dockyard.errors import (
    NO_SPACE_ERRNOS,
    CorruptData,
    DockyardError,
    NoSpace,
    NotFound,
    StoreError,
    UnsafePath,
)
from dockyard.progress import Event, ProgressSink
from dockyard.record import record

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE_MAX = 128
_PROGRESS_EVERY = 4 << 20

OwnerMap = Callable[[int, int], tuple[int, int]]


@record(slots=True)
class ApplyStats:
    """Counts of what a layer did to the directory (``bytes`` = file body bytes written)."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    devices: int = 0
    whiteouts: int = 0
    opaques: int = 0
    bytes: int = 0
    skipped: int = 0


class _Where:
    """Names an entry in error messages; formatted only when an error is raised."""

    __slots__ = ("entry",)

    def __init__(self, entry: TarEntry) -> None:
        self.entry = entry

    def __str__(self) -> str:
        name = self.entry.name
        if len(name) > 120:
            name = name[:60] + "..." + name[-40:]
        return f"tar entry {name!r} at offset {self.entry.offset}"


_STORE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO))


def _wrap(where: object, exc: Exception) -> DockyardError:
    """A one-line dockyard error for an OS-level failure while applying an entry."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if exc.errno in NO_SPACE_ERRNOS:
            return NoSpace(f"{where}: cannot write the layer: no space left on device")
        if exc.errno in _STORE_ERRNOS:
            return StoreError(f"{where}: cannot write the layer: {reason}")
        return CorruptData(f"{where}: {reason}")
    return CorruptData(f"{where}: {exc}")


def clean_name(name: str, offset: int = 0) -> list[str]:
    """Split an entry name into components, resolving ``.``/``..`` lexically.

    A rooted name (``/etc/x``) is taken relative to the root and its ``..`` stop at the root, as
    Go's ``filepath.Clean`` does; a relative name whose ``..`` climb above the root is refused.
    """
    if name and not name.startswith((".", "/")) and not name.endswith("/") and "/." not in name \
            and "//" not in name:
        return name.split("/")  # the common, already clean name
    rooted = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not rooted:
                raise UnsafePath(f"tar entry {name!r} at offset {offset} points outside the root")
        else:
            parts.append(part)
    return parts


class SafeRoot:
    """Opens directories below a root descriptor without ever leaving it.

    Symlinks inside the path are followed as if the root were ``/``; resolved directory descriptors
    are cached by path (call ``invalidate`` after removing directories).
    """

    def __init__(self, root_fd: int) -> None:
        self.fd = root_fd
        self._cache: dict[str, int] = {}
        # Forgotten descriptors stay open until ``release``: a caller may still hold one.
        self._retired: list[int] = []
        self._sgid: dict[int, bool] = {}

    def is_setgid(self, fd: int) -> bool:
        """Whether directory ``fd`` (from ``dir_fd``) has the setgid bit; cached with the descriptor."""
        flag = self._sgid.get(fd)
        if flag is None:
            flag = self._sgid[fd] = bool(os.fstat(fd).st_mode & stat.S_ISGID)
        return flag

    def invalidate(self) -> None:
        """Forget cached directory descriptors (after removing a directory)."""
        self._retired.extend(self._cache.values())
        self._cache.clear()
        self._sgid.clear()

    def release(self) -> None:
        """Close forgotten descriptors; call when no descriptor from ``dir_fd`` is in use."""
        if not self._retired:
            return
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def close(self) -> None:
        """Close every cached descriptor (not the root's)."""
        self.invalidate()
        self.release()

    def dir_fd(self, comps: list[str], create: bool, what: object) -> int:
        """A descriptor of directory ``comps`` (owned by the cache: do not close it).

        With ``create``, missing directories are made with mode 0755 (as Docker does). ``what`` names
        the entry for error messages.
        """
        if not comps:
            return self.fd
        key = "/".join(comps)
        fd = self._cache.get(key)
        if fd is not None:
            return fd
        fd = self._resolve(comps, create, what)
        if len(self._cache) >= _CACHE_MAX:
            self.invalidate()
        self._cache[key] = fd
        return fd

    def _reopen(self, stack: list[str]) -> int:
        cur = os.dup(self.fd)
        for comp in stack:
            nxt = os.open(comp, _O_DIR, dir_fd=cur)
            os.close(cur)
            cur = nxt
        return cur

    def _resolve(self, comps: list[str], create: bool, what: object) -> int:
        # The walk is fs.walk's; this callback keeps ``cur`` open on the directory the walk is in.
        stack: list[str] = []
        cur = os.dup(self.fd)

        def read_link(parts: list[str]) -> str | None:
            nonlocal cur
            if len(parts) - 1 != len(stack):  # ".." or an absolute link went back up
                os.close(cur)
                cur = -1
                stack[:] = parts[:-1]
                cur = self._reopen(stack)
            comp = parts[-1]
            for _ in range(fs.MAX_LINKS + 1):
                try:
                    nxt = os.open(comp, _O_DIR, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise NotFound(f"{what}: directory {'/'.join(parts)!r} does not exist")
                    try:
                        os.mkdir(comp, 0o755, dir_fd=cur)
                    except FileExistsError:
                        pass  # appeared meanwhile: open it again, but never forever
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if not stat.S_ISLNK(os.stat(comp, dir_fd=cur, follow_symlinks=False).st_mode):
                        raise CorruptData(f"{what}: {'/'.join(parts)!r} is not a directory")
                    return os.readlink(comp, dir_fd=cur)
                os.close(cur)
                cur = nxt
                stack.append(comp)
                return None
            raise CorruptData(f"{what}: cannot create directory {comp!r}")

        try:
            done = fs.walk("/".join(comps), read_link)
            if len(done) != len(stack):  # it ended in ".."
                os.close(cur)
                cur = -1
                cur = self._reopen(done)
            return cur
        except fs.SymlinkLoop:
            if cur >= 0:
                os.close(cur)
            raise UnsafePath(f"{what}: too many levels of symbolic links") from None
        except BaseException:
            if cur >= 0:
                os.close(cur)
            raise


def _remove(parent_fd: int, base: str, root: SafeRoot) -> None:
    """Remove ``base`` in ``parent_fd`` whatever it is, never following symlinks."""
    try:
        os.unlink(base, dir_fd=parent_fd)
        # It may have been a symlink some cached path resolved through.
        root.invalidate()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        root.invalidate()
        shutil.rmtree(base, dir_fd=parent_fd)
    except PermissionError:
        # unlink(2) on a directory gives EISDIR on Linux, but EPERM elsewhere.
        st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise
        root.invalidate()
        shutil.rmtree(base, dir_fd=parent_fd)


def _set_xattrs(target: int | str, xattrs: dict[str, bytes], follow: bool) -> None:
    for key, value in xattrs.items():
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except OSError as exc:
            # Unsupported names/filesystems are skipped, as Docker does for non-security xattrs.
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP, errno.EINVAL):
                raise


def _mtime_ns(seconds: int) -> int:
    """Nanoseconds for utime, clamped to what the kernel's 64-bit time can hold."""
    return max(-(1 << 63), min(seconds * 1_000_000_000, (1 << 63) - 1))


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o7777  # unknown: always chmod


class _Applier:
    def __init__(self, root_fd: int, overlay: bool, same_owner: bool, owner: OwnerMap | None) -> None:
        self.root = SafeRoot(root_fd)
        self.overlay = overlay
        self.same_owner = same_owner
        self.owner = owner
        self.stats = ApplyStats()
        self.umask = _current_umask()
        self.my_ids = (os.geteuid(), os.getegid())
        self.created: set[str] = set()
        self.dirs: dict[str, TarEntry] = {}
        self.progress: ProgressSink | None = None
        self.progress_id = ""
        self.whiteouts = True  # False: ``.wh.`` names are plain entries (an archive, not a layer)

    def _ids(self, entry: TarEntry) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner(entry.uid, entry.gid)
        return entry.uid, entry.gid

    def apply(self, reader: TarReader) -> ApplyStats:
        try:
            next_report = _PROGRESS_EVERY
            for entry in reader:
                self.stats.entries += 1
                try:
                    self._entry(entry, reader)
                except (OSError, ValueError, OverflowError) as exc:
                    raise _wrap(_Where(entry), exc)
                except RecursionError:  # rmtree / opaque emptying of an absurdly deep tree
                    raise CorruptData(f"{_Where(entry)}: directory tree too deep")
                self.root.release()
                if self.progress is not None and reader.offset >= next_report:
                    next_report = reader.offset + _PROGRESS_EVERY
                    self.progress(Event(self.progress_id, "extracting", current=reader.offset))
            self._finish_dirs()
        finally:
            self.root.close()
        return self.stats

    def _entry(self, entry: TarEntry, reader: TarReader) -> None:
        comps = clean_name(entry.name, entry.offset)
        if not comps:
            return  # the root itself ("./"): its metadata is the snapshot's business
        what = _Where(entry)
        base = comps[-1]
        parent = comps[:-1]
        if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, what)
            return
        pfd = self.root.dir_fd(parent, True, what)
        key = "/".join(comps)
        if not self.overlay:
            self.created.add(key)
        t = entry.type
        if entry.isreg():
            self._file(pfd, base, entry, reader)
        elif t == DIRTYPE:
            self._mkdir(pfd, base)
            self.dirs[key] = entry
            self.stats.dirs += 1
        elif t == SYMTYPE:
            if not entry.linkname:
                raise CorruptData(f"{what}: symlink with an empty target")
            self._create(pfd, base, lambda: os.symlink(entry.linkname, base, dir_fd=pfd))
            self._meta_path(pfd, base, entry, chmod=False)
            self.stats.symlinks += 1
        elif t == LNKTYPE:
            self._hardlink(pfd, base, comps, entry, what)
        elif t in (CHRTYPE, BLKTYPE, FIFOTYPE):
            if t == FIFOTYPE:
                fmt, dev = stat.S_IFIFO, 0
            else:
                fmt = stat.S_IFCHR if t == CHRTYPE else stat.S_IFBLK
                dev = os.makedev(entry.devmajor, entry.devminor)
            try:
                self._create(pfd, base, lambda: os.mknod(base, fmt | 0o600, dev, dir_fd=pfd))
            except PermissionError:
                self.stats.skipped += 1  # no CAP_MKNOD (rootless): Docker skips these too
                return
            self._meta_path(pfd, base, entry, chmod=True)
            self.stats.devices += 1
        else:
            raise CorruptData(f"{what}: unsupported entry type {t!r}")

    def _create(self, pfd: int, base: str, make: Callable[[], None]) -> None:
        try:
            make()
        except FileExistsError:
            _remove(pfd, base, self.root)
            make()

    def _mkdir(self, pfd: int, base: str) -> None:
        try:
            os.mkdir(base, 0o755, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return  # directories merge
            _remove(pfd, base, self.root)
            os.mkdir(base, 0o755, dir_fd=pfd)

    def _file(self, pfd: int, base: str, entry: TarEntry, reader: TarReader) -> None:
        mode = entry.mode
        # Created with its final mode when the umask leaves it intact: saves an fchmod per file.
        plain = not (mode & self.umask) and not (mode & 0o7000)
        create_mode = mode if plain else 0o600
        try:
            fd = os.open(base, _O_NEWFILE, create_mode, dir_fd=pfd)
        except FileExistsError:
            _remove(pfd, base, self.root)
            fd = os.open(base, _O_NEWFILE, create_mode, dir_fd=pfd)
        try:
            if entry.size:
                self.stats.bytes += reader.copy_to_fd(fd)
            if self.same_owner:
                ids = self.owner(entry.uid, entry.gid) if self.owner else (entry.uid, entry.gid)
                # A new file already has our ids unless its directory is setgid.
                if ids != self.my_ids or self.root.is_setgid(pfd):
                    os.fchown(fd, *ids)
            if not plain:
                os.fchmod(fd, mode)
            if entry.xattrs:
                _set_xattrs(fd, entry.xattrs, True)
            ns = _mtime_ns(entry.mtime)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
        self.stats.files += 1

    def _meta_path(self, pfd: int, base: str, entry: TarEntry, chmod: bool) -> None:
        if self.same_owner:
            uid, gid = self._ids(entry)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        proc = f"/proc/self/fd/{pfd}/{base}"
        if chmod:
            os.chmod(proc, entry.mode)  # base was just created by us and is not a symlink
        if entry.xattrs:
            _set_xattrs(proc, entry.xattrs, False)
        ns = _mtime_ns(entry.mtime)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, base: str, comps: list[str], entry: TarEntry, what: object) -> None:
        target = clean_name(entry.linkname, entry.offset)
        if not target:
            raise UnsafePath(f"{what}: hard link to the root directory")
        if target == comps:
            return  # a link to itself: nothing to do
        try:
            tfd = self.root.dir_fd(target[:-1], False, what)
        except NotFound:
            raise CorruptData(f"{what}: hard link target {entry.linkname!r} does not exist")

        def link() -> None:
            os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

        try:
            self._create(pfd, base, link)
        except FileNotFoundError:
            raise CorruptData(f"{what}: hard link target {entry.linkname!r} does not exist")
        except PermissionError:
            raise CorruptData(f"{what}: cannot hard link to {entry.linkname!r} (a directory?)")
        self.stats.hardlinks += 1

    def _whiteout(self, parent: list[str], base: str, what: object) -> None:
        if base == OPAQUE:
            self.stats.opaques += 1
            pfd = self.root.dir_fd(parent, True, what)
            if self.overlay:
                os.setxattr(pfd, opaque_xattr(), b"y")
            else:
                self._empty_lower("/".join(parent), pfd)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless here
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise CorruptData(f"{what}: malformed whiteout name")
        self.stats.whiteouts += 1
        pfd = self.root.dir_fd(parent, True, what)
        if self.overlay:
            _remove(pfd, name, self.root)
            make_whiteout(pfd, name)
            return
        key = "/".join([*parent, name])
        if key in self.created:
            return  # a whiteout only hides lower layers' files, never its own layer's (OCI spec)
        _remove(pfd, name, self.root)

    def _empty_lower(self, key: str, dfd: int) -> None:
        """Remove what lower layers put in directory ``key`` (open as ``dfd``), keeping this layer's."""
        prefix = key + "/" if key else ""
        with os.scandir(dfd) as it:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for name, is_dir in names:
            child = prefix + name
            if child not in self.created:
                _remove(dfd, name, self.root)
            elif is_dir:
                sub = os.open(name, _O_DIR, dir_fd=dfd)
                try:
                    self._empty_lower(child, sub)
                finally:
                    os.close(sub)

    def _finish_dirs(self) -> None:
        # Deepest first, after all contents: creating a child changes its parent's mtime.
        for key in sorted(self.dirs, key=lambda k: k.count("/"), reverse=True):
            entry = self.dirs[key]
            comps = key.split("/")
            self.root.release()
            try:
                pfd = self.root.dir_fd(comps[:-1], False, key)
                fd = os.open(comps[-1], _O_DIR, dir_fd=pfd)
            except (NotFound, FileNotFoundError, NotADirectoryError, CorruptData):
                continue  # replaced or deleted later in the same layer
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    continue
                raise
            try:
                if self.same_owner:
                    os.fchown(fd, *self._ids(entry))
                os.fchmod(fd, entry.mode)
                if entry.xattrs:
                    _set_xattrs(fd, entry.xattrs, True)
                ns = _mtime_ns(entry.mtime)
                os.utime(fd, ns=(ns, ns))
            except (OSError, ValueError, OverflowError) as exc:
                raise _wrap(f"directory {key!r}", exc)
            finally:
                os.close(fd)


def _open_root(root: str | os.PathLike[str]) -> int:
    try:
        # makedirs refuses an existing file (FileExistsError) or a file on the way (ENOTDIR).
        os.makedirs(root, exist_ok=True)
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileExistsError, NotADirectoryError):
        raise CorruptData(f"{os.fspath(root)!r} is not a directory") from None


def apply_layer(
    stream: Readable,
    root: str | os.PathLike[str],
    *,
    same_owner: bool | None = None,
    owner: OwnerMap | None = None,
    drain: bool = True,
    progress: ProgressSink | None = None,
    progress_id: str = "",
) -> ApplyStats:
    """Apply the (uncompressed) layer tar ``stream`` onto directory ``root``, Docker's way.

    ``.wh.<name>`` deletes ``name`` as left by lower layers; ``.wh..wh..opq`` empties a directory of
    lower layers' contents (entries from this layer stay). Existing entries of another type are
    replaced; directories merge. Owners are set when ``same_owner`` (default: running as root),
    mapped through ``owner(uid, gid)`` if given. With ``drain`` the stream is read to EOF afterwards,
    so a hashing wrapper sees every byte. ``progress`` gets "extracting" events (``current`` = tar
    bytes read) under ``progress_id`` every few MiB. Raises ``UnsafePath`` / ``CorruptData``.
    """
    return _apply(stream, root, False, same_owner, owner, drain, progress, progress_id)


def apply_layer_overlay(
    stream: Readable,
    upperdir: str | os.PathLike[str],
    *,
    same_owner: bool | None = None,
    owner: OwnerMap | None = None,
    drain: bool = True,
    progress: ProgressSink | None = None,
    progress_id: str = "",
) -> ApplyStats:
    """Unpack a layer into an empty directory in overlayfs form, to stack it as a lowerdir.

    Whiteouts become 0/0 character devices and opaque markers the ``trusted.overlay.opaque=y`` xattr
    (both need root). Each layer gets its own directory, so nothing is deleted or copied.
    """
    return _apply(stream, upperdir, True, same_owner, owner, drain, progress, progress_id)


def extract(stream: Readable, root: str | os.PathLike[str], *, same_owner: bool | None = None,
            owner: OwnerMap | None = None) -> ApplyStats:
    """Unpack a plain tar archive (``docker cp``) onto ``root`` with :func:`apply_layer`'s safety: the
    same rules, except that ``.wh.`` names are ordinary files, not whiteouts."""
    return _apply(stream, root, False, same_owner, owner, True, None, "", whiteouts=False)


def _apply(
    stream: Readable, root: str | os.PathLike[str], overlay: bool, same_owner: bool | None,
    owner: OwnerMap | None, drain: bool, progress: ProgressSink | None, progress_id: str,
    whiteouts: bool = True,
) -> ApplyStats:
    if same_owner is None:
        same_owner = os.geteuid() == 0
    root_fd = _open_root(root)
    try:
        reader = TarReader(stream)
        applier = _Applier(root_fd, overlay, same_owner, owner)
        applier.progress = progress
        applier.progress_id = progress_id
        applier.whiteouts = whiteouts
        stats = applier.apply(reader)
        if drain:
            reader.drain()
        if progress is not None:
            progress(Event(progress_id, "extracting", "done", current=reader.offset, total=reader.offset))
        return stats
    finally:
        os.close(root_fd)
