"""The helper a rootless dockyard leaves outside its user namespace, to start pasta for it.

:func:`~dockyard.executor.rootless.enter_user_namespace` forks it before the unshare; it maps the
parent's ids and then :func:`serve`s until every holder of the other end of its socket is gone (the
dockyard process, and a detached container's monitor it was handed to), so it never outlives them,
and then stops the pastas it started that are still running (their askers were killed).
It does one thing: start pasta for a network namespace it is sent (with the user namespace owning
it), so nothing a container might reach through it runs any other command outside.

A request is one ``SOCK_SEQPACKET`` message: the published ports as JSON, and four descriptors: a
socket for the answer (so processes sharing the helper never read each other's), the network
namespace, its user namespace, and pasta's log file. The answer is ``{"pid": N}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dockyard.errors import ExecutionError
from dockyard.executor import pasta
from dockyard.executor.fdpass import recv_fds
from dockyard.executor.spec import PortMapping

FD_ENV = "DOCKYARD_OUTSIDE_FD"
"""The descriptor number of this process's end of the helper's socket (set in rootless mode)."""
_lock = threading.Lock()


def channel() -> tuple[socket.socket, socket.socket]:
    """A new (parent end, helper end) pair: one message per request, end of file when all holders go."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def helper_fd() -> int | None:
    """This process's end of the helper's socket, if it has one."""
    text = os.environ.get(FD_ENV, "")
    return int(text) if text.isdigit() else None


def start_pasta(publish: Sequence[PortMapping], netns_fd: int, log_fd: int) -> int:
    """Have the helper start pasta for the network namespace ``netns_fd`` (of this process's user
    namespace), forwarding ``publish``; pasta's pid."""
    fd = helper_fd()
    if fd is None:
        raise ExecutionError("the private network in rootless mode needs the helper outside the user "
                             "namespace, which this process has not got: use --network host")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    userns = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    request = json.dumps([[p.host_ip, p.host_port, p.container_port, p.proto] for p in publish]).encode()
    try:
        with mine, theirs, socket.socket(fileno=os.dup(fd)) as sock, _lock:
            socket.send_fds(sock, [request], [theirs.fileno(), netns_fd, userns, log_fd])
            theirs.close()
            answer = mine.recv(65536)
    except OSError as exc:
        raise ExecutionError(f"rootless: the helper outside the user namespace is gone ({exc.strerror})"
                             ) from None
    finally:
        os.close(userns)
    if not answer:
        raise ExecutionError("rootless: the helper outside the user namespace died starting pasta")
    reply = json.loads(answer)
    if "error" in reply:
        raise ExecutionError(str(reply["error"]))
    return int(reply["pid"])


def _answer(request: bytes, fds: Sequence[int], started: list[int]) -> dict[str, object]:
    if len(fds) != 4:
        return {"error": "rootless: a malformed request to the helper outside the user namespace"}
    _, netns, userns, log = fds
    publish = [PortMapping(str(ip), int(host), int(cont), "udp" if proto == "udp" else "tcp")
               for ip, host, cont, proto in json.loads(request)]
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-pasta-"))
    try:
        pid = pasta.start(publish, netns, userns, scratch / "pid", log)
        started.append(os.pidfd_open(pid))
        return {"pid": pid}
    except ExecutionError as exc:
        return {"error": exc.message}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serve(sock: socket.socket) -> NoReturn:
    """Answer requests on ``sock`` until all holders of its other end have closed it, then exit."""
    # A ^C, a hang-up or a kill of the process group is for the dockyard in front: we go when it has
    # (end of file), and stop what it left running.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)  # nobody waits for our output: holding a caller's pipe would only delay it
    os.close(null)
    code = 0
    started: list[int] = []  # pidfds of the pastas started: stopped when everyone has gone
    try:
        while True:
            request, fds = recv_fds(sock, 65536, 4)
            if not request and not fds:
                break
            try:
                try:
                    reply = _answer(request, fds, started)
                except (ValueError, TypeError) as exc:
                    reply = {"error": f"rootless: a malformed request to the helper ({exc})"}
                if fds:
                    os.write(fds[0], json.dumps(reply).encode())
            except OSError:
                pass  # the asker went away
            finally:
                for fd in fds:
                    os.close(fd)
    except BaseException:
        code = 1
    finally:
        # Their askers stop them; these are what a killed one left (pasta would serve on forever).
        for pidfd in started:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os._exit(code)
