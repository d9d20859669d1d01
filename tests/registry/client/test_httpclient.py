"""The registry client's HTTP/1.1 layer against real sockets: connections kept alive and re-dialled when
the server dropped them, bodies framed and checked, redirects, proxies chosen as Go chooses them."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockyard.registry.client import httpclient

Handle = Callable[[BaseHTTPRequestHandler], None]


class _Server:
    """A threaded HTTP/1.1 server on loopback calling ``handle`` for every request; counts connections."""

    def __init__(self, handle: Handle) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_any(self) -> None:
                server.requests.append(f"{self.command} {self.path}")
                handle(self)

            do_GET = do_PUT = do_POST = do_PATCH = do_HEAD = do_any

            def log_message(self, *args: object) -> None:
                pass

        self.connections = 0
        self.requests: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        httpd = self.httpd

        def handle_error(request: object, address: object) -> None:
            # A client that hangs up on a body it does not want is what some tests are about.
            if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
                ThreadingHTTPServer.handle_error(httpd, request, address)  # type: ignore[arg-type]

        self.httpd.handle_error = handle_error  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handle], _Server]]:
    servers: list[_Server] = []

    def start(handle: Handle) -> _Server:
        servers.append(_Server(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
           headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    if "Content-Length" not in (headers or {}):
        h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def _body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(h.rfile.readline().strip(), 16)
            if size == 0:
                h.rfile.readline()
                return out
            out += h.rfile.read(size)
            h.rfile.readline()
    return h.rfile.read(int(h.headers.get("Content-Length", "0")))


def _client(**kw: object) -> httpclient.Client:
    return httpclient.Client(verify=None, timeout=5, connect_timeout=5, **kw)  # type: ignore[arg-type]


def test_requests_share_one_kept_alive_connection(serve: Callable[[Handle], _Server]) -> None:
    server = serve(lambda h: _reply(h, 200, b"ok"))
    with _client() as client:
        for _ in range(5):
            assert client.get(f"{server.url}/v2/").content == b"ok"
        with client.stream("GET", f"{server.url}/big") as response:
            assert b"".join(response.iter_raw()) == b"ok"
        assert client.request("HEAD", f"{server.url}/v2/").status_code == 200
        assert client.get(f"{server.url}/v2/").content == b"ok"
    assert server.connections == 1


def test_a_body_left_unread_ends_its_connection(serve: Callable[[Handle], _Server]) -> None:
    server = serve(lambda h: _reply(h, 200, b"x" * 100_000))
    with _client() as client:
        for _ in range(2):
            response = client.request("GET", f"{server.url}/blob", stream=True)
            response.close()  # never read: the rest would be the next answer's first bytes
        assert client.get(f"{server.url}/blob").content == b"x" * 100_000
    assert server.connections == 3


def test_a_connection_the_server_dropped_is_dialled_again(serve: Callable[[Handle], _Server]) -> None:
    def once_per_connection(h: BaseHTTPRequestHandler) -> None:
        _reply(h, 200, b"ok", {"Content-Length": "2"})
        h.close_connection = True  # kept alive by the headers, closed anyway: a server's idle timeout

    server = serve(once_per_connection)
    with _client() as client:
        assert client.get(f"{server.url}/a").content == b"ok"
        assert client.request("PUT", f"{server.url}/b", content=b"data").status_code == 200
        assert client.get(f"{server.url}/c").content == b"ok"
    assert server.connections == 3
    assert server.requests == ["GET /a", "PUT /b", "GET /c"]


def test_bodies_are_framed_by_length_or_chunks(serve: Callable[[Handle], _Server]) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def echo(h: BaseHTTPRequestHandler) -> None:
        seen.append((h.headers.get("Content-Length", ""), h.headers.get("Transfer-Encoding", ""), _body(h)))
        _reply(h, 201)

    server = serve(echo)
    with _client() as client:
        client.request("PUT", f"{server.url}/bytes", content=b"abc")
        client.request("PATCH", f"{server.url}/stream", content=iter([b"ab", b"", b"cde"]))
        client.request("PUT", f"{server.url}/sized", content=iter([b"ab", b"cd"]),
                       headers={"Content-Length": "4"})
        client.post(f"{server.url}/form", data={"scope": "a b", "grant_type": "x"})
    assert seen == [("3", "", b"abc"), ("", "chunked", b"abcde"), ("4", "", b"abcd"),
                    ("22", "", b"scope=a+b&grant_type=x")]


def test_a_streamed_body_goes_out_without_copies(serve: Callable[[Handle], _Server],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A push streams a layer as it is compressed: each piece goes to the socket as it is, its chunk
    # framing in small sends of its own (http.client copied it into a framed one).
    from dockyard.registry import http1

    seen: list[bytes] = []
    sent: list[object] = []
    real_send = http1.Wire.send

    def recording(self: http1.Wire, data: bytes) -> None:
        sent.append(data)
        real_send(self, data)

    def echo(h: BaseHTTPRequestHandler) -> None:
        seen.append(_body(h))
        _reply(h, 202)

    monkeypatch.setattr(http1.Wire, "send", recording)
    server = serve(echo)
    pieces = [os.urandom(100_000), b"", os.urandom(1 << 20), b"x"]
    with _client() as client:
        assert client.request("PATCH", f"{server.url}/up", content=iter(pieces)).status_code == 202
    assert seen == [b"".join(pieces)]
    assert all(any(s is p for s in sent) for p in pieces if p)
    framing = [s for s in sent if isinstance(s, bytes) and not s.startswith(b"PATCH ")
               and not any(s is p for p in pieces)]
    assert framing and max(map(len, framing)) < 20


def test_a_body_shorter_than_its_length_is_a_protocol_error(serve: Callable[[Handle], _Server]) -> None:
    def short(h: BaseHTTPRequestHandler) -> None:
        _reply(h, 200, b"abc", {"Content-Length": "10"})
        h.close_connection = True

    server = serve(short)
    with _client() as client, pytest.raises(httpclient.RemoteProtocolError, match="7 bytes missing"):
        client.get(f"{server.url}/x")


def test_a_body_read_whole_has_a_limit(serve: Callable[[Handle], _Server],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpclient, "MAX_READ", 1 << 20)
    server = serve(lambda h: _reply(h, 200, b"m" * ((1 << 20) + 1)))
    with _client() as client:
        with pytest.raises(httpclient.RemoteProtocolError, match="larger than 1048576 bytes"):
            client.get(f"{server.url}/v2/x/manifests/huge")
        with client.stream("GET", f"{server.url}/v2/x/blobs/big") as response:  # streamed: no limit
            assert sum(map(len, response.iter_raw())) == (1 << 20) + 1


def test_an_answer_before_the_whole_upload_is_read(serve: Callable[[Handle], _Server]) -> None:
    def refuse(h: BaseHTTPRequestHandler) -> None:
        _reply(h, 401, b'{"errors":[]}', {"Connection": "close"})
        h.close_connection = True  # the 64 MiB body is never read

    server = serve(refuse)
    with _client() as client:
        response = client.request("PUT", f"{server.url}/up", content=iter([b"x" * (1 << 20)] * 64))
    assert response.status_code == 401


def test_redirects_keep_credentials_on_their_origin(serve: Callable[[Handle], _Server]) -> None:
    auth: list[str] = []

    def target(h: BaseHTTPRequestHandler) -> None:
        auth.append(h.headers.get("Authorization", "-"))
        _reply(h, 200, b"blob")

    other = serve(target)

    def redirect(h: BaseHTTPRequestHandler) -> None:
        if h.path == "/here":
            return target(h)
        location = "/here" if h.path == "/same" else f"{other.url}/there?sig=1"
        _reply(h, 307, b"", {"Location": location})

    server = serve(redirect)
    with _client() as client:
        for path in ("/same", "/away"):
            response = client.request("GET", f"{server.url}{path}", headers={"Authorization": "Bearer t"},
                                      follow_redirects=True)
            assert response.content == b"blob"
        assert response.url == f"{other.url}/there?sig=1"
        assert client.request("GET", f"{server.url}/away").status_code == 307  # not followed unless asked
    assert auth == ["Bearer t", "-"]


def test_connect_failures_keep_their_cause() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound, not listening: refused
    try:
        with _client() as client, pytest.raises(httpclient.ConnectError) as caught:
            client.get(f"http://127.0.0.1:{listener.getsockname()[1]}/v2/")
    finally:
        listener.close()
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    with _client() as client, pytest.raises(httpclient.UnsupportedProtocol):
        client.get("ftp://127.0.0.1/x")


def test_a_silent_server_times_out_reading(serve: Callable[[Handle], _Server]) -> None:
    gate = threading.Event()
    server = serve(lambda h: (gate.wait(5), _reply(h, 200)))
    try:
        with httpclient.Client(verify=None, timeout=0.2) as client, pytest.raises(httpclient.ReadTimeout):
            client.get(f"{server.url}/slow")
    finally:
        gate.set()


@pytest.mark.parametrize(("scheme", "host", "port", "env", "want"), [
    ("https", "registry.example", 443, {"HTTPS_PROXY": "proxy:3128"}, ("proxy", 3128)),
    ("https", "registry.example", 443, {"https_proxy": "http://p.example"}, ("p.example", 80)),
    ("http", "registry.example", 80, {"HTTPS_PROXY": "proxy:3128"}, None),  # http asks HTTP_PROXY
    ("http", "registry.example", 80, {"HTTP_PROXY": "proxy:3128"}, ("proxy", 3128)),
    ("https", "127.0.0.1", 5000, {"HTTPS_PROXY": "proxy:3128"}, None),  # loopback: never, as Go
    ("https", "localhost", 5000, {"HTTPS_PROXY": "proxy:3128"}, None),
    ("https", "a.corp.example", 443, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": "corp.example"}, None),
    ("https", "a.corp.example", 443, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": ".corp.example"}, None),
    ("https", "corp.example.org", 443, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": "corp.example"}, ("proxy", 1)),
    ("https", "10.1.2.3", 443, {"HTTPS_PROXY": "proxy:1", "no_proxy": "10.0.0.0/8"}, None),
    ("https", "r.example", 5000, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": "r.example:443"}, ("proxy", 1)),
    ("https", "r.example", 443, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": "r.example:443"}, None),
    ("https", "r.example", 443, {"HTTPS_PROXY": "proxy:1", "NO_PROXY": "*"}, None),
])
def test_the_proxy_is_chosen_as_go_chooses_it(scheme: str, host: str, port: int, env: dict[str, str],
                                               want: tuple[str, int] | None) -> None:
    assert httpclient.proxy_for(scheme, host, port, env) == want


def test_requests_for_http_go_through_the_proxy_in_absolute_form(serve: Callable[[Handle], _Server],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = serve(lambda h: _reply(h, 200, b"via proxy"))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with _client() as client:
        assert client.get("http://registry.dytest.invalid:5000/v2/").content == b"via proxy"
    assert proxy.requests == ["GET http://registry.dytest.invalid:5000/v2/"]


def test_response_headers_are_case_insensitive_and_repeatable() -> None:
    headers = httpclient.Headers([("WWW-Authenticate", 'Bearer realm="a"'), ("www-authenticate", "Basic")])
    assert headers.get_list("Www-Authenticate") == ['Bearer realm="a"', "Basic"]
    assert headers["www-authenticate"] == 'Bearer realm="a", Basic'
    assert "WWW-AUTHENTICATE" in headers and headers.get("missing") == ""


class _ConnectProxy:
    """An HTTP proxy that takes ``CONNECT host:port`` (``FAKE`` meaning loopback) and pipes the bytes."""

    FAKE = "registry.dytest.invalid"

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.asked: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        target = head.split(b" ")[1].decode()
        self.asked.append(target)
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection(("127.0.0.1" if host == self.FAKE else host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.listener.close()


def test_a_host_name_is_sent_as_sni_and_verified(serve: Callable[[Handle], _Server], tmp_path: Path) -> None:
    # The client hands ssl an ASCII name as bytes (no IDNA codec): SNI and the name check must still
    # see it.
    from tests.registry.tlskit import self_signed

    server = serve(lambda h: _reply(h, 200, b"named"))
    cert, key = self_signed(tmp_path, dns="localhost")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    seen: list[str | None] = []
    tls.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,func-returns-value]
    server.httpd.socket = tls.wrap_socket(server.httpd.socket, server_side=True)
    port = server.httpd.server_address[1]
    verify = ssl.create_default_context(cafile=str(cert))
    with httpclient.Client(verify=verify, timeout=5, connect_timeout=5) as client:
        assert client.get(f"https://localhost:{port}/v2/").content == b"named"
    assert seen == ["localhost"]
    other = tmp_path / "other"
    other.mkdir()
    wrong, _ = self_signed(other, dns="elsewhere.example")
    with httpclient.Client(verify=ssl.create_default_context(cafile=str(wrong)), timeout=5,
                           connect_timeout=5) as client, pytest.raises(httpclient.ConnectError):
        client.get(f"https://localhost:{port}/v2/")


def test_https_goes_through_the_proxy_in_a_connect_tunnel(serve: Callable[[Handle], _Server], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.registry.tlskit import self_signed

    server = serve(lambda h: _reply(h, 200, b"over tls"))
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.httpd.socket = tls.wrap_socket(server.httpd.socket, server_side=True)
    proxy = _ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    port = server.httpd.server_address[1]
    try:
        with _client() as client:  # verify=None: the certificate names 127.0.0.1, not the fake host
            for _ in range(2):
                assert client.get(f"https://{_ConnectProxy.FAKE}:{port}/v2/").content == b"over tls"
    finally:
        proxy.close()
    assert proxy.asked == [f"{_ConnectProxy.FAKE}:{port}"]  # one tunnel, kept alive for both requests
