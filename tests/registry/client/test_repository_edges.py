"""Repository edges against a scripted registry: media types sniffed when the server does not say,
and a resumed download whose ``Content-Range`` cannot be read."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from aiohttp import web

from dockyard.errors import DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import describe
from dockyard.registry.client import RegistryClient
from tests.registry.client.test_failures import FAST, Serve, _app, serve

__all__ = ["serve"]


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/json", {"schemaVersion": 2, "config": {}, "layers": []}, mt.OCI_MANIFEST),
    ("text/plain", {"schemaVersion": 2, "manifests": []}, mt.OCI_INDEX),
    ("application/json", {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": []},
     mt.DOCKER_MANIFEST_LIST),
    ("application/json", None, ""),  # not JSON: nothing to go by
    (mt.DOCKER_MANIFEST, {"schemaVersion": 2, "manifests": []}, mt.DOCKER_MANIFEST),  # the server's word
])
def test_media_type_is_sniffed_only_when_the_server_does_not_say(
        serve: Serve, content_type: str, body: object, expected: str) -> None:
    data = b"not json" if body is None else json.dumps(body).encode()

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=data, headers={"Content-Type": content_type})

    port = serve(_app(manifests=manifest))
    with RegistryClient(FAST) as client:
        fetched = client.repository(f"127.0.0.1:{port}", "x/y").get_manifest("v1")
    assert fetched.media_type == expected
    assert fetched.digest == Digest.from_bytes(data)


def test_resume_with_an_unreadable_content_range_is_refused(serve: Serve) -> None:
    blob = b"0123456789"
    desc = describe(blob, mt.OCI_LAYER)

    async def blobs(request: web.Request) -> web.Response:
        assert request.headers["Range"] == "bytes=3-"
        return web.Response(status=206, body=blob[3:], headers={"Content-Range": "3-9/10"})

    port = serve(_app(blobs=blobs))
    out = io.BytesIO(blob[:3])
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as caught:
        client.repository(f"127.0.0.1:{port}", "x/y").fetch_blob(desc, out)
    assert str(caught.value) == (f"blob {desc.digest} from 127.0.0.1:{port}/x/y: server sent bytes from -1, "
                                 "asked for 3")


def test_missing_manifest_is_named_by_tag_or_digest(serve: Serve) -> None:
    async def manifest(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                 status=404)

    port = serve(_app(manifests=manifest))
    digest = Digest.from_bytes(b"absent")
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        with pytest.raises(RegistryError) as by_tag:
            repo.get_manifest("v1")
        with pytest.raises(RegistryError) as by_digest:
            repo.get_manifest(str(digest))
    assert str(by_tag.value).startswith(f"manifest for 127.0.0.1:{port}/x/y:v1 not found")
    assert str(by_digest.value).startswith(f"manifest for 127.0.0.1:{port}/x/y@{digest} not found")


def test_head_manifest_reads_digest_size_and_type(serve: Serve) -> None:
    data = b'{"schemaVersion": 2}'
    digest = Digest.from_bytes(data)
    seen: list[str] = []

    async def manifest(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept", ""))
        ref = request.match_info["ref"]
        if ref == "absent":
            return web.Response(status=404)
        if ref == "broken":
            return web.Response(status=500)
        headers = {"Content-Type": f"{mt.OCI_MANIFEST}; charset=utf-8"}
        if ref != "nodigest":
            headers["Docker-Content-Digest"] = "sha256:bad" if ref == "baddigest" else str(digest)
        return web.Response(body=data, headers=headers)

    port = serve(_app(manifests=manifest))
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        desc = repo.head_manifest("v1", accept=(mt.OCI_MANIFEST, mt.OCI_INDEX))
        assert desc is not None
        assert (desc.media_type, desc.digest, desc.size) == (mt.OCI_MANIFEST, digest, len(data))
        assert seen == [f"{mt.OCI_MANIFEST}, {mt.OCI_INDEX}"]
        assert repo.head_manifest("absent") is None
        assert repo.head_manifest("nodigest") is None
        assert repo.head_manifest("baddigest") is None
        with pytest.raises(RegistryError) as caught:
            repo.head_manifest("broken")
    assert str(caught.value).startswith(f"manifest for 127.0.0.1:{port}/x/y:broken")


def test_small_blobs_follow_redirects_and_are_verified(serve: Serve) -> None:
    blob = b'{"architecture": "amd64"}'
    desc = describe(blob, mt.OCI_CONFIG)

    async def blobs(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(location=f"/storage/{request.match_info['ref']}")

    async def storage(request: web.Request) -> web.Response:
        return web.Response(body=blob if request.match_info["ref"] == str(desc.digest) else b"other")

    app = _app(blobs=blobs)
    app.router.add_get("/storage/{ref}", storage)
    port = serve(app)
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        assert repo.get_blob_bytes(desc) == blob
        assert repo.blob_exists(str(desc.digest))


def test_small_blob_errors_and_sha512(serve: Serve) -> None:
    blob = b"config bytes"
    sha512 = Digest("sha512:" + hashlib.sha512(blob).hexdigest())

    async def blobs(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref == str(sha512):
            return web.Response(body=blob)
        if ref == str(Digest.from_bytes(b"absent")):
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]},
                                     status=404)
        return web.Response(body=b"swapped")

    port = serve(_app(blobs=blobs))
    where = f"127.0.0.1:{port}/x/y"
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        assert repo.get_blob_bytes(Descriptor(mt.OCI_CONFIG, sha512, len(blob))) == blob
        absent = describe(b"absent", mt.OCI_CONFIG)
        with pytest.raises(RegistryError) as missing:
            repo.get_blob_bytes(absent)
        assert str(missing.value).startswith(f"blob {absent.digest} in {where}")
        wanted = describe(b"wanted", mt.OCI_CONFIG)
        with pytest.raises(DigestMismatch) as lied:
            repo.get_blob_bytes(wanted)
    assert str(lied.value) == (f"digest mismatch (blob from {where}): expected {wanted.digest}, "
                               f"got {Digest.from_bytes(b'swapped')}")


async def ping(request: web.Request) -> web.Response:
    return web.json_response({})


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_chunked_upload_headers_and_restart_after_a_server_error(serve: Serve, status: int) -> None:
    blob = b"abcdefghij"
    desc = describe(blob, mt.OCI_LAYER)
    log: list[tuple[str, ...]] = []
    failed = [False]

    async def head(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def start(request: web.Request) -> web.Response:
        log.append(("POST",))
        return web.Response(status=202, headers={"Location": "/upload/1"})

    async def patch(request: web.Request) -> web.Response:
        body = await request.read()
        log.append(("PATCH", request.headers["Content-Type"], request.headers["Content-Length"],
                    request.headers["Content-Range"], body.decode()))
        if not failed[0]:
            failed[0] = True
            return web.Response(status=status)
        return web.Response(status=202, headers={"Location": "/upload/1"})

    async def put(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        log.append(("PUT", request.headers["Content-Type"], request.query["digest"], body))
        return web.Response(status=201, headers={"Docker-Content-Digest": str(desc.digest)})

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_route("HEAD", "/v2/x/y/blobs/{ref}", head)
    app.router.add_post("/v2/x/y/blobs/uploads/", start)
    app.router.add_patch("/upload/1", patch)
    app.router.add_put("/upload/1", put)
    port = serve(app)
    with RegistryClient(FAST) as client:
        repo = client.repository(f"127.0.0.1:{port}", "x/y")
        assert repo.upload_blob(desc, lambda: io.BytesIO(blob), chunk_size=4) == "uploaded"
    octet = "application/octet-stream"
    assert log == [
        ("POST",), ("PATCH", octet, "4", "0-3", "abcd"),  # the server error: start again, once
        ("POST",), ("PATCH", octet, "4", "0-3", "abcd"), ("PATCH", octet, "4", "4-7", "efgh"),
        ("PATCH", octet, "2", "8-9", "ij"), ("PUT", octet, str(desc.digest), ""),
    ]


def test_chunk_refused_for_good_is_an_error_naming_the_blob(serve: Serve) -> None:
    blob = b"abcdefghij"
    desc = describe(blob, mt.OCI_LAYER)

    async def start(request: web.Request) -> web.Response:
        return web.Response(status=202, headers={"Location": "/upload/1"})

    async def patch(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "DENIED", "message": "no"}]}, status=403)

    app = web.Application()
    app.router.add_get("/v2/", ping)
    app.router.add_post("/v2/x/y/blobs/uploads/", start)
    app.router.add_patch("/upload/1", patch)
    port = serve(app)
    with RegistryClient(FAST) as client, pytest.raises(RegistryError) as caught:
        client.repository(f"127.0.0.1:{port}", "x/y").upload_blob(
            desc, lambda: io.BytesIO(blob), chunk_size=4, check_exists=False)
    assert str(caught.value).startswith(f"upload chunk of {desc.digest} to 127.0.0.1:{port}/x/y")
