"""Interoperability with GNU tar and Python's tarfile, both directions."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import TarReader, apply_layer, write_tree
from dockyard.archive.tarheader import LNKTYPE, SYMTYPE

Snapshot = Callable[..., dict[str, tuple[object, ...]]]
GNU_TAR = shutil.which("tar")
needs_tar = pytest.mark.skipif(GNU_TAR is None, reason="GNU tar not installed")
LONG = "long-" + "x" * 95  # > 100 bytes once nested


def make_tree(root: Path) -> None:
    deep = root / LONG / LONG / LONG
    deep.mkdir(parents=True)
    (deep / ("file-" + "y" * 150)).write_bytes(os.urandom(5000))
    os.symlink("z" * 300, root / "long-symlink")
    os.link(deep / ("file-" + "y" * 150), root / "hard")
    (root / "plain.txt").write_text("plain\n")
    (root / "ünïcødé").write_text("u")
    (root / "exe").write_text("#!/bin/sh\n")
    os.chmod(root / "exe", 0o2751)
    os.setxattr(root / "plain.txt", "user.test", b"v\x00\x01")
    os.mkfifo(root / "fifo", 0o620)
    if os.geteuid() == 0:
        os.chown(root / "plain.txt", 2_500_000, 70)
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "sda9", 0o660 | stat.S_IFBLK, os.makedev(8, 9))
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (1_500_000_000, 1_500_000_000), follow_symlinks=False)


@needs_tar
@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar-ish"])
def test_gnu_tar_archives_apply_correctly(shm: Path, snap: Snapshot, fmt: str) -> None:
    src, dst, out = shm / "src", shm / "dst", shm / "a.tar"
    make_tree(src)
    if fmt == "ustar-ish":  # ustar cannot hold these names: use a shallow tree with the prefix field
        shutil.rmtree(src)
        (src / ("p" * 90) / ("q" * 60)).mkdir(parents=True)
        (src / ("p" * 90) / ("q" * 60) / "f").write_text("prefix split")
        args = ["--format=ustar"]
    else:
        args = [f"--format={fmt}", "--xattrs", "--xattrs-include=*"]
    subprocess.run([GNU_TAR, "-cf", str(out), *args, "--numeric-owner", "-C", str(src), "."], check=True)
    with open(out, "rb") as fh:
        apply_layer(fh, dst)
    assert snap(dst) == snap(src)


@needs_tar
def test_our_archives_extract_right_with_gnu_tar(shm: Path, snap: Snapshot) -> None:
    src, dst, out = shm / "src", shm / "dst", shm / "a.tar"
    make_tree(src)
    with open(out, "wb") as fh:
        write_tree(src, fh)
    listing = subprocess.run([GNU_TAR, "-tvf", str(out)], check=True, capture_output=True, text=True)
    assert "z" * 300 in listing.stdout and "hard link to" not in listing.stderr
    dst.mkdir()
    subprocess.run([GNU_TAR, "-xpf", str(out), "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "-C", str(dst)], check=True)
    assert snap(dst) == snap(src)


def test_tarfile_reads_our_archives(shm: Path) -> None:
    src = shm / "src"
    make_tree(src)
    buf = io.BytesIO()
    write_tree(src, buf)
    buf.seek(0)
    ours = {e.name: e for e in TarReader(io.BytesIO(buf.getvalue()))}
    with tarfile.open(fileobj=buf) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == list(ours)
    for m in members:
        e = ours[m.name]
        assert (m.mode, m.uid, m.gid, m.size, m.mtime, m.linkname) == (
            e.mode, e.uid, e.gid, e.size, e.mtime, e.linkname)
        assert m.type == e.type
    plain = next(m for m in members if m.name == "plain.txt")
    assert plain.pax_headers.get("SCHILY.xattr.user.test") is not None


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_we_read_tarfile_archives(fmt: int) -> None:
    long_name = "dir-" + "d" * 60 + "/" + "n" * 90 if fmt == tarfile.USTAR_FORMAT else "a/" + "n" * 200
    long_link = "t" * 90 if fmt == tarfile.USTAR_FORMAT else "t" * 200
    big_uid = 0o7777777 if fmt == tarfile.USTAR_FORMAT else 9_000_000
    hard_target = "h" * 100 if fmt == tarfile.USTAR_FORMAT else long_name
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        info = tarfile.TarInfo(long_name)
        info.size, info.uid, info.gid, info.mtime, info.mode = 3, big_uid, 5, 1_234_567_890, 0o640
        tf.addfile(info, io.BytesIO(b"abc"))
        s = tarfile.TarInfo("sym")
        s.type, s.linkname = tarfile.SYMTYPE, long_link
        tf.addfile(s)
        h = tarfile.TarInfo("hard")
        h.type, h.linkname = tarfile.LNKTYPE, hard_target
        tf.addfile(h)
    buf.seek(0)
    r = TarReader(buf)
    e = r.next()
    assert e is not None and (e.name, e.size, e.uid, e.gid, e.mtime, e.mode) == (
        long_name, 3, big_uid, 5, 1_234_567_890, 0o640)
    assert r.read() == b"abc"
    e = r.next()
    assert e is not None and e.type == SYMTYPE and e.linkname == long_link
    e = r.next()
    assert e is not None and e.type == LNKTYPE and e.linkname == hard_target
    assert r.next() is None
