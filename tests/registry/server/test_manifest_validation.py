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
from dockyard.registry.server.hooks import Actor, Hooks
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
    (b"[" * 100_000, "manifest JSON is nested too deeply"),
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
    ({"config": {"mediaType": "x", "size": -1, "digest": "sha256:" + "0" * 64}},
     "config has size -1, outside 0..2^63-1"),
    ({"layers": [{"mediaType": "x", "size": 2**63, "digest": "sha256:" + "0" * 64}]},
     f"layers[0] has size {2**63}, outside 0..2^63-1"),
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


def test_sizes_from_zero_to_the_largest_are_descriptors(reg: Registry) -> None:
    empty = blob(reg, b"")  # an empty layer is a blob of size 0
    assert empty["size"] == 0
    assert put(reg, {**image(reg), "layers": [empty]})
    huge = {**blob(reg, b"foreign"), "size": 2**63 - 1, "urls": ["https://example.com/huge"]}
    assert put(reg, {**image(reg), "layers": [huge]}, ref="huge")


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


def test_references_the_storage_vouches_for_from_memory_are_not_looked_up(
        reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # An object store remembers the blobs a repository was seen to link (S3Storage.known_in_use): a
    # manifest PUT then asks the bucket nothing about them. Here the storage vouches for one layer.
    manifest = image(reg)
    vouched = manifest["layers"][0]["digest"]
    asked: list[tuple[str, str]] = []
    looked_up: list[str] = []

    def known_in_use(repo: str, digest: str) -> bool:
        asked.append((repo, digest))
        return digest == vouched

    real_is_linked = reg.storage.is_linked

    def is_linked(repo: str, digest: str) -> bool:
        looked_up.append(digest)
        return real_is_linked(repo, digest)

    monkeypatch.setattr(reg.storage, "known_in_use", known_in_use, raising=False)
    monkeypatch.setattr(reg.storage, "is_linked", is_linked)
    put(reg, manifest)
    digests = [manifest["config"]["digest"], vouched, manifest["layers"][1]["digest"]]
    assert sorted(asked) == sorted((REPO, d) for d in digests)
    assert sorted(looked_up) == sorted([digests[0], digests[2]])  # all but the vouched one
    # vouched for but missing from this storage: memory wins (the bucket is not asked again)
    gone = {"mediaType": mt.OCI_LAYER, "digest": sha(b"vouched, not here"), "size": 1}
    vouched = gone["digest"]
    assert put(reg, {**manifest, "layers": [gone]}, ref="v2")
    assert vouched not in looked_up


class Recorder(Hooks):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def manifest(self, actor: Actor, repo: str, ref: str, digest: str, manifest: dict[str, Any],
                       size: int) -> None:
        self.calls.append(("manifest", actor, repo, ref, digest, manifest, size))

    async def pushed(self, actor: Actor, repo: str, ref: str, digest: str, media_type: str,
                     size: int, manifest: dict[str, Any]) -> None:
        self.calls.append(("pushed", actor, repo, ref, digest, media_type, size, manifest))


def test_hooks_hear_of_a_clients_push_but_not_of_the_mirror_filling_its_cache(tmp_path: Path) -> None:
    hooks = Recorder()
    reg = Registry(FilesystemStorage(tmp_path / "s"), hooks=hooks)
    manifest = image(reg)
    body = json.dumps(manifest).encode()
    put(reg, manifest, ref="cached")  # no actor: the mirror storing what it fetched upstream
    assert hooks.calls == []
    alice = Actor("alice", "192.0.2.7")
    digest = put(reg, manifest, ref="v1", actor=alice)
    assert hooks.calls == [
        ("manifest", alice, REPO, "v1", digest, manifest, len(body)),
        ("pushed", alice, REPO, "v1", digest, mt.OCI_MANIFEST, len(body), manifest),
    ]


class Refuse(Hooks):
    async def manifest(self, actor: Actor, repo: str, ref: str, digest: str, manifest: dict[str, Any],
                       size: int) -> None:
        raise ApiError(403, "DENIED", f"{actor.account} may not push {repo}:{ref}")


def test_a_hook_refusing_a_manifest_stores_nothing(tmp_path: Path) -> None:
    reg = Registry(FilesystemStorage(tmp_path / "s"), hooks=Refuse())
    with pytest.raises(ApiError) as caught:
        put(reg, image(reg), ref="v1", actor=Actor("bob", "192.0.2.8"))
    assert (caught.value.status, caught.value.message) == (403, "bob may not push team/app:v1")
    assert reg.storage.tags(REPO) == {}
