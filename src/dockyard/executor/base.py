"""The executor interface and what both backends share: run directories, output pumping, results."""

from __future__ import annotations

import os
import secrets
import selectors
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard.errors import ExecutionError, Interrupted, InvalidArgument
from dockyard.executor.spec import ProcessSpec, Rootfs

OutputCallback = Callable[[bytes], None]
Output = OutputCallback | int | None
"""Where a stream goes: a callback receiving chunks, a file descriptor handed to the process, or nowhere."""


class RunHandle(Protocol):
    """A run in flight, handed to ``on_start``: lets ``dockyard run`` forward signals to the process."""

    def signal(self, sig: int) -> None:
        """Send signal ``sig`` to the container's first process (ignored once it has exited)."""


OnStart = Callable[[RunHandle], None]


class Executor(Protocol):
    """Runs one process in a container and returns its exit code (128+n if killed by signal n).

    Raises :class:`~dockyard.errors.ExecutionError` when the process cannot start (``exit_code`` 125,
    126 or 127 as Docker), on ``timeout`` (after killing every process of the run), and
    :class:`~dockyard.errors.Interrupted` when ``cancel`` is set or on ``KeyboardInterrupt``. Nothing of
    the run (process or mount) survives the call. ``on_start`` receives a :class:`RunHandle` once the
    run is under way.
    """

    def run(self, spec: ProcessSpec, rootfs: Rootfs, *, stdout: Output = None, stderr: Output = None,
            stdin: int | None = None, timeout: float | None = None,
            cancel: threading.Event | None = None, on_start: OnStart | None = None) -> int: ...

    def close(self) -> None: ...


RUNTIMES = ("builtin", "runc")


def require_root(what: str) -> None:
    """Raise a clear error when not root: namespaces, mounts and runc need it (rootless is not done)."""
    if os.geteuid() != 0:
        raise ExecutionError(f"{what} needs root privileges (running as uid {os.geteuid()})")


def open_executor(state_dir: Path, runtime: str = "builtin") -> Executor:
    """The executor for ``--runtime``: ``builtin`` (namespaces, no external binary) or ``runc``."""
    if runtime == "builtin":
        from dockyard.executor.namespace import NamespaceExecutor

        return NamespaceExecutor(state_dir)
    if runtime == "runc":
        from dockyard.executor.runc import RuncExecutor

        return RuncExecutor(state_dir)
    raise InvalidArgument(f"unknown runtime {runtime!r} (use one of: {', '.join(RUNTIMES)})")


class LineBuffer:
    """An output callback that passes on whole lines (with their newline) to ``emit``.

    For line-oriented consumers such as progress events; a line longer than ``limit`` bytes is passed
    on in pieces, and :meth:`flush` passes on an unterminated last line.
    """

    def __init__(self, emit: OutputCallback, limit: int = 65536) -> None:
        self._emit = emit
        self._limit = limit
        self._pending = b""

    def __call__(self, data: bytes) -> None:
        buf = self._pending + data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            self._emit(buf[start:end + 1])
            start = end + 1
        rest = buf[start:]
        while len(rest) >= self._limit:
            self._emit(rest[:self._limit])
            rest = rest[self._limit:]
        self._pending = rest

    def flush(self) -> None:
        """Pass on what is left of an unterminated line."""
        if self._pending:
            self._emit(self._pending)
            self._pending = b""


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


_own_start: tuple[int, str] = (0, "")


def new_run_dir(state_dir: Path) -> Path:
    """A fresh ``state_dir/runs/<pid>.<start time>.<random>`` directory with ``rootfs`` and ``scratch``.

    The owner's pid and start time let :func:`~dockyard.executor.cleanup.cleanup_stale` tell a live run
    from one whose process died.
    """
    global _own_start
    pid = os.getpid()
    if _own_start[0] != pid:  # read once per process (and again in a forked child)
        _own_start = (pid, _start_time(pid))
    path = state_dir / "runs" / f"{pid}.{_own_start[1]}.{secrets.token_hex(6)}"
    (path / "rootfs").mkdir(parents=True, mode=0o700)
    (path / "scratch").mkdir(mode=0o700)
    return path


