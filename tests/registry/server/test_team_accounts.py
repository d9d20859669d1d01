"""Projects, members, roles and robot accounts: what the token service grants, and what pushes do."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, error_code
from teamkit import client, granted, push_image, seed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def team_server(tmp_path: Path, clock: FakeClock) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path / "storage", team=True, clock=clock) as srv:
        seed(srv)
        yield srv


def test_roles_decide_what_the_token_service_grants(team_server: RegistryServer) -> None:
    s = team_server
    assert granted(s, "team/app", "gus") == {"pull"}
    assert granted(s, "team/app", "dev") == {"pull", "push"}
    assert granted(s, "team/app", "ann") == {"pull", "push", "delete"}
    assert granted(s, "team/app", "root") == {"pull", "push", "delete"}
    assert granted(s, "team/app", "out") == set()
    assert granted(s, "team/app", None) == set()
    # The project is the first path component: a member of "team" has no say in "other".
    assert s.team is not None
    s.team.directory.project_create("other", public=True)
    assert granted(s, "other/x", "ann") == {"pull"}  # public: anyone pulls, nobody else pushes
    assert granted(s, "other/x", None) == {"pull"}
    assert granted(s, "nosuchproject/x", "ann") == set()


def test_a_developer_pushes_a_guest_pulls_and_may_not_push(team_server: RegistryServer) -> None:
    with client(team_server, "team/app", "dev") as dev:
        assert push_image(dev, "team/app", "v1", [b"layer one"]).status_code == 201
    with client(team_server, "team/app", "gus", "pull") as gus:
        assert gus.get("/v2/team/app/manifests/v1").status_code == 200
        r = gus.post("/v2/team/app/blobs/uploads/")
        assert r.status_code == 403 and error_code(r) == "DENIED"
        assert "gus may not push" in r.json()["errors"][0]["message"]
    with client(team_server, "team/app", "dev") as dev:
        assert dev.delete("/v2/team/app/manifests/v1").status_code == 403  # developer: no delete
    with client(team_server, "team/app", "ann") as ann:
        assert ann.delete("/v2/team/app/manifests/v1").status_code == 202


def test_robot_accounts_are_scoped_to_their_project_and_expire(team_server: RegistryServer,
                                                               clock: FakeClock) -> None:
    assert team_server.team is not None
    d = team_server.team.directory
    d.project_create("other")
    robot, secret = d.robot_create("team", "ci", ["pull", "push"], expires_in=3600)
    assert robot.name == "robot$team+ci"
    assert secret not in str(d.kv.get("robots", robot.name))  # only a hash is kept
    assert granted(team_server, "team/app", robot.name, secret) == {"pull", "push"}
    assert granted(team_server, "other/app", robot.name, secret) == set()
    with client(team_server, "team/app", robot.name, password=secret) as ci:
        assert push_image(ci, "team/app", "ci-1", [b"from ci"]).status_code == 201
    r = httpx.get(f"{team_server.url}/token", params={"scope": "repository:team/app:pull"},
                  auth=(robot.name, "wrong-secret"))
    assert r.status_code == 401
    clock.now += 3601  # expired: its secret no longer logs in
    r = httpx.get(f"{team_server.url}/token", params={"scope": "repository:team/app:pull"},
                  auth=(robot.name, secret))
    assert r.status_code == 401


def test_the_catalog_is_for_registry_administrators(team_server: RegistryServer) -> None:
    from teamkit import token

    for user, status in (("root", 200), ("ann", 403)):
        tok = token(team_server, "registry:catalog:*", user)
        r = httpx.get(f"{team_server.url}/v2/_catalog", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == status, user


def test_bad_names_and_duplicates_are_clear_errors(team_server: RegistryServer) -> None:
    assert team_server.team is not None
    d = team_server.team.directory
    with pytest.raises(InvalidArgument, match="invalid project name 'Bad Name'"):
        d.project_create("Bad Name")
    with pytest.raises(Conflict, match="project team already exists"):
        d.project_create("team")
    with pytest.raises(InvalidArgument, match="unknown role 'owner'"):
        d.member_add("team", "out", "owner")
    with pytest.raises(InvalidArgument, match="robot actions"):
        d.robot_create("team", "x", ["pull", "fly"])
    with pytest.raises(InvalidArgument, match="at least 8 characters"):
        d.user_add("short", "pw")


def test_team_mode_refuses_an_htpasswd_file_too(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text("")
    with pytest.raises(InvalidArgument, match="--team keeps its own users"):
        RegistryServer(storage=tmp_path / "s", team=True, htpasswd=str(tmp_path / "htpasswd"))
