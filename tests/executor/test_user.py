"""Docker's USER rules, symlink-safe joins and PATH lookup, on a small root in a temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.executor import LineBuffer, Mount, ProcessSpec, RootfsSpec, resolve_user
from dockyard.executor.user import ExecUser, lookup_path, secure_join

PASSWD = """root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:App:/home/app:/bin/sh
# a comment
svc:x:1001:1001::/srv:/bin/false
broken-line
"""
GROUP = """root:x:0:
app:x:1000:
staff:x:50:app,svc
audio:x:29:app
wheel:x:10:root
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(("user", "expected"), [
    ("", ExecUser(0, 0, (10,), "/root")),
    ("root", ExecUser(0, 0, (10,), "/root")),
    ("app", ExecUser(1000, 1000, (50, 29), "/home/app")),
    ("1000", ExecUser(1000, 1000, (50, 29), "/home/app")),
    ("svc", ExecUser(1001, 1001, (50,), "/srv")),
    ("app:staff", ExecUser(1000, 50, (), "/home/app")),
    ("app:29", ExecUser(1000, 29, (), "/home/app")),
    ("1000:4242", ExecUser(1000, 4242, (), "/home/app")),
    ("4242", ExecUser(4242, 0, (), "/")),
    ("4242:4343", ExecUser(4242, 4343, (), "/")),
])
def test_resolve_user(root: Path, user: str, expected: ExecUser) -> None:
    assert resolve_user(root, user) == expected


def test_all_groups_puts_the_primary_gid_first() -> None:
    assert ExecUser(1000, 1000, (50, 29)).all_groups([29, 7]) == [1000, 50, 29, 7]


@pytest.mark.parametrize(("user", "message"), [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    ("app:nogroup", "unable to find group nogroup: no matching entries in group file"),
    ("99999999999", "uids and gids must be in range 0-2147483647"),
])
def test_resolve_user_errors(root: Path, user: str, message: str) -> None:
    with pytest.raises(ExecutionError) as info:
        resolve_user(root, user)
    assert str(info.value) == message


def test_missing_passwd_allows_numeric_ids_only(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "5:6") == ExecUser(5, 6, (), "/")
    with pytest.raises(ExecutionError, match="unable to find user app"):
        resolve_user(tmp_path, "app")


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")  # absolute: resolved against the root, not the host
    os.symlink("../../../../etc", tmp_path / "escape")
    assert secure_join(tmp_path, "/var/run/x") == str(tmp_path / "run" / "x")
    assert secure_join(tmp_path, "/escape/passwd") == str(tmp_path / "etc" / "passwd")
    assert secure_join(tmp_path, "/../../a/./b/..") == str(tmp_path / "a")
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(ExecutionError, match="too many levels"):
        secure_join(tmp_path, "/loop/x")


def test_lookup_path(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "tool").chmod(0o755)
    (tmp_path / "bin" / "data").write_text("")
    assert lookup_path(tmp_path, "tool", "/usr/bin:/bin") == "/bin/tool"
    assert lookup_path(tmp_path, "/bin/tool", "") == "/bin/tool"
    with pytest.raises(ExecutionError) as info:
        lookup_path(tmp_path, "data", "/bin")
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "data": executable file not found in $PATH'
    with pytest.raises(ExecutionError) as info:
        lookup_path(tmp_path, "/bin", "/bin")
    assert info.value.exit_code == 126


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"args": []}, "no command given"),
    ({"args": ["x"], "cwd": "rel"}, "working directory must be an absolute path"),
    ({"args": ["x"], "env": ["NOEQUALS"]}, "must be KEY=value"),
    ({"args": ["x"], "network": "bridge"}, "unsupported network mode"),
])
def test_spec_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ProcessSpec(**kwargs)  # type: ignore[arg-type]


