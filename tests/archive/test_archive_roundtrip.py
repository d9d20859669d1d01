"""write_tree -> apply_layer gives back the same tree; writer options; determinism."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import (
    TarReader,
    TarWriter,
    TreeOptions,
    apply_layer,
    apply_layer_overlay,
    write_tree,
)
from dockyard.archive.tarheader import DIRTYPE, LNKTYPE, SYMTYPE, TarEntry

Snapshot = Callable[..., dict[str, tuple[object, ...]]]
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mknod, trusted xattrs)")


def make_rich_tree(root: Path) -> None:
    """Every kind of entry a layer can hold, with odd modes, owners, xattrs and old mtimes."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(os.urandom(3000))
    os.chmod(root / "bin" / "tool", 0o4755)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "ro").mkdir()
    (root / "ro" / "inside").write_text("x")
    os.chmod(root / "ro", 0o555)
    (root / "big").write_bytes(os.urandom(3 << 20))  # > 1 MiB: streamed path
    (root / "empty").write_bytes(b"")
    os.link(root / "bin" / "tool", root / "bin" / "tool-hardlink")
    os.symlink("../etc/passwd", root / "bin" / "rel-link")
    os.symlink("/nonexistent/abs", root / "dangling")
    long_dir = root / ("d" * 120) / ("e" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 200)).write_text("long name")
    os.symlink("t" * 150, root / "long-target-link")
    (root / "ünïcødé.txt").write_text("utf-8")
    (root / os.fsdecode(b"bad-\xff-utf8")).write_text("raw bytes name")
    os.mkfifo(root / "fifo", 0o640)
    os.setxattr(root / "etc" / "passwd", "user.comment", b"hello\nworld\x00bin")
    if ROOT:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(root / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
        os.chown(root / "etc" / "passwd", 1234, 5678)
        os.chown(root / "bin" / "tool", 3_000_000, 4_000_000)  # > 2097151: needs PAX
        os.chmod(root / "bin" / "tool", 0o4755)  # chown cleared setuid
        os.chown(root / "bin" / "rel-link", 42, 43, follow_symlinks=False)
        os.setxattr(root / "bin" / "tool", "security.capability",
                    bytes.fromhex("0100000200200000000000000000000000000000"))
        os.setxattr(root / "tmp", "trusted.dockyard", b"dir-xattr")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), ns=(1_000_000_000_000_000_000, 1_600_000_000_123_456_789),
                     follow_symlinks=False)


def test_round_trip_preserves_everything(shm: Path, snap: Snapshot) -> None:
    src, dst = shm / "src", shm / "dst"
    make_rich_tree(src)
    buf = io.BytesIO()
    tw = write_tree(src, buf)
    assert tw.size == len(buf.getvalue()) and tw.size % 512 == 0
    buf.seek(0)
    stats = apply_layer(buf, dst)
    assert stats.hardlinks == 1 and stats.symlinks == 3 and stats.bytes > 3 << 20
    assert snap(dst) == snap(src)


def test_writer_is_deterministic_and_docker_shaped(shm: Path) -> None:
    src = shm / "src"
    make_rich_tree(src)
    a, b = io.BytesIO(), io.BytesIO()
    write_tree(src, a)
    fd = os.open(shm / "b.tar", os.O_WRONLY | os.O_CREAT, 0o600)  # fd output: copy_file_range path
    try:
        write_tree(src, fd)
    finally:
        os.close(fd)
    b.write((shm / "b.tar").read_bytes())
    assert a.getvalue() == b.getvalue()
    assert a.getvalue().endswith(bytes(1024))
    entries = list(TarReader(io.BytesIO(a.getvalue())))
    names = [e.name for e in entries]
    # Relative names, depth-first, each directory sorted by bytes; no "./" root entry.
    i = names.index("bin")
    assert names[:i] == ["bad-\udcff-utf8", "big"]
    assert names[i : i + 4] == ["bin", "bin/rel-link", "bin/tool", "bin/tool-hardlink"]
    assert not any(n.startswith(("/", "./")) for n in names)
    by_name = {e.name: e for e in entries}
    off = by_name["bin"].offset
    assert a.getvalue()[off : off + 5] == b"bin/\0"  # directories carry a trailing slash
    hardlink = by_name["bin/tool-hardlink"]
    assert hardlink.type == LNKTYPE and hardlink.linkname == "bin/tool"
    assert by_name["bin"].type == DIRTYPE and by_name["bin/rel-link"].type == SYMTYPE
    assert all(e.uname == "" and e.gname == "" for e in entries)
    assert by_name["etc/passwd"].xattrs == {"user.comment": b"hello\nworld\x00bin"}


