"""apply_layer's edges: error texts and classes, hard links, metadata of what it creates, opaque
directories in a plain tree, and the defaults of the overlay variant."""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import TarWriter, apply_layer, apply_layer_overlay
from dockyard.archive.apply import _wrap, clean_name, extract
from dockyard.archive.tarheader import CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, SYMTYPE, TarEntry
from dockyard.errors import CorruptData, NoSpace, StoreError, UnsafePath
from dockyard.progress import Event

ROOT = os.geteuid() == 0


def layer(*members: TarEntry | tuple[TarEntry, bytes], trailer: bytes = b"") -> io.BytesIO:
    buf = io.BytesIO()
    with TarWriter(buf) as tw:
        for m in members:
            if isinstance(m, tuple):
                tw.add(m[0], m[1])
            else:
                tw.add(m)
    buf.write(trailer)
    buf.seek(0)
    return buf


class Blocks(io.BytesIO):
    """A stream that returns one 512-byte block per read, as a slow pipe may."""

    def read(self, n: int | None = -1, /) -> bytes:
        return super().read(512)


def f(name: str, body: bytes = b"", **kw: object) -> tuple[TarEntry, bytes]:
    return TarEntry(name, size=len(body), **kw), body  # type: ignore[arg-type]


def d(name: str, **kw: object) -> TarEntry:
    return TarEntry(name, type=DIRTYPE, mode=kw.pop("mode", 0o755), **kw)  # type: ignore[arg-type]


def link(name: str, target: str) -> TarEntry:
    return TarEntry(name, type=LNKTYPE, linkname=target)


# -- error texts --------------------------------------------------------------------------------

def test_a_long_name_is_shortened_in_errors_with_its_offset(tmp_path: Path) -> None:
    name = "n" * 70 + "m" * 70 + "e" * 40
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(f("first", b"x"), link(name, "missing")), tmp_path / "r")
    shown = "n" * 60 + "..." + "e" * 40
    assert str(err.value) == f"tar entry {shown!r} at offset 1024: hard link target 'missing' does not exist"


def test_a_name_of_120_characters_is_shown_whole(tmp_path: Path) -> None:
    name = "x" * 120
    with pytest.raises(CorruptData, match=f"^tar entry '{name}' at offset 0: hard link target"):
        apply_layer(layer(link(name, "missing")), tmp_path / "r")


@pytest.mark.parametrize("code,cls,text", [
    (errno.ENOSPC, NoSpace, "cannot write the layer: no space left on device"),
    (errno.EDQUOT, NoSpace, "cannot write the layer: no space left on device"),
    (errno.EROFS, StoreError, "cannot write the layer: Read-only file system"),
    (errno.EACCES, StoreError, "cannot write the layer: Permission denied"),
    (errno.EIO, StoreError, "cannot write the layer: Input/output error"),
    (errno.ENAMETOOLONG, CorruptData, "File name too long"),
])
def test_os_errors_become_one_line_errors_of_the_right_kind(code: int, cls: type, text: str) -> None:
    err = _wrap("tar entry 'x' at offset 0", OSError(code, os.strerror(code)))
    assert type(err) is cls
    assert str(err) == f"tar entry 'x' at offset 0: {text}"


def test_an_os_error_without_strerror_and_other_errors() -> None:
    assert str(_wrap("here", OSError("odd"))) == "here: odd"
    err = _wrap("here", ValueError("bad value"))
    assert type(err) is CorruptData and str(err) == "here: bad value"


# -- hard links ---------------------------------------------------------------------------------

def test_hard_links_share_an_inode_and_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "r"
    members = (d("a"), f("a/file", b"body"), link("b", "a/file"), link("a/file", "a/file"))
    stats = apply_layer(layer(*members), root)
    assert os.stat(root / "b").st_ino == os.stat(root / "a/file").st_ino
    assert (root / "a/file").read_bytes() == b"body"
    assert stats.hardlinks == 1  # the link to itself does nothing


@pytest.mark.parametrize("target", ["/", ".", "a/..", "./"])
def test_a_hard_link_to_the_root_is_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(UnsafePath, match=r"^tar entry 'h' at offset \d+: hard link to the root directory$"):
        apply_layer(layer(d("a"), link("h", target)), tmp_path / "r")


