"""The S3 driver's small-request client (``s3http``) against scripted stores: what it puts on the wire is
what it signed, every framing of an answer is read, keep-alive connections are reused and replaced, and
``request_all`` has its requests in the store at once."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dockyard.registry.server import s3http
from dockyard.registry.server.s3http import Call, SignedHttp
from tests.registry.tlskit import self_signed

CREDENTIALS = Credentials("access", "secret")
Request = tuple[str, str, dict[str, str], bytes]  # method, target, headers (lower-case names), body
Script = Callable[[int, Request], bytes]  # (connection number, request) -> raw answer ("" closes)


def _read_request(reader: BinaryIO) -> Request | None:
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode().split(" ", 2)
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return method, target, headers, body


@contextmanager
def scripted(script: Script,
             tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[Request], list[int]]]:
    """A store on loopback that answers each request with what ``script`` says (over TLS with ``tls``);
    yields its URL, the requests it saw and, per connection, how many requests came on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[Request] = []
    per_connection: list[int] = []

    def serve(conn: socket.socket, number: int) -> None:
        if tls is not None:
            try:
                conn = tls.wrap_socket(conn, server_side=True)
            except OSError:  # a client that does not trust the certificate
                conn.close()
                return
        with conn, conn.makefile("rb") as f, contextlib.suppress(ConnectionError):  # the client hung up
            while (request := _read_request(f)) is not None:
                seen.append(request)
                per_connection[number] += 1
                answer = script(number, request)
                if not answer:
                    return  # closed without an answer
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            per_connection.append(0)
            threading.Thread(target=serve, args=(conn, len(per_connection) - 1), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}", seen, per_connection
    finally:
        listener.close()


def test_what_goes_on_the_wire_is_what_was_signed() -> None:
    """The store re-signs the request it received (botocore's signer, same time stamp): the method,
    path, query, Host and every other signed header arrived as they were signed."""
    with scripted(lambda _n, _r: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (url, seen, _):
        http = SignedHttp(url, "bucket", "us-east-1", CREDENTIALS, timeout=10)
        http.request("PUT", "p/repositories/a b/_tags/v1", b"{}", {"x-amz-meta-digest": "sha256:abc"})
        http.request("PUT", "p/data/x/00000000000000000000", b"part",
                     query={"uploadId": "id/+=", "partNumber": "2"})
        http.request("HEAD", "p/blobs/sha256/ab/abc")
    assert [r[0] for r in seen] == ["PUT", "PUT", "HEAD"]
    for method, target, headers, body in seen:
        verifier = S3SigV4Auth(CREDENTIALS, "s3", "us-east-1")
        unsigned = {k: v for k, v in headers.items() if k not in ("authorization", "content-length")}
        request = AWSRequest(method=method, url=url + target, data=body, headers=unsigned)
        request.context["timestamp"] = headers["x-amz-date"]
        canonical = verifier.canonical_request(request)
        signature = verifier.signature(verifier.string_to_sign(request, canonical), request)
        assert headers["authorization"].endswith(f"Signature={signature}"), (target, canonical)
        assert "host;" in headers["authorization"] and headers["host"] == url.split("//")[1]
        assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()  # the body signed
    assert seen[0][1] == "/bucket/p/repositories/a%20b/_tags/v1"
    assert seen[0][2]["x-amz-meta-digest"] == "sha256:abc" and seen[0][3] == b"{}"
    assert seen[1][1].endswith("?partNumber=2&uploadId=id%2F%2B%3D")
    assert "content-length" not in seen[2][2]  # a HEAD carries no body


def test_every_framing_of_an_answer_is_read_on_one_kept_connection() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Amz-Meta-Digest: sha256:1\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n"
        b"A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nETag: \"e\"\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nx-amz-meta-size: 1234\r\n\r\n",  # a HEAD's answer
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nSet: a\r\nSet: b\r\n\r\nNoSuchKey",
    ]
    with scripted(lambda _n, r: answers[int(r[1].rsplit("/", 1)[1])]) as (url, _seen, connections):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        got = [http.request("HEAD" if n == 3 else "GET", f"k/{n}") for n in range(len(answers))]
    assert [(a.status, a.body) for a in got] == [
        (200, b"hello"), (200, b"abc0123456789"), (201, b"ok"), (200, b""), (204, b""), (404, b"NoSuchKey")]
    assert got[0].metadata() == {"digest": "sha256:1"}
    assert got[2].headers["etag"] == '"e"'
    assert got[3].headers["content-length"] == "1234"
    assert got[5].headers["set"] == "a, b"
    assert connections == [len(answers)]  # all on one keep-alive connection


def test_a_closed_or_stale_connection_is_replaced() -> None:
    def script(number: int, request: Request) -> bytes:
        name = request[1].rsplit("/", 1)[1]
        if name == "close":  # says so, and its body runs to the end of the connection
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end"
        if name == "stale" and number == 1:
            return b""  # the store dropped the kept connection: no answer at all
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    with scripted(script) as (url, seen, connections):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        first = http.request("GET", "k/close")
        assert (first.status, first.body) == (200, b"to the end")
        assert http.request("GET", "k/next").body == b"ok"  # on a new connection
        assert http.request("GET", "k/stale").body == b"ok"  # retried at once on another one
    assert [r[1].rsplit("/", 1)[1] for r in seen] == ["close", "next", "stale", "stale"]
    assert connections == [1, 2, 1]


