"""Repository calls the other client tests reach only through push and pull: the scopes each one
asks a token server for, streamed uploads, tag-list pagination, HEAD of a manifest, and mounts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator

import pytest
from aiohttp import web

from dockyard.errors import CorruptData, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import describe
from dockyard.registry.auth import Credentials
from dockyard.registry.client import RegistryClient
from tests.registry.client.peers import PLAIN, TokenRegistry
from tests.registry.client.test_failures import FAST, Serve, serve

__all__ = ["serve"]

ALICE = Credentials("alice", "wonderland")


def _image(client: RegistryClient, host: str, name: str) -> tuple[Descriptor, bytes, Digest]:
    """A config blob and a manifest naming it, pushed under tag v1."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "nonce": uuid.uuid4().hex}).encode()
    cdesc = describe(config, mt.OCI_CONFIG)
    repo = client.repository(host, name)
    repo.upload_blob(cdesc, lambda: io.BytesIO(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cdesc.to_dict(),
                           "layers": []}).encode()
    digest = repo.put_manifest("v1", manifest, mt.OCI_MANIFEST)
    return cdesc, manifest, digest


# -- each call asks the token server for what it needs --------------------------------------------

def test_reads_ask_for_pull_and_a_mount_for_pull_on_its_source(token_registry: TokenRegistry) -> None:
    host, tokens = token_registry.host, token_registry.tokens
    source, target = f"team/{uuid.uuid4().hex[:8]}", f"team/{uuid.uuid4().hex[:8]}"
    with RegistryClient(FAST, credentials=lambda h: ALICE) as client:
        cdesc, manifest, digest = _image(client, host, source)
    with RegistryClient(FAST, credentials=lambda h: ALICE) as client:
        repo = client.repository(host, source)
        head = repo.head_manifest("v1")
        assert head is not None and head.digest == digest and head.size == len(manifest)
        assert repo.tags() == ["v1"]
        assert repo.get_blob_bytes(cdesc) == repo.get_blob_bytes(cdesc)
        assert {tuple(t["scopes"]) for t in tokens.issued[-3:]} >= {  # type: ignore[arg-type]
            (f"repository:{source}:pull",)}
        before = len(tokens.issued)
        assert client.repository(host, target).mount_blob(str(cdesc.digest), source) is None  # 201: mounted
        asked = {s for t in tokens.issued[before:] for s in t["scopes"]}  # type: ignore[attr-defined]
        assert asked == {f"repository:{target}:pull,push", f"repository:{source}:pull"}
        assert client.repository(host, target).blob_exists(str(cdesc.digest))


# -- streamed uploads ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["plain", "token"])
def test_upload_stream_sends_the_chunks_and_closes_with_the_digest(
        token_registry: TokenRegistry, where: str) -> None:
    host = PLAIN if where == "plain" else token_registry.host
    data = os.urandom(300_000)
    desc = describe(data, mt.OCI_LAYER_GZIP)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 65536):
            sent.append(i)
            yield data[i:i + 65536]

    name = f"team/{uuid.uuid4().hex[:8]}"
    with RegistryClient(FAST, credentials=lambda h: ALICE) as client:
        repo = client.repository(host, name)
        got = repo.upload_stream(chunks(), lambda: desc)
        assert got is desc
        assert len(sent) == 5
        assert repo.get_blob_bytes(desc) == data


def test_upload_stream_with_a_wrong_digest_is_refused() -> None:
    data = b"streamed body"
    wrong = describe(b"something else", mt.OCI_LAYER_GZIP)
    with RegistryClient(FAST) as client, pytest.raises(RegistryError):
        client.repository(PLAIN, f"dytest/{uuid.uuid4().hex[:8]}").upload_stream(iter([data]), lambda: wrong)