@pytest.mark.parametrize("target", ["nothere", "nodir/file", "a/nothere"])
def test_a_hard_link_to_nothing_is_corrupt(tmp_path: Path, target: str) -> None:
    message = rf"^tar entry 'h' at offset \d+: hard link target '{target}' does not exist$"
    with pytest.raises(CorruptData, match=message):
        apply_layer(layer(d("a"), link("h", target)), tmp_path / "r")


def test_a_hard_link_to_a_directory_is_corrupt(tmp_path: Path) -> None:
    message = r"^tar entry 'h' at offset \d+: cannot hard link to 'a' \(a directory\?\)$"
    with pytest.raises(CorruptData, match=message):
        apply_layer(layer(d("a"), link("h", "a")), tmp_path / "r")


# -- metadata of what is created ----------------------------------------------------------------

def test_modes_times_and_xattrs_of_files_links_and_dirs(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(
        d("dir", mode=0o750, mtime=1_000_000),
        f("dir/file", b"x", mode=0o4751, mtime=2_000_000, xattrs={"user.note": b"hello"}),
        TarEntry("dir/sym", type=SYMTYPE, linkname="file", mtime=3_000_000),
    ), root, same_owner=False)
    st = os.lstat(root / "dir/file")
    assert stat.S_IMODE(st.st_mode) == 0o4751 and st.st_mtime == 2_000_000
    assert os.getxattr(root / "dir/file", "user.note") == b"hello"
    assert os.lstat(root / "dir/sym").st_mtime == 3_000_000  # the link's own time, not its target's
    assert os.stat(root / "dir/file").st_mtime == 2_000_000
    st = os.stat(root / "dir")
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_mtime == 1_000_000


def test_refused_xattrs_are_skipped_but_a_too_large_one_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(f("f", b"x", xattrs={"bogus.ns": b"1", "user.ok": b"2"})), root, same_owner=False)
    assert os.getxattr(root / "f", "user.ok") == b"2"
    with pytest.raises(CorruptData, match=r"^tar entry 'g' at offset 0: "):
        big = layer(f("g", b"x", xattrs={"user.big": b"v" * (1 << 17)}))
        apply_layer(big, tmp_path / "s", same_owner=False)


@pytest.mark.skipif(not ROOT, reason="chown to other owners needs root")
def test_owners_are_kept_by_default_as_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(f("f", b"x", uid=12, gid=34), TarEntry("l", type=SYMTYPE, linkname="f", uid=56, gid=78),
                      d("d", uid=90, gid=91)), root)
    assert (os.lstat(root / "f").st_uid, os.lstat(root / "f").st_gid) == (12, 34)
    assert (os.lstat(root / "l").st_uid, os.lstat(root / "l").st_gid) == (56, 78)
    assert (os.lstat(root / "d").st_uid, os.lstat(root / "d").st_gid) == (90, 91)


# -- opaque directories in a plain tree -----------------------------------------------------------

@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_directory_keeps_only_this_layers_entries(tmp_path: Path, marker_first: bool) -> None:
    root = tmp_path / "r"
    for p in ("o/a", "o/sub/x", "o/sub/y", "o/sub/deeper/z", "o/gone/w", "other/keep"):
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text("lower")
    ours = [d("o"), d("o/sub"), f("o/sub/y", b"upper"), d("o/sub/deeper"), f("o/new", b"n")]
    marker = TarEntry("o/.wh..wh..opq")
    members = [marker, *ours] if marker_first else [*ours, marker]
    stats = apply_layer(layer(*members), root, same_owner=False)
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert got == ["o", "o/new", "o/sub", "o/sub/deeper", "o/sub/y", "other", "other/keep"]
    assert (root / "o/sub/y").read_text() == "upper"
    assert stats.opaques == 1


def test_a_whiteout_removes_a_lower_directory_tree_and_a_symlink_not_its_target(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "tree/sub").mkdir(parents=True)
    (root / "tree/sub/file").write_text("x")
    (root / "target").mkdir()
    (root / "target/keep").write_text("k")
    os.symlink("target", root / "link")
    stats = apply_layer(layer(TarEntry(".wh.tree"), TarEntry(".wh.link"), TarEntry(".wh.absent")), root)
    assert sorted(os.listdir(root)) == ["target"] and (root / "target/keep").exists()
    assert stats.whiteouts == 3


# -- the overlay variant's defaults ---------------------------------------------------------------

