"""How the client fails: fast and in Docker's words when a registry is down or speaks plain HTTP,
with a visible notice before each retry, and never trusting a registry that lies about content."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from dockyard.errors import DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, describe
from dockyard.registry.client import RegistryClient, RegistryOptions, httpclient
from tests.registry.client.peers import PLAIN, _AiohttpThread, free_port

FAST = RegistryOptions(backoff=0.01)
FAKE_HOST = "registry.dytest.invalid"  # not loopback by name: only HTTPS unless listed as insecure


class _ToLoopback:
    """Sends requests for ``FAKE_HOST`` to 127.0.0.1, as if that name resolved there."""

    def __init__(self) -> None:
        self.inner = httpclient.Network(verify=None)
        self.urls: list[str] = []

    def __call__(self, request: httpclient.Request) -> httpclient.Response:
        self.urls.append(str(request.url))
        if request.url.host == FAKE_HOST:
            request.url = request.url.copy_with(host="127.0.0.1")
        return self.inner(request)

    def close(self) -> None:
        self.inner.close()


Serve = Callable[[web.Application], int]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Starts an aiohttp app on a free loopback port (returned); stopped after the test."""
    running: list[_AiohttpThread] = []

    def start(app: web.Application) -> int:
        running.append(_AiohttpThread(app, free_port()))
        return running[-1].port

    yield start
    for thread in running:
        thread.stop()


def _app(**routes: Callable[[web.Request], object]) -> web.Application:
    """``/v2/`` answering 200, plus ``manifests`` and ``blobs`` handlers if given."""
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    for kind, handler in routes.items():
        app.router.add_get(f"/v2/{{name:.*}}/{kind}/{{ref}}", handler)  # type: ignore[arg-type]
    return app


def test_refused_connection_fails_at_once_in_dockers_words() -> None:
    port = free_port()  # nothing listens there
    sleeps: list[float] = []
    notices: list[str] = []
    started = time.monotonic()
    client = RegistryClient(RegistryOptions(), sleep=sleeps.append)  # default retries and backoff
    with client, client.reporting(notices.append), pytest.raises(RegistryError) as info:
        client.repository(f"127.0.0.1:{port}", "x").get_manifest("1")
    assert time.monotonic() - started < 5  # a hang guard only: the point is that nothing waits
    assert sleeps == [] and notices == []  # refused is not an error that passes: no retry
    assert str(info.value) == (f'cannot reach registry 127.0.0.1:{port}: Get "http://127.0.0.1:{port}/v2/": '
                               f"dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_unresolvable_host_in_dockers_words() -> None:
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as info:
        client.repository("nosuch.dytest.invalid", "x").get_manifest("1")
    assert str(info.value).endswith(
        'Get "https://nosuch.dytest.invalid/v2/": dial tcp: lookup nosuch.dytest.invalid: no such host')


def test_retries_are_announced_with_their_wait(serve: Serve) -> None:
    answers = [503, 503]

    async def manifest(request: web.Request) -> web.Response:
        if answers:
            return web.Response(status=answers.pop(0))
        return web.Response(status=404)

    port = serve(_app(manifests=manifest))
    sleeps: list[float] = []
    notices: list[str] = []
    client = RegistryClient(RegistryOptions(backoff=0.5), sleep=sleeps.append)
    with client, client.reporting(notices.append), pytest.raises(RegistryError, match="not found"):
        client.repository(f"127.0.0.1:{port}", "x").get_manifest("1")
    where = f"GET http://127.0.0.1:{port}/v2/x/manifests/1"
    assert notices == [f"{where}: status 503; retrying in 0.5 s", f"{where}: status 503; retrying in 1 s"]
    assert sleeps == [0.5, 1.0]


def test_plain_http_registry_not_listed_as_insecure(serve: Serve) -> None:
    port = serve(_app())
    host = f"{FAKE_HOST}:{port}"
    transport = _ToLoopback()
    with RegistryClient(FAST, transport=transport) as client, pytest.raises(RegistryError) as info:
        client.session(host).ping()
    text = str(info.value)
    assert f'Get "https://{host}/v2/": http: server gave HTTP response to HTTPS client' in text
    assert "insecure-registries" in text and "SSL" not in text and "\n" not in text
    assert transport.urls == [f"https://{host}/v2/"]  # HTTPS only, tried once
    # listed as insecure, the same registry is reached over plain HTTP
    with RegistryClient(RegistryOptions(backoff=0.01, insecure=(host,)), transport=_ToLoopback()) as client:
        assert client.session(host).base_url == f"http://{host}"


def test_manifest_by_digest_is_checked_against_it(serve: Serve) -> None:
    """A registry (or mirror) that answers a digest with other bytes is caught, with both digests named."""
    config = describe(b"{}", mt.OCI_CONFIG)
    asked = Manifest(config, (), media_type=mt.OCI_MANIFEST).to_json()
    swapped = Manifest(config, (describe(b"evil", mt.OCI_LAYER_GZIP),), media_type=mt.OCI_MANIFEST).to_json()
    asked_digest = Digest.from_bytes(asked)

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=swapped, content_type=mt.OCI_MANIFEST,
                            headers={"Docker-Content-Digest": str(asked_digest)})

    port = serve(_app(manifests=manifest))
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "lying/repo")
        with pytest.raises(DigestMismatch) as info:
            repo.get_manifest(str(asked_digest))
        assert str(asked_digest) in str(info.value) and str(Digest.from_bytes(swapped)) in str(info.value)
        # by tag there is nothing to check against: the bytes are taken, with their own digest
        assert repo.get_manifest("v1").digest == Digest.from_bytes(swapped)


