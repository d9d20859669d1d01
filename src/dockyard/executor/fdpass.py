"""File descriptors passed over Unix sockets, and keeping them out of the container.

``socket.recv_fds`` ignores its ``flags`` argument (CPython passes none to ``recvmsg``), so asking it
for ``MSG_CMSG_CLOEXEC`` silently returns inheritable descriptors: the container's process then
inherited the run socket and copies of its stdio. This module receives with the flag really set.
"""

from __future__ import annotations

import array
import os
import socket


def recv_fds(sock: socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """Receive one message and up to ``maxfds`` descriptors, each close-on-exec from the start."""
    fds = array.array("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(bufsize, socket.CMSG_LEN(maxfds * fds.itemsize),
                                               socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


def cloexec_above_stdio() -> None:
    """Mark every descriptor above 2 close-on-exec: the first process of a container sees 0, 1, 2 only.

    Marking rather than closing keeps the run socket usable for an error report until the exec itself.
    """
    from dockyard.executor import mount  # the container's process has it (the caller's need not)

    if mount.cloexec_from(3):
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory's own descriptor, already closed
