"""The built-in executor: namespaces and overlayfs via a zygote helper process, no external binary."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dockyard.errors import ExecutionError
from dockyard.executor import fuseoverlay, helper
from dockyard.executor.base import (
    Console,
    Deadline,
    OnStart,
    Output,
    OutputCallback,
    close_all,
    new_owned_dir,
    new_run_dir,
    output_fds,
    pump,
    read_ready,
    require_root,
)
from dockyard.executor.fdpass import recv_fds
from dockyard.executor.network import Networks, resolv_conf
from dockyard.executor.rootfs import mount_targets, stub_layer
from dockyard.executor.spec import ProcessSpec, Rootfs, RootfsSpec, check_rootfs, rootfs_to_json
from dockyard.executor.user import start_error
from dockyard.record import replace

_MAX_FREE_RUNDIRS = 8


class NamespaceExecutor:
    """Runs each process in new mount, pid, uts and ipc (and, for ``network="none"``, net) namespaces.

    Thread-safe: several runs may be in flight at once. The zygote starts on first use; :meth:`close`
    (or leaving the ``with`` block) stops it. Run directories live under ``state_dir/runs``; an ended
    run's (empty again) is kept for a later run until :meth:`close` removes it.
    """

    def __init__(self, state_dir: Path, *, fuse: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.fuse = fuse  # overlays by fuse-overlayfs: the kernel's overlayfs is refused here
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._zygote: subprocess.Popen[bytes] | None = None
        self._networks = Networks(self.state_dir)
        # Run directories of ended runs, empty again: the next run takes one instead of making three
        # directories and removing them after (each mkdir or rmdir is a directory write on disk).
        self._free_rundirs: list[Path] = []
        self._rundirs_lock = threading.Lock()
        self._closed = False
        # Stub layers (the mount points a stack of layers lacks), made once per stack and mount
        # targets under an owned directory of ``state_dir/stubs``: "" when none is needed.
        self._stubs: dict[tuple[tuple[str, ...], tuple[tuple[str, bool], ...]], str] = {}
        self._stub_root: Path | None = None
        self._stubs_lock = threading.Lock()

    def __enter__(self) -> NamespaceExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the zygote now rather than at the first run (a caller that knows runs will follow)."""
        self._start()

    def prepare_network(self) -> None:
        """Start the private network the runs that publish no port share, now rather than at the
        first such run (a caller that knows they will follow)."""
        self._networks.start_shared()

    def _start(self) -> socket.socket:
        with self._lock:
            if self._control is not None and self._zygote is not None and self._zygote.poll() is None:
                return self._control
            if self._control is not None:  # the helper died (killed?): start a new one
                self._control.close()
                self._control = None
            self._zygote, self._control = helper.take(self.state_dir) or helper.spawn(self.state_dir)
            return self._control

    def close(self) -> None:
        """Stop the zygote: it exits once the runs in flight have ended (after 5 s it is killed, and
        they with it)."""
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._control = None
            if self._zygote is not None:
                if not _exited_within(self._zygote, 5):
                    self._zygote.kill()
                self._zygote.wait()
                self._zygote = None
        with self._rundirs_lock:
            self._closed = True
            free, self._free_rundirs = self._free_rundirs, []
        for rundir in free:
            shutil.rmtree(rundir, ignore_errors=True)
        with self._stubs_lock:
            stub_root, self._stub_root = self._stub_root, None
            self._stubs.clear()
        if stub_root is not None:
            _CLOSER.wait_idle()  # no overlay of a run is left that stacks one of them
            shutil.rmtree(stub_root, ignore_errors=True)
        self._networks.close()

    def _take_rundir(self) -> Path:
        with self._rundirs_lock:
            if self._free_rundirs:
                return self._free_rundirs.pop()
        return new_run_dir(self.state_dir)

    def _give_back(self, rundir: Path) -> None:
        """Keep an ended run's directory for the next run if it is as :func:`new_run_dir` made it (the
        run's mounts were in its own mount namespace: here the directories are empty), else remove it."""
        with self._rundirs_lock:
            if not self._closed and len(self._free_rundirs) < _MAX_FREE_RUNDIRS and _pristine(rundir):
                self._free_rundirs.append(rundir)
                return
        shutil.rmtree(rundir, ignore_errors=True)

    def run(self, spec: ProcessSpec, rootfs: Rootfs, *, stdout: Output = None, stderr: Output = None,
            stdin: int | None = None, timeout: float | None = None,
            cancel: threading.Event | None = None, on_start: OnStart | None = None,
            on_pid: Callable[[int], None] | None = None) -> int:
        """Run ``spec`` on ``rootfs``; see :class:`~dockyard.executor.base.Executor`. ``on_pid`` (this
        executor only) gets the host pid of the container's first process once it is forked."""
        require_root("the built-in executor")
        check_rootfs(rootfs)
        control = self._start()
        with contextlib.ExitStack() as stack:
            if self.fuse and isinstance(rootfs, RootfsSpec):
                # Mounted here; the run binds the merged directory (a process forked after the mount).
                rootfs = stack.enter_context(fuseoverlay.mounted_rootfs(rootfs, mount_targets(spec),
                                                                         self.state_dir / "fuse"))
            netns = stack.enter_context(self._networks.namespace(spec))
            return self._run(control, spec, rootfs, netns, stdout=stdout, stderr=stderr, stdin=stdin,
                             deadline=Deadline(timeout, cancel), on_start=on_start, on_pid=on_pid)

    def _stub_layer(self, spec: ProcessSpec, rootfs: RootfsSpec) -> str | None:
        """The extra top layer holding the mount points the layers of ``rootfs`` lack (see
        :func:`~dockyard.executor.rootfs.mount_rootfs`), made by the first run on that stack of layers
        and mount targets, stacked by every later one (a layer never changes, an overlay never writes
        to a lower one): its path, "" when none is needed, None when the run must make its own (its
        upper directory has entries, whose whiteouts may hide a layer's mount point; or it failed)."""
        if self.fuse:
            return None
        try:
            with os.scandir(rootfs.upperdir) as entries:
                if next(entries, None) is not None:
                    return None
        except OSError:
            return None
        lowers = tuple(str(p) for p in reversed(rootfs.lowerdirs))
        key = (lowers, tuple(mount_targets(spec)))
        with self._stubs_lock:
            known = self._stubs.get(key)
            if known is not None:
                return known
            if self._closed:
                return None
            try:
                if self._stub_root is None:
                    self._stub_root = new_owned_dir(self.state_dir / "stubs")
                path = self._stub_root / str(len(self._stubs))
                os.mkdir(path, 0o755)
            except OSError:
                return None
            try:
                needed = stub_layer(lowers, str(rootfs.upperdir), key[1], str(path))
            except (OSError, ExecutionError):
                shutil.rmtree(path, ignore_errors=True)
                return None  # the run meets the same trouble and reports it
            if not needed:
                path.rmdir()
            self._stubs[key] = str(path) if needed else ""
            return self._stubs[key]

    def _run(self, control: socket.socket, spec: ProcessSpec, rootfs: Rootfs, netns: str | None, *,
             stdout: Output, stderr: Output, stdin: int | None, deadline: Deadline,
             on_start: OnStart | None, on_pid: Callable[[int], None] | None = None) -> int:
        rundir = self._take_rundir()
        console: Console | None = None
        inputs: dict[int, OutputCallback] = {}
        if spec.tty:
            # The container makes its terminal and sends the master back; its stdio fds are unused.
            console = Console(stdin, stdout)
            spec = replace(spec, console_size=console.initial_size(spec.console_size))
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            child_fds, to_close = [null, null, null], [null]
            readers: dict[int, OutputCallback] = {}
        else:
            child_out, readers, to_close = output_fds(stdout, stderr)
            in_fd = stdin if stdin is not None else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if stdin is None:
                to_close.append(in_fd)
            child_fds = [in_fd, *child_out]
        rootfs_json = rootfs_to_json(rootfs)
        if isinstance(rootfs, RootfsSpec):
            stubs = self._stub_layer(spec, rootfs)
            if stubs is not None:
                rootfs_json["stubs"] = stubs
        req = {"spec": spec.to_json(), "rootfs": rootfs_json, "rundir": str(rundir),
               "resolv_conf": resolv_conf(spec), "netns": netns,
               # A plain directory may be a mount made since the spare copied our mounts (a
               # fuse-overlayfs rootfs): a process forked now sees it.
               "fresh": not isinstance(rootfs, RootfsSpec),
               # The container's pid, for a caller that asks (one message and wake-up fewer else).
               "report_pid": on_pid is not None}
        still_open = {*readers, *inputs}
        uses = wrote = None
        if isinstance(rootfs, RootfsSpec):
            wrote = _idents((rootfs.upperdir, rootfs.workdir))
            uses = _idents((*rootfs.lowerdirs, rootfs.upperdir, rootfs.workdir))
        run_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            _CLOSER.wait_idle(uses)
            try:
                socket.send_fds(control, [json.dumps(req).encode()], [child_sock.fileno(), *child_fds])
            except OSError as exc:
                raise ExecutionError(f"executor helper is not running: {exc.strerror}")
            finally:
                child_sock.close()
                for fd in to_close:
                    os.close(fd)
            if on_start is not None:
                on_start(_Handle(run_sock, console))
            return self._wait(run_sock, readers, inputs, still_open, deadline, console, on_pid, wrote)
        finally:
            run_sock.close()
            close_all(still_open)
            self._give_back(rundir)

    def _wait(self, run_sock: socket.socket, readers: dict[int, OutputCallback],
              inputs: dict[int, OutputCallback], still_open: set[int], deadline: Deadline,
              console: Console | None, on_pid: Callable[[int], None] | None = None,
              wrote: frozenset[Ident] | None = None) -> int:
        sel = selectors.DefaultSelector()
        pump(readers, sel)
        pump(inputs, sel)
        sel.register(run_sock, selectors.EVENT_READ, None)
        must_finish = {run_sock.fileno(), *readers}
        exit_code: int | None = None
        held: list[int] = []  # the container's mount namespace: dropped once the status is in
        error: dict[str, Any] | None = None
        failure: BaseException | None = None
        killed = False
        try:
            while must_finish & set(sel.get_map()):
                events = sel.select(deadline.poll_interval())
                for key, _ in events:
                    if key.data is not None:
                        read_ready(key.fd, key.data, sel, still_open)
                        continue
                    try:
                        raw, fds = recv_fds(run_sock, 65536, 4)
                    except ConnectionResetError:
                        # The zygote closed its end with a message of ours unread (a kill sent as
                        # the run ended): Linux reports that once, ahead of what is still queued.
                        continue
                    if not raw:
                        held.extend(fds)
                        sel.unregister(run_sock)
                        continue
                    msg = json.loads(raw)
                    if msg.get("pty") and console is not None and fds:
                        outputs, typed = console.attach(fds[0])
                        pump(outputs, sel)
                        pump(typed, sel)
                        still_open.update(outputs, typed)
                        must_finish.update(outputs)  # the terminal's output is drained to its end
                        held.extend(fds[1:])
                        continue
                    held.extend(fds)
                    if "pid" in msg:
                        if on_pid is not None:
                            on_pid(int(msg["pid"]))
                    elif "error" in msg:
                        error = msg
                    elif "exit" in msg:
                        exit_code = int(msg["exit"])
                if not killed and failure is None:
                    failure = deadline.expired()
                    if failure is not None:
                        _send_signal(run_sock, 9)
                        killed = True
        except BaseException:
            # Ctrl-C (or a callback raising): kill the run, wait for the zygote to confirm, re-raise.
            _send_signal(run_sock, 9)
            _drain(run_sock)
            raise
        finally:
            if console is not None:
                console.detach()
            sel.close()
            _CLOSER.close_later(held, wrote)
        if failure is not None:
            raise failure
        if error is not None:
            raise start_error(str(error["error"]), int(error["code"]))
        if exit_code is None:
            raise ExecutionError("executor helper exited without reporting the process's exit status")
        return exit_code