@pytest.mark.registry
@pytest.mark.usefixtures("peer_registries")
def test_resume_answered_with_the_whole_body_drops_the_held_prefix() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    desc = describe(data, mt.OCI_LAYER_GZIP)
    repo_name = f"dytest/{uuid.uuid4().hex[:10]}"
    with RegistryClient(FAST) as plain:
        plain.repository(PLAIN, repo_name).upload_blob(desc, lambda: io.BytesIO(data))
    ranges: list[str | None] = []

    class CutThenIgnoreRange:
        def __init__(self) -> None:
            self.inner = httpclient.Network(verify=None)

        def __call__(self, request: httpclient.Request) -> httpclient.Response:
            blob = request.method == "GET" and "/blobs/" in request.url.path
            if blob:
                ranges.append(request.headers.get("range"))
                request.headers.pop("range", None)  # a server that ignores Range: 200, the whole body
            response = self.inner(request)
            if blob and len(ranges) == 1:
                whole = response.read()
                return httpclient.Response(200, stream=_Cut(whole[: 700_000]), request=request)
            return response

    notices: list[str] = []
    client = RegistryClient(FAST, transport=CutThenIgnoreRange())
    with client, client.reporting(notices.append):
        out = io.BytesIO()
        client.repository(PLAIN, repo_name).fetch_blob(desc, out)
    assert ranges == [None, "bytes=700000-"]
    # a connection dropped mid-transfer can pass: retried, and said so
    assert notices == [f"download of {desc.digest.short}: peer closed connection (injected); "
                       "retrying in 0.01 s"]
    assert out.getvalue() == data


class _Cut:
    """A body that breaks off after ``data`` like a dropped connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpclient.RemoteProtocolError("peer closed connection (injected)")



def test_token_service_down_is_a_registry_error(serve: Serve) -> None:
    closed = free_port()

    async def ping(request: web.Request) -> web.Response:
        realm = f'Bearer realm="http://127.0.0.1:{closed}/token",service="dytest"'
        return web.Response(status=401, headers={"WWW-Authenticate": realm})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/{name:.*}/manifests/{ref}", ping)
    port = serve(app)
    sleeps: list[float] = []
    with RegistryClient(RegistryOptions(), sleep=sleeps.append) as client, \
            pytest.raises(RegistryError) as info:
        client.repository(f"127.0.0.1:{port}", "x").get_manifest("1")
    assert str(info.value) == (f'127.0.0.1:{port}: token service: Get "http://127.0.0.1:{closed}/token": '
                               f"dial tcp 127.0.0.1:{closed}: connect: connection refused")
    assert sleeps == []
