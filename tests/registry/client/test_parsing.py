"""Pure parsing: auth challenges, error bodies (Docker's wording), host names and insecure ranges."""

from __future__ import annotations

import errno
import socket

import pytest

from dockyard.errors import AuthenticationError, RegistryError
from dockyard.registry.client import httpclient
from dockyard.registry.client.challenge import parse_challenges
from dockyard.registry.client.errors import describe_transport, error_from_response, transient
from dockyard.registry.client.options import RegistryOptions, api_host, canonical_host, is_loopback


def test_bearer_challenge_with_scope_and_escapes() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/busybox:pull",error="insufficient_scope"')
    (ch,) = parse_challenges(header)
    assert ch.scheme == "bearer"
    assert ch.realm == "https://auth.docker.io/token"
    assert ch.service == "registry.docker.io"
    assert ch.params["scope"] == "repository:library/busybox:pull"
    assert ch.params["error"] == "insufficient_scope"


def test_several_challenges_in_one_header() -> None:
    found = parse_challenges('Basic realm="a \\"b\\"", Bearer realm=x,service=y')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[0].realm == 'a "b"'
    assert found[1].params == {"realm": "x", "service": "y"}


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpclient.Response:
    return httpclient.Response(status, content=body, headers=headers or {})


def test_error_bodies_read_as_docker_prints_them() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}'
    err = error_from_response(_response(404, body), "manifest for x:nope")
    assert str(err) == "manifest for x:nope: manifest unknown: manifest unknown"
    assert err.status == 404 and err.code == "MANIFEST_UNKNOWN"
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    denied = error_from_response(_response(403, body), "")
    assert isinstance(denied, AuthenticationError)
    assert str(denied) == "denied: requested access to the resource is denied"


def test_error_without_body_names_the_status() -> None:
    err = error_from_response(_response(502, b"<html>bad gateway</html>"), "blob sha256:x")
    assert type(err) is RegistryError
    assert str(err) == "blob sha256:x: unexpected status 502 Bad Gateway"


def test_rate_limit_headers_are_shown() -> None:
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'
    headers = {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600",
               "Docker-RateLimit-Source": "203.0.113.7"}
    err = error_from_response(_response(429, body, headers), "")
    assert str(err) == ("toomanyrequests: You have reached your pull rate limit. "
                        "(rate limit: limit 100 per 21600s, remaining 0, source 203.0.113.7)")


def test_docker_hub_names() -> None:
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"):
        assert canonical_host(name) == "docker.io"
        assert api_host(name) == "registry-1.docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"


def test_insecure_hosts() -> None:
    opts = RegistryOptions(insecure=("myreg.example:5000", "10.0.0.0/8", "http://plain.example"))
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1") and is_loopback("[::1]:5000")
    assert opts.is_insecure("127.0.0.1:5000")
    assert opts.is_insecure("myreg.example:5000")
    assert not opts.is_insecure("myreg.example:5001")
    assert opts.is_insecure("10.1.2.3:443")
    assert opts.is_insecure("plain.example")
    assert not opts.is_insecure("registry-1.docker.io")


def _connect_error(cause: BaseException) -> httpclient.ConnectError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpclient.ConnectError(str(inner)) from inner
    except httpclient.ConnectError as exc:
        return exc


@pytest.mark.parametrize(("cause", "words"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     "dial tcp h.example:5000: connect: connection refused"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "dial tcp h.example:5000: connect: no route to host"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"),
     "dial tcp h.example:5000: connect: network is unreachable"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
     "dial tcp: lookup h.example: no such host"),
])
def test_connect_failures_in_dockers_words_and_never_retried(cause: BaseException, words: str) -> None:
    exc = _connect_error(cause)
    url = "https://h.example:5000/v2/"
    assert describe_transport(exc, "GET", url) == f'Get "{url}": {words}'
    assert not transient(exc)


def test_what_can_pass_is_retried() -> None:
    assert transient(httpclient.ReadError("reset")) and transient(httpclient.RemoteProtocolError("closed"))
    assert transient(httpclient.ReadTimeout("slow")) and not transient(httpclient.ConnectTimeout("no answer"))
    assert describe_transport(httpclient.ConnectTimeout("x"), "HEAD", "https://h.example/v2/x") == (
        'Head "https://h.example/v2/x": dial tcp h.example:443: i/o timeout')
