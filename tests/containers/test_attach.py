"""``attach`` and ``start -a -i`` through the monitor: pipes, a real terminal (tmux), detach keys, exit
codes, Docker's refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.containers.conftest import Dy, until

pytestmark = pytest.mark.slow


def _dy_input(root: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args], input=data,
                          capture_output=True, timeout=60, check=False)


def test_start_attach_interactive_with_pipes(dy: Dy, root: Path) -> None:
    script = "read x; echo got-$x; echo oops >&2; exit 3"
    assert dy("create", "-i", "--name", "asker", "busybox:local", "sh", "-c", script).returncode == 0
    r = _dy_input(root, b"hello\n", "start", "-a", "-i", "asker")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"got-hello\n", b"oops\n")
    assert dy("logs", "asker").stdout == "got-hello\n"  # the log has it too
    # start -a without -i: the output only, as it comes, and the exit code
    assert dy("create", "--name", "printer", "busybox:local", "sh", "-c",
              "echo out; sleep 0.5; echo err >&2; exit 2").returncode == 0
    r = _dy_input(root, b"ignored\n", "start", "-a", "printer")
    assert (r.returncode, r.stdout, r.stderr) == (2, b"out\n", b"err\n")


def test_start_attach_of_an_rm_container_has_its_exit_code(dy: Dy, root: Path) -> None:
    # the monitor removes it as the process ends: the code comes from the monitor, not the state
    for _ in range(3):
        cid = dy("create", "--rm", "busybox:local", "sh", "-c", "echo bye; exit 6").stdout.strip()
        r = dy("start", "-a", cid)
        assert (r.returncode, r.stdout, r.stderr) == (6, "bye\n", "")
        assert not (root / "containers" / cid).exists()  # and it is gone by then


def test_attach_to_a_running_container(dy: Dy, root: Path) -> None:
    assert dy("run", "-d", "-i", "--name", "reader", "busybox:local", "sh", "-c",
              "read x; echo got-$x; exit 4").returncode == 0
    r = _dy_input(root, b"hello\n", "attach", "reader")
    assert (r.returncode, r.stdout) == (4, b"got-hello\n")
    r = dy("attach", "reader")
    assert (r.returncode, r.stderr) == (1, "You cannot attach to a stopped container, start it first\n")
    assert dy("run", "-d", "-it", "--name", "term", "busybox:local", "sh").returncode == 0
    r = dy("attach", "term")  # stdin is not a terminal
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
    r = dy("attach", "nope")
    assert (r.returncode, r.stderr) == (1, "Error: No such container: nope\n")


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                          check=False).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_attach_in_a_real_terminal(dy: Dy, root: Path) -> None:
    assert dy("run", "-d", "-it", "--name", "shell", "busybox:local", "sh").returncode == 0
    session = f"dyattach{os.getpid()}"
    command = (f"{sys.executable} -m dockyard --root {root} attach shell; echo ATTACH-EXIT=$?; "
               f"{sys.executable} -m dockyard --root {root} attach shell; echo AGAIN-EXIT=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "90", "-y", "25", command], check=True,
                   env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    try:
        time.sleep(2)
        subprocess.run(["tmux", "send-keys", "-t", session, "echo hi-$((40+2)); stty size", "Enter"],
                       check=True)
        assert until(lambda: "hi-42" in _pane(session) and "25 90" in _pane(session))
        subprocess.run(["tmux", "send-keys", "-t", session, "C-p", "C-q"], check=True)  # detach
        assert until(lambda: "ATTACH-EXIT=0" in _pane(session))
        assert dy("inspect", "-f", "{{.State.Running}}", "shell").stdout == "true\n"
        time.sleep(2)  # attached again
        subprocess.run(["tmux", "send-keys", "-t", session, "exit 5", "Enter"], check=True)
        assert until(lambda: "AGAIN-EXIT=5" in _pane(session))
        assert dy("inspect", "-f", "{{.State.ExitCode}}", "shell").stdout == "5\n"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