def _upload_app(patch_status: int = 202, post_location: str | None = "/v2/x/y/blobs/uploads/abc?s=1",
                patch_location: str = "/v2/x/y/blobs/uploads/abc?s=2") -> tuple[web.Application, list[str]]:
    seen: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def post(request: web.Request) -> web.Response:
        seen.append(f"POST {request.path_qs}")
        headers = {"Location": post_location} if post_location is not None else {}
        return web.Response(status=202, headers=headers)

    async def patch(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(f"PATCH {request.path_qs} {hashlib.sha256(body).hexdigest()[:8]}")
        return web.Response(status=patch_status, headers={"Location": patch_location})

    async def put(request: web.Request) -> web.Response:
        seen.append(f"PUT {request.path_qs}")
        return web.Response(status=201, headers={"Docker-Content-Digest": request.query["digest"]})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_post("/v2/x/y/blobs/uploads/", post)
    app.router.add_patch("/v2/x/y/blobs/uploads/abc", patch)
    app.router.add_put("/v2/x/y/blobs/uploads/abc", put)
    return app, seen


def test_upload_stream_puts_to_the_location_the_patch_answered(serve: Serve) -> None:
    app, seen = _upload_app()
    port = serve(app)
    desc = describe(b"abc", mt.OCI_LAYER_GZIP)
    with RegistryClient(FAST) as client:
        client.repository(f"127.0.0.1:{port}", "x/y").upload_stream(iter([b"a", b"bc"]), lambda: desc)
    digest = hashlib.sha256(b"abc").hexdigest()
    assert seen == ["POST /v2/x/y/blobs/uploads/", f"PATCH /v2/x/y/blobs/uploads/abc?s=1 {digest[:8]}",
                    f"PUT /v2/x/y/blobs/uploads/abc?s=2&digest=sha256%3A{digest}"]


def test_upload_stream_errors_name_the_step(serve: Serve) -> None:
    desc = describe(b"abc", mt.OCI_LAYER_GZIP)
    app, _ = _upload_app(patch_status=500)
    port = serve(app)
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as info:
        client.repository(f"127.0.0.1:{port}", "x/y").upload_stream(iter([b"abc"]), lambda: desc)
    assert f"stream upload to 127.0.0.1:{port}/x/y" in str(info.value)
    app, _ = _upload_app(post_location=None)
    port = serve(app)
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as info:
        client.repository(f"127.0.0.1:{port}", "x/y").upload_stream(iter([b"abc"]), lambda: desc)
    assert str(info.value) == f"upload to 127.0.0.1:{port}/x/y: registry sent no Location"


# -- tag lists, HEAD of a manifest, mounts: the server's answers read exactly ----------------------

def test_tags_follow_link_pagination_relative_to_the_page(serve: Serve) -> None:
    pages = {"": (["a", "b"], '</v2/x/y/tags/list?n=2&last=b>; rel="next"'),
             "b": (["c", "d"], '<list?n=2&last=d>; rel="next"'),
             "d": (["e"], None)}
    asked: list[str] = []

    async def tags(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        names, link = pages[request.query.get("last", "")]
        return web.json_response({"name": "x/y", "tags": names}, headers={"Link": link} if link else {})

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/x/y/tags/list", tags)
    port = serve(app)
    with RegistryClient(FAST) as client:
        assert client.repository(f"127.0.0.1:{port}", "x/y").tags() == ["a", "b", "c", "d", "e"]
    assert asked == ["n=1000", "n=2&last=b", "n=2&last=d"]


@pytest.mark.parametrize("status,body,message", [
    (200, b"not json", "tag list of 127.0.0.1:{port}/x/y: invalid JSON"),
    (500, b"{}", "list tags of 127.0.0.1:{port}/x/y"),
])
def test_tag_list_errors(serve: Serve, status: int, body: bytes, message: str) -> None:
    async def tags(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_get("/v2/x/y/tags/list", tags)
    port = serve(app)
    with RegistryClient(FAST) as client, pytest.raises((RegistryError, CorruptData)) as info:
        client.repository(f"127.0.0.1:{port}", "x/y").tags()
    assert message.format(port=port) in str(info.value)


@pytest.mark.parametrize("headers,expected", [
    ({"Content-Type": f"{mt.OCI_MANIFEST}; charset=utf-8", "Content-Length": "123"}, (mt.OCI_MANIFEST, 123)),
    ({"Content-Type": "application/a;b; c"}, ("application/a", 0)),
    ({}, ("", 0)),
])
def test_head_manifest_reads_type_and_size(serve: Serve, headers: dict[str, str],
                                           expected: tuple[str, int]) -> None:
    digest = str(Digest.from_bytes(b"m"))

    async def head(request: web.Request) -> web.StreamResponse:
        assert request.headers["Accept"] == f"{mt.OCI_MANIFEST}, {mt.OCI_INDEX}"
        response = web.StreamResponse(status=200, headers={"Docker-Content-Digest": digest, **headers})
        if "Content-Length" not in headers:
            response.enable_chunked_encoding()
        return response

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_route("HEAD", "/v2/x/y/manifests/v1", head)
    port = serve(app)
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        desc = repo.head_manifest("v1", (mt.OCI_MANIFEST, mt.OCI_INDEX))
    assert desc is not None
    assert (desc.media_type, desc.size, str(desc.digest)) == (*expected, digest)


@pytest.mark.parametrize("status,expected", [(201, None), (202, "location"), (404, "error")])
def test_mount_answers(serve: Serve, status: int, expected: str | None) -> None:
    asked: list[str] = []

    async def post(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        if status == 404:
            return web.json_response({"errors": [{"code": "NAME_UNKNOWN", "message": "no such repo"}]},
                                     status=404)
        return web.Response(status=status, headers={"Location": "/v2/x/y/blobs/uploads/u1"})

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_post("/v2/x/y/blobs/uploads/", post)
    port = serve(app)
    digest = str(Digest.from_bytes(b"blob"))
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        if expected == "error":
            with pytest.raises(RegistryError) as info:
                repo.mount_blob(digest, "other/repo")
            assert str(info.value).startswith(f"mount {digest} into 127.0.0.1:{port}/x/y")
        else:
            got = repo.mount_blob(digest, "other/repo")
            assert got == (None if expected is None else f"http://127.0.0.1:{port}/v2/x/y/blobs/uploads/u1")
    quoted = digest.replace(":", "%3A")
    assert asked == [f"/v2/x/y/blobs/uploads/?mount={quoted}&from=other/repo"]
