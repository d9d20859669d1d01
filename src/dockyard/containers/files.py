"""``cp``, ``diff`` and ``export``: files in and out of a container, with ``docker cp``'s rules.

Every path inside the container is resolved from a descriptor of its root, one component at a time
with ``O_NOFOLLOW``, a symlink being followed as if that root were ``/`` (``SafeRoot``); what is copied
in is unpacked through :func:`dockyard.archive.apply.extract`, which never writes outside the
directory it was given. So a symlink planted in the container can neither make ``cp`` read a host file
nor write one, even while the container runs and changes its files.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dockyard import fs
from dockyard.archive.apply import SafeRoot, extract
from dockyard.archive.writer import TarWriter, TreeOptions, TreeWalker, _TreeAdder, os_error, write_tree
from dockyard.containers.rootview import in_view, rootfs_spec
from dockyard.containers.store import ContainerStore, Record
from dockyard.errors import Conflict, CorruptData, DockyardError, InvalidArgument, NotFound
from dockyard.record import record

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@record(slots=True)
class Source:
    """What one ``cp`` copies: ``base`` in directory ``pfd`` (the root itself when ``base`` is empty)."""

    pfd: int
    base: str
    st: os.stat_result
    contents: bool  # SRC ended in "/.": the directory's contents, not the directory


def _parts(path: str) -> list[str]:
    return [p for p in posixpath.normpath("/" + path).split("/") if p]


def _resolve(sr: SafeRoot, path: str, what: str) -> list[str]:
    """``path``'s components with every symlink (the last one too) followed inside the root."""

    def read_link(parts: list[str]) -> str | None:
        try:
            pfd = sr.dir_fd(parts[:-1], False, what)
            st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
        except (NotFound, CorruptData, FileNotFoundError, NotADirectoryError):
            return None  # missing: the caller says what is
        return os.readlink(parts[-1], dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else None

    try:
        return fs.walk("/".join(_parts(path)), read_link)
    except fs.SymlinkLoop as exc:
        raise CorruptData(f"{what}: {exc}") from None


def locate(sr: SafeRoot, path: str, follow: bool, missing: Callable[[], DockyardError]) -> Source:
    """The source ``path`` under ``sr``'s root (its last symlink followed with ``follow``, as ``-L``)."""
    parts = _resolve(sr, path, path) if follow else _parts(path)
    try:
        if not parts:
            return Source(sr.fd, "", os.fstat(sr.fd), path.endswith("/."))
        pfd = sr.dir_fd(parts[:-1], False, path)
        st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
    except (NotFound, CorruptData, FileNotFoundError, NotADirectoryError):
        raise missing() from None
    if path.endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise Conflict(f"lstat {path}: not a directory")
    return Source(pfd, parts[-1], st, path.endswith("/.") and stat.S_ISDIR(st.st_mode))


def write_source(src: Source, out: int, name: str, owner: tuple[int, int] | None = None) -> None:
    """``src`` as a tar archive on ``out``, named ``name`` (its contents as ``./...`` when ``src``
    wants only its contents); ``owner`` replaces every entry's uid and gid."""
    opts = TreeOptions(owner=(lambda _u, _g: owner) if owner is not None else None)
    tw = TarWriter(out)
    adder = _TreeAdder(tw, opts)
    top = "." if src.contents else name
    try:
        if src.base:
            adder.add(src.pfd, src.base, top, src.st)
        if stat.S_ISDIR(src.st.st_mode):
            fd = os.open(src.base, _O_DIR, dir_fd=src.pfd) if src.base else os.dup(src.pfd)
            try:
                walker = TreeWalker(fd)
                for dir_fd, base, rel, st in walker:
                    try:
                        adder.add(dir_fd, base, f"{top}/{rel}", st)
                    except OSError as exc:
                        raise os_error(rel, exc) from None
            finally:
                os.close(fd)
    except OSError as exc:
        raise os_error(name, exc) from None
    tw.close()


@record(slots=True)
class Destination:
    """Where a copy lands: directory ``dfd``; ``name`` the new entry's name ("" to merge into it)."""

    dfd: int
    name: str


def destination(sr: SafeRoot, path: str, src_is_dir: bool, src_contents: bool, src_name: str,
                missing: Callable[[str], DockyardError]) -> Destination:
    """``docker cp``'s rules for DEST_PATH under ``sr``'s root: into an existing directory (under the
    source's name, or its contents with ``SRC/.``), else as the new name in an existing parent."""
    parts = _resolve(sr, path, path)
    try:
        dfd = sr.dir_fd(parts, False, path)
    except NotFound:
        dfd = -1
    except CorruptData:  # an existing non-directory
        if src_is_dir:
            raise InvalidArgument("cannot copy directory") from None
        dfd = -2
    if dfd >= 0:
        return Destination(dfd, "" if src_contents else src_name)
    if path.endswith("/") and dfd == -1:
        raise InvalidArgument("no such directory")
    if not parts:
        raise InvalidArgument("cannot copy to the root as a file")
    try:
        parent = sr.dir_fd(parts[:-1], False, path)
    except (NotFound, CorruptData):
        raise missing("/" + "/".join(parts[:-1])) from None
    return Destination(parent, parts[-1])


def _unpack(read_fd: int, dest_dir: str, owner: tuple[int, int] | None = None) -> None:
    """Unpack the archive on ``read_fd`` into ``dest_dir`` (``owner``: every entry's uid and gid)."""
    with os.fdopen(read_fd, "rb", closefd=True) as f:
        extract(f, dest_dir, owner=(lambda _u, _g: owner) if owner is not None else None)


def _pump(produce: Callable[[int], None], consume: Callable[[int], None]) -> None:
    """``produce`` writes an archive to a pipe that ``consume`` reads, in two threads."""
    r, w = os.pipe2(os.O_CLOEXEC)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            produce(w)
        except BaseException as exc:  # the consumer's error is the interesting one unless there is none
            errors.append(exc)
        finally:
            os.close(w)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        consume(r)
    finally:
        t.join()
    if errors:
        raise errors[0]


def _find(root: Path, ref: str, path: str | None = None) -> Record:
    """The container; for ``cp`` (``path`` given) a missing one is Docker's "container:path" error."""
    try:
        return ContainerStore(root).find(ref)
    except NotFound:
        if path is None:
            raise
        raise NotFound(f"No such container:path: {ref}:{path}") from None


def copy_from(root: Path, ref: str, src_path: str, dest: str, *, follow: bool = False,
              out: int | None = None) -> None:
    """``docker cp CONTAINER:SRC DEST``; with ``out`` (DEST ``-``) the archive of SRC goes there."""
    rec = _find(root, ref, src_path)

    def missing() -> DockyardError:
        return NotFound(f"No such container:path: {ref}:{src_path}")

    def action(view: str) -> None:
        sr = SafeRoot(os.open(view, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        try:
            src = locate(sr, src_path, follow, missing)
            name = src.base or "."
            if out is not None:
                write_source(src, out, name)
                return
            host = SafeRoot(os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            try:
                where = destination(host, os.path.abspath(dest) + ("/" if dest.endswith("/") else ""),
                                    stat.S_ISDIR(src.st.st_mode), src.contents, name, _host_missing)
                _pump(lambda w: write_source(src, w, where.name or "."),
                      lambda r: _unpack(r, f"/proc/self/fd/{where.dfd}"))
            finally:
                host.close()
                os.close(host.fd)
        finally:
            sr.close()
            os.close(sr.fd)

    in_view(root, rec, action)


def _host_missing(parent: str) -> DockyardError:
    return InvalidArgument(f'invalid output path: directory "{parent}" does not exist')


def copy_to(root: Path, ref: str, src: str, dest_path: str, *, archive: bool = False, follow: bool = False,
            stdin: BinaryIO | None = None) -> None:
    """``docker cp SRC CONTAINER:DEST``: files owned by root in the container unless ``archive`` (the
    source's owners); SRC ``-`` (``stdin``) is a tar archive unpacked into the directory DEST."""
    rec = _find(root, ref, dest_path)

    def missing(parent: str) -> DockyardError:
        return NotFound(f"No such container:path: {ref}:{parent}")

    owner = None if archive else (0, 0)
    host_src: Source | None = None
    host: SafeRoot | None = None
    if stdin is None:
        host = SafeRoot(os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        absolute = os.path.abspath(src) + ("/." if src.endswith("/.") else "/" if src.endswith("/") else "")

        def host_missing() -> DockyardError:
            # as Docker: the first component that is missing
            parts = os.path.abspath(src).split("/")
            first = next((p for i in range(2, len(parts) + 1)
                          if not os.path.lexists(p := "/".join(parts[:i]))), os.path.abspath(src))
            return InvalidArgument(f"lstat {first}: no such file or directory")

        host_src = locate(host, absolute, follow, host_missing)

    def action(view: str) -> None:
        sr = SafeRoot(os.open(view, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        try:
            if host_src is None:
                assert stdin is not None
                parts = _resolve(sr, dest_path, dest_path)
                try:
                    dfd = sr.dir_fd(parts, False, dest_path)
                except (NotFound, CorruptData):
                    raise missing(dest_path) from None
                extract(stdin, f"/proc/self/fd/{dfd}", owner=(lambda _u, _g: (0, 0)) if owner else None)
                return
            name = host_src.base or os.path.basename(os.path.abspath(src)) or "."
            where = destination(sr, dest_path, stat.S_ISDIR(host_src.st.st_mode), host_src.contents, name,
                                missing)
            _pump(lambda w: write_source(host_src, w, where.name or ".", owner),
                  lambda r: _unpack(r, f"/proc/self/fd/{where.dfd}"))
        finally:
            sr.close()
            os.close(sr.fd)

    try:
        in_view(root, rec, action, writable=True)
    finally:
        if host is not None:
            host.close()
            os.close(host.fd)


def changes(root: Path, ref: str) -> list[tuple[str, str]]:
    """``docker diff``: (kind, path) for what the container's writable layer added (A), changed (C)
    or deleted (D), by path."""
    from dockyard.executor.rootfs import LayeredView

    rec = _find(root, ref)
    spec = rootfs_spec(root, rec)
    lower = LayeredView([str(p) for p in spec.lowerdirs])
    out: list[tuple[str, str]] = []
    upper_fd = os.open(spec.upperdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for _dir_fd, _name, rel, st in TreeWalker(upper_fd):
            parts = tuple(rel.split("/"))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", "/" + rel))
            else:
                out.append(("C" if lower.entry(parts) is not None else "A", "/" + rel))
    finally:
        os.close(upper_fd)
    return sorted(out, key=lambda c: c[1])


def export(root: Path, ref: str, out: int) -> None:
    """``docker export``: the container's filesystem (without its volumes) as a tar archive on ``out``."""
    def action(view: str) -> None:
        write_tree(view, out)

    in_view(root, _find(root, ref), action, volumes=False)
