"""``attach`` and ``start -a -i``: a CLI joins the standard streams of a container its monitor runs.

The monitor keeps an :class:`AttachHub`: a unix socket in the abstract namespace named after the
container, open to processes of its own user only (checked with ``SO_PEERCRED``). What the process
writes goes to every attached client as it comes (``stream``, length, bytes); a client sends frames
of its own: input for the process's standard input (a pipe the monitor holds while the container has
``OpenStdin``), end of input (which closes it for a ``StdinOnce`` container), a terminal size. When
the process ends the monitor sends each client how it ended (exit code and start error, once its state
is recorded and, for ``--rm``, the container removed), then closes the connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from dockyard.errors import ExecutionError

STDOUT, STDERR = 1, 2
DATA, EOF, RESIZE, EXIT = b"d", b"e", b"r", b"x"
_HEADER = struct.Struct(">cI")
_CREDS = struct.Struct("3i")


def address(cid: str) -> bytes:
    return b"\0dockyard-attach-" + cid.encode()


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """One frame (kind, payload), or None at the end of the connection."""
    head = _recv_exact(sock, _HEADER.size)
    if head is None:
        return None
    kind, size = _HEADER.unpack(head)
    body = _recv_exact(sock, size) if size else b""
    return None if body is None else (kind, body)


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def exit_frame(code: int, error: str) -> bytes:
    return frame(EXIT, json.dumps({"ExitCode": code, "Error": error}).encode())


def read_exit(payload: bytes) -> tuple[int, str]:
    """The exit code and start error of an :data:`EXIT` frame."""
    ended = json.loads(payload)
    return int(ended["ExitCode"]), str(ended["Error"])


class AttachHub:
    """The monitor's side: clients in, output out, input to the process."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(address(cid))
        self.sock.listen(8)
        self.lock = threading.Lock()
        self.clients: list[socket.socket] = []
        self.joined = threading.Condition(self.lock)
        self.stdin_w: int | None = None
        self.stdin_once = False
        self.handle: Any = None  # the run's handle: resize
        threading.Thread(target=self._accept, daemon=True, name="attach").start()

    def open_stdin(self, once: bool) -> int:
        """A new pipe for the process's standard input; its read end (the caller passes it on)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        with self.lock:
            self.stdin_w, self.stdin_once = w, once
        return r

    def close_stdin(self) -> None:
        with self.lock:
            w, self.stdin_w = self.stdin_w, None
        if w is not None:
            os.close(w)

    def wait_client(self, timeout: float) -> bool:
        """Wait for a first client (``start -a``: no output may go by before it is there)."""
        end = time.monotonic() + timeout
        with self.joined:
            while not self.clients:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.joined.wait(left)
            return True

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size)
            _pid, uid, _gid = _CREDS.unpack(creds)
            if uid != os.geteuid():  # an abstract socket is reachable by any user: only ours may type
                conn.close()
                continue
            with self.joined:
                self.clients.append(conn)
                self.joined.notify_all()
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="attach-client").start()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            try:
                got = read_frame(conn)
            except OSError:
                got = None
            if got is None:
                return
            kind, payload = got
            if kind == DATA:
                with self.lock:
                    w = self.stdin_w
                if w is not None:
                    with contextlib.suppress(OSError):
                        os.write(w, payload)
            elif kind == EOF:
                if self.stdin_once:
                    self.close_stdin()
            elif kind == RESIZE and len(payload) == 4 and self.handle is not None:
                rows, cols = struct.unpack(">HH", payload)
                with contextlib.suppress(Exception):
                    self.handle.resize(rows, cols)

    def output(self, stream: int, then: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """An output callback: the bytes to every client, then to ``then`` (the log)."""
        def emit(data: bytes) -> None:
            message = frame(bytes([stream]), data)
            with self.lock:
                clients = list(self.clients)
            for conn in clients:
                try:
                    conn.sendall(message)
                except OSError:
                    self._drop(conn)
            then(data)
        return emit

    def _drop(self, conn: socket.socket) -> None:
        with self.lock:
            if conn in self.clients:
                self.clients.remove(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def end_run(self, ended: tuple[int, str] | None = None) -> None:
        """The process ended: its clients learn how (``ended``: exit code, start error) and are let go,
        its input closed."""
        self.close_stdin()
        self.handle = None
        with self.lock:
            clients, self.clients = self.clients, []
        for conn in clients:
            with contextlib.suppress(OSError):
                if ended is not None:
                    conn.sendall(exit_frame(*ended))
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self, ended: tuple[int, str] | None = None) -> None:
        self.end_run(ended)
        self.sock.close()


def connect(cid: str, timeout: float = 10.0) -> socket.socket:
    """A connection to container ``cid``'s monitor (retried until it listens, up to ``timeout`` s)."""
    end = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address(cid))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() >= end:
                raise ExecutionError("cannot attach: the container's monitor does not answer") from None
            time.sleep(0.02)
