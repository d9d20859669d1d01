"""Fixtures for the archive tests: scratch directories on tmpfs and a tree snapshot to compare."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.archive.tarheader import (
    GNU_LONGLINK,
    GNU_LONGNAME,
    REGTYPE,
    SYMTYPE,
    XHDTYPE,
    _raw_header,
    padding,
)

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


@pytest.fixture(autouse=True)
def _cwd_elsewhere(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in a scratch directory: a bug that resolves an entry against the working
    directory instead of the layer's root (dir_fd lost) then damages only scratch files, not the
    checkout the tests run from (mutation testing plants exactly such bugs)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def shm() -> Iterator[Path]:
    """A fresh directory on tmpfs, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="dy-archive-", dir=SHM))
    try:
        yield d
    finally:
        try:
            shutil.rmtree(d, ignore_errors=True)
        except RecursionError:  # a test made an absurdly deep tree
            subprocess.run(["rm", "-rf", str(d)], check=False)


def xattrs_of(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    names = [n for n in names if not n.startswith("trusted.overlay")]
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in names}


def snapshot(root: Path, *, mtimes: bool = True, dir_mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything a layer must carry, per relative path; hard links become shared group numbers."""
    out: dict[str, tuple[object, ...]] = {}
    groups: dict[tuple[int, int], int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            link_group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                link_group = groups.setdefault((st.st_dev, st.st_ino), len(groups))
            mtime = None
            if mtimes and (dir_mtimes or not stat.S_ISDIR(st.st_mode)):
                mtime = int(st.st_mtime)
            mode = stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else 0
            out[rel] = (fmt, mode, st.st_uid, st.st_gid, extra, link_group, mtime, xattrs_of(p))
    return out


Snapshot = Callable[..., dict[str, tuple[object, ...]]]


@pytest.fixture(name="snap")
def snap_fixture() -> Snapshot:
    """The ``snapshot`` function, as a fixture (test modules cannot import conftest)."""
    return snapshot


def both_names_tar(pax_first: bool) -> bytes:
    """A tar whose file carries a PAX ``path`` and a GNU long name, and whose symlink carries a PAX
    ``linkpath`` and a GNU long link, in the order asked for; the ustar fields name a third choice."""
    def special(typeflag: bytes, body: bytes, name: bytes) -> bytes:
        head = _raw_header(name, 0o644, 0, 0, len(body), 0, typeflag, b"", b"", b"", 0, 0)
        return head + body + padding(len(body))

    def extended(pax: bytes, gnu: bytes) -> bytes:
        first, second = (pax, gnu) if pax_first else (gnu, pax)
        return first + second

    out = extended(special(XHDTYPE, b"17 path=from-pax\n", b"PaxHeaders.0/f"),
                   special(GNU_LONGNAME, b"from-gnu\0", b"././@LongLink"))
    out += _raw_header(b"from-ustar", 0o644, 0, 0, 3, 0, REGTYPE, b"", b"", b"", 0, 0) + b"abc" + padding(3)
    out += extended(special(XHDTYPE, b"23 linkpath=pax-target\n", b"PaxHeaders.0/l"),
                    special(GNU_LONGLINK, b"gnu-target\0", b"././@LongLink"))
    out += _raw_header(b"link", 0o777, 0, 0, 0, 0, SYMTYPE, b"ustar-target", b"", b"", 0, 0)
    return out + bytes(1024)


@pytest.fixture(name="both_names")
def both_names_fixture() -> Callable[[bool], bytes]:
    """The ``both_names_tar`` builder, as a fixture."""
    return both_names_tar
