"""The protocol layer against real registries: distribution 2.8 plain, with htpasswd, and with token auth.

Faults (broken streams, 5xx, 429, a chunk minimum) are injected by wrapping the client's real transport.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from dockyard.errors import AuthenticationError, DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, describe
from dockyard.registry.auth import Credentials
from dockyard.registry.client import RegistryClient, RegistryOptions, httpclient
from tests.registry.client.peers import BASIC, PASSWORD, PLAIN, USER, TokenRegistry
from tests.registry.tlskit import self_signed

pytestmark = [pytest.mark.registry, pytest.mark.registry_auth, pytest.mark.usefixtures("peer_registries")]
FAST = RegistryOptions(backoff=0.01)


def _blob(size: int) -> tuple[Descriptor, bytes]:
    data = os.urandom(size)
    return Descriptor(mt.OCI_LAYER_GZIP, Digest.from_bytes(data), size), data


def _repo() -> str:
    return f"dytest/{uuid.uuid4().hex[:10]}"


Hook = Callable[[httpclient.Request, httpclient.Response], "httpclient.Response | None"]


class Faults:
    """The real transport, with a hook that may replace or cut a response."""

    def __init__(self, hook: Hook) -> None:
        self.inner = httpclient.Network(verify=None)
        self.hook = hook
        self.requests: list[httpclient.Request] = []

    def __call__(self, request: httpclient.Request) -> httpclient.Response:
        self.requests.append(request)
        response = self.inner(request)
        replaced = self.hook(request, response)
        return replaced if replaced is not None else response

    def close(self) -> None:
        getattr(self.inner, "close", lambda: None)()  # (a test may swap the inner transport)


class _CutStream:
    """Passes ``limit`` bytes of a real stream through, then fails like a dropped connection."""

    def __init__(self, inner: Iterable[bytes], limit: int) -> None:
        self.inner, self.limit = inner, limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) > self.limit:
                yield chunk[: self.limit - sent]
                raise httpclient.RemoteProtocolError("peer closed connection (injected)")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        getattr(self.inner, "close", lambda: None)()


@pytest.mark.parametrize("host", [PLAIN, BASIC])
def test_upload_skip_mount_fetch_and_manifest_roundtrip(host: str) -> None:
    desc, data = _blob(3 << 20)
    src, dst = _repo(), _repo()
    with RegistryClient(FAST, credentials=lambda h: Credentials(USER, PASSWORD)) as client:
        repo = client.repository(host, src)
        assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "uploaded"
        assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "exists"
        other = client.repository(host, dst)
        assert other.upload_blob(desc, lambda: io.BytesIO(data), mount_from=[src]) == "mounted"
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        cdesc = describe(config, mt.OCI_CONFIG)
        assert other.upload_blob(cdesc, lambda: io.BytesIO(config)) == "uploaded"
        manifest = Manifest(cdesc, (desc,)).to_json()
        digest = other.put_manifest("v1", manifest, mt.OCI_MANIFEST)
        got = other.get_manifest("v1")
        assert (got.data, got.media_type, got.digest) == (manifest, mt.OCI_MANIFEST, digest)
        assert other.get_manifest(digest).data == manifest
        head = other.head_manifest("v1")
        assert head is not None and head.digest == digest and head.size == len(manifest)
        assert other.head_manifest("nope") is None
        assert other.tags() == ["v1"]
        out = io.BytesIO()
        other.fetch_blob(desc, out)
        assert out.getvalue() == data
        assert other.get_blob_bytes(cdesc) == config


def test_missing_manifest_reads_like_docker() -> None:
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as info:
        client.repository(PLAIN, _repo()).get_manifest("nope")
    assert "manifest unknown" in str(info.value) or "name unknown" in str(info.value)


def test_basic_auth_refused_without_or_with_wrong_credentials() -> None:
    with RegistryClient(FAST) as client, pytest.raises(AuthenticationError) as info:
        client.repository(BASIC, _repo()).get_manifest("latest")
    assert "unauthorized: authentication required" in str(info.value)
    bad = RegistryClient(FAST, credentials=lambda h: Credentials(USER, "wrong"))
    with bad, pytest.raises(AuthenticationError):
        bad.session(BASIC).login()
    good = RegistryClient(FAST, credentials=lambda h: Credentials(USER, PASSWORD))
    with good:
        assert good.session(BASIC).login() == Credentials(USER, PASSWORD)


def test_chunked_upload_honours_chunk_min_length() -> None:
    desc, data = _blob((5 << 20) + 123)
    minimum = 2 << 20

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "POST" and response.status_code == 202:
            response.headers["OCI-Chunk-Min-Length"] = str(minimum)
        return None

    faults = Faults(hook)
    with RegistryClient(FAST, transport=faults) as client:
        repo = client.repository(PLAIN, _repo())
        assert repo.upload_blob(desc, lambda: io.BytesIO(data), chunk_size=1 << 20) == "uploaded"
        patches = [r for r in faults.requests if r.method == "PATCH"]
        assert [int(r.headers["content-length"]) for r in patches] == [minimum, minimum, (1 << 20) + 123]
        assert patches[0].headers["content-range"] == f"0-{minimum - 1}"
        out = io.BytesIO()
        repo.fetch_blob(desc, out)
        assert out.getvalue() == data


def test_broken_download_resumes_with_range() -> None:
    desc, data = _blob(4 << 20)
    cuts = [1 << 20, (3 << 20) // 2]  # two drops; each resume asks for the rest

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "GET" and "/blobs/sha256:" in request.url.path and cuts:
            return httpclient.Response(response.status_code, response.headers, request=request,
                                       stream=_CutStream(response.stream, cuts.pop(0)))
        return response

    faults = Faults(hook)
    repo_name = _repo()
    with RegistryClient(FAST) as plain:
        plain.repository(PLAIN, repo_name).upload_blob(desc, lambda: io.BytesIO(data))
    with RegistryClient(FAST, transport=faults) as client:
        out = io.BytesIO()
        client.repository(PLAIN, repo_name).fetch_blob(desc, out)
    assert out.getvalue() == data
    ranges = [r.headers.get("range") for r in faults.requests if "/blobs/" in r.url.path]
    assert ranges[0] is None and len(ranges) == 3
    # each resume asks for the bytes after those already written (pieces lost in a drop are re-fetched)
    starts = [int(str(r).removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert starts[0] == 1 << 20
    assert starts[0] < starts[1] <= starts[0] + (3 << 20) // 2


def test_corrupt_blob_is_refused_and_left_empty() -> None:
    desc, data = _blob(1 << 20)
    repo_name = _repo()

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "GET" and "/blobs/" in request.url.path:
            response.read()
            return httpclient.Response(200, stream=[b"x" * desc.size], request=request)
        return None

    with RegistryClient(FAST) as plain:
        plain.repository(PLAIN, repo_name).upload_blob(desc, lambda: io.BytesIO(data))
    with RegistryClient(FAST, transport=Faults(hook)) as client:
        out = io.BytesIO()
        with pytest.raises(DigestMismatch):
            client.repository(PLAIN, repo_name).fetch_blob(desc, out)
        assert out.getvalue() == b""


def test_retries_5xx_and_429_with_backoff_then_gives_up() -> None:
    statuses = [503, 429, 502]
    sleeps: list[float] = []

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if "/tags/list" in request.url.path and statuses:
            response.read()
            status = statuses.pop(0)
            headers = {"Retry-After": "2"} if status == 429 else {}
            return httpclient.Response(status, headers=headers, request=request)
        return None

    repo_name = _repo()
    desc, data = _blob(100)
    with RegistryClient(FAST) as plain:
        repo = plain.repository(PLAIN, repo_name)
        repo.upload_blob(desc, lambda: io.BytesIO(data))
        cdesc = describe(b"{}", mt.OCI_CONFIG)
        repo.upload_blob(cdesc, lambda: io.BytesIO(b"{}"))
        repo.put_manifest("t", Manifest(cdesc, (desc,)).to_json(), mt.OCI_MANIFEST)
    with RegistryClient(FAST, transport=Faults(hook), sleep=sleeps.append) as client:
        assert client.repository(PLAIN, repo_name).tags() == ["t"]
    assert sleeps[1] == 2.0  # Retry-After is honoured
    assert sleeps[0] < sleeps[2]  # exponential backoff otherwise
    always: list[float] = []

    def failing(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if "/tags/list" in request.url.path:
            response.read()
            return httpclient.Response(503, request=request)
        return None

    client = RegistryClient(FAST, transport=Faults(failing), sleep=always.append)
    with client, pytest.raises(RegistryError, match="503"):
        client.repository(PLAIN, repo_name).tags()
    assert len(always) == FAST.retries


def test_unreachable_registry_is_a_clear_error() -> None:
    opts = RegistryOptions(retries=0, connect_timeout=1.0)
    message = r"cannot reach registry 127\.0\.0\.1:9"
    with RegistryClient(opts) as client, pytest.raises(RegistryError, match=message):
        client.repository("127.0.0.1:9", "x").get_manifest("latest")


def test_bearer_token_auth_reuse_and_scopes(token_registry: TokenRegistry) -> None:
    tokens = token_registry.tokens
    desc, data = _blob(2000)
    name = f"team/{uuid.uuid4().hex[:8]}"
    with RegistryClient(FAST, credentials=lambda h: Credentials("alice", "wonderland")) as client:
        repo = client.repository(token_registry.host, name)
        before = len(tokens.issued)
        for _ in range(3):
            repo.upload_blob(desc, lambda: io.BytesIO(data))
            repo.fetch_blob(desc, io.BytesIO())
        # one token for pull, one for pull+push: reused across every later request
        assert len(tokens.issued) - before == 2
        assert {tuple(t["scopes"]) for t in tokens.issued[before:]} == {  # type: ignore[arg-type]
            (f"repository:{name}:pull",), (f"repository:{name}:pull,push",)}
        assert all(t["user"] == "alice" for t in tokens.issued[before:])


def test_bearer_anonymous_pull_and_denied_push(token_registry: TokenRegistry) -> None:
    desc, data = _blob(500)
    name = f"public/{uuid.uuid4().hex[:8]}"
    with RegistryClient(FAST, credentials=lambda h: Credentials("alice", "wonderland")) as client:
        client.repository(token_registry.host, name).upload_blob(desc, lambda: io.BytesIO(data))
    with RegistryClient(FAST) as anonymous:
        repo = anonymous.repository(token_registry.host, name)
        out = io.BytesIO()
        repo.fetch_blob(desc, out)
        assert out.getvalue() == data
        other, other_data = _blob(300)
        with pytest.raises(AuthenticationError) as info:
            repo.upload_blob(other, lambda: io.BytesIO(other_data))
        assert "unauthorized" in str(info.value) or "denied" in str(info.value)


def test_bearer_token_refreshed_when_expired(token_registry: TokenRegistry) -> None:
    tokens = token_registry.tokens
    desc, data = _blob(500)
    name = f"team/{uuid.uuid4().hex[:8]}"
    tokens.lifetime = 7  # the client refreshes 5 s early: these tokens are stale after 2 s
    try:
        with RegistryClient(FAST, credentials=lambda h: Credentials("alice", "wonderland")) as client:
            repo = client.repository(token_registry.host, name)
            repo.upload_blob(desc, lambda: io.BytesIO(data))
            first = repo.session.token_fetches
            time.sleep(2.1)
            repo.fetch_blob(desc, io.BytesIO())
            repo.fetch_blob(desc, io.BytesIO())
            assert repo.session.token_fetches == first + 1
    finally:
        tokens.lifetime = 300


def test_bearer_login_gets_refresh_token_used_later(token_registry: TokenRegistry) -> None:
    tokens = token_registry.tokens
    with RegistryClient(FAST, credentials=lambda h: Credentials("alice", "wonderland")) as client:
        stored = client.session(token_registry.host).login()
    assert stored is not None and stored.identity_token in tokens.refresh_tokens and not stored.password
    desc, data = _blob(700)
    with RegistryClient(FAST, credentials=lambda h: stored) as client:
        repo = client.repository(token_registry.host, f"team/{uuid.uuid4().hex[:8]}")
        assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "uploaded"
    assert tokens.issued[-1]["user"] == "alice"
    client = RegistryClient(FAST, credentials=lambda h: Credentials("alice", "nope"))
    with client, pytest.raises(AuthenticationError, match="incorrect username or password"):
        client.session(token_registry.host).login()


def test_timeouts_are_retried_then_reported() -> None:
    import asyncio

    from aiohttp import web

    from tests.registry.client.peers import _AiohttpThread, free_port

    calls: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.path)
        await asyncio.sleep(1)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/{name:.*}/manifests/{ref}", slow)
    server = _AiohttpThread(app, free_port())
    try:
        opts = RegistryOptions(timeout=0.3, retries=2, backoff=0.01)
        with RegistryClient(opts) as client, pytest.raises(RegistryError, match="timeout") as info:
            client.repository(f"127.0.0.1:{server.port}", "slow/repo").get_manifest("v1")
        assert len(calls) == 3  # each attempt gave up after 0.3 s: the server answers only after 1 s
        assert "\n" not in str(info.value)
    finally:
        server.stop()


def test_manifest_index_roundtrip_keeps_media_type() -> None:
    from dockyard.oci.manifest import Index
    from dockyard.oci.platform import Platform

    desc, data = _blob(100)
    cdesc = describe(b"{}", mt.OCI_CONFIG)
    repo_name = _repo()
    with RegistryClient(FAST) as client:
        repo = client.repository(PLAIN, repo_name)
        repo.upload_blob(desc, lambda: io.BytesIO(data))
        repo.upload_blob(cdesc, lambda: io.BytesIO(b"{}"))
        child = Manifest(cdesc, (desc,), media_type=mt.DOCKER_MANIFEST).to_json()
        child_digest = repo.put_manifest("child", child, mt.DOCKER_MANIFEST)
        for media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST):
            index = Index((Descriptor(mt.DOCKER_MANIFEST, child_digest, len(child),
                                      platform=Platform("linux", "amd64")),), media_type=media_type).to_json()
            repo.put_manifest("list", index, media_type)
            got = repo.get_manifest("list")
            assert got.media_type == media_type and got.data == index


def test_https_first_and_plain_http_only_when_allowed(tmp_path: Path) -> None:
    from dockyard.registry.server import RegistryServer

    cert, key = self_signed(tmp_path)
    desc, data = _blob(10_000)
    server = RegistryServer(storage=tmp_path / "data", tls_cert=str(cert), tls_key=str(key))
    with server, RegistryClient(FAST) as client:  # loopback: TLS without verification, as docker does
        repo = client.repository(server.address, "tls/repo")
        assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "uploaded"
        assert repo.session.base_url == f"https://{server.address}"
    # a registry that is neither loopback nor listed as insecure is only ever tried over HTTPS
    seen: list[str] = []
    faults = Faults(lambda request, response: None)
    inner = faults.inner

    def record(request: httpclient.Request) -> httpclient.Response:
        seen.append(f"{request.url.scheme}://{request.url.host}")
        return inner(request)

    faults.inner = record  # type: ignore[assignment]
    opts = RegistryOptions(retries=0, backoff=0.01)
    with RegistryClient(opts, transport=faults) as client, pytest.raises(RegistryError, match="cannot reach"):
        client.repository("registry.dytest.invalid", "x").get_manifest("latest")
    assert seen == ["https://registry.dytest.invalid"]
    seen.clear()
    opts = RegistryOptions(retries=0, backoff=0.01, insecure=("registry.dytest.invalid",))
    with RegistryClient(opts, transport=faults) as client, pytest.raises(RegistryError, match="cannot reach"):
        client.repository("registry.dytest.invalid", "x").get_manifest("latest")
    assert seen == ["https://registry.dytest.invalid", "http://registry.dytest.invalid"]


def test_upload_restarts_after_a_5xx_mid_upload() -> None:
    desc, data = _blob(2 << 20)
    failures = [503]

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "PUT" and "/blobs/uploads/" in request.url.path and failures:
            response.read()
            return httpclient.Response(failures.pop(), request=request)
        return None

    faults = Faults(hook)
    with RegistryClient(FAST, transport=faults) as client:
        repo = client.repository(PLAIN, _repo())
        assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "uploaded"
        out = io.BytesIO()
        repo.fetch_blob(desc, out)
        assert out.getvalue() == data
    uploads = [r.method for r in faults.requests if "/blobs/uploads/" in r.url.path]
    assert uploads == ["POST", "PUT", "POST", "PUT"]


def test_a_download_into_a_content_writer_hashes_each_byte_once(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The content-store writer hashes what it is given; the download checks its digest from that
    # hash (resumes included) instead of hashing every byte a second time.
    from dockyard.content import ContentStore
    from dockyard.oci import digest as digest_module

    desc, data = _blob(3 << 20)
    repo_name = _repo()
    with RegistryClient(FAST) as plain:
        plain.repository(PLAIN, repo_name).upload_blob(desc, lambda: io.BytesIO(data))
    hashed = [0]
    real_update = digest_module.Hasher.update

    def update(self: digest_module.Hasher, piece: bytes | bytearray | memoryview) -> None:
        hashed[0] += len(piece)
        real_update(self, piece)

    monkeypatch.setattr(digest_module.Hasher, "update", update)
    cuts = [1 << 20]

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "GET" and "/blobs/sha256:" in request.url.path and cuts:
            return httpclient.Response(response.status_code, response.headers, request=request,
                                       stream=_CutStream(response.stream, cuts.pop(0)))
        return response

    store = ContentStore(tmp_path / "content", fsync=False)
    with RegistryClient(FAST, transport=Faults(hook)) as client, store.writer(desc.digest, desc.size) as w:
        client.repository(PLAIN, repo_name).fetch_blob(desc, w)
        assert hashed[0] == len(data)  # once, though the download was resumed
        assert w.commit().digest == desc.digest
    # a bad blob is still refused (the writer's hash is the one checked)
    def corrupt(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.method == "GET" and "/blobs/" in request.url.path:
            response.read()
            return httpclient.Response(200, stream=[b"x" * desc.size], request=request)
        return None

    with RegistryClient(FAST, transport=Faults(corrupt)) as client, store.writer() as w, \
            pytest.raises(DigestMismatch):
        client.repository(PLAIN, repo_name).fetch_blob(desc, w)
