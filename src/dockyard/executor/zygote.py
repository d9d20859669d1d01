"""The zygote: a small helper process that forks containers, so the big builder process never forks.

Started once per :class:`~dockyard.executor.namespace.NamespaceExecutor` as
``python -I -S -c <bootstrap>``; it imports only the stdlib and this package. It reads requests (JSON)
from a SEQPACKET socket, each with file descriptors attached (SCM_RIGHTS): the run socket, stdin,
stdout, stderr.

One fork per run, made ahead of time: the zygote always has a *spare* container process, forked into
a new pid namespace (``unshare(CLONE_NEWPID)``, fork, then ``setns`` back so the next fork can do the
same), which has already made its own session and mount, uts and ipc namespaces and waits for a
request. A request goes to the spare, and a new spare is forked. The zygote supervises every run from
one event loop: it obeys ``{"signal": n}`` on the run socket, kills the run when that socket closes,
and sends ``{"exit": code}`` (128+n for a signal, like Docker) when the process ends. Killing the
first process of a pid namespace ends all of it; a dying zygote takes its runs along (parent-death
signal).
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys

from dockyard.executor import mount as m
from dockyard.executor import seccomp
from dockyard.executor.container import container_main, prepare, report
from dockyard.executor.fdpass import recv_fds
from dockyard.userns import in_user_namespace

TYPE_CHECKING = False  # the zygote imports neither typing nor pathlib: it starts before the first RUN
if TYPE_CHECKING:
    from typing import NoReturn

_MAX_REQUEST = 4 << 20
_NO_NETWORK = b'"network": "none"'  # in a request's JSON (its ProcessSpec's network)
_NO_PID = b'"report_pid": false'  # the caller does not want the container's pid


def _recv_request(sock: socket.socket) -> tuple[bytes, list[int]]:
    while True:
        try:
            return recv_fds(sock, _MAX_REQUEST, 4)
        except InterruptedError:
            continue


def _container(sock: socket.socket, no_network: bool, stage: str | None) -> NoReturn:
    """A spare container process: prepare, wait for the request, run it."""
    try:
        host_net, staged = prepare(no_network, stage)
    except BaseException:
        os._exit(125)  # the zygote finds the spare dead and makes another
    msg, fds = _recv_request(sock)
    if not msg or len(fds) != 4:
        os._exit(0)
    sock.close()
    container_main(json.loads(msg), socket.socket(fileno=fds[0]), (fds[1], fds[2], fds[3]), host_net,
                   staged)


class _Run:
    def __init__(self, pid: int, pidfd: int, sock: socket.socket | None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.sock = sock


def _proc_pid(run: _Run) -> int:
    """``run``'s pid as the /proc we see numbers it (a pidfd's fdinfo says), which is the caller's view."""
    try:
        with open(f"/proc/self/fdinfo/{run.pidfd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return run.pid


class Zygote:
    """The event loop: a spare, the runs in flight, and the control socket."""

    def __init__(self, control: socket.socket, stage: str | None = None) -> None:
        self.control: socket.socket | None = control
        self.stage = stage  # an empty directory where spares mount a container's /proc, /dev, /sys
        self.sel = selectors.DefaultSelector()
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.spare: _Run | None = None
        self.runs: dict[int, _Run] = {}
        # The next spare makes its network namespace (``network=none``) ahead if the last request
        # wanted one: a build's RUN steps all ask the same. Not in a user namespace, where the spare
        # could not go back to the host's network for a request that wants it.
        self.no_network = False
        self.may_leave_network = not in_user_namespace()
        self.sel.register(control, selectors.EVENT_READ, "control")

    def _fork_spare(self) -> _Run:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        m.unshare(m.CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            m.setns(self.own_pidns, m.CLONE_NEWPID)
            raise
        if pid == 0:
            # Hold nothing of the zygote's: another run's socket kept open here would hide its end.
            keep = theirs.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, 1 << 20)
            _container(theirs, self.no_network, self.stage)
        m.setns(self.own_pidns, m.CLONE_NEWPID)  # our next fork must get a pid namespace of its own
        theirs.close()
        run = _Run(pid, os.pidfd_open(pid), ours)
        self.sel.register(run.pidfd, selectors.EVENT_READ, run)
        return run

    def _start_run(self) -> None:
        assert self.control is not None
        msg, fds = _recv_request(self.control)
        if not msg:
            self.sel.unregister(self.control)
            self.control.close()
            self.control = None
            if self.spare is not None:
                signal.pidfd_send_signal(self.spare.pidfd, signal.SIGKILL)
            return
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return
        run_sock = socket.socket(fileno=fds[0])
        self.no_network = self.may_leave_network and _NO_NETWORK in msg
        if self.spare is not None and b'"fresh": true' in msg:
            # The spare's mounts are a copy made before this run's rootfs was mounted: fork anew.
            signal.pidfd_send_signal(self.spare.pidfd, signal.SIGKILL)
            self.spare = None
        started: _Run | None = None
        for _attempt in range(2):
            spare = self.spare if self.spare is not None else self._fork_spare()
            self.spare = None
            assert spare.sock is not None
            try:
                socket.send_fds(spare.sock, [msg], fds)
                started = spare
                break
            except OSError:  # it died: its pidfd will say so; make another
                spare.sock.close()
                spare.sock = None
        for fd in fds[1:]:
            os.close(fd)  # the container has its copies now
        if started is None:
            report(run_sock, {"error": "executor failed: cannot start a container process", "code": 125})
            run_sock.close()
        else:
            assert started.sock is not None
            started.sock.close()
            started.sock = run_sock
            # For a caller that must find it later (exec, stop): its pid in /proc, which is the
            # caller's, not our own pid namespace's (rootless mode has one).
            if _NO_PID not in msg:
                report(run_sock, {"pid": _proc_pid(started)})
            self.runs[started.pidfd] = started
            self.sel.register(run_sock, selectors.EVENT_READ, started)
        self.spare = self._fork_spare()

    def _exited(self, run: _Run) -> None:
        _, status = os.waitpid(run.pid, 0)
        self.sel.unregister(run.pidfd)
        os.close(run.pidfd)
        if self.runs.pop(run.pidfd, None) is None:
            if run is self.spare:
                self.spare = None
            if run.sock is not None:
                run.sock.close()
            return
        if run.sock is not None:
            code = os.waitstatus_to_exitcode(status)
            report(run.sock, {"exit": 128 - code if code < 0 else code})
            self.sel.unregister(run.sock)
            run.sock.close()

    def _message(self, run: _Run) -> None:
        assert run.sock is not None
        data = b""
        try:
            data = run.sock.recv(65536)
        except OSError:
            pass
        if not data:
            # The caller is gone (killed, or cancelled): the container must not outlive it.
            self.sel.unregister(run.sock)
            run.sock.close()
            run.sock = None
            signal.pidfd_send_signal(run.pidfd, signal.SIGKILL)
            return
        sig = int(json.loads(data).get("signal", 0))
        if sig:
            try:
                signal.pidfd_send_signal(run.pidfd, sig)
            except ProcessLookupError:
                pass

    def serve(self) -> None:
        """Run until the control socket closes and every run has ended."""
        self.spare = self._fork_spare()
        while self.control is not None or self.runs:
            for key, _ in self.sel.select():
                if key.data == "control":
                    self._start_run()
                elif key.fd == key.data.pidfd:
                    self._exited(key.data)
                else:
                    self._message(key.data)
        if self.spare is not None:
            signal.pidfd_send_signal(self.spare.pidfd, signal.SIGKILL)


def serve(control: socket.socket, stage: str | None = None) -> None:
    """Answer requests on ``control`` until it closes and the runs in flight have ended; ``stage``:
    see :class:`Zygote`."""
    # Forked children must touch as few inherited pages as possible (each touch is a copy-on-write
    # fault): no garbage collection walks over the objects imported so far.
    seccomp.warm()  # compiled once here, inherited by every container
    gc.disable()
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Zygote(control, stage).serve()


def _own_pid_namespace() -> None:
    """In a user namespace, become pid 1 of a pid namespace owned by it.

    Each spare is forked into a new pid namespace, then the zygote goes back to its own with setns,
    which needs CAP_SYS_ADMIN over the namespace's owner: never the host's pid namespace in rootless
    mode. The original process stays as a plain parent that passes on the exit status.
    """
    m.unshare(m.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        m.prctl(m.PR_SET_PDEATHSIG, signal.SIGKILL)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def main() -> None:
    """Entry point: the control socket is file descriptor ``argv[1]``; ``argv[2]``, if given, a
    directory for the spares' staged mounts (made here if missing; none are staged if it cannot)."""
    if in_user_namespace():
        _own_pid_namespace()
    stage: str | None = sys.argv[2] if len(sys.argv) > 2 else None
    if stage is not None:
        try:
            os.makedirs(stage, 0o700, exist_ok=True)
        except OSError:
            stage = None
    serve(socket.socket(fileno=int(sys.argv[1])), stage)
    # Nothing is buffered (stdio goes nowhere) and nothing waits on a clean interpreter shutdown: the
    # executor's close waits for this exit, and tearing down the modules would only delay it.
    os._exit(0)


if __name__ == "__main__":
    main()