def test_overlay_apply_reads_to_the_end_and_reports_done(tmp_path: Path) -> None:
    events: list[tuple[str, str, int]] = []
    stream = layer(f("a", b"1"), trailer=b"\0" * 4096 + b"junk")
    size = len(stream.getvalue())
    stats = apply_layer_overlay(stream, tmp_path / "up", progress=lambda e: events.append(
        (e.id, e.status, e.current)), progress_id="layer1")
    assert stream.tell() == size  # drained: a hashing wrapper sees every byte
    assert stats.files == 1 and (tmp_path / "up/a").read_bytes() == b"1"
    assert events[-1] == ("layer1", "done", size)
    kept = Blocks(layer(f("a", b"1"), trailer=b"junk" * 1000).getvalue())
    apply_layer_overlay(kept, tmp_path / "up2", drain=False)
    assert kept.tell() == 1536  # header, body block, the first zero block: the rest is left unread


@pytest.mark.skipif(not ROOT, reason="owners need root")
def test_overlay_apply_keeps_owners_and_maps_them(tmp_path: Path) -> None:
    apply_layer_overlay(layer(f("a", b"1", uid=5, gid=6)), tmp_path / "up")
    assert (os.lstat(tmp_path / "up/a").st_uid, os.lstat(tmp_path / "up/a").st_gid) == (5, 6)
    shifted = layer(f("a", b"1", uid=5, gid=6))
    apply_layer_overlay(shifted, tmp_path / "up2", owner=lambda u, g: (u + 1000, g + 2000))
    assert (os.lstat(tmp_path / "up2/a").st_uid, os.lstat(tmp_path / "up2/a").st_gid) == (1005, 2006)
    apply_layer_overlay(layer(f("a", b"1", uid=5, gid=6)), tmp_path / "up3", same_owner=False)
    assert os.lstat(tmp_path / "up3/a").st_uid == os.geteuid()


# -- more edges (mutation testing found them unpinned) --------------------------------------------

def test_a_name_of_121_characters_is_shortened(tmp_path: Path) -> None:
    name = "y" * 121
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(link(name, "missing")), tmp_path / "r")
    assert str(err.value).startswith(f"tar entry {'y' * 60 + '...' + 'y' * 40!r} at offset 0: ")


def test_a_hard_link_climbing_out_names_itself_with_its_offset(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath) as err:
        apply_layer(layer(f("first", b"x"), link("h", "../../etc/passwd")), tmp_path / "r")
    assert str(err.value) == "tar entry '../../etc/passwd' at offset 1024 points outside the root"


def test_xattrs_of_a_symlink_never_reach_its_target(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(f("target", b"x"), TarEntry("l", type=SYMTYPE, linkname="target",
                                                  xattrs={"user.k": b"v"})), root, same_owner=False)
    assert os.readlink(root / "l") == "target"
    assert "user.k" not in os.listxattr(root / "target")


