"""Which scheme a registry is asked over first: HTTPS, then plain HTTP for an insecure or loopback host
(Docker's engine: pull and push), or plain HTTP first for a loopback host (BuildKit's resolver, whose
``MatchLocalhost`` hosts get ``http`` unless configured: a build's cache), falling back to HTTPS when
the server speaks only TLS."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.registry.client import RegistryClient, RegistryOptions
from dockyard.registry.server import RegistryServer
from tests.registry.tlskit import self_signed

OK = b"HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}"
# What Go's net/http answers a plain-HTTP request on a TLS port (distribution, zot, Harbor).
GO_REFUSAL = (b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")


class _Server:
    """A loopback TCP server that records each connection's first bytes and hands the socket to
    ``serve``."""

    def __init__(self, serve: Callable[[socket.socket, bytes], None]) -> None:
        self.first: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                first = conn.recv(5, socket.MSG_PEEK)
                self.first.append(first)
                self._serve(conn, first)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], _Server]]:
    servers: list[_Server] = []

    def start(handler: Callable[[socket.socket, bytes], None]) -> _Server:
        servers.append(_Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _plain(conn: socket.socket, first: bytes) -> None:
    """A plain-HTTP registry: a TLS hello gets the connection closed, as a TLS server's would be."""
    if first.startswith(b"\x16"):
        return
    conn.recv(65536)
    conn.sendall(OK)


def _ping(port: int, **options: object) -> str:
    with RegistryClient(RegistryOptions(retries=0, backoff=0.01, **options)) as client:  # type: ignore[arg-type]
        session = client.session(f"127.0.0.1:{port}")
        return session.base_url


def test_a_build_asks_a_loopback_registry_over_plain_http_first(serve: Callable[..., _Server]) -> None:
    server = serve(_plain)
    assert _ping(server.port, localhost_plain_http=True) == f"http://127.0.0.1:{server.port}"
    assert [f[:4] for f in server.first] == [b"GET "]  # no TLS hello before it


def test_pull_and_push_ask_https_first_as_docker_s_engine(serve: Callable[..., _Server]) -> None:
    server = serve(_plain)
    assert _ping(server.port) == f"http://127.0.0.1:{server.port}"
    assert [f[:1] for f in server.first] == [b"\x16", b"G"]  # a TLS hello, then plain HTTP


def test_a_loopback_registry_refusing_plain_http_as_go_does_is_asked_over_tls(
        serve: Callable[..., _Server], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    def sniffing(conn: socket.socket, first: bytes) -> None:
        # One port for both, as Go's server: TLS for a hello, a 400 for plain HTTP.
        if not first.startswith(b"\x16"):
            conn.recv(65536)
            conn.sendall(GO_REFUSAL)
            return
        with tls.wrap_socket(conn, server_side=True) as secure:
            secure.recv(65536)
            secure.sendall(OK)

    server = serve(sniffing)
    assert _ping(server.port, localhost_plain_http=True) == f"https://127.0.0.1:{server.port}"
    assert [f[:1] for f in server.first] == [b"G", b"\x16"]


def test_a_loopback_registry_closing_plain_http_is_asked_over_tls(tmp_path: Path) -> None:
    # dockyard's own registry with TLS drops a plain-HTTP request without an answer.
    cert, key = self_signed(tmp_path)
    with RegistryServer(storage=tmp_path / "data", host="127.0.0.1", port=0, tls_cert=str(cert),
                        tls_key=str(key)) as server:
        port = int(server.address.rpartition(":")[2])
        assert _ping(port, localhost_plain_http=True) == f"https://127.0.0.1:{port}"


PROBE = """
import socket, sys, threading
from dockyard.registry.client import RegistryClient, RegistryOptions

listener = socket.create_server(("127.0.0.1", 0))

def serve():
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\n{}")

threading.Thread(target=serve, daemon=True).start()
with RegistryClient(RegistryOptions(retries=0, localhost_plain_http=True)) as client:
    print(client.session(f"127.0.0.1:{listener.getsockname()[1]}").base_url.split(":")[0])
print("ssl" in sys.modules)
"""


def test_a_plain_http_registry_never_loads_ssl() -> None:
    # ssl with its context and trust store is ~7 ms of start-up, paid only when TLS is spoken.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["http", "False"]


def test_an_unreachable_loopback_registry_is_reported_as_the_first_scheme_found_it() -> None:
    # Plain HTTP is what a build expects of a loopback registry (and what BuildKit alone would try):
    # its failure is the one reported, not the HTTPS fallback's.
    from dockyard.errors import RegistryError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(RegistryError, match=rf'Get "http://127.0.0.1:{port}/v2/": dial tcp '
                                                rf"127.0.0.1:{port}: connect: connection refused"):
            _ping(port, localhost_plain_http=True)
