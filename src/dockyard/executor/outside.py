"""The helper a rootless dockyard leaves outside its user namespace, to start pasta and send signals for it.

:func:`~dockyard.executor.rootless.enter_user_namespace` forks it before the unshare; it maps the
parent's ids and then :func:`serve`s until every holder of the other end of its socket is gone (the
dockyard process, and a detached container's monitor it was handed to), so it never outlives them,
and then stops the pastas it started that are still running (their askers were killed).
It runs no other command outside, and does three things: start pasta for a network namespace it is
sent (with the user namespace owning it); send a signal to a container's process (``kill``, ``stop``);
open a container process's root directory (``cp`` into a running container, with its volumes). A
dockyard in a user namespace of its own cannot do the last two for a container started by another one
when the process runs as a uid other than 0 (the container's namespace is a sibling). They are done only
for a process in a user namespace other than the host's that this user owns: never for a process of
the host, nor for another user's.

A request is one ``SOCK_SEQPACKET`` message with JSON and descriptors, the first a socket for the answer
(so processes sharing the helper never read each other's). For pasta: the published ports as a list,
then the network namespace, its user namespace and pasta's log file; the answer is ``{"pid": N}`` or
``{"error": ...}``. For a signal: ``{"signal": [PID, SIGNAL]}``; the answer is ``{}``, ``{"gone": true}``
or ``{"error": ...}``. For a root: ``{"root": PID}``; the answer is ``{}`` with the directory's
descriptor, ``{"gone": true}`` or ``{"error": ...}``.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dockyard.errors import ExecutionError
from dockyard.executor import pasta
from dockyard.executor.fdpass import recv_fds
from dockyard.executor.spec import PortMapping
from dockyard.userns import foreign_namespace_owner

_FD_KEY = "_fd"  # in an answer made here: the descriptor sent with it, not in its JSON
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
    userns = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    request = [[p.host_ip, p.host_port, p.container_port, p.proto] for p in publish]
    try:
        reply = _ask(fd, request, [netns_fd, userns, log_fd], "starting pasta")
    finally:
        os.close(userns)
    return int(reply["pid"])


def send_signal(pid: int, sig: int) -> None:
    """Have the helper send ``sig`` to ``pid``, a process in a container of this user; raises
    ``ProcessLookupError`` when it is gone."""
    fd = helper_fd()
    if fd is None:
        raise ExecutionError(f"rootless: cannot signal process {pid} of a container from this process "
                             "(it has no helper outside its user namespace)")
    if _ask(fd, {"signal": [pid, sig]}, [], "sending a signal").get("gone"):
        raise ProcessLookupError(pid)


def open_root(pid: int) -> int | None:
    """A descriptor of the root directory of ``pid``, a process in a container of this user, opened by
    the helper (the caller closes it); None when the process is gone or this process has no helper."""
    fd = helper_fd()
    if fd is None:
        return None
    got: list[int] = []
    if _ask(fd, {"root": pid}, [], "opening a container's root", got).get("gone"):
        return None
    if len(got) != 1:
        raise ExecutionError(f"rootless: the helper sent no root directory of process {pid}")
    return got[0]


def _ask(fd: int, request: object, fds: Sequence[int], doing: str,
         received: list[int] | None = None) -> dict[str, Any]:
    """Send one request with ``fds`` to the helper on ``fd``; its answer (an error raised). A descriptor
    sent with the answer goes to ``received`` (closed when not wanted)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with mine, theirs, socket.socket(fileno=os.dup(fd)) as sock, _lock:
            socket.send_fds(sock, [json.dumps(request).encode()], [theirs.fileno(), *fds])
            theirs.close()
            answer, got = recv_fds(mine, 65536, 1)
    except OSError as exc:
        raise ExecutionError(f"rootless: the helper outside the user namespace is gone ({exc.strerror})"
                             ) from None
    if received is not None:
        received.extend(got)
    else:
        for extra in got:
            os.close(extra)
    if not answer:
        raise ExecutionError(f"rootless: the helper outside the user namespace died {doing}")
    reply: dict[str, Any] = json.loads(answer)
    if "error" in reply:
        for extra in got:
            os.close(extra)
        raise ExecutionError(str(reply["error"]))
    return reply


def _for_container(pid: int, act: Callable[[int], dict[str, object]], doing: str) -> dict[str, object]:
    """``act(pidfd)`` if ``pid`` runs in a user namespace (not the host's) that this user owns."""
    try:
        pidfd = os.pidfd_open(pid)  # checked and acted on as one process, even if ``pid`` is reused
    except ProcessLookupError:
        return {"gone": True}
    try:
        found = foreign_namespace_owner(pid)
        if found is not None:
            os.close(found[0])
        if found is None or found[1] != os.geteuid():
            return {"error": f"rootless: process {pid} is not in a container of this user"}
        return act(pidfd)
    except (ProcessLookupError, FileNotFoundError):  # ended meanwhile (its /proc entry goes with it)
        return {"gone": True}
    except OSError as exc:
        return {"error": f"rootless: cannot {doing} process {pid}: {exc.strerror}"}
    finally:
        os.close(pidfd)


def _signal(pid: int, sig: int) -> dict[str, object]:
    def send(pidfd: int) -> dict[str, object]:
        signal.pidfd_send_signal(pidfd, sig)
        return {}

    return _for_container(pid, send, "signal")


def _root(pid: int) -> dict[str, object]:
    def open_it(pidfd: int) -> dict[str, object]:
        fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            signal.pidfd_send_signal(pidfd, 0)  # still the process checked, not a reuse of its pid
        except BaseException:
            os.close(fd)
            raise
        return {_FD_KEY: fd}

    return _for_container(pid, open_it, "open the root of")


def _answer(request: bytes, fds: Sequence[int], started: list[int]) -> dict[str, object]:
    body = json.loads(request)
    if isinstance(body, dict) and len(fds) == 1:
        if "root" in body:
            return _root(int(body["root"]))
        pid, sig = body["signal"]
        return _signal(int(pid), int(sig))
    if len(fds) != 4 or not isinstance(body, list):
        return {"error": "rootless: a malformed request to the helper outside the user namespace"}
    _, netns, userns, log = fds
    publish = [PortMapping(str(ip), int(host), int(cont), "udp" if proto == "udp" else "tcp")
               for ip, host, cont, proto in body]
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
                except (ValueError, TypeError, KeyError) as exc:
                    reply = {"error": f"rootless: a malformed request to the helper ({exc})"}
                passed = reply.pop(_FD_KEY, None)
                sent = [passed] if isinstance(passed, int) else []
                try:
                    if fds:
                        with socket.socket(fileno=os.dup(fds[0])) as answer:
                            socket.send_fds(answer, [json.dumps(reply).encode()], sent)
                finally:
                    for fd in sent:
                        os.close(fd)
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
