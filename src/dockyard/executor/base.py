"""The executor interface and what both backends share: run directories, output pumping, results."""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import selectors
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard.errors import ExecutionError, Interrupted, InvalidArgument
from dockyard.executor.spec import ProcessSpec, Rootfs
from dockyard.fdio import write_all

OutputCallback = Callable[[bytes], None]
Output = OutputCallback | int | None
"""Where a stream goes: a callback receiving chunks, a file descriptor handed to the process, or nowhere."""


class RunHandle(Protocol):
    """A run in flight, handed to ``on_start``: lets ``dockyard run`` forward signals to the process."""

    def signal(self, sig: int) -> None:
        """Send signal ``sig`` to the container's first process (ignored once it has exited)."""

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size of a ``tty`` run's terminal (ignored without one)."""


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
    """Raise a clear error when not root: namespaces, mounts and runc need it. The ``dockyard`` command
    runs a non-root user in a user namespace of their own (uid 0 there; see ``executor.rootless``)."""
    if os.geteuid() != 0:
        raise ExecutionError(f"{what} needs root privileges (running as uid {os.geteuid()})")


def open_executor(state_dir: Path, runtime: str = "builtin", isolation: str = "namespaces",
                  mounter: str = "overlayfs") -> Executor:
    """The executor for ``--runtime``: ``builtin`` (namespaces, no external binary) or ``runc``; with
    ``isolation="chroot"`` the chroot executor (no namespaces, no mounts) whatever the runtime. With
    ``mounter="fuse-overlayfs"`` the built-in one mounts overlays with that (see executor.isolation).

    First stops what runs of killed processes left under ``state_dir`` (a SIGKILLed build's pasta would
    otherwise serve its namespace forever)."""
    from dockyard.executor.cleanup import cleanup_stale

    cleanup_stale(state_dir)
    if isolation == "chroot":
        from dockyard.executor.chroot import ChrootExecutor

        return ChrootExecutor(state_dir)
    if runtime == "builtin":
        from dockyard.executor.namespace import NamespaceExecutor

        return NamespaceExecutor(state_dir, fuse=mounter == "fuse-overlayfs")
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


def process_start_time(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot): with the pid, it names one process."""
    return _start_time(pid)


_own_start: tuple[int, str] = (0, "")


def new_owned_dir(parent: Path) -> Path:
    """A fresh ``parent/<pid>.<start time>.<random>`` directory.

    The owner's pid and start time let :func:`~dockyard.executor.cleanup.cleanup_stale` tell a live
    owner from a dead one.
    """
    global _own_start
    pid = os.getpid()
    if _own_start[0] != pid:  # read once per process (and again in a forked child)
        _own_start = (pid, _start_time(pid))
    path = parent / f"{pid}.{_own_start[1]}.{secrets.token_hex(6)}"
    path.mkdir(parents=True, mode=0o700)
    return path


def new_run_dir(state_dir: Path) -> Path:
    """A fresh ``state_dir/runs/<pid>.<start time>.<random>`` directory with ``rootfs`` and ``scratch``."""
    path = new_owned_dir(state_dir / "runs")
    (path / "rootfs").mkdir(mode=0o700)
    (path / "scratch").mkdir(mode=0o700)
    return path


def run_dir_owner_alive(name: str) -> bool:
    """Whether the process that made run directory ``name`` still runs."""
    pid_text, _, rest = name.partition(".")
    start = rest.partition(".")[0]
    if not pid_text.isdigit():
        return False
    try:
        with open(f"/proc/{int(pid_text)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    # A zombie is dead: nothing reaps an orphan whose new parent (a subreaper) does not wait.
    return len(fields) > 19 and fields[19] == start and fields[0] not in ("Z", "X")


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
    return functools.partial(write_all, fd)


Readers = dict[int, OutputCallback]


class Console:
    """The caller's side of a ``tty`` run: the pseudo-terminal's master once the container sends it.

    The container makes the terminal in its own /dev/pts and passes the master back; :meth:`attach`
    then says what to pump: the master's output to ``stdout``, what ``stdin`` (if any) delivers into
    the master. :meth:`resize` sets the window size (the kernel tells the container with SIGWINCH).
    """

    def __init__(self, stdin: int | None, stdout: Output) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.master: int | None = None
        self._size: tuple[int, int] | None = None
        self._stdin_blocking: bool | None = None

    def initial_size(self, given: tuple[int, int] | None) -> tuple[int, int] | None:
        """``given``, or the size of ``stdin`` when that is a terminal."""
        if given is not None or self.stdin is None or not os.isatty(self.stdin):
            return given
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(self.stdin, termios.TIOCGWINSZ, b"\0" * 8))[:2]
        return rows, cols

    def attach(self, master: int) -> tuple[Readers, Readers]:
        """Take the master: (output readers, input readers) to pump; a size asked for early applies now."""
        self.master = master
        if self._size is not None:
            self.resize(*self._size)
        if self.stdout is None:
            outputs: Readers = {master: lambda data: None}
        else:
            outputs = {master: self.stdout if callable(self.stdout) else _writer(self.stdout)}
        inputs: Readers = {}
        if self.stdin is not None:
            to_master = _writer(master)

            def feed(data: bytes) -> None:
                try:
                    to_master(data)
                except OSError:
                    pass  # the process is gone; its exit status will tell

            # Pumping makes the shared file description non-blocking: detach puts it back, or the
            # caller's shell would find its terminal non-blocking after the run.
            self._stdin_blocking = os.get_blocking(self.stdin)
            inputs[os.dup(self.stdin)] = feed
        return outputs, inputs

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's window size (remembered until the master arrives)."""
        self._size = (rows, cols)
        if self.master is not None:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass  # closed: the run has ended

    def detach(self) -> None:
        """The run is over: no more resizes through the master; ``stdin`` blocking again as it was."""
        self.master = None
        if self._stdin_blocking is not None and self.stdin is not None:
            try:
                os.set_blocking(self.stdin, self._stdin_blocking)
            except OSError:
                pass


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
