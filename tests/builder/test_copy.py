"""COPY semantics on real directories: sources, wildcards, destination rules, owners, safety."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.builder.copy import CopySpec, apply_copy, resolve_sources
from dockyard.builder.fsutil import secure_join
from dockyard.errors import BuildError


@pytest.fixture()
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text("a")
    (root / "src" / "b.py").write_text("b")
    (root / "README.md").write_text("readme")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("README.md", root / "link")
    return root


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "rootfs"
    (d / "etc").mkdir(parents=True)
    return d


def test_directory_source_copies_contents(ctx: Path, dest: Path) -> None:
    apply_copy(str(ctx), CopySpec(["src"], "/app"), str(dest))
    assert (dest / "app" / "b.py").read_text() == "b"
    assert (dest / "app" / "pkg" / "a.py").read_text() == "a"
    assert not (dest / "app" / "src").exists()


def test_file_to_path_and_to_dir(ctx: Path, dest: Path) -> None:
    apply_copy(str(ctx), CopySpec(["README.md"], "/docs/readme.txt"), str(dest))
    assert (dest / "docs" / "readme.txt").read_text() == "readme"
    apply_copy(str(ctx), CopySpec(["README.md"], "/docs2/", dest_is_dir=True), str(dest))
    assert (dest / "docs2" / "README.md").is_file()
    # An existing directory receives the file inside it.
    apply_copy(str(ctx), CopySpec(["run.sh"], "/etc"), str(dest))
    assert stat.S_IMODE((dest / "etc" / "run.sh").stat().st_mode) == 0o755


def test_wildcards_and_missing(ctx: Path, dest: Path) -> None:
    assert [p for p, _ in resolve_sources(str(ctx), "src/*.py")] == ["/src/b.py"]
    assert [p for p, _ in resolve_sources(str(ctx), "*/pkg/?.py")] == ["/src/pkg/a.py"]
    apply_copy(str(ctx), CopySpec(["*.md", "*.sh"], "/w/", dest_is_dir=True), str(dest))
    assert sorted(os.listdir(dest / "w")) == ["README.md", "run.sh"]
    with pytest.raises(BuildError, match='"/nope": not found'):
        apply_copy(str(ctx), CopySpec(["nope"], "/x"), str(dest))


def test_several_sources_onto_a_path_without_slash(ctx: Path, dest: Path) -> None:
    # As BuildKit: each source lands on the destination in turn, the last file wins; a directory source
    # makes it a directory, and a later file then goes into it.
    apply_copy(str(ctx), CopySpec(["README.md", "run.sh"], "/out"), str(dest))
    assert (dest / "out").read_text() == "#!/bin/sh\n"
    apply_copy(str(ctx), CopySpec(["src/*.py", "*.md"], "/one"), str(dest))
    assert (dest / "one").read_text() == "readme"
    apply_copy(str(ctx), CopySpec(["src", "run.sh"], "/mix"), str(dest))
    assert sorted(os.listdir(dest / "mix")) == ["b.py", "pkg", "run.sh"]


def test_owner_and_mode(ctx: Path, dest: Path) -> None:
    os.chown(ctx / "README.md", 1234, 1234)
    apply_copy(str(ctx), CopySpec(["README.md"], "/a"), str(dest))
    assert (dest / "a").stat().st_uid == 0
    apply_copy(str(ctx), CopySpec(["README.md"], "/b", preserve_owner=True), str(dest))
    assert (dest / "b").stat().st_uid == 1234
    apply_copy(str(ctx), CopySpec(["src"], "/c", chown=(7, 8), mode=lambda _m, _d: 0o640), str(dest))
    st = (dest / "c" / "pkg" / "a.py").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o640)


def test_symlinks_copied_as_links_inside_dirs(ctx: Path, dest: Path) -> None:
    apply_copy(str(ctx), CopySpec(["."], "/all"), str(dest))
    assert os.readlink(dest / "all" / "link") == "README.md"
    # A top-level symlink source is followed.
    apply_copy(str(ctx), CopySpec(["link"], "/followed"), str(dest))
    assert not (dest / "followed").is_symlink()
    assert (dest / "followed").read_text() == "readme"


def test_symlink_in_image_never_escapes(ctx: Path, dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), dest / "escape")
    os.symlink("../../../../..", dest / "up")
    apply_copy(str(ctx), CopySpec(["README.md"], "/escape/x"), str(dest))
    apply_copy(str(ctx), CopySpec(["README.md"], "/up/tmp/y"), str(dest))
    assert list(outside.iterdir()) == []
    assert (Path(secure_join(str(dest), "/escape")) / "x").read_text() == "readme"
    assert (dest / "tmp" / "y").read_text() == "readme"


def test_exclude_is_relative_to_source_root(ctx: Path, dest: Path) -> None:
    apply_copy(str(ctx), CopySpec(["."], "/e", exclude=lambda rel, _d: rel.startswith("src/pkg")), str(dest))
    assert (dest / "e" / "src" / "b.py").exists()
    assert not (dest / "e" / "src" / "pkg").exists()


def test_parents_keeps_source_path(ctx: Path, dest: Path) -> None:
    apply_copy(str(ctx), CopySpec(["src/pkg/a.py"], "/p/", dest_is_dir=True, parents=True), str(dest))
    assert (dest / "p" / "src" / "pkg" / "a.py").read_text() == "a"


def test_hard_links_preserved(ctx: Path, dest: Path) -> None:
    os.link(ctx / "README.md", ctx / "hard")
    apply_copy(str(ctx), CopySpec(["."], "/h"), str(dest))
    assert (dest / "h" / "hard").stat().st_ino == (dest / "h" / "README.md").stat().st_ino


def test_directory_copy_onto_hostile_links_stays_inside(ctx: Path, dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "all").mkdir()
    os.symlink(str(outside), dest / "all" / "src")  # a directory of the copy lands on a link out
    os.makedirs(secure_join(str(dest), str(outside)))  # ... which, inside the image, names a directory
    os.symlink(str(outside / "README.md"), dest / "all" / "README.md")  # and a file
    apply_copy(str(ctx), CopySpec(["."], "/all"), str(dest))
    assert list(outside.iterdir()) == []
    assert not (dest / "all" / "README.md").is_symlink()
    assert (dest / "all" / "README.md").read_text() == "readme"
    # The link is followed as inside the image: to <root>/<outside>, never the host's.
    assert (Path(secure_join(str(dest), str(outside))) / "pkg" / "a.py").read_text() == "a"


def test_many_files_keep_data_times_modes_and_links(tmp_path: Path, dest: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "many"
    for i in range(300):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"f{i}"
        f.write_bytes(os.urandom(i * 37))
        os.chmod(f, (0o4755, 0o640, 0o600)[i % 3])
        os.utime(f, ns=(1_000_000_000 + i, 2_000_000_000 + i))
    os.link(src / "d0" / "f0", src / "d1" / "hard")
    os.utime(src / "d3", ns=(5, 6_000_000_000))
    calls: list[str] = []
    for name in ("chown", "lchown", "fchown"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _n=name, _r=real, **k: (calls.append(_n), _r(*a, **k))[1])
    apply_copy(str(src), CopySpec(["."], "/m"), str(dest))
    # Owned by root as made: only the top directory is given its owner.
    assert len(calls) == 1
    for i in range(300):
        a, b = src / f"d{i % 7}" / f"f{i}", dest / "m" / f"d{i % 7}" / f"f{i}"
        assert a.read_bytes() == b.read_bytes()
        sa, sb = a.stat(), b.stat()
        assert (sb.st_mode, sb.st_mtime_ns, sb.st_uid) == (sa.st_mode, sa.st_mtime_ns, 0)
    assert (dest / "m" / "d1" / "hard").stat().st_ino == (dest / "m" / "d0" / "f0").stat().st_ino
    assert (dest / "m" / "d3").stat().st_mtime_ns == 6_000_000_000


def test_small_files_copy_on_the_walking_thread_large_ones_on_the_pool(
        tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from dockyard.builder import copy as copymod

    src = tmp_path / "mixed"
    src.mkdir()
    sizes = {"tiny": 10, "edge": copymod._INLINE_MAX - 1, "big": copymod._INLINE_MAX, "huge": 3 << 20}
    for name, size in sizes.items():
        (src / name).write_bytes(os.urandom(size))
        os.chmod(src / name, 0o4711)
        os.utime(src / name, ns=(7, 8_000_000_000))
    os.link(src / "huge", src / "huge-link")
    threads: dict[str, str] = {}
    real = copymod._Copier._finish_file

    def finish(self: object, host: str, *args: object) -> None:
        threads[os.path.basename(host)] = threading.current_thread().name
        real(self, host, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(copymod._Copier, "_finish_file", finish)
    apply_copy(str(src), CopySpec(["."], "/x"), str(dest))
    here = threading.current_thread().name
    assert threads["tiny"] == threads["edge"] == here
    assert threads["big"] != here and threads["huge"] != here
    for name in sizes:
        a, b = src / name, dest / "x" / name
        assert a.read_bytes() == b.read_bytes()
        assert (b.stat().st_mode, b.stat().st_mtime_ns) == (a.stat().st_mode, 8_000_000_000)
    assert (dest / "x" / "huge-link").stat().st_ino == (dest / "x" / "huge").stat().st_ino
    # Into a FUSE mount every file goes to the pool: there each syscall waits on the daemon.
    threads.clear()
    apply_copy(str(src), CopySpec(["."], "/f", dest_fuse=True), str(dest))
    assert here not in threads.values() and len(threads) == len(sizes)
    assert all((dest / "f" / name).read_bytes() == (src / name).read_bytes() for name in sizes)


def test_copy_file_range_refused_once_is_not_asked_again(tmp_path: Path, dest: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # From the context into an overlay every copy_file_range fails with EXDEV: one refusal is enough.
    import errno

    src = tmp_path / "ctx2"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}").write_bytes(os.urandom(100 + i * 1000))
    asked: list[int] = []

    def refuse(fd_in: int, fd_out: int, count: int, *args: object) -> int:
        asked.append(count)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    apply_copy(str(src), CopySpec(["."], "/y"), str(dest))
    assert len(asked) == 1
    for i in range(40):
        assert (dest / "y" / f"f{i}").read_bytes() == (src / f"f{i}").read_bytes()


def test_a_cancelled_copy_stops_between_files(tmp_path: Path, dest: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from dockyard.builder import copy as copymod
    from dockyard.errors import Interrupted

    src = tmp_path / "big"
    for d in range(4):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(50):  # every fifth large enough for the copy threads
            (src / f"d{d}" / f"f{i}").write_bytes(os.urandom(copymod._INLINE_MAX if i % 5 == 0 else 10))
    cancel = threading.Event()
    done: list[str] = []
    real = copymod._Copier._finish_file

    def finish(self: object, host: str, *args: object) -> None:
        real(self, host, *args)  # type: ignore[arg-type]
        done.append(host)
        if len(done) >= 10:
            cancel.set()  # Ctrl-C, as the build's cancel event sees it

    monkeypatch.setattr(copymod._Copier, "_finish_file", finish)
    with pytest.raises(Interrupted, match="context canceled"):
        apply_copy(str(src), CopySpec(["."], "/c", cancel=cancel), str(dest))
    assert 10 <= len(done) < 40  # the files in flight on the copy threads when it stopped end too
    assert not [t.name for t in threading.enumerate() if t.name.startswith("copy")]