def test_request_all_has_every_request_in_the_store_before_it_reads_an_answer() -> None:
    """Each answer is held until all three requests have arrived: made one after the other, they
    would wait for each other, and the store answers 409 after a second."""
    arrived = threading.Barrier(3)

    def script(_number: int, request: Request) -> bytes:
        try:
            arrived.wait(timeout=2)
        except threading.BrokenBarrierError:
            return b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(request[3]), request[3])

    with scripted(script) as (url, _seen, connections):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        got = http.request_all([Call("PUT", f"k/{n}", f"body {n}".encode()) for n in range(3)])
    assert [(a.status, a.body) for a in got] == [(200, f"body {n}".encode()) for n in range(3)]
    assert connections == [1, 1, 1]


def test_request_all_retries_what_failed_alone() -> None:
    tries: dict[str, int] = {}

    def script(_number: int, request: Request) -> bytes:
        key = request[1].rsplit("/", 1)[1]
        tries[key] = tries.get(key, 0) + 1
        if key == "busy" and tries[key] == 1:
            return b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    with scripted(script) as (url, _seen, _connections):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        got = http.request_all([Call("PUT", "k/fine"), Call("PUT", "k/busy")])
    assert [a.status for a in got] == [200, 200]
    assert tries == {"fine": 1, "busy": 2}


@pytest.mark.parametrize("answer", [b"SSH-2.0-not http\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"])
def test_an_answer_that_is_not_http_is_an_os_error(answer: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3http, "ATTEMPTS", 3)
    with scripted(lambda _n, _r: answer) as (url, seen, _):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        with pytest.raises(OSError, match="GET k/x"):
            http.request("GET", "k/x")
    assert len(seen) == 3  # each attempt on a fresh connection, then given up


def test_a_header_value_with_a_line_break_is_refused() -> None:
    with scripted(lambda _n, _r: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (url, seen, _):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        with pytest.raises(ValueError, match="line break"):
            http.request("PUT", "k/x", b"", {"x-amz-meta-a": "one\r\nInjected: yes"})
    assert seen == []


def test_the_signer_signs_as_botocore_does_across_days_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_Signer`` hashes the payload and keeps the day's signing key itself: its Authorization header
    is botocore's, byte for byte, for any body, on the next day, and after the secret changes."""
    import datetime

    import botocore.auth
    from botocore.config import Config

    now = [datetime.datetime(2026, 12, 7, 23, 59, 59)]
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now[0])
    ours = s3http._Signer(Credentials("access", "secret"), "s3", "eu-west-3")

    def both(body: bytes, secret: str) -> tuple[str, str]:
        ours.credentials = Credentials("access", secret)
        theirs = S3SigV4Auth(Credentials("access", secret), "s3", "eu-west-3")
        headers = []
        for signer in (ours, theirs):
            request = AWSRequest(method="PUT", url="http://store:9000/b/k%20x", data=body,
                                 headers={"Host": "store:9000", "x-amz-meta-digest": "sha256:1"})
            # botocore signs a large body's payload only when told not to (S3's UNSIGNED-PAYLOAD)
            request.context["client_config"] = Config(
                s3={"payload_signing_enabled": len(body) <= s3http.SIGN_UP_TO})
            signer.add_auth(request)
            headers.append((request.headers["Authorization"], request.headers["X-Amz-Content-SHA256"]))
        assert headers[0] == headers[1]
        return headers[0]

    first = both(b"", "secret")
    assert both(b"{}", "secret") != first
    assert both(b"x" * (s3http.SIGN_UP_TO + 1), "secret")[1] == "UNSIGNED-PAYLOAD"
    now[0] += datetime.timedelta(seconds=2)  # the next day: a new signing key
    assert both(b"", "secret") != first
    assert both(b"", "rotated") != both(b"", "secret")


def test_a_call_refused_before_it_is_sent_leaves_no_answer_behind() -> None:
    """``request_all`` fails on its second call's header after the first went out: the first's answer
    is never read, and must not be taken for the answer to the next request on that connection."""
    def script(_number: int, request: Request) -> bytes:
        name = request[1].rsplit("/", 1)[1].encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name)

    with scripted(script) as (url, _seen, _connections):
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        with pytest.raises(ValueError, match="line break"):
            http.request_all([Call("PUT", "k/one"), Call("PUT", "k/two", b"", {"x-amz-meta-a": "1\n2"})])
        assert http.request("GET", "k/three").body == b"three"
        assert [a.body for a in http.request_all([Call("GET", "k/four"), Call("GET", "k/five")])] \
            == [b"four", b"five"]


def test_https_is_verified_against_aws_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"
    with scripted(lambda _n, _r: answer, tls=server) as (url, seen, connections):
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        http = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        assert [http.request("GET", f"k/{n}").body for n in range(2)] == [b"secret", b"secret"]
        assert connections == [2]  # kept alive over TLS too
        monkeypatch.setattr(s3http, "ATTEMPTS", 2)
        monkeypatch.delenv("AWS_CA_BUNDLE")
        untrusting = SignedHttp(url, "b", "us-east-1", CREDENTIALS, timeout=10)
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.request("GET", "k/x")
    assert len(seen) == 2