def test_options_clamp_owner_prefix_exclude(shm: Path) -> None:
    src = shm / "src"
    (src / "keep" / "sub").mkdir(parents=True)
    (src / "keep" / "sub" / "f").write_text("f")
    (src / "skipdir").mkdir()
    (src / "skipdir" / "g").write_text("g")
    (src / "x.log").write_text("log")
    os.utime(src / "keep" / "sub" / "f", (2_000_000_000, 2_000_000_000))
    opts = TreeOptions(
        prefix="app/", mtime_clamp=1_000_000, owner=lambda u, g: (1000, 1001),
        exclude=lambda rel, is_dir: rel == "skipdir" or rel.endswith(".log"), xattrs=False,
    )
    buf = io.BytesIO()
    write_tree(src, buf, opts)
    buf.seek(0)
    entries = list(TarReader(buf))
    assert [e.name for e in entries] == ["app/keep", "app/keep/sub", "app/keep/sub/f"]
    assert all(e.mtime <= 1_000_000 and (e.uid, e.gid) == (1000, 1001) for e in entries)


def test_sockets_are_skipped(shm: Path) -> None:
    import socket

    src = shm / "src"
    src.mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(src / "sock"))
        (src / "file").write_text("x")
        buf = io.BytesIO()
        write_tree(src, buf)
        buf.seek(0)
        assert [e.name for e in TarReader(buf)] == ["file"]
    finally:
        s.close()


def test_tarwriter_single_entries_and_reader_bodies(shm: Path) -> None:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        tw.add(TarEntry("a", mode=0o600, mtime=5), b"hello")
        tw.add(TarEntry("d", type=DIRTYPE, mode=0o755))
        big = os.urandom(700_000)
        tw.add(TarEntry("b"), big)
    buf.seek(0)
    r = TarReader(buf, bufsize=4096)  # small buffer: bodies span many reads
    e = r.next()
    assert e is not None and e.name == "a" and r.read(2) == b"he" and r.read() == b"llo"
    e = r.next()
    assert e is not None and e.isdir()
    e = r.next()
    assert e is not None and e.size == len(big)
    assert b"".join(bytes(c) for c in r.chunks()) == big
    assert r.next() is None


def test_file_that_shrinks_while_written_keeps_archive_valid(shm: Path) -> None:
    p = shm / "f"
    p.write_bytes(b"x" * 100)
    buf = io.BytesIO()
    fd = os.open(p, os.O_RDONLY)
    try:
        tw = TarWriter(buf)
        tw.add_fd(TarEntry("f", size=200), fd)  # claims more than there is
        tw.close()
    finally:
        os.close(fd)
    buf.seek(0)
    r = TarReader(buf)
    assert r.next() is not None and r.read() == b"x" * 100 + bytes(100)
    assert r.next() is None


@needs_root
def test_overlay_apply_writes_overlay_whiteouts(shm: Path) -> None:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        tw.add(TarEntry("dir", type=DIRTYPE, mode=0o755))
        tw.add(TarEntry("dir/.wh..wh..opq"))
        tw.add(TarEntry("dir/new"), b"n")
        tw.add(TarEntry(".wh.gone"))
    buf.seek(0)
    up = shm / "upper"
    stats = apply_layer_overlay(buf, up)
    assert stats.whiteouts == 1 and stats.opaques == 1
    st = os.lstat(up / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(up / "dir", "trusted.overlay.opaque") == b"y"
    assert (up / "dir" / "new").read_bytes() == b"n"


def test_apply_reports_progress(shm: Path) -> None:
    from dockyard.progress import Event

    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        for i in range(12):
            tw.add(TarEntry(f"f{i}"), bytes(1 << 20))
    buf.seek(0)
    events: list[Event] = []
    apply_layer(buf, shm / "r", progress=events.append, progress_id="sha256:abc")
    assert {e.id for e in events} == {"sha256:abc"} and events[-1].status == "done"
    assert len(events) >= 3 and events[-1].current == len(buf.getvalue())
    currents = [e.current for e in events]
    assert currents == sorted(currents)


@needs_root
def test_a_readable_file_of_another_owner_is_archived() -> None:
    """O_NOATIME is refused on a file the reader does not own (a rootless user reading a build context
    or ``cp`` source owned by root): the file is read without it."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-noatime-", dir="/var/tmp"))  # pytest's is root-only
    try:
        base.chmod(0o755)
        (base / "tree").mkdir()
        (base / "tree" / "f").write_text("theirs\n")
        out = base / "out.tar"
        out.touch()
        os.chown(out, 65534, 65534)
        child = os.fork()
        if child == 0:  # as nobody, without CAP_FOWNER
            code = 1
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with open(out, "wb") as f:
                    write_tree(base / "tree", f)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with tarfile.open(out) as tar:
            member = tar.extractfile("f")
            assert member is not None and member.read() == b"theirs\n"
    finally:
        shutil.rmtree(base)
