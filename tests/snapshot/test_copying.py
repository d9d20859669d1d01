"""The copying snapshotter: overlay layers copied into a plain directory, and the changes a process
made there written back in overlay form, as overlayfs would have put them in its upper directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.snapshot.copying import CopiedTree

OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def _root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("whiteouts and owners need root")


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    for name in OPAQUE:
        try:
            if os.getxattr(path, name) == b"y":
                return True
        except OSError:
            pass
    return False


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    """Two layers, top first: the top one deletes, replaces and makes a directory opaque."""
    _root_required()
    base, top = tmp_path / "base", tmp_path / "top"
    for d in ("etc", "keep", "gone", "opq"):
        (base / d).mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root\n")
    (base / "keep" / "a").write_text("a")
    (base / "gone" / "x").write_text("x")
    (base / "opq" / "old").write_text("old")
    (base / "file").write_text("f")
    os.link(base / "keep" / "a", base / "keep" / "a-link")
    os.chown(base / "keep" / "a", 1000, 1000)
    (top / "opq").mkdir(parents=True)
    os.setxattr(top / "opq", "user.overlay.opaque", b"y")
    (top / "opq" / "new").write_text("new")
    _whiteout(top / "gone")
    _whiteout(top / "file")
    return [str(top), str(base)]


def test_materialize_applies_whiteouts_and_opaque_dirs(tmp_path: Path, layers: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    CopiedTree(root).materialize(layers)
    assert _tree(root) == {"etc", "etc/passwd", "keep", "keep/a", "keep/a-link", "opq", "opq/new"}
    st = os.lstat(root / "keep" / "a")
    assert (st.st_uid, st.st_gid, st.st_nlink) == (1000, 1000, 2)
    assert st.st_ino == os.lstat(root / "keep" / "a-link").st_ino


def test_changes_are_written_as_overlayfs_would(tmp_path: Path, layers: list[str]) -> None:
    root, upper = tmp_path / "root", tmp_path / "upper"
    root.mkdir()
    upper.mkdir()
    tree = CopiedTree(root)
    tree.materialize(layers)
    (root / "stub").write_text("mount point")
    tree.record()
    (root / "etc" / "passwd").write_text("root\napp\n")   # changed content
    os.chmod(root / "keep" / "a", 0o600)                  # metadata only
    (root / "opq" / "new").unlink()                       # deleted
    os.rename(root / "etc", root / "etc2")                # renamed dir: whiteout + new dir
    (root / "new" / "deep").mkdir(parents=True)           # new tree
    (root / "new" / "deep" / "f").write_text("n")
    (root / "keep2").mkdir()
    (root / "stub").write_text("generated, never in the layer")
    tree.write_changes(upper, ignore=["/stub"])
    assert _tree(upper) == {"etc", "etc2", "etc2/passwd", "keep", "keep/a", "keep/a-link", "opq", "opq/new",
                            "new", "new/deep", "new/deep/f", "keep2"}
    assert _is_whiteout(upper / "etc") and _is_whiteout(upper / "opq" / "new")
    assert stat.S_IMODE(os.lstat(upper / "keep" / "a").st_mode) == 0o600
    # Both names of the changed inode come up, still one inode.
    assert os.lstat(upper / "keep" / "a").st_ino == os.lstat(upper / "keep" / "a-link").st_ino
    assert not _opaque(upper / "keep")
    assert not any(n.startswith("user.dockyard") for n in os.listxattr(upper / "keep"))  # the record's tag


def test_a_replaced_directory_becomes_opaque(tmp_path: Path, layers: list[str]) -> None:
    root, upper = tmp_path / "root", tmp_path / "upper"
    root.mkdir()
    upper.mkdir()
    tree = CopiedTree(root)
    tree.materialize(layers)
    tree.record()
    for child in (root / "keep").iterdir():
        child.unlink()
    (root / "keep").rmdir()
    (root / "keep").mkdir()
    (root / "keep" / "b").write_text("b")
    tree.write_changes(upper)
    assert _tree(upper) == {"keep", "keep/b"}
    assert _opaque(upper / "keep")


def test_nothing_changed_writes_nothing(tmp_path: Path, layers: list[str]) -> None:
    root, upper = tmp_path / "root", tmp_path / "upper"
    root.mkdir()
    upper.mkdir()
    tree = CopiedTree(root)
    tree.materialize(layers)
    tree.record()
    (root / "etc" / "passwd").read_text()
    tree.write_changes(upper)
    assert _tree(upper) == set()


def test_file_form_whiteouts_are_read_and_made_where_devices_are_refused(
        tmp_path: Path, layers: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A layer written where 0/0 devices cannot be made (a store on overlayfs) spells them as files.
    file_form = tmp_path / "fileform"
    (file_form / "keep").mkdir(parents=True)
    (file_form / "keep" / ".wh..wh..opq").write_text("")
    (file_form / "keep" / "c").write_text("c")
    (file_form / ".wh.etc").write_text("")
    root, upper = tmp_path / "root", tmp_path / "upper"
    root.mkdir()
    upper.mkdir()
    tree = CopiedTree(root)
    tree.materialize([str(file_form), *layers])
    assert _tree(root) == {"keep", "keep/c", "opq", "opq/new"}
    tree.record()
    (root / "keep" / "c").unlink()

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "mknod", refuse)
    tree.write_changes(upper)
    assert _tree(upper) == {"keep", "keep/.wh.c"}
    assert stat.S_IMODE(os.lstat(upper / "keep" / ".wh.c").st_mode) == 0o600