def test_mount_validation_and_json_round_trip() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        Mount("rel", source="/x")
    with pytest.raises(InvalidArgument, match="needs a source"):
        Mount("/x")
    with pytest.raises(InvalidArgument, match="needs data"):
        Mount("/x", type="secret")
    with pytest.raises(InvalidArgument, match="lower directory"):
        RootfsSpec([], Path("/u"), Path("/w"))
    spec = ProcessSpec(args=["a", "b"], env=["A=1"], cwd="/w", user="app", network="none",
                       mounts=[Mount("/s", type="secret", data=b"\x00\xff"), Mount("/t", type="tmpfs")],
                       extra_groups=[5], hosts=[("h", "1.2.3.4")])
    assert ProcessSpec.from_json(spec.to_json()) == ProcessSpec(
        args=["a", "b"], env=["A=1"], cwd="/w", user="app", network="none",
        mounts=[Mount("/s", type="secret", data=b"\x00\xff"), Mount("/t", type="tmpfs")],
        extra_groups=[5], hosts=[("h", "1.2.3.4")])


def test_line_buffer() -> None:
    lines: list[bytes] = []
    buf = LineBuffer(lines.append, limit=8)
    for chunk in (b"a", b"b\nc", b"d\n\ne", b"0123456789", b"xy"):
        buf(chunk)
    assert lines == [b"ab\n", b"cd\n", b"\n", b"e0123456"]
    buf.flush()
    buf.flush()
    assert lines[-1] == b"789xy" and len(lines) == 5


def test_open_executor(tmp_path: Path) -> None:
    from dockyard.executor import NamespaceExecutor, RuncExecutor, open_executor

    assert isinstance(open_executor(tmp_path), NamespaceExecutor)
    if shutil.which("runc"):
        assert isinstance(open_executor(tmp_path, "runc"), RuncExecutor)
    with pytest.raises(InvalidArgument, match=r"unknown runtime 'crun' \(use one of: builtin, runc\)"):
        open_executor(tmp_path, "crun")


def test_layered_view_follows_overlay_rules(tmp_path: Path) -> None:
    from dockyard.executor.rootfs import LayeredView

    top, mid, base = (tmp_path / n for n in ("top", "mid", "base"))
    for layer in (top, mid, base):
        (layer / "etc").mkdir(parents=True)
    (base / "etc" / "hosts").write_text("base")
    (base / "etc" / "gone").write_text("base")
    (base / "opaque" / "old").mkdir(parents=True)
    (base / "file-then-dir").write_text("")
    (base / "run").mkdir()
    (mid / "etc" / "hosts").write_text("mid")
    os.mknod(mid / "etc" / "gone", 0o600 | 0o020000, 0)  # a whiteout
    (mid / "opaque").mkdir()
    os.setxattr(mid / "opaque", "trusted.overlay.opaque", b"y")
    (mid / "file-then-dir").mkdir()
    (top / "etc" / "resolv.conf").symlink_to("/run/resolv.conf")
    (top / "var").mkdir()
    (top / "var" / "run").symlink_to("../run")
    view = LayeredView([str(top), str(mid), str(base)])

    assert view.entry(("etc", "hosts"))[1] == str(mid / "etc" / "hosts")  # type: ignore[index]
    assert view.entry(("etc", "gone")) is None
    assert view.entry(("opaque", "old")) is None
    assert view.entry(("file-then-dir",)) is not None
    assert view.resolve("/etc/resolv.conf") == (("run", "resolv.conf"), None)
    rel, found = view.resolve("/var/run/../etc/./hosts")
    assert rel == ("etc", "hosts") and found is not None
    assert view.resolve("/etc/hosts/x") == (("etc", "hosts", "x"), None)
    assert view.resolve("/../../../etc/hosts")[0] == ("etc", "hosts")  # ".." at the root stays there
    (top / "loop").symlink_to("/loop/x")
    with pytest.raises(ExecutionError, match="too many levels of symbolic links resolving /loop"):
        view.resolve("/loop")


def test_non_root_gets_a_clear_error(tmp_path: Path) -> None:
    # In a child that drops to uid 65534: the executor refuses before touching anything.
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from dockyard.errors import ExecutionError
        from dockyard.executor import NamespaceExecutor, ProcessSpec
        import dockyard.executor.namespace
        os.setgid(65534); os.setuid(65534)  # after the imports: the interpreter may live under /root
        try:
            NamespaceExecutor(Path({str(tmp_path)!r})).run(ProcessSpec(args=["true"]), Path("/"))
        except ExecutionError as exc:
            print(exc)
    """)
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "the built-in executor needs root privileges (running as uid 65534)\n"
