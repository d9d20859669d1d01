"""The distribution spec 1.1 endpoints, one behaviour per test, against the in-process registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from regkit import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    error_code,
    image_manifest,
    push_blob,
    put_manifest,
    sha,
)


def test_base_and_health(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert client.get("/healthz").json()["status"] == "ok"


def test_blob_get_head_and_ranges(client: httpx.Client) -> None:
    data = bytes(range(256)) * 10
    digest = push_blob(client, "r/blobs", data)
    head = client.head(f"/v2/r/blobs/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest and head.content == b""
    assert client.get(f"/v2/r/blobs/blobs/{digest}").content == data
    part = client.get(f"/v2/r/blobs/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert client.get(f"/v2/r/blobs/blobs/{digest}", headers={"Range": "bytes=9999-"}).status_code == 416
    missing = client.get(f"/v2/r/blobs/blobs/{sha(b'nope')}")
    assert missing.status_code == 404 and error_code(missing) == "BLOB_UNKNOWN"
    # Blobs are per repository: another repository does not see it until it is pushed or mounted there.
    assert client.head(f"/v2/other/blobs/{digest}").status_code == 404


def test_chunked_upload_in_order_status_and_out_of_order(client: httpx.Client) -> None:
    data = b"0123456789" * 100
    r = client.post("/v2/r/up/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Range"] == "0-0"
    loc = r.headers["Location"]
    r = client.patch(loc, content=data[:400], headers={"Content-Range": "0-399"})
    assert r.status_code == 202 and r.headers["Range"] == "0-399"
    bad = client.patch(loc, content=data[500:], headers={"Content-Range": "500-999"})
    assert bad.status_code == 416 and bad.headers["Range"] == "0-399"
    status = client.get(loc)
    assert status.status_code == 204 and status.headers["Range"] == "0-399"
    r = client.patch(loc, content=data[400:], headers={"Content-Range": "400-999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-999"
    done = client.put(r.headers["Location"], params={"digest": sha(data)})
    assert done.status_code == 201 and done.headers["Location"] == f"/v2/r/up/blobs/{sha(data)}"
    assert client.get(f"/v2/r/up/blobs/{sha(data)}").content == data
    assert client.get(loc).status_code == 404  # the session is gone once closed


def test_put_with_wrong_digest_is_digest_invalid(client: httpx.Client) -> None:
    loc = client.post("/v2/r/up/blobs/uploads/").headers["Location"]
    r = client.put(loc, params={"digest": sha(b"other")}, content=b"actual bytes")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/r/up/blobs/{sha(b'other')}").status_code == 404
    assert client.head(f"/v2/r/up/blobs/{sha(b'actual bytes')}").status_code == 404
    r = client.post("/v2/r/up/blobs/uploads/", params={"digest": sha(b"x")}, content=b"y")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_upload_cancel_and_unknown_session(client: httpx.Client) -> None:
    loc = client.post("/v2/r/up/blobs/uploads/").headers["Location"]
    assert client.delete(loc).status_code == 204
    r = client.patch(loc, content=b"x")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    other = loc.replace("/r/up/", "/r/other/")
    loc2 = client.post("/v2/r/up/blobs/uploads/").headers["Location"]
    assert client.get(loc2.replace("/r/up/", "/r/other/")).status_code == 404, other


def test_sha512_blobs(client: httpx.Client) -> None:
    import hashlib

    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    r = client.post("/v2/r/s512/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201
    assert client.get(f"/v2/r/s512/blobs/{digest}").content == data


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "src/repo", b"layer bytes")
    r = client.post("/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/repo"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/dst/repo/blobs/{digest}").content == b"layer bytes"
    fallback = client.post("/v2/dst/repo/blobs/uploads/",
                           params={"mount": sha(b"absent"), "from": "src/repo"})
    assert fallback.status_code == 202 and "/blobs/uploads/" in fallback.headers["Location"]


def test_manifest_by_tag_and_digest_oci_and_docker(client: httpx.Client) -> None:
    for media_type, repo in ((OCI_MANIFEST, "m/oci"), (DOCKER_MANIFEST, "m/docker")):
        body = image_manifest(client, repo, [b"layer-" + repo.encode()], media_type=media_type)
        r = put_manifest(client, repo, "v1", body, media_type)
        assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha(body)
        assert r.headers["Location"] == f"/v2/{repo}/manifests/{sha(body)}"
        for ref in ("v1", sha(body)):
            got = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
            assert got.status_code == 200 and got.content == body
            assert got.headers["Content-Type"] == media_type
            head = client.head(f"/v2/{repo}/manifests/{ref}")
            assert head.status_code == 200 and head.headers["Content-Length"] == str(len(body))
            assert head.headers["Docker-Content-Digest"] == sha(body)


def test_manifest_errors(client: httpx.Client) -> None:
    r = put_manifest(client, "m/e", "v1", image_manifest(client, "m/e", []) .replace(b'"layers": []',
                                                                                   b'"layers": [1]'))
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    missing = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": "x", "digest": sha(b"nope"), "size": 4}, "layers": []})
    r = put_manifest(client, "m/e", "v1", missing.encode())
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    body = image_manifest(client, "m/e", [])
    r = put_manifest(client, "m/e", sha(b"something else"), body)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = put_manifest(client, "m/e", "bad..tag!", body)
    assert r.status_code == 400 and error_code(r) == "TAG_INVALID"
    r = client.get("/v2/m/e/manifests/nosuchtag")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"


def test_index_and_subject_and_referrers(client: httpx.Client) -> None:
    child = image_manifest(client, "idx/r", [b"amd64 layer"])
    assert put_manifest(client, "idx/r", sha(child), child).status_code == 201
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    assert put_manifest(client, "idx/r", "multi", index, OCI_INDEX).status_code == 201
    assert client.get("/v2/idx/r/manifests/multi").headers["Content-Type"] == OCI_INDEX
    broken = index.replace(sha(child).encode(), sha(b"unknown child").encode())
    r = put_manifest(client, "idx/r", "broken", broken, OCI_INDEX)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    docker_list = index.replace(OCI_INDEX.encode(), DOCKER_LIST.encode())
    assert put_manifest(client, "idx/r", "dlist", docker_list, DOCKER_LIST).status_code == 201

    subject = {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}
    for kind, note in (("application/vnd.example.sbom", "sbom"), ("application/vnd.example.sig", "sig")):
        art = image_manifest(client, "idx/r", [note.encode()], config=b"{}", artifactType=kind,
                             subject=subject, annotations={"note": note})
        r = put_manifest(client, "idx/r", sha(art), art)
        assert r.status_code == 201 and r.headers["OCI-Subject"] == sha(child)
    refs = client.get(f"/v2/idx/r/referrers/{sha(child)}")
    assert refs.headers["Content-Type"] == OCI_INDEX
    assert sorted(m["annotations"]["note"] for m in refs.json()["manifests"]) == ["sbom", "sig"]
    only = client.get(f"/v2/idx/r/referrers/{sha(child)}",
                      params={"artifactType": "application/vnd.example.sig"})
    assert only.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["artifactType"] for m in only.json()["manifests"]] == ["application/vnd.example.sig"]
    # Deleting a referrer removes it from its subject's list.
    sig = only.json()["manifests"][0]["digest"]
    assert client.delete(f"/v2/idx/r/manifests/{sig}").status_code == 202
    assert len(client.get(f"/v2/idx/r/referrers/{sha(child)}").json()["manifests"]) == 1


def test_tags_and_catalog_pagination(client: httpx.Client) -> None:
    body = image_manifest(client, "p/a", [])
    for tag in ("c", "a", "b", "d"):
        put_manifest(client, "p/a", tag, body)
    put_manifest(client, "p/b", "x", image_manifest(client, "p/b", []))
    r = client.get("/v2/p/a/tags/list")
    assert r.json() == {"name": "p/a", "tags": ["a", "b", "c", "d"]}
    r = client.get("/v2/p/a/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/p/a/tags/list?n=2&last=b>; rel="next"'
    r = client.get("/v2/p/a/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["c", "d"] and "Link" not in r.headers
    assert client.get("/v2/p/a/tags/list", params={"n": "x"}).status_code == 400
    assert client.get("/v2/no/such/tags/list").status_code == 404
    cat = client.get("/v2/_catalog", params={"n": 1})
    assert cat.json() == {"repositories": ["p/a"]} and "last=p/a" in cat.headers["Link"]
    assert client.get("/v2/_catalog", params={"last": "p/a"}).json() == {"repositories": ["p/b"]}


def test_deletes(client: httpx.Client) -> None:
    body = image_manifest(client, "d/r", [b"to delete"])
    put_manifest(client, "d/r", "t1", body)
    put_manifest(client, "d/r", "t2", body)
    assert client.delete("/v2/d/r/manifests/t1").status_code == 202
    assert client.get("/v2/d/r/tags/list").json()["tags"] == ["t2"]
    assert client.delete(f"/v2/d/r/manifests/{sha(body)}").status_code == 202
    assert client.get("/v2/d/r/tags/list").json()["tags"] == []
    assert client.get(f"/v2/d/r/manifests/{sha(body)}").status_code == 404
    assert client.delete(f"/v2/d/r/manifests/{sha(body)}").status_code == 404
    layer = sha(b"to delete")
    assert client.delete(f"/v2/d/r/blobs/{layer}").status_code == 202
    assert client.get(f"/v2/d/r/blobs/{layer}").status_code == 404
    assert client.delete(f"/v2/d/r/blobs/{layer}").status_code == 404


def test_delete_disabled(tmp_path: Path) -> None:
    from dockyard.registry.server import RegistryServer

    with RegistryServer(storage=tmp_path / "s", delete_enabled=False) as srv, \
            httpx.Client(base_url=srv.url) as c:
        body = image_manifest(c, "nd/r", [])
        put_manifest(c, "nd/r", "t", body)
        r = c.delete("/v2/nd/r/manifests/t")
        assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
        assert c.get("/v2/nd/r/manifests/t").status_code == 200


def test_access_log(tmp_path: Path, caplog: object) -> None:
    import logging

    from dockyard.registry.server import RegistryServer

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("dockyard.registry.access")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with RegistryServer(storage=tmp_path / "s", access_log=True) as srv:
            httpx.get(f"{srv.url}/v2/", headers={"User-Agent": "probe/1"})
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records]
    assert any('"GET /v2/ HTTP/1.1" 200' in line and "probe/1" in line for line in lines), lines
