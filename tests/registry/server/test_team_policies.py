"""Project policies: immutable tags, storage quotas, retention (dry run and run)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer
from dockyard.registry.server.team.usage import project_usage

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, error_code
from teamkit import OCI_MANIFEST, client, push_image, seed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def srv(tmp_path: Path, clock: FakeClock) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path / "storage", team=True, clock=clock) as server:
        seed(server)
        yield server


def _project(srv: RegistryServer):  # type: ignore[no-untyped-def]
    assert srv.team is not None
    return srv.team.directory.need_project("team")


def test_an_immutable_tag_is_not_overwritten_nor_deleted(srv: RegistryServer) -> None:
    assert srv.team is not None
    p = _project(srv)
    p.immutable = ["v*"]
    srv.team.directory.save(p)
    with client(srv, "team/app", "ann") as ann:
        assert push_image(ann, "team/app", "v1", [b"first"]).status_code == 201
        assert push_image(ann, "team/app", "v1", [b"first"]).status_code == 201  # same manifest: fine
        r = push_image(ann, "team/app", "v1", [b"second"])
        assert r.status_code == 403 and error_code(r) == "DENIED"
        message = r.json()["errors"][0]["message"]
        assert "tag v1 of team/app is immutable" in message and "'v*'" in message
        assert push_image(ann, "team/app", "latest", [b"second"]).status_code == 201  # not matching
        assert push_image(ann, "team/app", "latest", [b"third"]).status_code == 201
        r = ann.delete("/v2/team/app/manifests/v1")
        assert r.status_code == 403 and "may not be deleted" in r.json()["errors"][0]["message"]
        digest = ann.get("/v2/team/app/manifests/v1").headers["Docker-Content-Digest"]
        assert ann.delete(f"/v2/team/app/manifests/{digest}").status_code == 403  # nor by digest
        assert ann.get("/v2/team/app/manifests/v1").headers["Docker-Content-Digest"] == digest
    refused = [e for e in srv.team.kv.entries("audit") if e["action"].endswith("_refused")]
    assert [e["action"] for e in refused] == ["push_refused", "delete_refused", "delete_refused"]


def test_a_push_beyond_the_quota_is_refused_before_its_blobs_are_taken(srv: RegistryServer) -> None:
    assert srv.team is not None
    p = _project(srv)
    p.quota = 3000
    srv.team.directory.save(p)
    with client(srv, "team/app", "dev") as dev:
        assert push_image(dev, "team/app", "small", [b"x" * 1000]).status_code == 201
        big = b"y" * 2500
        digest = "sha256:" + hashlib.sha256(big).hexdigest()
        # Monolithic upload with its length: refused before a byte is stored.
        r = dev.post("/v2/team/app/blobs/uploads/", params={"digest": digest}, content=big)
        assert r.status_code == 403 and error_code(r) == "DENIED"
        message = r.json()["errors"][0]["message"]
        assert message.startswith("quota exceeded: project team uses ") and "of its 3000 bytes" in message
        assert dev.head(f"/v2/team/app/blobs/{digest}").status_code == 404
        # A chunk with Content-Length: refused at the PATCH.
        start = dev.post("/v2/team/app/blobs/uploads/")
        assert start.status_code == 202
        r = dev.patch(start.headers["Location"], content=big,
                      headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 403 and "quota exceeded" in r.text
        # Streamed without a length (as docker, skopeo and dockyard push do): the whole blob is weighed
        # when the upload finishes, refused there, and its bytes dropped; the project does not fill up.
        used = project_usage(srv.team.storage, "team")
        r = dev.patch(start.headers["Location"], content=_stream(big))
        assert r.status_code == 202
        r = dev.put(start.headers["Location"], params={"digest": digest})
        assert r.status_code == 403 and "quota exceeded" in r.text and "2500 more bytes" in r.text
        assert dev.head(f"/v2/team/app/blobs/{digest}").status_code == 404
        assert dev.get(start.headers["Location"]).status_code == 404  # the session is gone
        assert project_usage(srv.team.storage, "team") == used
        # With 100 bytes left, a blob the project holds already goes again (it costs nothing); a new one
        # of the same size does not.
        p.quota = used + 100
        srv.team.directory.save(p)
        assert _streamed(dev, b"x" * 1000).status_code == 201
        refused = _streamed(dev, b"z" * 1000)
        assert refused.status_code == 403 and "1000 more bytes would exceed it" in refused.text
        # A manifest PUT once the project is over its quota (lowered under what it holds) is refused.
        p.quota = 500
        srv.team.directory.save(p)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(), "size": 2},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": "sha256:" + hashlib.sha256(b"x" * 1000).hexdigest(), "size": 1000}]}
        r = dev.put("/v2/team/app/manifests/over", content=json.dumps(manifest),
                    headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 403 and "quota exceeded: project team uses " in r.text
        assert dev.get("/v2/team/app/manifests/over").status_code == 404
    events = [e for e in srv.team.kv.entries("audit") if e["action"] == "quota_exceeded"]
    assert [e["adding"] for e in events][:4] == [2500, 2500, 2500, 1000] and events[0]["quota"] == 3000
    assert len(events) == 5 and events[4]["quota"] == 500


def _stream(data: bytes) -> Iterator[bytes]:
    yield data


def _streamed(c: httpx.Client, data: bytes) -> httpx.Response:
    """Upload ``data`` as one chunk without a Content-Length; the finishing PUT's answer."""
    start = c.post("/v2/team/app/blobs/uploads/")
    assert start.status_code == 202, start.text
    assert c.patch(start.headers["Location"], content=_stream(data)).status_code == 202
    return c.put(start.headers["Location"], params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()})


