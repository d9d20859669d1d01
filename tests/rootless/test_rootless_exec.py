"""Rootless commands that reach into a detached container: ``exec`` joins the user namespace the
container's ``run -d`` made (from the host's, where this user owns it), with its output, exit code,
``-u``, ``-e``, ``-w`` and ``-it``; ``kill``, ``stop`` and ``cp`` reach it when its process runs as any
uid (through the helper outside); ``cp``, ``diff``, ``top`` and ``commit`` work on it, ``pause`` says why
it cannot (no writable cgroup), and the namespace of another user is never joined nor signalled."""

from __future__ import annotations

import json
import os
import pty
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dockyard
from dockyard.executor import outside
from dockyard.executor.enter import BOOTSTRAP

from .conftest import USER, Runner
from .test_rootless import BUSYBOX_TAR

pytestmark = [pytest.mark.xdist_group("rootless"), pytest.mark.slow, pytest.mark.busybox]


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def image(rootless: Runner) -> str:
    _ok(rootless("import", str(BUSYBOX_TAR), "execbase:local"))
    return "execbase:local"


@pytest.fixture(scope="module")
def box(rootless: Runner, image: str) -> Iterator[str]:
    """A detached container of the test user, sleeping."""
    name = f"exec-{os.getpid()}"
    _ok(rootless("run", "-d", "--name", name, image, "sleep", "600"))
    yield name
    rootless("rm", "-f", name)