def run_dir_owner_alive(name: str) -> bool:
    """Whether the process that made run directory ``name`` still runs."""
    pid_text, _, rest = name.partition(".")
    start = rest.partition(".")[0]
    if not pid_text.isdigit():
        return False
    try:
        return _start_time(int(pid_text)) == start
    except (OSError, IndexError):
        return False


def output_fds(stdout: Output, stderr: Output) -> tuple[list[int], dict[int, OutputCallback], list[int]]:
    """Child-side fds for stdout and stderr, parent-side read ends with their callbacks, fds to close."""
    child: list[int] = []
    readers: dict[int, OutputCallback] = {}
    to_close: list[int] = []
    for out in (stdout, stderr):
        if out is None:
            fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            child.append(fd)
            to_close.append(fd)
        elif isinstance(out, int):
            child.append(out)
        else:
            r, w = os.pipe2(os.O_CLOEXEC)
            readers[r] = out
            child.append(w)
            to_close.append(w)
    return child, readers, to_close


def _writer(fd: int) -> OutputCallback:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write


Readers = dict[int, OutputCallback]


def open_tty(stdin: int | None, stdout: Output) -> tuple[int, Readers, Readers]:
    """A pseudo-terminal for a ``tty`` run: (slave for the child, output readers, input readers).

    The master's output goes to ``stdout`` (callback or fd); what ``stdin`` (if any) delivers is copied
    into the master; the window size is taken from ``stdin`` when it is a terminal.
    """
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if stdin is not None and os.isatty(stdin):
        import fcntl
        import termios

        size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    if stdout is None:
        outputs: dict[int, OutputCallback] = {master: lambda data: None}
    else:
        outputs = {master: stdout if callable(stdout) else _writer(stdout)}
    inputs: dict[int, OutputCallback] = {}
    if stdin is not None:
        to_master = _writer(master)

        def feed(data: bytes) -> None:
            try:
                to_master(data)
            except OSError:
                pass  # the process is gone; its exit status will tell

        inputs[os.dup(stdin)] = feed
    return slave, outputs, inputs


def pump(readers: dict[int, OutputCallback], sel: selectors.BaseSelector) -> None:
    """Register pipe read ends on ``sel``; the callback is the key's data."""
    for fd, cb in readers.items():
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, cb)


def read_ready(fd: int, cb: OutputCallback, sel: selectors.BaseSelector, still_open: set[int]) -> None:
    """Deliver what a pipe has; at EOF unregister and close it, and drop it from ``still_open`` (so that
    nobody closes the number again once another thread may have reused it)."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""  # EIO: a pseudo-terminal whose other side is closed
    if data:
        cb(data)
    else:
        sel.unregister(fd)
        still_open.discard(fd)
        os.close(fd)


def close_all(fds: set[int]) -> None:
    """Close and forget every descriptor in ``fds``."""
    while fds:
        os.close(fds.pop())


class Deadline:
    """Timeout and cancellation state of one run."""

    def __init__(self, timeout: float | None, cancel: threading.Event | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.cancel = cancel

    def poll_interval(self) -> float | None:
        """How long a select may block before this must be checked again."""
        waits = []
        if self.end is not None:
            waits.append(max(0.02, self.end - time.monotonic()))  # never 0: no busy loop once expired
        if self.cancel is not None:
            waits.append(0.05)
        return min(waits) if waits else None

    def expired(self) -> BaseException | None:
        """The error to raise once the run is killed, if it must be."""
        if self.cancel is not None and self.cancel.is_set():
            return Interrupted("run cancelled")
        if self.end is not None and time.monotonic() >= self.end:
            return ExecutionError(f"process timed out after {self.timeout:g} s and was killed")
        return None