@pytest.mark.skipif(not ROOT, reason="the immutable flag needs CAP_LINUX_IMMUTABLE")
def test_a_file_that_cannot_be_replaced_is_an_error_naming_the_entry(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_text("lower")
    if subprocess.run(["chattr", "+i", str(root / "f")], capture_output=True).returncode != 0:
        pytest.skip("no chattr +i on this filesystem")
    try:
        with pytest.raises(CorruptData) as err:
            apply_layer(layer(f("f", b"upper")), root)
        assert str(err.value) == "tar entry 'f' at offset 0: Operation not permitted"
        assert (root / "f").read_text() == "lower"
    finally:
        subprocess.run(["chattr", "-i", str(root / "f")], check=True)


def test_progress_every_4_mib_of_tar_then_done(tmp_path: Path) -> None:
    events: list[Event] = []
    mib = 1 << 20
    stream = layer(f("a", bytes(4 * mib)), f("b", bytes(4 * mib - 1024)), f("c"))
    size = len(stream.getvalue())
    apply_layer(stream, tmp_path / "r", progress=events.append, progress_id="L")
    # After "a" 4 MiB + its header were read; the next report is due 4 MiB later, at 8 MiB + 512,
    # which "b" ends just short of and "c" (a header, no body) reaches exactly.
    assert events == [Event("L", "extracting", current=4 * mib + 512),
                      Event("L", "extracting", current=8 * mib + 512),
                      Event("L", "extracting", "done", current=size, total=size)]
    quiet: list[Event] = []
    apply_layer_overlay(layer(f("a", b"1")), tmp_path / "up", progress=quiet.append)
    apply_layer(layer(f("a", b"1")), tmp_path / "r2", progress=quiet.append)
    assert [e.id for e in quiet] == ["", ""]  # no id given: the empty one


def test_extract_takes_whiteout_names_as_files_and_reads_to_the_end(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "keep").write_text("k")
    stream = layer(f(".wh.keep", b"w"), d("o"), f("o/.wh..wh..opq", b"q"), trailer=b"junk" * 300)
    stats = extract(stream, root, same_owner=False)
    assert stream.tell() == len(stream.getvalue())
    assert (root / "keep").read_text() == "k"
    assert (root / ".wh.keep").read_bytes() == b"w" and (root / "o/.wh..wh..opq").read_bytes() == b"q"
    assert (stats.files, stats.dirs, stats.whiteouts, stats.opaques) == (2, 1, 0, 0)
    with pytest.raises(UnsafePath):
        extract(layer(f("../x", b"x")), root)


@pytest.mark.skipif(not ROOT, reason="owners need root")
def test_extract_keeps_or_maps_owners_as_asked(tmp_path: Path) -> None:
    extract(layer(f("a", b"1", uid=5, gid=6)), tmp_path / "r1")
    assert (os.lstat(tmp_path / "r1/a").st_uid, os.lstat(tmp_path / "r1/a").st_gid) == (5, 6)
    extract(layer(f("a", b"1", uid=5, gid=6)), tmp_path / "r2", owner=lambda u, g: (u + 10, g + 20))
    assert (os.lstat(tmp_path / "r2/a").st_uid, os.lstat(tmp_path / "r2/a").st_gid) == (15, 26)
    extract(layer(f("a", b"1", uid=5, gid=6)), tmp_path / "r3", same_owner=False)
    assert os.lstat(tmp_path / "r3/a").st_uid == os.geteuid()


def test_an_opaque_directory_keeps_a_symlink_of_this_layer_and_does_not_follow_it(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "o/old").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    (root / "elsewhere/lower").write_text("kept")
    members = [d("o"), TarEntry("o/link", type=SYMTYPE, linkname="../elsewhere"), TarEntry("o/.wh..wh..opq")]
    apply_layer(layer(*members), root, same_owner=False)
    assert sorted(os.listdir(root / "o")) == ["link"]
    assert os.readlink(root / "o/link") == "../elsewhere"
    assert (root / "elsewhere/lower").read_text() == "kept"


def test_a_hard_link_through_a_file_or_to_a_missing_directory_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "r"
    message = r"^tar entry 'h' at offset \d+: 'file' is not a directory$"
    with pytest.raises(CorruptData, match=message):
        apply_layer(layer(f("file", b"x"), link("h", "file/x")), root)
    with pytest.raises(CorruptData, match="hard link target 'nodir/x' does not exist"):
        apply_layer(layer(link("h", "nodir/x")), root)
    assert sorted(os.listdir(root)) == ["file"]  # the missing directory was not made


def test_each_hard_link_and_opaque_marker_is_counted(tmp_path: Path) -> None:
    stats = apply_layer(layer(f("a", b"x"), link("b", "a"), link("c", "a"), d("o"), d("p"),
                              TarEntry("o/.wh..wh..opq"), TarEntry("p/.wh..wh..opq")), tmp_path / "r")
    assert (stats.hardlinks, stats.opaques) == (2, 2)


def test_an_opaque_marker_under_a_file_names_the_entry(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "o").write_text("lower file")
    message = r"^tar entry 'o/.wh..wh..opq' at offset 0: 'o' is not a directory$"
    with pytest.raises(CorruptData, match=message):
        apply_layer(layer(TarEntry("o/.wh..wh..opq")), root)


@pytest.mark.parametrize("where", ["", "p/", "p/q/"])
def test_an_opaque_marker_at_any_depth_keeps_this_layers_entries(tmp_path: Path, where: str) -> None:
    root = tmp_path / "r"
    (root / where / "lower").mkdir(parents=True)
    (root / where / "lower/x").write_text("old")
    (root / where / "old").write_text("old")
    parents = [d(where[:i]) for i in range(len(where)) if where[i] == "/"]
    members = [*parents, d(where + "new"), f(where + "new/y", b"y"), f(where + "file", b"f"),
               TarEntry(where + ".wh..wh..opq")]
    apply_layer(layer(*members), root, same_owner=False)
    assert sorted(os.listdir(root / where)) == ["file", "new"]
    assert (root / where / "new/y").read_bytes() == b"y" and (root / where / "file").read_bytes() == b"f"


def both_ways(scratch: Path, run: Callable[[Path, bool], object]) -> None:
    """``run(root, privileged)`` in this process, and (when we are root) again in a child as nobody,
    without root's right to ignore modes (``scratch``, on tmpfs, is handed to nobody first)."""
    run(scratch / "here", ROOT)
    if not ROOT:
        return
    os.chown(scratch, 65534, 65534)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            except PermissionError:  # root without CAP_SETUID (a user namespace)
                code = 77
                raise
            run(scratch / "nobody", False)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 77:
        pytest.skip("cannot switch to an unprivileged user here")
    assert os.waitstatus_to_exitcode(status) == 0


def test_directory_modes_are_set_deepest_first(shm: Path) -> None:
    # A parent made unsearchable (0644) before its child's mode is set would lock an unprivileged
    # user out of the child: the deepest directories are finished first.
    members = (d("a", mode=0o644, mtime=1000), d("a/b", mode=0o700, mtime=2000),
               d("a/b/c", mode=0o750, mtime=3000), d("z", mode=0o700, mtime=4000))

    def run(root: Path, privileged: bool) -> None:
        apply_layer(layer(*members), root, same_owner=False)
        os.chmod(root / "a", 0o755)  # to look inside
        assert stat.S_IMODE(os.stat(root / "a/b").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(root / "a/b/c").st_mode) == 0o750
        assert os.stat(root / "a/b").st_mtime == 2000 and os.stat(root / "a/b/c").st_mtime == 3000

    both_ways(shm, run)


def test_directory_metadata_lands_through_spaces_and_an_absolute_symlink(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(d("my dir"), d("my dir/sub", mode=0o711, mtime=5000), d("real"),
                      TarEntry("l", type=SYMTYPE, linkname="/real"), d("l/sub", mode=0o701, mtime=6000)),
                root, same_owner=False)
    st = os.stat(root / "my dir/sub")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o711, 5000)
    st = os.stat(root / "real/sub")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o701, 6000)


