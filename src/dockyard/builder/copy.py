"""COPY and ADD file semantics, as BuildKit applies them.

Sources are resolved inside their root (the build context or another stage's filesystem) with Go
``filepath.Match`` wildcards per path component; a directory source copies its contents; the
destination is a directory when it ends in ``/`` or when it already is one (checked again for each
source: several sources onto ``/out`` each land on ``/out`` in turn, as BuildKit copies them).
Every write is resolved inside the destination root (``fsutil.secure_join``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from dockyard.builder.fsutil import clean_path, mkdir_all, secure_join
from dockyard.errors import BuildError, Interrupted
from dockyard.oci import pathmatch
from dockyard.record import field, record

ModeFn = Callable[[int, bool], int]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_THREADS = 4  # file copies in flight on their own threads (copy_file_range releases the GIL)
_IN_FLIGHT = 64  # files handed to them and not yet done (each holds an open descriptor)
# A file smaller than this is copied on the walking thread: its few syscalls each drop and take the
# GIL, and with pool threads contending for it every handoff is a futex wake (measured: a 2,565-file
# context spent more system time in futex than in file creation; the reference build's one-file
# change 0.62 -> 0.50 s on an aged ext4, a 50,000-file COPY 8-13 -> 5.7-6.9 s). Larger files keep
# the pool, where a long copy_file_range runs beside the walk; so does every file copied into a FUSE
# mount (``CopySpec.dest_fuse``), where each syscall waits on the daemon and the pool overlaps the
# waits (fuse-overlayfs, the same one-file change in two runs: 1.83 and 1.95 s with small files
# inline, 1.64 and 1.59 s on the pool).
_INLINE_MAX = 256 << 10
ExcludeFn = Callable[[str, bool], bool]
_WILDCARDS = frozenset("*?[")


@record(slots=True)
class CopySpec:
    """One COPY/ADD: ``sources`` relative to the source root, ``dest`` absolute in the image."""

    sources: list[str]
    dest: str
    dest_is_dir: bool = False
    chown: tuple[int, int] | None = None
    mode: ModeFn | None = None
    preserve_owner: bool = False
    parents: bool = False
    exclude: ExcludeFn | None = None
    follow_source_symlink: bool = True
    # (archive on the host, makes and returns the destination dir) -> unpacked? (False: not an archive)
    unpack: Callable[[str, Callable[[], str]], bool] | None = field(default=None, repr=False)
    cancel: threading.Event | None = field(default=None, repr=False)  # set: the copy stops (Interrupted)
    dest_fuse: bool = False  # the destination is a FUSE mount (fuse-overlayfs): copy every file on the pool


def has_wildcard(path: str) -> bool:
    return any(c in _WILDCARDS for c in path)


def into_dir(root: str, dest: str, dest_is_dir: bool) -> bool:
    """Whether a file copied to ``dest`` goes into it: a trailing slash, or a directory there now."""
    return dest_is_dir or os.path.isdir(secure_join(root, dest))


def resolve_sources(root: str, pattern: str) -> list[tuple[str, str]]:
    """``(image path, host path)`` of what ``pattern`` names inside ``root``, sorted; [] if nothing."""
    cleaned = clean_path(pattern)
    if not has_wildcard(cleaned):
        host = secure_join(root, cleaned)
        return [(cleaned, host)] if os.path.lexists(host) else []
    found: list[tuple[str, str]] = [("/", root)]
    for part in [p for p in cleaned.split("/") if p]:
        step: list[tuple[str, str]] = []
        for image_path, host in found:
            if not has_wildcard(part):
                child = os.path.join(image_path, part)
                child_host = secure_join(root, child)
                if os.path.lexists(child_host):
                    step.append((child, child_host))
                continue
            try:
                names = sorted(os.listdir(host))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for name in names:
                if pathmatch.match(part, name):
                    child = os.path.join(image_path, name)
                    step.append((child, secure_join(root, child)))
        found = step
    return found


def apply_copy(src_root: str, spec: CopySpec, dest_root: str, *, src_label: str = "") -> int:
    """Carry out one COPY; return the number of entries written."""
    matches: list[tuple[str, str]] = []
    for pattern in spec.sources:
        found = resolve_sources(src_root, pattern)
        if spec.exclude is not None:
            found = [(p, h) for p, h in found
                     if p == "/" or not spec.exclude(p.strip("/"), os.path.isdir(h))]
        if not found and not has_wildcard(pattern):
            ref = f"{src_label}: " if src_label else ""
            raise BuildError(f"failed to calculate checksum of ref {ref}\"{clean_path(pattern)}\": not found")
        matches.extend(found)
    if not matches:
        # Only wildcards got here (a missing plain name raised above): BuildKit allows an empty match
        # and copies nothing, the destination not even made.
        return 0
    dest = clean_path(spec.dest)
    copier = _Copier(spec, dest_root)
    try:
        _copy_matches(spec, matches, dest, dest_root, copier)
    except BaseException:
        with contextlib.suppress(BaseException):  # the first error is the one to report
            copier.files.close()
        raise
    copier.finish()
    return copier.count


def _copy_matches(spec: CopySpec, matches: list[tuple[str, str]], dest: str, dest_root: str,
                  copier: _Copier) -> None:
    uid, gid = spec.chown if spec.chown else (-1, -1)
    for image_path, host in matches:
        st = os.stat(host) if spec.follow_source_symlink else os.lstat(host)
        if spec.unpack is not None and stat.S_ISREG(st.st_mode):
            def make_dest(dest: str = dest) -> str:
                # BuildKit unpacks into the destination itself (mkdir -p), slash or not.
                mkdir_all(dest_root, dest, 0o755, uid, gid)
                return secure_join(dest_root, dest)

            if spec.unpack(host, make_dest):
                copier.count += 1
                continue
        if spec.parents:
            target = os.path.join(dest, image_path.lstrip("/"))
            parent = os.path.dirname(target)
            mkdir_all(dest_root, parent, 0o755, uid, gid)
            if stat.S_ISDIR(st.st_mode):
                copier.copy_dir(host, target, top=True, rel=image_path.strip("/"))
            else:
                copier.copy_entry(host, st, target)
            continue
        if stat.S_ISDIR(st.st_mode):
            mkdir_all(dest_root, os.path.dirname(dest), 0o755, uid, gid)
            copier.copy_dir(host, dest, top=True, rel=image_path.strip("/"))
        else:
            into = into_dir(dest_root, dest, spec.dest_is_dir)
            target = os.path.join(dest, os.path.basename(image_path)) if into else dest
            mkdir_all(dest_root, os.path.dirname(target), 0o755, uid, gid)
            copier.copy_entry(host, st, target)


class _FilePool:
    """Runs file copies on a few threads, at most ``_IN_FLIGHT`` at once; ``close`` waits for them
    and raises the first error (``submit`` raises it too, to stop a copy early)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        self._error: BaseException | None = None

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._error is not None:
            raise self._error
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="copy")
        self._slots.acquire()
        try:
            self._pool.submit(fn, *args).add_done_callback(self._done)
        except BaseException:
            self._slots.release()
            raise

    def _done(self, future: Future[None]) -> None:
        self._slots.release()
        exc = future.exception()
        if exc is not None and self._error is None:
            self._error = exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._error is not None:
            raise self._error


