"""The web UI over HTTP (no browser): who sees what, form tokens, sessions, project management."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock
from teamkit import PASSWORDS, client, granted, push_image, seed


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path / "storage", team=True, ui=True) as server:
        seed(server)
        yield server


def browser(srv: RegistryServer, user: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=srv.url, timeout=30)
    if user:
        r = c.post("/ui/login", data={"username": user, "password": PASSWORDS[user], "next": "/"})
        assert r.status_code == 303, r.text
    return c


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no form token on the page"
    return m.group(1)


def test_what_anonymous_and_members_see(srv: RegistryServer) -> None:
    assert srv.team is not None
    srv.team.directory.project_create("pub", public=True)
    with client(srv, "team/app", "root") as root:
        assert push_image(root, "team/app", "v1", [b"private"]).status_code == 201
    with client(srv, "pub/app", "root") as root:
        assert push_image(root, "pub/app", "v1", [b"public"]).status_code == 201
    anon = browser(srv)
    home = anon.get("/").text
    assert "pub/app" in home and "team/app" not in home
    r = anon.get("/ui/repo/team/app")
    assert r.status_code == 303 and r.headers["Location"] == "/ui/login?next=/ui/repo/team/app"
    assert anon.get("/ui/repo/pub/app").status_code == 200
    out = browser(srv, "out")
    assert out.get("/ui/repo/team/app").status_code == 404  # signed in, not a member: not there
    ann = browser(srv, "ann")
    assert "team/app" in ann.get("/").text
    page = ann.get("/ui/repo/team/app/-/manifest/v1").text
    assert "Layers" in page and "Delete manifest" in page
    assert "Delete" not in browser(srv, "gus").get("/ui/repo/team/app").text
    for ref in ("..", "sha256:..", "sha256:" + "0" * 64, "nope"):  # never a storage path, never a 500
        assert ann.get(f"/ui/repo/team/app/-/manifest/{ref}").status_code == 404


def test_search_and_pages(srv: RegistryServer) -> None:
    with client(srv, "team/app", "root") as root:
        for i in range(25):
            tok = httpx.get(f"{srv.url}/token", params={"scope": f"repository:team/r{i:02d}:push,pull"},
                            auth=("root", PASSWORDS["root"])).json()["token"]
            root.headers["Authorization"] = f"Bearer {tok}"
            assert push_image(root, f"team/r{i:02d}", "v1", [b"x"]).status_code == 201
    ann = browser(srv, "ann")
    first, second = ann.get("/").text, ann.get("/", params={"page": 2}).text
    assert first.count('href="/ui/repo/') == 20 and second.count('href="/ui/repo/') == 5
    assert "Page 1 of 2" in first and 'rel="next"' in first and "team/r24" in second
    found = ann.get("/", params={"q": "r1"}).text
    assert found.count('href="/ui/repo/') == 10


def test_sessions_and_form_tokens(tmp_path: Path) -> None:
    clock = FakeClock()
    with RegistryServer(storage=tmp_path / "storage", team=True, ui=True, clock=clock) as srv:
        seed(srv)
        _sessions_and_form_tokens(srv, clock)


def _sessions_and_form_tokens(srv: RegistryServer, clock: FakeClock) -> None:
    assert srv.team is not None
    with client(srv, "team/app", "ann") as c:
        assert push_image(c, "team/app", "v1", [b"x"]).status_code == 201
    bad = browser(srv).post("/ui/login", data={"username": "ann", "password": "nope", "next": "/"})
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    evil = browser(srv).post("/ui/login", data={"username": "ann", "password": PASSWORDS["ann"],
                                                "next": "//evil.example/"})
    assert evil.headers["Location"] == "/"  # never sent off-site
    ann = browser(srv, "ann")
    cookie = ann.cookies["dockyard_session"]
    assert "HttpOnly" in evil.headers["Set-Cookie"] and "SameSite=Strict" in evil.headers["Set-Cookie"]
    r = ann.post("/ui/repo/team/app/-/delete", data={"tag": "v1"})  # no form token
    assert r.status_code == 403
    r = ann.post("/ui/repo/team/app/-/delete", data={"tag": "v1", "csrf": "0" * 64})
    assert r.status_code == 403
    assert ann.get("/v2/team/app/tags/list").status_code == 401  # the cookie is no API credential
    token = csrf(ann.get("/").text)
    assert ann.post("/ui/logout", data={"csrf": token}).status_code == 303
    replay = httpx.Client(base_url=srv.url, cookies={"dockyard_session": cookie})
    assert "Sign in" in replay.get("/").text  # the session is gone on the server too
    failed = [e for e in srv.team.kv.entries("audit") if e["action"] == "login_failed"]
    assert [e["who"] for e in failed] == ["ann"]
    # Sessions end: past their time they no longer sign anyone in, and the next sign-in sweeps them.
    assert len(srv.team.kv.items("sessions")) == 1  # the "evil" sign-in's, still live
    clock.now += 13 * 3600
    assert "Sign in" in httpx.Client(base_url=srv.url, cookies=dict(evil.cookies)).get("/").text
    browser(srv, "gus")
    assert len(srv.team.kv.items("sessions")) == 1  # only gus's


def test_immutable_tags_hold_in_the_ui_too(srv: RegistryServer) -> None:
    assert srv.team is not None
    p = srv.team.directory.need_project("team")
    p.immutable = ["v*"]
    srv.team.directory.save(p)
    with client(srv, "team/app", "ann") as c:
        assert push_image(c, "team/app", "v1", [b"x"]).status_code == 201
    ann = browser(srv, "ann")
    r = ann.post("/ui/repo/team/app/-/delete", data={"tag": "v1", "csrf": csrf(ann.get("/").text)})
    assert r.status_code == 403 and "is immutable" in r.text


def test_project_admins_manage_members_and_robots(srv: RegistryServer) -> None:
    assert srv.team is not None
    srv.team.directory.member_add("team", "ann", "admin")
    ann = browser(srv, "ann")
    token = csrf(ann.get("/ui/projects/team").text)
    r = ann.post("/ui/projects/team/members", data={"csrf": token, "user": "out", "role": "developer"})
    assert r.status_code == 200 and "out is now developer of team." in r.text
    assert granted(srv, "team/app", "out") == {"pull", "push"}
    r = ann.post("/ui/projects/team/robots", data={"csrf": token, "name": "deploy", "days": "7"})
    secret = re.search(r"shown only now: (\S+)</p>", r.text).group(1)  # type: ignore[union-attr]
    assert granted(srv, "team/app", "robot$team+deploy", secret) == {"pull"}
    assert secret not in ann.get("/ui/projects/team").text  # shown once
    dev = browser(srv, "dev")
    r = dev.post("/ui/projects/team/members", data={"csrf": csrf(dev.get("/").text), "user": "dev",
                                                    "role": "admin"})
    assert r.status_code == 403 and "dev may not manage project team" in r.text
    assert srv.team.directory.role("dev", "team") == "developer"
    r = ann.post("/ui/projects/team/members/remove", data={"csrf": token, "user": "out"})
    assert "out removed." in r.text and granted(srv, "team/app", "out") == set()
    root = browser(srv, "root")
    r = root.post("/ui/projects", data={"csrf": csrf(root.get("/").text), "name": "fresh", "public": "1"})
    assert r.status_code == 303 and srv.team.directory.need_project("fresh").public
    assert ann.post("/ui/projects", data={"csrf": token, "name": "mine"}).status_code == 403


def test_the_audit_page_shows_a_maintainer_their_projects_only(srv: RegistryServer) -> None:
    assert srv.team is not None
    srv.team.directory.project_create("other")
    with client(srv, "team/app", "root") as c:
        assert push_image(c, "team/app", "v1", [b"x"]).status_code == 201
    with client(srv, "other/app", "root") as c:
        assert push_image(c, "other/app", "v1", [b"y"]).status_code == 201
    page = browser(srv, "ann").get("/ui/audit").text
    assert "team/app" in page and "other/app" not in page
    everything = browser(srv, "root").get("/ui/audit").text
    assert "team/app" in everything and "other/app" in everything
    assert "team/app" not in browser(srv, "gus").get("/ui/audit").text


def test_a_scan_report_referrer_gives_a_vulnerability_summary(srv: RegistryServer) -> None:
    with client(srv, "team/app", "ann") as c:
        r = push_image(c, "team/app", "v1", [b"x"])
        subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": r.headers["Docker-Content-Digest"],
                   "size": len(c.get("/v2/team/app/manifests/v1").content)}
        report = {"runs": [{"results": [{"level": "error"}, {"level": "error"}, {"level": "warning"}]}]}
        data = json.dumps(report).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        empty = "sha256:" + hashlib.sha256(b"{}").hexdigest()
        for blob, body in ((digest, data), (empty, b"{}")):
            assert c.post("/v2/team/app/blobs/uploads/", params={"digest": blob},
                          content=body).status_code == 201
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": "application/sarif+json",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                    "layers": [{"mediaType": "application/sarif+json", "digest": digest, "size": len(data)}],
                    "subject": subject}
        r = c.put("/v2/team/app/manifests/scan", content=json.dumps(manifest),
                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 201
    page = browser(srv, "ann").get("/ui/repo/team/app/-/manifest/v1").text
    assert re.search(r'id="vulnerabilities">2 error, 1 warning<', page)


def test_administrators_manage_users_and_project_admins_policies(srv: RegistryServer) -> None:
    assert srv.team is not None
    root = browser(srv, "root")
    token = csrf(root.get("/ui/users").text)
    r = root.post("/ui/users", data={"csrf": token, "user": "newbie", "password": "newbie-pass"})
    assert r.status_code == 200 and "User newbie added." in r.text
    assert srv.team.directory.check("newbie", "newbie-pass")
    r = root.post("/ui/users", data={"csrf": token, "user": "tiny", "password": "short"})
    assert r.status_code == 400 and "at least 8 characters" in r.text
    assert root.post("/ui/users/remove", data={"csrf": token, "user": "root"}).status_code == 400
    r = root.post("/ui/users/remove", data={"csrf": token, "user": "newbie"})
    assert "User newbie removed." in r.text
    ann = browser(srv, "ann")
    assert ann.get("/ui/users").status_code == 403
    r = ann.post("/ui/users", data={"csrf": csrf(ann.get("/").text), "user": "sneaky", "password": "x" * 10})
    assert r.status_code == 403 and "sneaky" not in srv.team.directory.users()
    # Policies: a project admin may, a maintainer may not.
    r = ann.post("/ui/projects/team/policy", data={"csrf": csrf(ann.get("/").text), "quota": "1MB"})
    assert r.status_code == 403 and srv.team.directory.need_project("team").quota is None
    srv.team.directory.member_add("team", "ann", "admin")
    page = ann.get("/ui/projects/team").text
    r = ann.post("/ui/projects/team/policy", data={"csrf": csrf(page), "public": "1",
                                                    "immutable": "v* rel-*", "quota": "2MB"})
    assert r.status_code == 200 and "Policies saved." in r.text
    p = srv.team.directory.need_project("team")
    assert (p.public, p.immutable, p.quota) == (True, ["v*", "rel-*"], 2_000_000)
    r = ann.post("/ui/projects/team/policy", data={"csrf": csrf(page), "quota": "lots"})
    assert r.status_code == 400 and "invalid size &#x27;lots&#x27;" in r.text


def test_a_manifest_is_deleted_from_its_page_as_the_role_allows(srv: RegistryServer) -> None:
    assert srv.team is not None
    with client(srv, "team/app", "ann") as c:
        assert push_image(c, "team/app", "v1", [b"one"]).status_code == 201
        digest = push_image(c, "team/app", "v2", [b"two"]).headers["Docker-Content-Digest"]
        assert push_image(c, "team/app", "latest", [b"two"]).status_code == 201  # the same manifest
    delete = {"digest": digest}
    # A developer sees the page without its delete form, and a delete posted anyway is refused.
    dev = browser(srv, "dev")
    page = dev.get(f"/ui/repo/team/app/-/manifest/{digest}")
    assert page.status_code == 200 and "Delete manifest and its tags" not in page.text
    r = dev.post("/ui/repo/team/app/-/delete", data={**delete, "csrf": csrf(page.text)})
    assert r.status_code == 403 and "dev may not delete in team/app." in r.text
    # A maintainer deletes it from its page: every tag on it goes, the others stay.
    ann = browser(srv, "ann")
    page = ann.get(f"/ui/repo/team/app/-/manifest/{digest}")
    assert "Delete manifest and its tags" in page.text
    r = ann.post("/ui/repo/team/app/-/delete", data={**delete, "csrf": csrf(page.text)})
    assert r.status_code == 200 and f"Deleted manifest {digest.split(':')[1][:12]}." in r.text
    assert set(srv.storage.tags("team/app")) == {"v1"}
    assert ann.get(f"/ui/repo/team/app/-/manifest/{digest}").status_code == 404
    # A manifest an immutable tag points to stays.
    p = srv.team.directory.need_project("team")
    p.immutable = ["v*"]
    srv.team.directory.save(p)
    v1 = srv.storage.tags("team/app")["v1"]
    r = ann.post("/ui/repo/team/app/-/delete", data={"digest": v1, "csrf": csrf(ann.get("/").text)})
    assert r.status_code == 403 and "tag v1 of team/app is immutable" in r.text
    deletes = [(e["who"], e.get("digest")) for e in srv.team.kv.entries("audit") if e["action"] == "delete"]
    assert deletes == [("ann", digest)]
