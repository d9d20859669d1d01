"""Whiteouts, opaque directories, type replacement, and the two diff writers (overlay upperdir and
directory comparison), checked by applying their output onto the lower tree."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import (
    TarReader,
    TarWriter,
    apply_layer,
    apply_layer_overlay,
    write_dir_diff,
    write_overlay_diff,
    write_tree,
)
from dockyard.archive.tarheader import DIRTYPE, LNKTYPE, SYMTYPE, TarEntry

Snapshot = Callable[..., dict[str, tuple[object, ...]]]
ROOT = os.geteuid() == 0


def layer(*members: tuple[str, bytes | None] | TarEntry) -> io.BytesIO:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        for m in members:
            if isinstance(m, TarEntry):
                tw.add(m)
            else:
                name, body = m
                if body is None:
                    tw.add(TarEntry(name, type=DIRTYPE, mode=0o755))
                else:
                    tw.add(TarEntry(name, mode=0o644), body)
    buf.seek(0)
    return buf


def lower(root: Path) -> None:
    for d in ("a/sub", "b", "c/deep"):
        (root / d).mkdir(parents=True)
    for p in ("a/x", "a/y", "a/sub/z", "b/keep", "c/old", "c/deep/older", "top"):
        (root / p).write_text(p)


def names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_whiteouts_and_opaque(shm: Path) -> None:
    root = shm / "r"
    lower(root)
    stats = apply_layer(layer(
        (".wh.top", b""), ("a/.wh.sub", b""), ("a/.wh.x", b""), ("a/.wh.missing", b""),
        ("c", None), ("c/new", b"new"), ("c/.wh..wh..opq", b""), ("c/after", b"after"),
    ), root)
    assert stats.whiteouts == 4 and stats.opaques == 1
    assert names(root) == ["a", "a/y", "b", "b/keep", "c", "c/after", "c/new"]


def test_opaque_keeps_same_layer_subtrees_but_drops_their_lower_content(shm: Path) -> None:
    root = shm / "r"
    lower(root)
    apply_layer(layer(("c", None), ("c/deep", None), ("c/deep/mine", b"m"), ("c/.wh..wh..opq", b"")), root)
    assert names(root / "c") == ["deep", "deep/mine"]


def test_whiteout_does_not_hide_its_own_layer(shm: Path) -> None:
    root = shm / "r"
    root.mkdir()
    apply_layer(layer(("f", b"same layer"), (".wh.f", b"")), root)
    assert (root / "f").read_bytes() == b"same layer"


@pytest.mark.parametrize("kind", ["file", "dir", "symlink", "hardlink"])
def test_any_type_replaces_any_type(shm: Path, kind: str) -> None:
    root = shm / "r"
    for old in ("file", "dir", "symlink"):
        target = root / old
        shutil.rmtree(root, ignore_errors=True)
        lower(root)
        if old == "file":
            target.write_text("old")
        elif old == "dir":
            (target / "inner").mkdir(parents=True)
            (target / "inner" / "f").write_text("f")
        else:
            os.symlink("a", target)
        if kind == "file":
            entry: TarEntry = TarEntry(old, mode=0o600)
        elif kind == "dir":
            entry = TarEntry(old, type=DIRTYPE, mode=0o711)
        elif kind == "symlink":
            entry = TarEntry(old, type=SYMTYPE, linkname="b")
        else:
            entry = TarEntry(old, type=LNKTYPE, linkname="top")
        apply_layer(layer(entry), root)
        st = os.lstat(target)
        expect = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK,
                  "hardlink": stat.S_ISREG}
        assert expect[kind](st.st_mode), (old, kind)
        if kind == "dir":
            inner = [] if old != "dir" else ["inner", "inner/f"]  # a dir over a dir merges
            assert names(target) == inner and stat.S_IMODE(st.st_mode) == 0o711
        if kind == "hardlink":
            assert st.st_ino == os.stat(root / "top").st_ino


def test_directory_mtimes_are_set_after_contents(shm: Path) -> None:
    root = shm / "r"
    root.mkdir()
    apply_layer(layer(TarEntry("d", type=DIRTYPE, mode=0o755, mtime=1000),
                      TarEntry("d/e", type=DIRTYPE, mtime=2000), ("d/e/f", b"x")), root)
    assert os.stat(root / "d").st_mtime == 1000 and os.stat(root / "d" / "e").st_mtime == 2000


def test_dir_diff_applies_back_to_new(shm: Path, snap: Snapshot) -> None:
    base, new, check = shm / "base", shm / "new", shm / "check"
    lower(base)
    os.symlink("a/x", base / "ln")
    shutil.copytree(base, new, symlinks=True)
    shutil.copytree(base, check, symlinks=True)
    (new / "a" / "x").write_text("changed content")
    shutil.rmtree(new / "c")
    (new / "b" / "keep").unlink()
    (new / "b" / "added").write_text("added")
    (new / "newdir" / "deeper").mkdir(parents=True)
    (new / "newdir" / "deeper" / "f").write_text("f")
    os.chmod(new / "top", 0o600)
    os.unlink(new / "ln")
    os.symlink("a/y", new / "ln")
    buf = io.BytesIO()
    write_dir_diff(base, new, buf)
    buf.seek(0)
    entry_names = [e.name for e in TarReader(buf)]
    assert ".wh.c" in entry_names and "c/old" not in entry_names  # only the topmost deletion
    assert "a/y" not in entry_names and "a" in entry_names  # unchanged files out, parents in
    assert "b/.wh.keep" in entry_names
    buf.seek(0)
    apply_layer(buf, check)
    assert snap(check, dir_mtimes=False) == snap(new, dir_mtimes=False)


@pytest.mark.skipif(not ROOT, reason="overlayfs mount needs root")
def test_overlay_upperdir_diff_matches_the_merged_view(shm: Path, snap: Snapshot) -> None:
    low, up, work, merged, check = (shm / n for n in ("lower", "upper", "work", "merged", "check"))
    lower(low)
    for d in (up, work, merged):
        d.mkdir()
    opts = f"lowerdir={low},upperdir={up},workdir={work}"
    if subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount overlayfs here")
    try:
        (merged / "a" / "x").unlink()  # -> whiteout device
        shutil.rmtree(merged / "c")
        (merged / "c").mkdir()  # -> opaque directory
        (merged / "c" / "fresh").write_text("fresh")
        (merged / "a" / "y").write_text("modified")
        (merged / "n" / "m").mkdir(parents=True)
        os.link(merged / "a" / "y", merged / "n" / "m" / "y-link")
        expected = snap(merged, dir_mtimes=False)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    buf = io.BytesIO()
    write_overlay_diff(up, buf)
    buf.seek(0)
    entries = {e.name: e for e in TarReader(buf)}
    assert "a/.wh.x" in entries and "c/.wh..wh..opq" in entries
    assert all(not k.startswith("trusted.overlay") for e in entries.values() for k in e.xattrs)
    ordered = list(entries)
    assert ordered.index("c/.wh..wh..opq") == ordered.index("c") + 1  # right after its directory
    shutil.copytree(low, check, symlinks=True)
    buf.seek(0)
    apply_layer(buf, check)
    assert snap(check, dir_mtimes=False) == expected


def test_write_tree_of_applied_layer_is_stable(shm: Path) -> None:
    # tree -> tar -> tree -> tar gives the same bytes: the format is a fixed point.
    src, dst = shm / "s", shm / "d"
    lower(src)
    first = io.BytesIO()
    write_tree(src, first)
    first.seek(0)
    apply_layer(first, dst)
    second = io.BytesIO()
    write_tree(dst, second)
    assert first.getvalue() == second.getvalue()


def test_owner_mapping_and_not_same_owner(shm: Path) -> None:
    def tarball() -> io.BytesIO:
        return layer(TarEntry("f", uid=10, gid=20, mode=0o640), TarEntry("d", type=DIRTYPE, uid=10, gid=20),
                     TarEntry("l", type=SYMTYPE, linkname="f", uid=10, gid=20))

    mapped = shm / "mapped"
    apply_layer(tarball(), mapped, owner=lambda u, g: (u + 100_000, g + 100_000), same_owner=True)
    for n in ("f", "d", "l"):
        st = os.lstat(mapped / n)
        assert (st.st_uid, st.st_gid) == (100_010, 100_020), n
    plain = shm / "plain"
    apply_layer(tarball(), plain, same_owner=False)
    st = os.lstat(plain / "f")
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()) and stat.S_IMODE(st.st_mode) == 0o640


def test_clean_name() -> None:
    from dockyard.archive import clean_name
    from dockyard.errors import UnsafePath

    assert clean_name("a/b") == ["a", "b"]
    assert clean_name("./a//b/./c/") == ["a", "b", "c"]
    assert clean_name("a/../b") == ["b"]
    assert clean_name("/../../etc/x") == ["etc", "x"]  # rooted: ".." stops at the root, like Go
    assert clean_name(".") == [] and clean_name("./") == []
    with pytest.raises(UnsafePath):
        clean_name("a/../../b")


def test_replacing_a_symlinked_parent_redirects_later_entries(shm: Path) -> None:
    root = shm / "r"
    apply_layer(layer(TarEntry("e", type=DIRTYPE), TarEntry("d", type=SYMTYPE, linkname="e"), ("d/x", b"x"),
                      TarEntry("d", type=DIRTYPE), ("d/y", b"y")), root)
    assert names(root) == ["d", "d/y", "e", "e/x"]
    apply_layer(layer(("f", b"file"), ("g/.wh..wh..opq", b""), TarEntry("f", type=DIRTYPE),
                      ("f/z", b"z")), root)
    assert (root / "f" / "z").read_bytes() == b"z"


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_owner_and_mode_exact_despite_setgid_dirs_and_umask(shm: Path) -> None:
    root = shm / "r"
    (root / "sg").mkdir(parents=True)
    os.chown(root / "sg", 0, 1234)
    os.chmod(root / "sg", 0o2775)
    apply_layer(layer(TarEntry("sg/f", uid=0, gid=0, mode=0o666), TarEntry("sg/g", uid=0, gid=0, mode=0o4755),
                      TarEntry("h", uid=0, gid=0, mode=0o640)), root)
    for name, mode in (("sg/f", 0o666), ("sg/g", 0o4755), ("h", 0o640)):
        st = os.stat(root / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode), name


@pytest.mark.skipif(not ROOT, reason="overlayfs mount needs root")
def test_overlay_unpacked_layers_stack_like_naive_apply(shm: Path, snap: Snapshot) -> None:
    base = layer(("a", None), ("a/x", b"x"), ("a/y", b"y"), ("b", None), ("b/old", b"o"), ("top", b"t"))
    upper = layer((".wh.top", b""), ("a/.wh.x", b""), ("b", None), ("b/.wh..wh..opq", b""), ("b/new", b"n"),
                  ("a/z", b"z"))
    naive = shm / "naive"
    apply_layer(base, naive)
    apply_layer(upper, naive)
    base.seek(0)
    upper.seek(0)
    l1, l2, merged = shm / "l1", shm / "l2", shm / "merged"
    apply_layer_overlay(base, l1)
    apply_layer_overlay(upper, l2)
    merged.mkdir()
    if subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={l2}:{l1}", str(merged)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount overlayfs here")
    try:
        assert snap(merged, dir_mtimes=False) == snap(naive, dir_mtimes=False)
        assert names(merged) == ["a", "a/y", "a/z", "b", "b/new"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_absurd_mtimes_are_clamped_not_fatal(shm: Path) -> None:
    root = shm / "r"
    apply_layer(layer(TarEntry("future", mtime=2**40), TarEntry("past", mtime=-(2**40))), root)
    assert os.stat(root / "future").st_mtime_ns == (1 << 63) - 1
    assert os.stat(root / "past").st_mtime_ns == -(1 << 63)