class _Copier:
    def __init__(self, spec: CopySpec, dest_root: str) -> None:
        self.spec = spec
        self.root = dest_root
        self.count = 0
        self._links: dict[tuple[int, int], str] = {}
        self._dir_times: list[tuple[str, int, int]] = []
        self.files = _FilePool()
        self._umask = _umask()
        self._ranged = True  # copy_file_range has not failed between these filesystems

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.spec.chown is not None:
            return self.spec.chown
        if self.spec.preserve_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def _mode(self, st: os.stat_result) -> int:
        mode = stat.S_IMODE(st.st_mode)
        return self.spec.mode(mode, stat.S_ISDIR(st.st_mode)) if self.spec.mode is not None else mode

    def _walk(self, host: str, rel: str) -> Iterator[tuple[os.DirEntry[str], str]]:
        with os.scandir(host) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            excluded = self.spec.exclude
            if excluded is not None and excluded(child_rel, entry.is_dir(follow_symlinks=False)):
                continue
            yield entry, child_rel

    def copy_dir(self, host: str, target: str, *, top: bool = False, rel: str = "") -> None:
        """Copy the directory ``host`` to ``target``; ``rel`` is its path in the source root."""
        st = os.stat(host) if top else os.lstat(host)
        target_host = secure_join(self.root, target)
        try:
            existing = os.lstat(target_host)
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            # As BuildKit (fsutil's copy): a directory never replaces a file, a link or anything else.
            raise BuildError(f"cannot copy to non-directory: {target}")
        if existing is None:
            os.mkdir(target_host, 0o700)
        dfd = os.open(target_host, _DIR_FLAGS)
        try:
            if existing is None:
                if top:
                    # The destination of a directory copy is made like ``mkdir -p``: 0755, owned by
                    # --chown's user or root; --chmod applies to what is copied into it, not to it.
                    uid, gid = self.spec.chown if self.spec.chown else (0, 0)
                    os.fchown(dfd, uid, gid)
                    os.fchmod(dfd, 0o755)
                else:
                    self._apply_meta(host, dfd, st)
                self._dir_times.append((target_host, st.st_atime_ns, st.st_mtime_ns))
                self.count += 1
            elif not top:
                self._apply_meta(host, dfd, st)
                self._dir_times.append((target_host, st.st_atime_ns, st.st_mtime_ns))
            self._fill(host, dfd, target_host, target.rstrip("/"), rel, fresh=existing is None)
        finally:
            os.close(dfd)

    def _fill(self, host: str, dfd: int, target_host: str, target: str, rel: str, *,
              fresh: bool = False) -> None:
        """Copy the children of ``host`` into the open directory ``dfd`` (``target_host``, which is
        ``target`` in the image): each name is created or looked at relative to ``dfd`` with
        ``O_NOFOLLOW``, so no path is resolved again; a symlink already in the destination where a
        directory is copied is resolved inside the root, as for the top (``copy_dir``). ``fresh``:
        ``dfd`` was made by this copy, so nothing is in it to look at."""
        parent = os.fstat(dfd)
        # What a new entry here gets without asking: our owner (the directory's group if it is
        # setgid) and its creation mode less the umask; owner and mode are set only if they differ.
        born = (os.geteuid(), parent.st_gid if parent.st_mode & stat.S_ISGID else os.getegid())
        cancel = self.spec.cancel
        for entry, child_rel in self._walk(host, rel):
            if cancel is not None and cancel.is_set():  # Ctrl-C: a COPY of 50,000 files takes seconds
                raise Interrupted("Canceled: context canceled")
            name = entry.name
            child_target = f"{target}/{name}"
            child_host = f"{target_host}/{name}"
            child_st = entry.stat(follow_symlinks=False)
            existing = None
            if not fresh:
                try:
                    existing = os.lstat(name, dir_fd=dfd)
                except FileNotFoundError:
                    pass
            if stat.S_ISDIR(child_st.st_mode):
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    if stat.S_ISLNK(existing.st_mode):
                        self.copy_dir(entry.path, child_target, rel=child_rel)  # resolved in the root
                        continue
                    raise BuildError(f"cannot copy to non-directory: {child_target}")
                if existing is None:
                    os.mkdir(name, 0o700, dir_fd=dfd)
                    self.count += 1
                cfd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self._apply_meta(entry.path, cfd, child_st, born if existing is None else None)
                    self._dir_times.append((child_host, child_st.st_atime_ns, child_st.st_mtime_ns))
                    self._fill(entry.path, cfd, child_host, child_target, child_rel, fresh=existing is None)
                finally:
                    os.close(cfd)
                continue
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode):
                    _remove_tree(child_host)
                else:
                    os.unlink(name, dir_fd=dfd)
            self._place(entry.path, child_st, dfd, name, child_host, born)

    def _place(self, host: str, st: os.stat_result, dfd: int, name: str, target_host: str,
               born: tuple[int, int]) -> None:
        """Create the non-directory ``name`` in ``dfd`` (nothing is there) as a copy of ``host``."""
        mode = st.st_mode
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self._links:
            os.link(self._links[key], name, dst_dir_fd=dfd)
            self.count += 1
            return
        if stat.S_ISREG(mode):
            wanted = self._mode(st)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         wanted & 0o777, dir_fd=dfd)
            # A large file's data is copied by the pool (copy_file_range drops the GIL); the name
            # exists now, so later hard links to it can be made at once.
            if st.st_size < _INLINE_MAX and not self.spec.dest_fuse:
                self._finish_file(host, fd, st, wanted, born)
            else:
                self.files.submit(self._finish_file, host, fd, st, wanted, born)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(host), name, dir_fd=dfd)
            uid, gid = self._owner(st)
            if (uid, gid) != born:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        else:
            if stat.S_ISFIFO(mode):
                os.mkfifo(name, 0o600, dir_fd=dfd)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
            else:
                return
            # (just made here, so not a symlink: chmod may follow the name)
            uid, gid = self._owner(st)
            os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.chmod(name, self._mode(st), dir_fd=dfd)
            if self.spec.preserve_owner:
                _copy_xattrs(host, target_host)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        if st.st_nlink > 1:
            self._links[key] = target_host
        self.count += 1

    def _finish_file(self, host: str, fd: int, st: os.stat_result, wanted: int,
                     born: tuple[int, int]) -> None:
        """In a pool thread: copy the data into ``fd``, then owner, mode, xattrs and times; close it."""
        try:
            fd_in = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if not _copy_data(fd_in, fd, st.st_size, self._ranged):
                    self._ranged = False  # (a race between pool threads only costs one more try)
                if self.spec.preserve_owner:
                    _copy_xattrs(fd_in, fd)
            finally:
                os.close(fd_in)
            uid, gid = self._owner(st)
            if (uid, gid) != born:
                os.fchown(fd, uid, gid)  # (clears set-id bits: the mode comes after)
            if wanted & (0o7000 | self._umask):  # set-id bits, or bits the umask took
                os.fchmod(fd, wanted)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)

    def copy_entry(self, host: str, st: os.stat_result, target: str) -> None:
        parent = secure_join(self.root, os.path.dirname(target))
        target_host = os.path.join(parent, os.path.basename(target))
        try:
            existing = os.lstat(target_host)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    return
                _remove_tree(target_host)
            else:
                os.unlink(target_host)
        mode = st.st_mode
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and not stat.S_ISDIR(mode) and key in self._links:
            os.link(self._links[key], target_host)
            self.count += 1
            return
        if stat.S_ISREG(mode):
            _copy_file(host, target_host, st.st_size)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(host), target_host)
        elif stat.S_ISDIR(mode):
            self.copy_dir(host, target)
            return
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target_host, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(target_host, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:
            return
        self._apply_meta_path(host, target_host, st, is_link=stat.S_ISLNK(mode))
        if not stat.S_ISLNK(mode):
            os.utime(target_host, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.utime(target_host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1:
            self._links[key] = target_host
        self.count += 1

    def _apply_meta_path(self, host: str, target_host: str, st: os.stat_result, *, is_link: bool) -> None:
        uid, gid = self._owner(st)
        os.lchown(target_host, uid, gid)
        if not is_link:
            os.chmod(target_host, self._mode(st))
            if self.spec.preserve_owner:
                _copy_xattrs(host, target_host)

    def _apply_meta(self, host: str, fd: int, st: os.stat_result,
                    born: tuple[int, int] | None = None) -> None:
        """Owner, mode and (with preserve_owner) xattrs of ``host`` onto the open ``fd``; ``born``: the
        owner ``fd`` was created with (its owner is then set only if it differs)."""
        uid, gid = self._owner(st)
        if born is None or (uid, gid) != born:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, self._mode(st))
        if self.spec.preserve_owner:
            _copy_xattrs(host, fd)

    def finish(self) -> None:
        self.files.close()
        # Directory times last: writing their children changed them.
        for path, atime, mtime in reversed(self._dir_times):
            os.utime(path, ns=(atime, mtime))


def _copy_xattrs(src: str | int, dst: str | int) -> None:
    """Copy extended attributes (e.g. ``security.capability``), never overlayfs bookkeeping; a path
    is not followed if it is a symlink, a descriptor is the file itself."""
    src_kw = {} if isinstance(src, int) else {"follow_symlinks": False}
    dst_kw = {} if isinstance(dst, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(src, **src_kw)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, **src_kw), **dst_kw)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def _copy_file(src: str, dst: str, size: int) -> None:
    fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy_data(fd_in, fd_out, size)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_data(fd_in: int, fd_out: int, size: int, ranged: bool = True) -> bool:
    """Copy ``size`` bytes in the kernel (``copy_file_range`` if ``ranged``, else ``sendfile``);
    returns whether ``copy_file_range`` is worth trying for the next file between the same two
    filesystems (it fails with EXDEV for every file going from the context into an overlay)."""
    copied = 0
    while copied < size:
        n = -1
        if ranged:
            try:
                n = os.copy_file_range(fd_in, fd_out, size - copied)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                ranged = False
        if n < 0:
            n = os.sendfile(fd_out, fd_in, copied, size - copied)
        if n == 0:
            break
        copied += n
    return ranged


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o777  # unknown: every mode is then set explicitly


def _remove_tree(path: str) -> None:
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)
