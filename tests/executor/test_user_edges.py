"""USER resolution and path lookup at their edges: short and malformed table rows, comments, missing
homes, id bounds, the symlink hop limit, relative PATH entries and Docker's exact error texts."""

from __future__ import annotations

import errno
import locale
import os
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError
from dockyard.executor.user import ExecUser, bad_cwd, lookup_path, resolve_user, secure_join

PASSWD = """garbage
bad:x:abc:5::/bad:/bin/sh
short:x:5:6
five:x:8:8:gecos
nohome:x:7:7::
six:x:9:9::/six
odd:x:1002:50::/odd:/bin/sh
"""
GROUP = """junk
bad:x:zz:odd
#games:x:60:odd
   #video:x:61:odd
nomembers:x:77
staff:x:50:
wheel:x:10:odd,other
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(("user", "expected"), [
    ("short", ExecUser(5, 6, (), "/")),           # four fields are enough
    ("five", ExecUser(8, 8, (), "/")),            # no home field
    ("nohome", ExecUser(7, 7, (), "/")),          # empty home field
    ("six", ExecUser(9, 9, (), "/six")),          # home without a shell field
    ("odd", ExecUser(1002, 50, (10,), "/odd")),   # uid != gid; commented groups do not count
    ("odd:nomembers", ExecUser(1002, 77, (), "/odd")),  # a group row without a member list
    ("2147483647", ExecUser(2147483647, 0, (), "/")),
])
def test_resolve_user_edges(root: Path, user: str, expected: ExecUser) -> None:
    assert resolve_user(root, user) == expected


def test_a_row_with_a_bad_id_is_not_a_match(root: Path) -> None:
    with pytest.raises(ExecutionError) as caught:
        resolve_user(root, "bad")
    assert str(caught.value) == "unable to find user bad: no matching entries in passwd file"


def test_ids_past_the_limit_are_refused(root: Path) -> None:
    with pytest.raises(ExecutionError) as caught:
        resolve_user(root, "2147483648")
    assert str(caught.value) == "uids and gids must be in range 0-2147483647"


def test_tables_that_are_not_utf8_still_resolve(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(b"app:x:1000:1000:Jos\xe9:/home/app:/bin/sh\n"
                                              + "josé:x:1001:1001::/home/josé:/bin/sh\n".encode())
    (tmp_path / "etc" / "group").write_bytes(b"caf\xe9:x:70:app\n")
    assert resolve_user(tmp_path, "app") == ExecUser(1000, 1000, (70,), "/home/app")
    assert resolve_user(tmp_path, "josé") == ExecUser(1001, 1001, (), "/home/josé")


def test_tables_are_read_as_utf8_whatever_the_host_locale(tmp_path: Path) -> None:
    # An image's /etc/passwd is the image's, not the host's: a host (or an embedding program) in a
    # non-UTF-8 locale must still find the user "josé" written there in UTF-8.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("josé:x:1001:1001::/home/josé:/bin/sh\n", encoding="utf-8")
    (tmp_path / "etc" / "group").write_text("café:x:70:josé\n", encoding="utf-8")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # ASCII: what open() would decode with by default
    try:
        assert locale.getpreferredencoding(False) != "UTF-8"
        assert resolve_user(tmp_path, "josé") == ExecUser(1001, 1001, (70,), "/home/josé")
        assert resolve_user(tmp_path, "josé:café") == ExecUser(1001, 70, (), "/home/josé")
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_all_groups_without_the_primary_gid() -> None:
    assert ExecUser(1000, 1000, (50, 29)).all_groups([7], primary=False) == [50, 29, 7]


def test_bad_cwd_text_and_code() -> None:
    err = bad_cwd("/work", OSError(errno.ENOENT, "No such file or directory"))
    assert str(err) == 'cannot change to working directory "/work": no such file or directory'
    assert err.exit_code == 126
    assert str(bad_cwd("/w", OSError())) == 'cannot change to working directory "/w": '


def _tool(path: Path, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)


def test_lookup_of_relative_names_and_path_entries(tmp_path: Path) -> None:
    _tool(tmp_path / "bin" / "tool")
    _tool(tmp_path / "top")
    assert lookup_path(tmp_path, "bin/tool", "") == "bin/tool"      # a slash: no PATH search
    assert lookup_path(tmp_path, "tool", "nowhere:bin") == "bin/tool"  # relative PATH entry
    assert lookup_path(tmp_path, "top", "/bin:") == "./top"           # empty entry is "."


def test_lookup_counts_any_execute_bit(tmp_path: Path) -> None:
    _tool(tmp_path / "bin" / "others", 0o001)
    assert lookup_path(tmp_path, "others", "/bin") == "/bin/others"


def test_lookup_error_texts(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    with pytest.raises(ExecutionError) as missing:
        lookup_path(tmp_path, "/bin/nope", "/bin")
    assert str(missing.value) == 'exec: "/bin/nope": stat /bin/nope: no such file or directory'
    assert missing.value.exit_code == 127
    with pytest.raises(ExecutionError) as directory:
        lookup_path(tmp_path, "/bin", "/bin")
    assert str(directory.value) == 'exec: "/bin": is a directory'
    assert directory.value.exit_code == 126


def _chain(root: Path, links: int) -> None:
    (root / "end").mkdir()
    for i in range(links):
        os.symlink(f"/l{i + 1}" if i + 1 < links else "/end", root / f"l{i}")


def test_forty_symlink_hops_resolve(tmp_path: Path) -> None:
    _chain(tmp_path, 40)
    assert secure_join(tmp_path, "/l0/x") == str(tmp_path / "end" / "x")


def test_the_forty_first_hop_is_too_many(tmp_path: Path) -> None:
    _chain(tmp_path, 41)
    with pytest.raises(ExecutionError) as caught:
        secure_join(tmp_path, "/l0/x")
    assert str(caught.value) == "too many levels of symbolic links resolving /l0/x in the container"
    assert caught.value.exit_code == 125  # Docker's "the container could not be started"


def test_empty_and_dot_components_vanish(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    os.symlink("/run/", tmp_path / "slash")
    os.symlink("./run", tmp_path / "dot")
    assert secure_join(tmp_path, "/run/") == str(tmp_path / "run")
    assert secure_join(tmp_path, "//run//x") == str(tmp_path / "run" / "x")
    assert secure_join(tmp_path, "/slash") == str(tmp_path / "run")
    assert secure_join(tmp_path, "/dot") == str(tmp_path / "run")
