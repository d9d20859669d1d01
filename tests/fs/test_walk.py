"""The one in-root path walker: ``..`` at the root, absolute and relative links, loops, dangling links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.errors import UnsafePath
from dockyard.fs import MAX_LINKS, SymlinkLoop, secure_join, walk


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small tree: /etc/passwd, /usr/bin/tool, /run, and links of every kind."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "usr" / "bin").mkdir(parents=True)
    (r / "usr" / "bin" / "tool").write_text("")
    (r / "run").mkdir()
    (r / "var").mkdir()
    os.symlink("/run", r / "var" / "run")  # absolute: re-rooted
    os.symlink("../usr/bin", r / "etc" / "bin")  # relative: from the link's directory
    os.symlink("../../../../../etc", r / "escape")  # more ".." than there are parents
    os.symlink("/../../etc/passwd", r / "passwd-link")  # a link to a file
    os.symlink("/nowhere/at/all", r / "dangling")
    os.symlink("a", r / "b")
    os.symlink("b", r / "a")  # a two-link loop
    return r


def join(root: Path, *parts: str) -> str:
    return os.path.join(str(root), *parts)


@pytest.mark.parametrize("path", ["/..", "..", "/../..", "/../../..", "/new/../../..", "/etc/../../.."])
def test_dotdot_at_the_root_stays_at_the_root(root: Path, path: str) -> None:
    # Odd and even counts alike: an odd count must not leave one level too high or too low.
    assert secure_join(root, path) == str(root)


@pytest.mark.parametrize(("path", "expected"), [
    ("/../etc/passwd", ("etc", "passwd")),
    ("/../../../etc/passwd", ("etc", "passwd")),
    ("../../etc", ("etc",)),
    ("/usr/../../bin", ("bin",)),
    ("/usr/bin/../../../usr/./bin//tool", ("usr", "bin", "tool")),
    ("etc/passwd", ("etc", "passwd")),  # relative paths are taken from the root
    ("", ()),
    ("/", ()),
])
def test_lexical_parts(root: Path, path: str, expected: tuple[str, ...]) -> None:
    assert secure_join(root, path) == join(root, *expected)


def test_absolute_link_is_rerooted(root: Path) -> None:
    assert secure_join(root, "/var/run/x") == join(root, "run", "x")
    assert secure_join(root, "/var/run/../etc") == join(root, "etc")  # ".." of the target, not of /var


def test_relative_link_starts_at_its_directory(root: Path) -> None:
    assert secure_join(root, "/etc/bin/tool") == join(root, "usr", "bin", "tool")
    assert secure_join(root, "/etc/bin/..") == join(root, "usr")


def test_link_climbing_above_the_root_is_clamped(root: Path) -> None:
    assert secure_join(root, "/escape/passwd") == join(root, "etc", "passwd")
    assert secure_join(root, "/escape/../..") == str(root)


def test_link_to_a_file_mid_path(root: Path) -> None:
    # Nothing below a file exists; the walk keeps the rest as written, as securejoin does.
    assert secure_join(root, "/passwd-link") == join(root, "etc", "passwd")
    assert secure_join(root, "/passwd-link/x/y") == join(root, "etc", "passwd", "x", "y")
    assert secure_join(root, "/passwd-link/../group") == join(root, "etc", "group")  # ".." of the target


def test_dangling_link_gives_its_target_inside_the_root(root: Path) -> None:
    assert secure_join(root, "/dangling") == join(root, "nowhere", "at", "all")
    assert secure_join(root, "/dangling/deeper") == join(root, "nowhere", "at", "all", "deeper")


def test_missing_components_are_kept(root: Path) -> None:
    assert secure_join(root, "/new/dir/../file") == join(root, "new", "file")


def test_loops_are_an_error(root: Path) -> None:
    with pytest.raises(SymlinkLoop, match="too many levels of symbolic links resolving /a/x"):
        secure_join(root, "/a/x")
    assert issubclass(SymlinkLoop, UnsafePath)
    os.symlink(".", root / "self")  # a link to its own directory is followed, not a loop
    assert secure_join(root, "/self/self/etc") == join(root, "etc")
    os.symlink("/up/x", root / "up")  # a loop through an absolute target
    with pytest.raises(SymlinkLoop):
        secure_join(root, "/up")


def test_link_chain_up_to_the_bound(tmp_path: Path) -> None:
    # MAX_LINKS links in a row resolve; one more is too many (Linux's MAXSYMLINKS).
    for i in range(MAX_LINKS + 1):
        os.symlink(f"l{i + 1}", tmp_path / f"l{i}")
    (tmp_path / f"l{MAX_LINKS + 1}").mkdir()
    assert secure_join(tmp_path, "/l1") == join(tmp_path, f"l{MAX_LINKS + 1}")
    with pytest.raises(SymlinkLoop):
        secure_join(tmp_path, "/l0")


def test_host_root_is_joined_without_double_slashes() -> None:
    assert secure_join("/", "/../etc") == "/etc"


def test_walk_through_a_callback() -> None:
    # A tree that is not on disk (as the layers of an overlay are not one directory).
    links = {("lib",): "usr/lib", ("usr", "lib", "up"): "../../..", ("abs",): "/usr"}
    seen: list[tuple[str, ...]] = []

    def read_link(parts: list[str]) -> str | None:
        seen.append(tuple(parts))
        return links.get(tuple(parts))

    assert walk("/lib/up/abs/x", read_link) == ["usr", "x"]
    assert seen[0] == ("lib",) and ("usr", "lib", "up") in seen
    assert walk("/..", read_link) == []
    with pytest.raises(SymlinkLoop):
        walk("/l", lambda parts: "l" if parts == ["l"] else None)
    with pytest.raises(SymlinkLoop):
        walk("/abs", read_link, limit=0)
    assert walk("/abs", read_link, limit=1) == ["usr"]
