"""HTTP/1.1 on a bare socket, for clients that keep connections alive: a request's head, and an
answer's head and body (framed by length, by chunks, or by the end of the connection).

``http.client`` reads answers through a buffered file object and parses each head with the
``email`` package: its import is ~10 ms of every command that talks to a registry, and on loopback
it spends ~250 us of CPU on an exchange that costs ~40 us here. An answer's head is split at CRLFs
out of what one or two ``recv`` calls gave; a streamed body goes out in the pieces the socket gives.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

HEAD_LIMIT = 64 << 10  # an answer's status line and header lines together; more is no sane answer
RECV = 1 << 16
INTERIM_LIMIT = 16  # 1xx answers before the real one; more is a peer stalling the client
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class ProtocolError(OSError):
    """An answer that is not HTTP/1.x (the connection cannot be used again)."""


class Closed(ConnectionResetError):
    """The peer closed the connection before the first byte of an answer (a kept-alive connection it
    dropped, most often)."""


class Incomplete(ProtocolError):
    """The connection ended inside a body; ``missing`` bytes short when the length was known."""

    def __init__(self, missing: int | None) -> None:
        detail = f" ({missing} bytes missing)" if missing is not None else ""
        super().__init__(f"peer closed connection without sending complete message body{detail}")
        self.missing = missing


class Head:
    """An answer's status line and header fields (names as sent, in order), and how its body is framed:
    ``length`` bytes, ``chunked``, or up to the end of the connection (``length`` None, not chunked);
    ``close``: the connection cannot carry another request after this answer."""

    __slots__ = ("chunked", "close", "fields", "length", "reason", "status", "version")

    def __init__(self, version: str, status: int, reason: str, fields: list[tuple[str, str]],
                 method: str) -> None:
        self.version, self.status, self.reason, self.fields = version, status, reason, fields
        self.chunked = False
        self.length: int | None = 0
        connection, encoding, length = "", "", None
        for name, value in fields:
            lower = name.lower()
            if lower == "connection":
                connection += "," + value.lower()
            elif lower == "transfer-encoding":
                encoding += "," + value.lower()
            elif lower == "content-length":
                length = value
        if method != "HEAD" and status not in (204, 304):
            codings = [c.strip() for c in encoding.split(",") if c.strip()]
            if codings and codings[-1] == "chunked":
                self.chunked, self.length = True, None
            elif codings:
                self.length = None  # chunked is not the last coding: the body ends with the connection
            elif length is not None:
                self.length = _length(length)
            else:
                self.length = None  # delimited by the end of the connection
        tokens = {t.strip() for t in connection.split(",")}
        self.close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens) or \
            (self.length is None and not self.chunked)

    def headers(self) -> dict[str, str]:
        """The fields by lower-case name, a repeated field's values joined with ", "."""
        merged: dict[str, str] = {}
        for name, value in self.fields:
            name = name.lower()
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        return merged


def _length(text: str) -> int:
    value = text.split(",")[0].strip()  # a repeated Content-Length must repeat one value
    if not value or not _DIGITS.issuperset(value) or any(v.strip() != value for v in text.split(",")):
        raise ProtocolError(f"bad Content-Length {text[:40]!r}")
    return int(value)


def request_head(method: str, target: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """The request line and header fields, up to the blank line; a line break in any of them is an error
    (it would start a header or a request of the caller's choosing)."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in fields:
        lines.append(f"{name}: {value}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"a line break in the request line or a header of {method} {target[:80]!r}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Wire:
    """One connection's socket and the bytes read from it past what was taken."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        self.sock.sendall(data)

    def send_request(self, head: bytes, body: bytes | bytearray | memoryview = b"") -> None:
        """A request's head and body: one send for a small body, two for a large one (not copied)."""
        if len(body) <= RECV:
            self.send(head + body if body else head)
        else:
            self.send(head)
            self.send(body)

    def _fill(self) -> None:
        data = self.sock.recv(RECV)
        if not data:
            raise ConnectionResetError("the peer closed the connection")
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > HEAD_LIMIT:
                raise ProtocolError("an over-long line in an answer")
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def head(self, method: str) -> Head:
        """The next answer's head (a 1xx answer nobody asked for is skipped). ``Closed`` if the
        connection ends before its first byte."""
        for _ in range(INTERIM_LIMIT + 1):
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > HEAD_LIMIT:
                    raise ProtocolError("an over-long head in an answer")
                empty = not self.buffer
                try:
                    self._fill()
                except ConnectionResetError as exc:
                    if empty:
                        raise Closed(str(exc)) from None
                    raise ProtocolError("the connection ended inside an answer's head") from None
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[:end + 4]
            version, _, rest = lines[0].partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or len(code) != 3 or not _DIGITS.issuperset(code):
                raise ProtocolError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
            fields: list[tuple[str, str]] = []
            for line in lines[1:]:
                if line[:1] in (" ", "\t") and fields:  # an obsolete folded line continues the last
                    fields[-1] = (fields[-1][0], f"{fields[-1][1]} {line.strip()}")
                    continue
                name, colon, value = line.partition(":")
                if not colon or not name or name != name.strip():
                    raise ProtocolError(f"a malformed header line in an answer: {line[:80]!r}")
                fields.append((name, value.strip()))
            status = int(code)
            if status >= 200 or status == 101:
                return Head(version, status, reason.strip(), fields, method)
        raise ProtocolError(f"more than {INTERIM_LIMIT} interim (1xx) answers")

    def body(self, head: Head, most: int = RECV) -> Iterator[bytes]:
        """The body's pieces as the socket gives them (at most ``most`` bytes each); ``Incomplete`` if the
        connection ends first. After the last piece the wire is ready for the next answer."""
        if head.chunked:
            while True:
                size_text = self._line().partition(b";")[0].strip().decode("latin-1")
                # Hex digits only: int() would also take a sign, "0x" or "_" (a negative size read to
                # the end of the connection).
                if not size_text or len(size_text) > 16 or not _HEX.issuperset(size_text):
                    raise ProtocolError(f"bad chunk size {size_text[:40]!r}")
                size = int(size_text, 16)
                if size == 0:
                    while self._line():  # trailers, up to the empty line
                        pass
                    return
                yield from self._pieces(size, most, chunked=True)
                try:
                    end = self._take(2)
                except ConnectionResetError:
                    raise Incomplete(None) from None
                if end != b"\r\n":
                    raise ProtocolError("a chunk not followed by CRLF")
        elif head.length is not None:
            yield from self._pieces(head.length, most, chunked=False)
        else:
            yield from self._pieces(-1, most, chunked=False)

    def _pieces(self, size: int, most: int, *, chunked: bool) -> Iterator[bytes]:
        """``size`` bytes (-1: up to the end of the connection) in pieces of at most ``most``."""
        left = size
        while self.buffer and left:
            n = min(len(self.buffer), most) if left < 0 else min(left, len(self.buffer), most)
            piece = bytes(self.buffer[:n])
            del self.buffer[:n]
            if left > 0:
                left -= n
            yield piece
        while left:
            try:
                data = self.sock.recv(most if left < 0 else min(left, most))
            except ConnectionResetError:
                if left < 0:
                    return
                raise
            if not data:
                if left < 0:
                    return
                raise Incomplete(None if chunked else left)
            if left > 0:
                left -= len(data)
            yield data

    def read(self, head: Head) -> bytes:
        """The whole body."""
        if head.length is not None and not head.chunked:
            try:
                return self._take(head.length)
            except ConnectionResetError:
                raise Incomplete(head.length - len(self.buffer)) from None
        return b"".join(self.body(head))
