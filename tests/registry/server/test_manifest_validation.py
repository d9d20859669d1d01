"""Manifest PUT validation on its own: JSON and digest checks, media types, descriptor shapes, and
the references a manifest must not push without (blobs linked to the repository, child manifests)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.oci import mediatypes as mt
from dockyard.registry.server.apierrors import ApiError
from dockyard.registry.server.app import Registry
from dockyard.registry.server.storage import FilesystemStorage

REPO = "team/app"


_LOOP = asyncio.new_event_loop()  # one loop for the module: the registry's locks belong to one


def store(reg: Registry, *args: Any, **kw: Any) -> str:
    """``Registry.store_manifest`` (a coroutine) run to its end."""
    return str(_LOOP.run_until_complete(reg.store_manifest(*args, **kw)))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(FilesystemStorage(tmp_path / "s"))


def blob(reg: Registry, data: bytes, *, link: bool = True) -> dict[str, Any]:
    digest = sha(data)
    reg.storage.blob_put(digest, data)
    if link:
        reg.storage.link_blob(REPO, digest)
    return {"mediaType": mt.OCI_LAYER, "digest": digest, "size": len(data)}


def image(reg: Registry, **extra: Any) -> dict[str, Any]:
    config = {**blob(reg, b"{}"), "mediaType": mt.OCI_CONFIG}
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config,
            "layers": [blob(reg, b"layer one"), blob(reg, b"layer two")], **extra}


def put(reg: Registry, manifest: object, ref: str = "v1", content_type: str = "", **kw: Any) -> str:
    return store(reg, REPO, ref, json.dumps(manifest).encode(), content_type, **kw)


def refused(reg: Registry, manifest: object, ref: str = "v1", content_type: str = "",
            body: bytes | None = None) -> ApiError:
    data = body if body is not None else json.dumps(manifest).encode()
    with pytest.raises(ApiError) as caught:
        store(reg, REPO, ref, data, content_type)
    return caught.value


def test_a_good_manifest_is_stored_tagged_and_typed(reg: Registry) -> None:
    manifest = image(reg)
    digest = put(reg, manifest)
    assert digest == sha(json.dumps(manifest).encode())
    assert reg.storage.tag_get(REPO, "v1") == digest
    assert reg.storage.manifest_media_type(REPO, digest) == mt.OCI_MANIFEST
    assert reg.storage.blob_read(digest) == json.dumps(manifest).encode()
    assert reg.storage.is_linked(REPO, digest)


def test_by_digest_it_is_checked_and_not_tagged(reg: Registry) -> None:
    manifest = image(reg)
    body = json.dumps(manifest).encode()
    assert store(reg, REPO, sha(body), body, "") == sha(body)
    assert reg.storage.tags(REPO) == {}
    err = refused(reg, manifest, ref=sha(b"other"))
    assert (err.status, err.code) == (400, "DIGEST_INVALID")
    assert err.detail == {"expected": sha(b"other"), "actual": sha(body)}
    by512 = "sha512:" + hashlib.sha512(body).hexdigest()
    assert store(reg, REPO, by512, body, "") == by512


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "manifest is not valid JSON: "),
    (b"\xff\xfe", "manifest is not valid JSON: "),
    (b"[1]", "manifest must be a JSON object"),
])
def test_bodies_that_are_not_manifests(reg: Registry, body: bytes, message: str) -> None:
    err = refused(reg, None, body=body)
    assert (err.status, err.code) == (400, "MANIFEST_INVALID")
    assert err.message.startswith(message)


def test_media_type_rules(reg: Registry) -> None:
    manifest = image(reg)
    err = refused(reg, manifest, content_type=mt.DOCKER_MANIFEST)
    assert (err.status, err.code) == (400, "MANIFEST_INVALID")
    assert err.message == f"mediaType {mt.OCI_MANIFEST!r} does not match Content-Type {mt.DOCKER_MANIFEST!r}"
    # an unknown Content-Type does not contradict the body's own mediaType
    assert put(reg, manifest, content_type="text/plain")
    untyped = {k: v for k, v in manifest.items() if k != "mediaType"}
    digest = put(reg, untyped, ref="docker", content_type=mt.DOCKER_MANIFEST)
    assert reg.storage.manifest_media_type(REPO, digest) == mt.DOCKER_MANIFEST
    digest = put(reg, {**untyped, "mediaType": ""}, ref="empty", content_type=mt.DOCKER_MANIFEST)
    assert reg.storage.manifest_media_type(REPO, digest) == mt.DOCKER_MANIFEST
    digest = put(reg, untyped, ref="json", content_type="application/json")
    assert reg.storage.manifest_media_type(REPO, digest) == mt.OCI_MANIFEST
    index = {"schemaVersion": 2, "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1}]}
    digest = put(reg, index, ref="jsonindex", content_type="application/json")
    assert reg.storage.manifest_media_type(REPO, digest) == mt.OCI_INDEX
    old = refused(reg, {**manifest, "schemaVersion": 1})
    assert (old.status, old.code) == (400, "MANIFEST_INVALID")
    assert old.message == f"unsupported manifest (media type {mt.OCI_MANIFEST!r}, schemaVersion 1)"
    assert refused(reg, {**untyped, "schemaVersion": 1}, content_type="application/json").message == (
        "unsupported manifest (media type 'application/json', schemaVersion 1)")
    assert refused(reg, untyped, content_type="text/plain").message == (
        "unsupported manifest (media type 'text/plain', schemaVersion 2)")


@pytest.mark.parametrize(("change", "message"), [
    ({"config": None}, "config is not a descriptor"),
    ({"config": {"digest": "sha256:" + "0" * 64}}, "config needs a mediaType and an integer size"),
    ({"config": {"mediaType": 1, "size": 2, "digest": "sha256:" + "0" * 64}},
     "config needs a mediaType and an integer size"),
    ({"config": {"mediaType": "x", "size": "2", "digest": "sha256:" + "0" * 64}},
     "config needs a mediaType and an integer size"),
    ({"layers": None}, "manifest has no layers list"),
    ({"layers": [{"mediaType": "x", "size": 1, "digest": "sha256:" + "0" * 64}, "nope"]},
     "layers[1] is not a descriptor"),
    ({"subject": "nope"}, "subject is not a descriptor"),
])
def test_descriptor_shapes(reg: Registry, change: dict[str, Any], message: str) -> None:
    err = refused(reg, {**image(reg), **change})
    assert (err.status, err.code, err.message) == (400, "MANIFEST_INVALID", message)


def test_descriptor_digests_are_validated(reg: Registry) -> None:
    err = refused(reg, {**image(reg), "layers": [{"mediaType": "x", "size": 1, "digest": "sha256:bad"}]})
    assert (err.status, err.code) == (400, "MANIFEST_INVALID")
    no_digest = refused(reg, {**image(reg), "layers": [{"mediaType": "x", "size": 1}]})
    assert no_digest.code == "MANIFEST_INVALID"
    assert no_digest.message == "invalid digest '': invalid checksum digest format"
    # a descriptor may leave out mediaType
    layer = blob(reg, b"untyped")
    del layer["mediaType"]
    assert put(reg, {**image(reg), "layers": [layer]})


def test_index_shapes(reg: Registry) -> None:
    child = put(reg, image(reg), ref=sha(json.dumps(image(reg)).encode()))
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": 10}
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}
    assert reg.storage.manifest_media_type(REPO, put(reg, index, ref="multi")) == mt.OCI_INDEX
    no_list = refused(reg, {**index, "manifests": None})
    assert (no_list.status, no_list.code) == (400, "MANIFEST_INVALID")
    assert no_list.message == "index has no manifests list"
    assert refused(reg, {**index, "manifests": [entry, 5]}).message == "manifests[1] is not a descriptor"
    listed = {**index, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [entry, 5]}
    assert refused(reg, listed).message == "manifests[1] is not a descriptor"


def test_missing_references_are_listed(reg: Registry) -> None:
    manifest = image(reg)
    unlinked = blob(reg, b"in another repository", link=False)
    absent = {"mediaType": mt.OCI_LAYER, "digest": sha(b"never pushed"), "size": 3}
    err = refused(reg, {**manifest, "layers": [manifest["layers"][0], unlinked, absent]})
    assert (err.status, err.code) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert err.detail == {"digests": [unlinked["digest"], absent["digest"]]}
    many = [{"mediaType": mt.OCI_LAYER, "digest": sha(b"%d" % i), "size": 1} for i in range(25)]
    assert len(refused(reg, {**manifest, "layers": many}).detail["digests"]) == 20  # type: ignore[index]
    gone_config = {**manifest["config"], "digest": sha(b"no config")}
    assert refused(reg, {**manifest, "config": gone_config}).detail == {"digests": [sha(b"no config")]}
    # a blob linked to the repository but deleted from storage is missing too
    reg.storage.link_blob(REPO, sha(b"linked, deleted"))
    ghost = {"mediaType": mt.OCI_LAYER, "digest": sha(b"linked, deleted"), "size": 1}
    assert refused(reg, {**manifest, "layers": [ghost]}).detail == {"digests": [ghost["digest"]]}
    # foreign layers live elsewhere; without verification nothing is looked up
    foreign = {**absent, "urls": ["https://example.com/layer"]}
    assert put(reg, {**manifest, "layers": [foreign]})
    after_foreign = refused(reg, {**manifest, "layers": [foreign, unlinked]})  # the rest is still checked
    assert after_foreign.detail == {"digests": [unlinked["digest"]]}
    assert put(reg, {**manifest, "layers": [absent]}, verify_blobs=False)
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [absent]}
    assert refused(reg, index).detail == {"digests": [absent["digest"]]}


def test_referenced_blobs_are_touched(reg: Registry) -> None:
    manifest = image(reg)
    layer = manifest["layers"][0]["digest"]
    info = reg.storage.blob_stat(layer)
    assert info is not None and info.path is not None
    os.utime(info.path, (1, 1))
    put(reg, manifest)
    after = reg.storage.blob_stat(layer)
    assert after is not None and after.mtime > 1


def test_a_subject_is_recorded_as_a_referrer(reg: Registry) -> None:
    subject_digest = put(reg, image(reg), ref="base")
    artifact = {**image(reg), "artifactType": "application/x-sig",
                "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject_digest, "size": 1}}
    digest = put(reg, artifact, ref="sig")
    referrers = reg.storage.referrers(REPO, subject_digest)
    assert [r["digest"] for r in referrers] == [digest]
    assert referrers[0]["artifactType"] == "application/x-sig"
    assert referrers[0]["mediaType"] == mt.OCI_MANIFEST
    assert referrers[0]["size"] == len(json.dumps(artifact).encode())
