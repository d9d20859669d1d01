"""The team store's two implementations, held to the same behaviour: SQLite beside a directory's blobs,
objects in an S3 bucket (SeaweedFS); and a team registry serving from the bucket."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dockyard.registry.server import RegistryServer
from dockyard.registry.server.server import open_storage
from dockyard.registry.server.team.kv import KV, ObjectKV, SqliteKV, open_kv
from tests.registry import s3kit

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import client, granted, push_image, seed

PEER = {"endpoint": s3kit.ENV["AWS_ENDPOINT_URL"], "access_key": s3kit.ENV["AWS_ACCESS_KEY_ID"],
        "secret_key": s3kit.ENV["AWS_SECRET_ACCESS_KEY"], "region": "us-east-1"}


def _kv(kind: str, tmp_path: Path) -> KV:
    if kind == "sqlite":
        kv = open_kv(open_storage(tmp_path / "storage"))
        assert isinstance(kv, SqliteKV) and kv.path == tmp_path / "storage" / "team.db"
        return kv
    kv = open_kv(open_storage(s3kit.s3_url("kv"), **PEER))
    assert isinstance(kv, ObjectKV)
    return kv


KINDS = [pytest.param("sqlite"), pytest.param("s3", marks=pytest.mark.seaweedfs)]


@pytest.mark.parametrize("kind", KINDS)
def test_records_and_logs(kind: str, tmp_path: Path) -> None:
    kv = _kv(kind, tmp_path)
    assert kv.get("robots", "robot$team+ci") is None
    kv.put("robots", "robot$team+ci", {"actions": ["pull"]})
    kv.put("robots", "robot$a+b", {"actions": ["push"]})
    kv.put("users", "robot$team+ci", {"other": "namespace"})
    kv.put("robots", "robot$team+ci", {"actions": ["pull", "push"]})  # replaced, not added
    assert kv.get("robots", "robot$team+ci") == {"actions": ["pull", "push"]}
    assert list(kv.items("robots")) == ["robot$a+b", "robot$team+ci"]
    assert kv.delete("robots", "robot$a+b") and not kv.delete("robots", "robot$a+b")
    assert list(kv.items("robots")) == ["robot$team+ci"]
    for i in range(5):
        kv.append("audit", {"n": i})
    kv.append("deliveries", {"n": 99})
    assert [e["n"] for e in kv.entries("audit")] == [0, 1, 2, 3, 4]  # in order, each once
    assert [e["n"] for e in kv.entries("deliveries")] == [99]


@pytest.mark.parametrize("kind", KINDS)
def test_appends_from_many_threads_all_land(kind: str, tmp_path: Path) -> None:
    kv = _kv(kind, tmp_path)

    def write(t: int) -> None:
        for i in range(10):
            kv.append("audit", {"t": t, "i": i})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got: list[Any] = [(e["t"], e["i"]) for e in kv.entries("audit")]
    assert sorted(got) == [(t, i) for t in range(4) for i in range(10)]


@pytest.mark.seaweedfs
def test_a_team_registry_on_a_bucket(tmp_path: Path) -> None:
    url = s3kit.s3_url("team")
    opts = {f"s3_{k}": v for k, v in PEER.items()}
    with RegistryServer(storage=url, team=True, **opts) as srv:
        seed(srv)
        assert granted(srv, "team/app", "dev") == {"pull", "push"}
        with client(srv, "team/app", "dev") as dev:
            assert push_image(dev, "team/app", "v1", [b"on the bucket"]).status_code == 201
    # A second replica on the same bucket knows the same accounts and the push's audit line.
    with RegistryServer(storage=url, team=True, **opts) as again:
        assert granted(again, "team/app", "gus") == {"pull"}
        assert again.team is not None
        pushes = [e for e in again.team.kv.entries("audit") if e["action"] == "push"]
        assert [(e["who"], e["tag"]) for e in pushes] == [("dev", "v1")]