def test_a_directory_whose_parent_became_a_dangling_symlink_is_skipped_quietly(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layer(layer(d("a"), d("a/b", mode=0o700), TarEntry("a", type=SYMTYPE, linkname="/nowhere")), root)
    assert os.listdir(root) == ["a"] and os.readlink(root / "a") == "/nowhere"  # nothing made for it


@pytest.mark.parametrize("name", ["a/.wh..", "a/.wh..."])
def test_a_dot_whiteout_is_refused_and_removes_nothing(tmp_path: Path, name: str) -> None:
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "a/inside").write_text("x")
    (root / "keep").write_text("k")
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(TarEntry(name)), root)
    assert str(err.value) == f"tar entry {name!r} at offset 0: malformed whiteout name"
    assert (root / "keep").exists() and (root / "a/inside").exists()


def test_a_whiteout_under_a_file_names_the_entry(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_text("x")
    with pytest.raises(CorruptData, match=r"^tar entry 'f/.wh.x' at offset 0: 'f' is not a directory$"):
        apply_layer(layer(TarEntry("f/.wh.x")), root)


@pytest.mark.skipif(not ROOT, reason="overlay whiteouts are device nodes: root only")
def test_an_overlay_whiteout_replaces_this_layers_own_file(tmp_path: Path) -> None:
    up = tmp_path / "up"
    apply_layer_overlay(layer(d("d"), f("d/x", b"1"), TarEntry("d/.wh.x")), up)
    st = os.lstat(up / "d/x")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@pytest.mark.parametrize("below", ["", "/sub"])
def test_a_root_that_is_a_file_is_a_one_line_error(tmp_path: Path, below: str) -> None:
    (tmp_path / "file").write_text("x")
    root = str(tmp_path / "file") + below
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(f("a", b"1")), root)
    assert str(err.value) == f"{root!r} is not a directory"


def test_clean_name_keeps_the_fast_path_for_clean_names_only() -> None:
    assert clean_name("a/b/c") == ["a", "b", "c"]
    assert clean_name("/etc/x") == ["etc", "x"]
    assert clean_name("a/b/") == ["a", "b"]
    assert clean_name("a//b") == ["a", "b"]
    assert clean_name("a/./b") == ["a", "b"] and clean_name(".hidden/x") == [".hidden", "x"]
    with pytest.raises(UnsafePath) as err:
        clean_name("a/../../b")
    assert str(err.value) == "tar entry 'a/../../b' at offset 0 points outside the root"


