"""The zygote: a small helper process that forks containers, so the big builder process never forks.

Started once per :class:`~dockyard.executor.namespace.NamespaceExecutor` as
``python -I -S -c <bootstrap>``; it imports only the stdlib and this package. It reads requests (JSON)
from a SEQPACKET socket, each with file descriptors attached (SCM_RIGHTS): the run socket, stdin,
stdout, stderr. Per request it forks a worker, which unshares the pid namespace and forks the container
(pid 1 there). The worker sends ``{"pid"}``, obeys ``{"signal": n}``, kills the container when the run
socket closes, and finally sends ``{"exit": code}`` (128+n for a signal, like Docker).
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any, NoReturn

from dockyard.executor import mount as m
from dockyard.executor.container import container_main, report

_MAX_REQUEST = 4 << 20


def _worker(req: dict[str, Any], run_sock: socket.socket, stdio: tuple[int, int, int]) -> NoReturn:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it to auto-reap us; we must wait
    m.unshare(m.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        container_main(req, run_sock, stdio)
    for fd in stdio:
        os.close(fd)
    report(run_sock, {"pid": pid})
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    sel.register(pidfd, selectors.EVENT_READ)
    sel.register(run_sock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fd == pidfd:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                report(run_sock, {"exit": 128 - code if code < 0 else code})
                os._exit(0)
            data = run_sock.recv(65536)
            if not data:
                # The caller is gone (killed, or cancelled): the container must not outlive it.
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                sel.unregister(run_sock)
                continue
            sig = int(json.loads(data).get("signal", 0))
            if sig:
                try:
                    signal.pidfd_send_signal(pidfd, sig)
                except ProcessLookupError:
                    pass


def serve(control: socket.socket) -> None:
    """Answer requests on ``control`` until it closes."""
    # Forked children must touch as few inherited pages as possible (each touch is a copy-on-write
    # fault): no garbage collection walks over the objects imported so far.
    gc.disable()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST, 4, socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        if not msg:
            return
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            code = 125
            run_sock = socket.socket(fileno=fds[0])
            try:
                control.close()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _worker(json.loads(msg), run_sock, (fds[1], fds[2], fds[3]))
            except BaseException as exc:
                report(run_sock, {"error": f"executor failed: {type(exc).__name__}: {exc}", "code": code})
            os._exit(code)
        for fd in fds:
            os.close(fd)


def main() -> None:
    """Entry point: the control socket is file descriptor ``argv[1]``."""
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
