"""SafeRoot on its own (``docker cp`` resolves paths with it too): what each call opens, creates and
caches, the symlinks it follows inside the root, its error texts, and the process umask reader."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.archive import apply as apply_mod
from dockyard.archive.apply import SafeRoot, _current_umask
from dockyard.errors import CorruptData, NotFound, UnsafePath


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a/b").mkdir(parents=True)
    (root / "c/d").mkdir(parents=True)
    (root / "a/file").write_text("x")
    os.symlink("../c", root / "a/up")       # relative, climbs out of a/
    os.symlink("/c/d", root / "a/abs")      # absolute: taken inside the root
    os.symlink("..", root / "a/parent")     # ends in ".."
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("/../../..", root / "climb")  # absolute ".." stays at the root
    os.symlink("../up", root / "a/b/back")  # back up to a/, then through a/up
    return root


@pytest.fixture
def sr(tree: Path) -> Iterator[SafeRoot]:
    s = SafeRoot(os.open(tree, os.O_RDONLY | os.O_DIRECTORY))
    try:
        yield s
    finally:
        s.close()
        os.close(s.fd)


def same(fd: int, path: Path) -> bool:
    a, b = os.fstat(fd), os.stat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_no_components_is_the_root_itself(sr: SafeRoot) -> None:
    assert sr.dir_fd([], False, "w") == sr.fd


@pytest.mark.parametrize("comps,where", [
    (["a", "b"], "a/b"),
    (["a", "up"], "c"),
    (["a", "up", "d"], "c/d"),
    (["a", "abs"], "c/d"),
    (["a", "parent"], "."),
    (["a", "parent", "a", "b"], "a/b"),
    (["a", "up", "..", "a"], "a"),
    (["climb", "a"], "a"),
    (["a", "b", "back"], "c"),
    (["a", "b", "back", "d"], "c/d"),
])
def test_symlinks_are_followed_inside_the_root(sr: SafeRoot, tree: Path, comps: list[str],
                                               where: str) -> None:
    assert same(sr.dir_fd(comps, False, "w"), tree / where)


def test_missing_directories_are_made_0755_only_when_asked(sr: SafeRoot, tree: Path) -> None:
    with pytest.raises(NotFound) as err:
        sr.dir_fd(["a", "new", "deeper"], False, "entry x")
    assert str(err.value) == "entry x: directory 'a/new' does not exist"
    assert not (tree / "a/new").exists()
    old = os.umask(0)
    try:
        fd = sr.dir_fd(["a", "up", "new", "deeper"], True, "entry x")
    finally:
        os.umask(old)
    assert same(fd, tree / "c/new/deeper")
    assert stat.S_IMODE(os.stat(tree / "c/new").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tree / "c/new/deeper").st_mode) == 0o755


def test_a_dangling_symlink_gets_its_target_made(sr: SafeRoot, tree: Path) -> None:
    os.symlink("/made/here", tree / "dangling")
    assert same(sr.dir_fd(["dangling", "x"], True, "w"), tree / "made/here/x")
    assert (tree / "dangling").is_symlink()


def test_a_file_on_the_way_is_not_a_directory(sr: SafeRoot) -> None:
    with pytest.raises(CorruptData) as err:
        sr.dir_fd(["a", "file", "x"], True, "entry y")
    assert str(err.value) == "entry y: 'a/file' is not a directory"


def test_a_symlink_loop_is_refused_and_leaks_no_descriptor(sr: SafeRoot) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for create in (False, True):
        with pytest.raises(UnsafePath) as err:
            sr.dir_fd(["loop1", "x"], create, "entry z")
        assert str(err.value) == "entry z: too many levels of symbolic links"
    with pytest.raises(NotFound):
        sr.dir_fd(["a", "nothing"], False, "w")
    assert len(os.listdir("/proc/self/fd")) == before


def test_descriptors_are_cached_by_path_until_invalidated_and_closed_on_release(sr: SafeRoot) -> None:
    fd = sr.dir_fd(["a", "b"], False, "w")
    assert sr.dir_fd(["a", "b"], False, "w") == fd
    assert sr.dir_fd(["a", "up"], False, "w") != sr.dir_fd(["c"], False, "w")  # keyed by the path asked
    sr.invalidate()
    again = sr.dir_fd(["a", "b"], False, "w")
    assert again != fd and is_open(fd)  # a caller may still hold the forgotten one
    sr.release()
    assert not is_open(fd) and is_open(again)
    sr.release()  # nothing retired: nothing to do
    sr.close()
    assert not is_open(again)


def test_the_cache_is_emptied_when_it_holds_128_descriptors(sr: SafeRoot, tree: Path) -> None:
    for i in range(129):
        (tree / "many" / str(i)).mkdir(parents=True)
    fds = [sr.dir_fd(["many", str(i)], False, "w") for i in range(128)]
    assert sr.dir_fd(["many", "0"], False, "w") == fds[0]  # 128 cached: still there
    sr.dir_fd(["many", "128"], False, "w")  # the 129th: the cache starts again
    assert sr.dir_fd(["many", "0"], False, "w") != fds[0]
    assert all(is_open(fd) for fd in fds)
    sr.release()
    assert not any(is_open(fd) for fd in fds)


def test_setgid_is_read_per_descriptor_and_forgotten_on_invalidate(sr: SafeRoot, tree: Path) -> None:
    fd = sr.dir_fd(["a", "b"], False, "w")
    assert sr.is_setgid(fd) is False
    os.chmod(tree / "a/b", 0o2755)
    assert sr.is_setgid(fd) is False  # cached with the descriptor
    sr.invalidate()
    assert sr.is_setgid(sr.dir_fd(["a", "b"], False, "w")) is True


# -- the umask, read without setting it ------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0])
def test_current_umask_is_the_process_umask(mask: int) -> None:
    old = os.umask(mask)
    try:
        assert _current_umask() == mask
        assert os.umask(mask) == mask  # and it did not change it
    finally:
        os.umask(old)


@pytest.mark.parametrize("status", [b"Name:\tx\n", b"Name:\tx\nUmask:\n", b"Umask:\t0x9\n"],
                         ids=["no-umask", "empty", "not-octal"])
def test_an_unreadable_umask_means_always_chmod(monkeypatch: pytest.MonkeyPatch, status: bytes,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(apply_mod, "open", lambda *a, **k: io.BytesIO(status), raising=False)
    assert _current_umask() == 0o7777
    old = os.umask(0o077)
    try:
        from dockyard.archive import TarWriter
        from dockyard.archive.tarheader import TarEntry
        buf = io.BytesIO()
        with TarWriter(buf) as tw:
            tw.add(TarEntry("f", size=1, mode=0o644), b"x")
        buf.seek(0)
        apply_mod.apply_layer(buf, tmp_path / "r", same_owner=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "r/f").st_mode) == 0o644


def test_no_proc_means_always_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*a: object, **k: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", "/proc/self/status")
    monkeypatch.setattr(apply_mod, "open", missing, raising=False)
    assert _current_umask() == 0o7777
