"""``dockyard run -it`` on a real pseudo-terminal, as a user at a terminal meets it."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.cli.test_run_cmd import root  # noqa: F401  (the fixture: a store with busybox:local)


def _read_until(master: int, token: bytes, seen: bytearray, limit: float = 20.0) -> bytes:
    """Read the terminal until ``token`` appears after what was already consumed; return the new text."""
    start = len(seen)
    end = time.monotonic() + limit  # a hang guard, not a timing assertion
    while token not in seen[start:]:
        left = end - time.monotonic()
        assert left > 0, f"waited for {token!r}; the terminal showed {bytes(seen[-300:])!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return bytes(seen[start:])


def _wait_for_process(cmdline: bytes) -> None:
    """Until a process with this exact command line runs (the host sees the container's processes)."""
    end = time.monotonic() + 20  # a hang guard
    while time.monotonic() < end:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no process {cmdline!r} started")


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_run_it_gives_the_container_a_real_terminal(root: Path) -> None:  # noqa: F811
    master, slave = os.openpty()
    _set_size(slave, 24, 80)
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "-it", "-e", "PS1=PROMPT> ",
                             "busybox:local", "sh"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env={**os.environ, "DOCKYARD_ROOT": str(root)})
    seen = bytearray()
    try:
        _read_until(master, b"PROMPT> ", seen)
        os.write(master, b"tty; stty size\n")
        out = _read_until(master, b"PROMPT> ", seen)
        assert b"/dev/pts/0\r\n" in out  # the terminal is the container's own
        assert b"24 80\r\n" in out
        # Typed text is echoed once, by the container's terminal (the host's is raw).
        os.write(master, b"echo one-$((1+1))\n")
        out = _read_until(master, b"PROMPT> ", seen)
        assert out.count(b"echo one-$((1+1))") == 1 and b"one-2\r\n" in out
        # A resize reaches the container.
        _set_size(master, 40, 120)
        os.kill(proc.pid, signal.SIGWINCH)
        for _ in range(100):  # dockyard's SIGWINCH handler runs asynchronously: ask until it has
            os.write(master, b"stty size\n")
            if b"40 120\r\n" in _read_until(master, b"\r\nPROMPT> ", seen):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the new window size never reached the container")
        # Ctrl-C goes to the container's foreground process, not to dockyard.
        os.write(master, b"sleep 31\n")
        _wait_for_process(b"sleep\x0031\x00")
        os.write(master, b"\x03")
        os.write(master, b"echo after-ctrl-c\n")
        # The output line, then the prompt (keys typed before the line editor starts may be dropped).
        _read_until(master, b"\r\nafter-ctrl-c\r\nPROMPT> ", seen)
        assert proc.poll() is None
        # Ctrl-D ends the shell, and with it the run.
        os.write(master, b"\x04")
        assert proc.wait(timeout=20) == 0
        assert termios.tcgetattr(slave) == before  # the host terminal is restored
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def test_run_t_without_i_still_has_a_terminal(root: Path) -> None:  # noqa: F811
    # Without -i nothing is forwarded to the terminal (so no read here: it would wait for ever, as
    # under docker run -t), but the process still has one.
    r = subprocess.run([sys.executable, "-m", "dockyard", "run", "-t", "busybox:local", "sh", "-c",
                        "tty; test -t 0 && echo stdin-is-a-tty"], input="typed\n", capture_output=True,
                       text=True, env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/dev/pts/0", "stdin-is-a-tty"]