def _pushed_at(srv: RegistryServer, clock: FakeClock, tags: dict[str, bytes], step: float = 60) -> None:
    with client(srv, "team/app", "dev") as dev:
        for tag, layer in tags.items():
            clock.now += step
            assert push_image(dev, "team/app", tag, [layer]).status_code == 201


def test_retention_dry_run_lists_what_would_go_and_run_deletes_it(srv: RegistryServer,
                                                                  clock: FakeClock) -> None:
    assert srv.team is not None
    team = srv.team
    _pushed_at(srv, clock, {"v1.0": b"a", "dev-1": b"b", "dev-2": b"c", "dev-3": b"d", "dev-4": b"e"})
    p = _project(srv)
    p.retention = {"keep_last": 2, "keep_tags": ["v*"], "untagged_older_than": 3600}
    team.directory.save(p)
    with client(srv, "team/app", "dev") as dev:
        # An untagged manifest (pushed by digest) from long ago, and a fresh one.
        for layer, age in ((b"old", 7200), (b"new", 0)):
            clock.now -= age
            manifest = dev.get("/v2/team/app/manifests/dev-4").json()
            body = json.dumps({**manifest, "annotations": {"which": layer.decode()}}).encode()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            assert dev.put(f"/v2/team/app/manifests/{digest}", content=body,
                           headers={"Content-Type": OCI_MANIFEST}).status_code == 201
            clock.now += age
            if layer == b"old":
                old = digest
            else:
                new = digest
    tags_before = dict(team.storage.tags("team/app"))
    plan = team.retention_plan("team")
    assert sorted(t for _, t, _ in plan.tags) == ["dev-1", "dev-2"]
    doomed = {d: why for _, d, why in plan.manifests}
    assert doomed[tags_before["dev-1"]] == "its tags were deleted"
    assert old in doomed and new not in doomed
    assert team.storage.tags("team/app") == tags_before  # a dry run changes nothing
    team.retention_run("team")
    assert sorted(team.storage.tags("team/app")) == ["dev-3", "dev-4", "v1.0"]
    assert team.storage.manifest_media_type("team/app", old) is None
    assert team.storage.manifest_media_type("team/app", new) is not None
    reasons = [e.get("reason", "") for e in team.kv.entries("audit") if e["who"] == "retention"]
    assert len(reasons) == 5 and all(r.startswith("retention") for r in reasons)


def test_retention_keeps_what_a_kept_tag_reaches_and_drops_what_only_a_deleted_one_did(
        srv: RegistryServer, clock: FakeClock) -> None:
    assert srv.team is not None
    team = srv.team
    _pushed_at(srv, clock, {"keep": b"k", "drop": b"d"})
    tags = team.storage.tags("team/app")
    with client(srv, "team/app", "dev") as dev:
        sboms = {}
        for tag in ("keep", "drop"):  # an SBOM for each; its tag goes below, so only its subject holds it
            subject = {"mediaType": OCI_MANIFEST, "digest": tags[tag],
                       "size": len(dev.get(f"/v2/team/app/manifests/{tag}").content)}
            r = push_image(dev, "team/app", f"sbom-{tag}", [f"sbom {tag}".encode()],
                           artifactType="application/spdx+json", subject=subject)
            assert r.status_code == 201
            sboms[tag] = r.headers["Docker-Content-Digest"]
            assert dev.delete(f"/v2/team/app/manifests/sbom-{tag}").status_code == 403  # dev: no delete
    with client(srv, "team/app", "ann") as ann:
        for tag in ("keep", "drop"):
            assert ann.delete(f"/v2/team/app/manifests/sbom-{tag}").status_code == 202  # untag only
    p = _project(srv)
    p.retention = {"keep_tags": ["keep"]}
    team.directory.save(p)
    plan = team.retention_plan("team")
    doomed = {d: why for _, d, why in plan.manifests}
    assert doomed == {tags["drop"]: "its tags were deleted",
                      sboms["drop"]: "held only by a deleted manifest"}
