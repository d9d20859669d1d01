"""Webhooks delivered to a local receiver (signed, retried, logged) and the audit log's entries."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.server import RegistryServer
from dockyard.registry.server.team.webhooks import add_hook

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import client, push_image, seed

SECRET = "webhook-secret"


class Receiver:
    """An HTTP endpoint that records what it gets and fails the first ``failures`` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                status = 500 if len(outer.got) <= outer.failures else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.httpd.shutdown()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path / "storage", team=True, webhook_backoff=0.05,
                        webhook_attempts=4) as server:
        seed(server)
        yield server


def test_a_push_is_delivered_signed_after_retries(srv: RegistryServer, receiver: Receiver) -> None:
    assert srv.team is not None
    add_hook(srv.team.directory, "team", receiver.url, ["push", "delete"], SECRET)
    with client(srv, "team/app", "ann") as ann:
        r = push_image(ann, "team/app", "v1", [b"hooked"])
        assert r.status_code == 201
        digest = r.headers["Docker-Content-Digest"]
        srv.settle()
        assert ann.delete("/v2/team/app/manifests/v1").status_code == 202
        srv.settle()
    assert len(receiver.got) == 4  # push: two 500s then 204; delete: 204 at once
    headers, body = receiver.got[2]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Dockyard-Signature"] == expected
    assert headers["X-Dockyard-Event"] == "push"
    event = json.loads(body)
    assert event["type"] == "push" and event["repository"] == "team/app" and event["tag"] == "v1"
    assert event["digest"] == digest and event["operator"] == "ann" and event["project"] == "team"
    assert receiver.got[0][1] == body  # a retry sends the same delivery
    assert receiver.events()[3]["type"] == "delete"
    log = list(srv.team.kv.entries("deliveries"))
    assert [(e["event"], e["attempt"], e["status"], e["ok"]) for e in log] == [
        ("push", 1, 500, False), ("push", 2, 500, False), ("push", 3, 204, True), ("delete", 1, 204, True)]


def test_a_refused_push_over_quota_is_an_event(srv: RegistryServer) -> None:
    receiver = Receiver()
    try:
        assert srv.team is not None
        add_hook(srv.team.directory, "team", receiver.url, ["quota_exceeded"], SECRET)
        p = srv.team.directory.need_project("team")
        p.quota = 10
        srv.team.directory.save(p)
        with client(srv, "team/app", "dev") as dev:
            r = dev.post("/v2/team/app/blobs/uploads/", params={"digest": "sha256:" + "a" * 64},
                         content=b"z" * 100)
            assert r.status_code == 403
        srv.settle()
        [event] = receiver.events()
        assert event["type"] == "quota_exceeded" and event["quota"] == 10 and event["adding"] == 100
    finally:
        receiver.httpd.shutdown()


def test_an_attached_scan_report_is_a_scan_completed_event(srv: RegistryServer) -> None:
    receiver = Receiver()
    try:
        assert srv.team is not None
        add_hook(srv.team.directory, "team", receiver.url, ["scan_completed"], SECRET)
        with client(srv, "team/app", "dev") as dev:
            image = push_image(dev, "team/app", "v1", [b"scanned"])
            subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": image.headers["Docker-Content-Digest"],
                       "size": len(dev.get("/v2/team/app/manifests/v1").content)}
            report = push_image(dev, "team/app", "v1-scan", [b'{"runs": []}'],
                                artifactType="application/sarif+json", subject=subject)
            assert report.status_code == 201
        srv.settle()
        [event] = receiver.events()  # the image push itself is no scan
        assert event["type"] == "scan_completed" and event["digest"] == subject["digest"]
        assert event["report"] == report.headers["Docker-Content-Digest"]
    finally:
        receiver.httpd.shutdown()


def test_an_unreachable_hook_is_given_up_after_its_tries(srv: RegistryServer) -> None:
    assert srv.team is not None
    add_hook(srv.team.directory, "team", "http://127.0.0.1:9/nothing-listens", ["push"], SECRET)
    with client(srv, "team/app", "dev") as dev:
        assert push_image(dev, "team/app", "v1", [b"x"]).status_code == 201  # the push does not wait
    srv.settle()
    log = list(srv.team.kv.entries("deliveries"))
    assert [e["attempt"] for e in log] == [1, 2, 3, 4] and not any(e["ok"] for e in log)
    assert all(e["status"] == 0 and e["error"] for e in log)


def test_bad_hooks_are_clear_errors(srv: RegistryServer) -> None:
    assert srv.team is not None
    with pytest.raises(InvalidArgument, match="expected an http"):
        add_hook(srv.team.directory, "team", "ftp://x", ["push"])
    with pytest.raises(InvalidArgument, match="unknown webhook events scan"):
        add_hook(srv.team.directory, "team", "http://x", ["scan"])


def test_the_audit_log_records_who_did_what_from_where(srv: RegistryServer) -> None:
    assert srv.team is not None
    robot, secret = srv.team.directory.robot_create("team", "ci", ["push", "pull"])
    with client(srv, "team/app", robot.name, password=secret) as ci:
        digest = push_image(ci, "team/app", "v1", [b"audited"]).headers["Docker-Content-Digest"]
    with client(srv, "team/app", "ann") as ann:
        assert ann.delete("/v2/team/app/manifests/v1").status_code == 202
    entries = list(srv.team.kv.entries("audit"))
    assert [(e["who"], e["kind"], e["action"]) for e in entries] == [
        ("robot$team+ci", "robot", "push"), ("ann", "user", "delete")]
    push = entries[0]
    assert push["repository"] == "team/app" and push["digest"] == digest and push["tag"] == "v1"
    assert push["source"] == "127.0.0.1" and push["time"].endswith("Z")
    # A wrong secret at the token endpoint (docker login, skopeo --creds, CI) is a failed sign-in too.
    r = httpx.get(f"{srv.url}/token", auth=(robot.name, "not-the-secret"),
                  params={"service": "dockyard-registry", "scope": "repository:team/app:pull"})
    assert r.status_code == 401
    r = httpx.post(f"{srv.url}/token", data={"grant_type": "password", "username": "ann", "password": "nope",
                                             "service": "dockyard-registry"})
    assert r.status_code == 401
    failed = [(e["who"], e["kind"], e["source"]) for e in srv.team.kv.entries("audit")
              if e["action"] == "login_failed"]
    assert failed == [("robot$team+ci", "robot", "127.0.0.1"), ("ann", "user", "127.0.0.1")]