def test_rootless_exec_output_and_exit_code(rootless: Runner, box: str) -> None:
    done = rootless("exec", box, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    # In the container's pid namespace (its sleep is pid 1) and user namespace (0 = the user).
    out = _ok(rootless("container", "exec", box, "sh", "-c",
                       "tr '\\0' ' ' < /proc/1/cmdline; echo; id -u; cat /proc/self/uid_map"))
    lines = out.splitlines()
    assert lines[0] == "sleep 600 " and lines[1] == "0"
    assert lines[2].split() == ["0", str(_uid()), "1"]
    done = rootless("exec", box, "no-such-program")
    assert done.returncode == 126 and "executable file not found" in done.stderr


def _uid() -> int:
    return pwd.getpwnam(USER).pw_uid


def test_rootless_exec_user_env_workdir(rootless: Runner, box: str) -> None:
    out = _ok(rootless("exec", "-u", "1000:1000", "-e", "GREETING=hi", "-w", "/tmp", box, "sh", "-c",
                       "id -u; id -g; echo $GREETING; pwd; touch mine; stat -c %u mine"))
    assert out.split() == ["1000", "1000", "hi", "/tmp", "1000"]
    done = rootless("exec", "-w", "/no/such/dir", box, "true")
    assert done.returncode == 126 and 'chdir to cwd ("/no/such/dir")' in done.stderr


def _read_until(fd: int, wanted: bytes, deadline: float) -> bytes:
    seen = b""
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_rootless_exec_interactive_tty(rootless_argv: Callable[..., list[str]], box: str) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(rootless_argv("exec", "-it", box, "sh"), stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        prompt = _read_until(master, b"# ", deadline)
        assert b"# " in prompt, prompt
        os.write(master, b"tty; echo $((6*7)); exit 5\n")
        out = _read_until(master, b"\n42\r\n", deadline)
        assert b"/dev/pts/" in out and b"\n42\r\n" in out, out
        assert proc.wait(60) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_rootless_cp_diff_top_commit(rootless: Runner, box: str) -> None:
    shared = Path(tempfile.mkdtemp(prefix="dockyard-rootless-cp-", dir="/var/tmp"))
    try:
        shared.chmod(0o777)
        (shared / "in").write_text("from root\n")  # root's file: readable, not the user's own
        (shared / "in").chmod(0o644)
        _ok(rootless("cp", str(shared / "in"), f"{box}:/in"))
        assert _ok(rootless("exec", box, "cat", "/in")) == "from root\n"
        _ok(rootless("exec", box, "sh", "-c", "echo made > /out"))
        _ok(rootless("cp", f"{box}:/out", str(shared / "out")))
        assert (shared / "out").read_text() == "made\n"
        assert (shared / "out").stat().st_uid == _uid()
        changes = _ok(rootless("diff", box)).splitlines()
        assert "A /in" in changes and "A /out" in changes
        assert "sleep 600" in _ok(rootless("top", box))
        image = _ok(rootless("commit", box, f"execsnap:{os.getpid()}")).strip()
        assert _ok(rootless("run", "--rm", image, "cat", "/in", "/out")) == "from root\nmade\n"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_rootless_pause_says_why_not(rootless: Runner, box: str) -> None:
    done = rootless("pause", box)
    assert done.returncode == 1
    assert "cannot pause the container: it has no cgroup of its own" in done.stderr
    assert _ok(rootless("inspect", "-f", "{{.State.Status}}", box)).strip() == "running"


def test_another_users_namespace_is_not_joined(rootless: Runner, box: str) -> None:
    """The exec helper, run by root on the test user's container, refuses: the namespace is not root's
    (root could join it; the owner check is what stops a stale pid leading anywhere else)."""
    pid = int(_ok(rootless("inspect", "-f", "{{.State.Pid}}", box)))
    err_r, err_w = os.pipe()
    req = {"pid": pid, "args": ["true"], "env": [], "user": "", "cwd": "/", "errfd": err_w}
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-I", "-c", BOOTSTRAP.format(path=src), json.dumps(req)],
                          pass_fds=(err_w,), timeout=60)
    os.close(err_w)
    with os.fdopen(err_r, "rb") as f:
        message = f.read().decode()
    assert proc.returncode == 125
    assert f"the user namespace of process {pid} belongs to uid {_uid()}, not to this user" in message


def test_rootless_kill_and_stop_reach_any_uid(rootless: Runner, image: str) -> None:
    """A process of uid 1000 in the container is a sub-id's on the host: a later dockyard's own user
    namespace may not signal it; the helper outside (the namespace's owner) does."""
    name = f"signals-{os.getpid()}"
    _ok(rootless("run", "-d", "-u", "1000", "--name", name, image, "sh", "-c",
                 "trap 'exit 7' TERM; while :; do sleep 1; done"))
    try:
        _ok(rootless("stop", "-t", "30", name))
        assert _ok(rootless("inspect", "-f", "{{.State.ExitCode}}", name)).strip() == "7"
        _ok(rootless("start", name))
        _ok(rootless("kill", name))
        assert _ok(rootless("wait", name)).strip() == "137"
        _ok(rootless("start", name))
        _ok(rootless("rm", "-f", name))
        assert name not in _ok(rootless("ps", "-a", "--format", "{{.Names}}"))
    finally:
        rootless("rm", "-f", name)


def test_the_helper_signals_only_this_users_containers(rootless: Runner, box: str) -> None:
    host = subprocess.Popen(["sleep", "60"])
    try:
        reply = outside._signal(host.pid, 15)  # a process of the host: never
        assert reply == {"error": f"rootless: process {host.pid} is not in a container of this user"}
        assert host.poll() is None
        pid = int(_ok(rootless("inspect", "-f", "{{.State.Pid}}", box)))
        reply = outside._signal(pid, 0)  # the test user's container, asked as root: not this user's
        assert reply == {"error": f"rootless: process {pid} is not in a container of this user"}
    finally:
        host.kill()
        host.wait()


def test_rootless_cp_reaches_a_running_container_of_any_uid(rootless: Runner, image: str) -> None:
    """``cp`` works in the running container's own mounts (its volumes too), which a later dockyard
    reaches through ``/proc/PID/root`` only when the process is the user's own uid 0: for uid 1000 the
    helper outside opens that root."""
    shared = Path(tempfile.mkdtemp(prefix="dockyard-rootless-vol-", dir="/var/tmp"))
    name = f"cp-uid-{os.getpid()}"
    try:
        shared.chmod(0o755)
        (shared / "v").write_text("in the volume\n")
        (shared / "v").chmod(0o644)
        _ok(rootless("run", "-d", "-u", "1000", "-v", f"{shared}:/vol", "--name", name, image,
                     "sleep", "600"))
        with tempfile.TemporaryDirectory(dir="/var/tmp") as out:
            os.chmod(out, 0o777)
            _ok(rootless("cp", f"{name}:/vol/v", f"{out}/v"))
            assert Path(out, "v").read_text() == "in the volume\n"
        _ok(rootless("cp", str(shared / "v"), f"{name}:/tmp/copied"))
        assert _ok(rootless("exec", name, "cat", "/tmp/copied")) == "in the volume\n"
    finally:
        rootless("rm", "-f", name)
        shutil.rmtree(shared, ignore_errors=True)


def test_the_helper_opens_only_this_users_container_roots(rootless: Runner, box: str) -> None:
    host = subprocess.Popen(["sleep", "60"])
    try:
        assert outside._root(host.pid) == {"error": f"rootless: process {host.pid} is not in a container "
                                                    "of this user"}
    finally:
        host.kill()
        host.wait()