def test_an_entry_climbing_out_names_its_offset(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath) as err:
        apply_layer(layer(f("first", b"x"), f("../x", b"y")), tmp_path / "r")
    assert str(err.value) == "tar entry '../x' at offset 1024 points outside the root"


def test_a_file_under_a_file_and_an_empty_symlink_name_the_entry(tmp_path: Path) -> None:
    root = tmp_path / "r"
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(f("f", b"x"), f("f/x", b"y")), root)
    assert str(err.value) == "tar entry 'f/x' at offset 1024: 'f' is not a directory"
    with pytest.raises(CorruptData) as err:
        apply_layer(layer(TarEntry("s", type=SYMTYPE, linkname="")), root)
    assert str(err.value) == "tar entry 's' at offset 0: symlink with an empty target"


def test_counts_of_entries_dirs_and_devices(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "p1").write_text("a lower file the fifo replaces")
    stats = apply_layer(layer(d("a"), d("b"), TarEntry("p1", type=FIFOTYPE, mode=0o640),
                              TarEntry("p2", type=FIFOTYPE), f("x", b"1")), root, same_owner=False)
    assert (stats.entries, stats.dirs, stats.devices, stats.files, stats.skipped) == (5, 2, 2, 1, 0)
    st = os.lstat(root / "p1")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_devices_without_cap_mknod_are_skipped_and_counted(shm: Path) -> None:
    def run(root: Path, privileged: bool) -> None:
        stats = apply_layer(layer(TarEntry("c1", type=CHRTYPE, devmajor=1, devminor=3),
                                  TarEntry("c2", type=CHRTYPE, devmajor=1, devminor=5), f("x", b"1")),
                            root, same_owner=False)
        made = 2 if privileged else 0
        assert (stats.skipped, stats.devices, stats.files) == (2 - made, made, 1)
        assert len(os.listdir(root)) == 1 + made

    both_ways(shm, run)


def test_a_big_layer_applies_without_a_progress_sink(tmp_path: Path) -> None:
    stats = apply_layer(layer(f("a", bytes(5 << 20)), f("b", b"1")), tmp_path / "r")
    assert stats.bytes == (5 << 20) + 1


@pytest.mark.parametrize("later", ["file", "symlink"])
def test_a_directory_replaced_later_in_the_layer_does_not_stop_the_others(tmp_path: Path,
                                                                          later: str) -> None:
    root = tmp_path / "r"
    replace = f("x/y", b"now a file") if later == "file" else TarEntry("x/y", type=SYMTYPE, linkname="/z")
    apply_layer(layer(d("x", mode=0o711), d("x/y"), replace, d("z", mode=0o700, mtime=7)), root,
                same_owner=False)
    assert stat.S_IMODE(os.stat(root / "z").st_mode) == 0o700 and os.stat(root / "z").st_mtime == 7
    assert stat.S_IMODE(os.stat(root / "x").st_mode) == 0o711


def test_a_directorys_metadata_error_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(CorruptData, match=r"^directory 'd': Argument list too long$"):
        apply_layer(layer(d("d", xattrs={"user.big": b"v" * (1 << 17)})), tmp_path / "r", same_owner=False)


def test_a_directory_reached_through_a_symlink_is_finished_before_the_real_parent(shm: Path) -> None:
    # By depth, not by name: "l/sub" is x/sub, and x (0644, unsearchable) must come after it.
    members = (d("x", mode=0o644), TarEntry("l", type=SYMTYPE, linkname="x"), d("l/sub", mode=0o701))

    def run(root: Path, privileged: bool) -> None:
        apply_layer(layer(*members), root, same_owner=False)
        os.chmod(root / "x", 0o755)
        assert stat.S_IMODE(os.stat(root / "x/sub").st_mode) == 0o701

    both_ways(shm, run)


def test_a_nested_whiteout_never_hides_its_own_layers_file(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "p").mkdir(parents=True)
    (root / "p/old").write_text("lower")
    stats = apply_layer(layer(d("p"), f("p/x", b"mine"), TarEntry("p/.wh.x"), TarEntry("p/.wh.old")), root)
    assert sorted(os.listdir(root / "p")) == ["x"] and stats.whiteouts == 2


def test_extract_without_drain_is_not_an_option_it_reads_to_the_end(tmp_path: Path) -> None:
    stream = Blocks(layer(f("a", b"1"), trailer=b"junk" * 1000).getvalue())
    extract(stream, tmp_path / "r", same_owner=False)
    assert stream.tell() == len(stream.getvalue())
