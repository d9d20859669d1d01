"""Replication to the distribution registry peer (127.0.0.1:5000, distribution 2.8): on push, by a
scheduled/manual run with repository and tag filters, retries and status; an index with its platforms."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import OCI_MANIFEST, PASSWORDS, client, push_image, seed

PEER = "127.0.0.1:5000"
ACCEPT = {"Accept": f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"}


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path / "storage", team=True, replication_backoff=0.01) as server:
        seed(server)
        yield server


def peer_digest(repo: str, tag: str) -> str | None:
    r = httpx.get(f"http://{PEER}/v2/{repo}/manifests/{tag}", headers=ACCEPT)
    return r.headers["Docker-Content-Digest"] if r.status_code == 200 else None


@pytest.mark.registry
def test_a_push_is_replicated_to_distribution_when_it_matches(srv: RegistryServer) -> None:
    assert srv.team is not None
    ns = f"repl-{uuid.uuid4().hex[:8]}"
    rule = srv.team.replication.add(f"{PEER}/{ns}", repositories="team/*", tags="v*")
    with client(srv, "team/app", "dev") as dev:
        pushed = push_image(dev, "team/app", "v1", [b"replicate me " + ns.encode()])
        assert pushed.status_code == 201
        assert push_image(dev, "team/app", "dev-1", [b"not me"]).status_code == 201
    srv.settle()
    assert peer_digest(f"{ns}/team/app", "v1") == pushed.headers["Docker-Content-Digest"]
    assert peer_digest(f"{ns}/team/app", "dev-1") is None  # the tag filter
    layer = json.loads(srv.storage.blob_read(pushed.headers["Docker-Content-Digest"]))["layers"][0]
    assert httpx.head(f"http://{PEER}/v2/{ns}/team/app/blobs/{layer['digest']}").status_code == 200
    status = srv.team.replication.status(rule.id)
    assert status is not None and status["copied"] == 1 and status["failed"] == 0
    [entry] = list(srv.team.kv.entries("replication"))
    assert entry["ok"] and entry["tag"] == "v1" and entry["target"] == f"{PEER}/{ns}/team/app"


@pytest.mark.registry
def test_a_run_copies_every_matching_tag_and_an_index_with_its_platforms(srv: RegistryServer) -> None:
    assert srv.team is not None
    ns = f"repl-{uuid.uuid4().hex[:8]}"
    with client(srv, "team/multi", "dev") as dev:
        children = []
        for arch in ("amd64", "arm64"):
            r = push_image(dev, "team/multi", f"{arch}-only", [f"{arch} {ns}".encode()])
            children.append({"mediaType": OCI_MANIFEST, "digest": r.headers["Docker-Content-Digest"],
                             "size": len(dev.get(f"/v2/team/multi/manifests/{arch}-only").content),
                             "platform": {"os": "linux", "architecture": arch}})
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": children}).encode()
        r = dev.put("/v2/team/multi/manifests/1.0", content=index,
                    headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
        assert r.status_code == 201
    rule = srv.team.replication.add(f"{PEER}/{ns}", repositories="team/multi", tags="1.*",
                                    trigger="schedule", interval=3600)
    assert [r.id for r in srv.team.replication.due()] == [rule.id]  # never ran: due
    outcomes = srv.team.replication.run(rule)
    assert [(o.tag, o.ok, o.manifests_sent) for o in outcomes] == [("1.0", True, 3)]
    assert peer_digest(f"{ns}/team/multi", "1.0") == "sha256:" + hashlib.sha256(index).hexdigest()
    for child in children:
        assert peer_digest(f"{ns}/team/multi", child["digest"]) == child["digest"]
    assert srv.team.replication.due() == []  # ran just now


def test_an_unreachable_target_is_retried_then_reported(srv: RegistryServer) -> None:
    assert srv.team is not None
    rule = srv.team.replication.add("127.0.0.1:9/nowhere", repositories="team/*")
    with client(srv, "team/app", "dev") as dev:
        assert push_image(dev, "team/app", "v1", [b"x"]).status_code == 201  # the push does not wait
    srv.settle()
    [entry] = list(srv.team.kv.entries("replication"))
    assert not entry["ok"] and entry["attempts"] == 3 and entry["error"]
    status = srv.team.replication.status(rule.id)
    assert status is not None and status["failed"] == 1 and status["last_error"] == entry["error"]
    # The administrators' UI page shows it.
    with RegistryServer(storage=srv.config.storage, team=True, ui=True) as ui:
        web = httpx.Client(base_url=ui.url)
        web.post("/ui/login", data={"username": "root", "password": PASSWORDS["root"]})
        page = web.get("/ui/replication").text
        assert rule.id in page and "0 copied, 1 failed" in page
        ann = httpx.Client(base_url=ui.url)
        ann.post("/ui/login", data={"username": "ann", "password": PASSWORDS["ann"]})
        assert ann.get("/ui/replication").status_code == 403


def test_bad_rules_are_clear_errors(srv: RegistryServer) -> None:
    assert srv.team is not None
    with pytest.raises(InvalidArgument, match="expected HOST"):
        srv.team.replication.add("http://x")
    with pytest.raises(InvalidArgument, match="trigger 'nightly'"):
        srv.team.replication.add("x:5000", trigger="nightly")