class _Handle:
    """Signals for a built-in run go through the zygote, which holds a pidfd of the process."""

    def __init__(self, run_sock: socket.socket, console: Console | None) -> None:
        self._sock = run_sock
        self._console = console

    def signal(self, sig: int) -> None:
        _send_signal(self._sock, sig)

    def resize(self, rows: int, cols: int) -> None:
        if self._console is not None:
            self._console.resize(rows, cols)


class _NamespaceCloser:
    """Drops containers' mount namespaces on a background thread.

    The last reference to a mount namespace unmounts everything in it and waits for an RCU grace
    period, milliseconds under load, which need not delay the exit status. :meth:`wait_idle` lets the
    next run start only once the mounts that wrote to one of its directories are gone, so that an
    upper directory is never a layer of two live overlays (the next step's lower is usually the last
    step's upper; after a step that changed nothing it is not, and the next run need not wait).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._fds: list[tuple[int, frozenset[Ident] | None]] = []
        self._busy: list[frozenset[Ident] | None] = []  # what the closes under way wrote to
        self._thread: threading.Thread | None = None

    def close_later(self, fds: list[int], wrote: frozenset[Ident] | None = None) -> None:
        """Close ``fds`` (a run's namespaces) soon; ``wrote``: the directories its overlay wrote to
        (None: unknown, every later run waits for these)."""
        if not fds:
            return
        with self._cond:
            self._fds.extend((fd, wrote) for fd in fds)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dockyard-ns-closer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, uses: frozenset[Ident] | None = None) -> None:
        """Wait until no pending close wrote to a directory in ``uses`` (None: until none is pending)."""
        with self._cond:
            while any(wrote is None or uses is None or wrote & uses
                      for wrote in [*(w for _, w in self._fds), *self._busy]):
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._fds:
                    self._cond.wait()
                fd, wrote = self._fds.pop()
                self._busy.append(wrote)
            try:
                os.close(fd)
            except OSError:
                pass
            with self._cond:
                self._busy.remove(wrote)
                self._cond.notify_all()


Ident = tuple[int, int]  # a directory's (st_dev, st_ino): what it stays when renamed into a snapshot


def _idents(paths: Iterable[Path]) -> frozenset[Ident] | None:
    try:
        return frozenset((st.st_dev, st.st_ino) for st in map(os.stat, paths))
    except OSError:
        return None


_CLOSER = _NamespaceCloser()


def _pristine(rundir: Path) -> bool:
    """Whether the ``rootfs`` and ``scratch`` directories of ``rundir`` are there and empty (nothing
    but :func:`new_run_dir` writes to ``rundir`` itself)."""
    try:
        return not os.listdir(rundir / "rootfs") and not os.listdir(rundir / "scratch")
    except OSError:
        return False


def _exited_within(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` exits within ``timeout`` seconds, told by its pidfd the moment it does (not
    ``Popen.wait(timeout)``, which polls with sleeps of up to 50 ms)."""
    if proc.poll() is not None:
        return True
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:  # already reaped, or no pidfds here
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            return bool(sel.select(timeout))
    finally:
        os.close(fd)


def _send_signal(run_sock: socket.socket, sig: int) -> None:
    try:
        run_sock.send(json.dumps({"signal": int(sig)}).encode())
    except OSError:
        pass


def _drain(run_sock: socket.socket) -> None:
    run_sock.settimeout(10)
    try:
        while run_sock.recv(65536):
            pass
    except OSError:
        pass
