"""Garbage collection: what is referenced or young stays, the rest goes; abandoned uploads expire."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from dockyard.registry.server import FilesystemStorage, RegistryServer, collect

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, image_manifest, push_blob, put_manifest, sha


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll for a background loop's effect (bounded: a loaded machine may delay it)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        threading.Event().wait(0.02)


def _age(storage: Path, data: bytes, seconds: float) -> None:
    digest = sha(data)
    path = storage / "blobs" / "sha256" / digest[7:9] / digest[7:]
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_collect_keeps_referenced_and_young_blobs(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with RegistryServer(storage=root, gc_grace=60) as srv, httpx.Client(base_url=srv.url) as c:
        body = image_manifest(c, "g/r", [b"kept layer"], config=b'{"kept": 1}')
        put_manifest(c, "g/r", "v1", body)
        push_blob(c, "g/r", b"orphan, old")
        push_blob(c, "g/r", b"orphan, fresh: a push in flight")
        child = image_manifest(c, "g/idx", [b"child layer"])
        put_manifest(c, "g/idx", sha(child), child)
        index = (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", '
                 b'"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "'
                 + sha(child).encode() + b'", "size": ' + str(len(child)).encode() + b"}]}")
        put_manifest(c, "g/idx", "multi", index, "application/vnd.oci.image.index.v1+json")
        old_upload = c.post("/v2/g/r/blobs/uploads/").headers["Location"]
        c.patch(old_upload, content=b"abandoned")
        for data in (b"kept layer", b'{"kept": 1}', b"orphan, old", b"child layer", body, child, index):
            _age(root, data, 3600)
        upload_id = old_upload.rsplit("/", 1)[1]
        past = time.time() - 2 * 86400
        for name in ("repo", "data"):
            os.utime(root / "uploads" / upload_id / name, (past, past))

        dry = srv.gc(dry_run=True)
        assert dry.deleted_blobs == [sha(b"orphan, old")] and dry.kept_young == 1
        assert c.head(f"/v2/g/r/blobs/{sha(b'orphan, old')}").status_code == 200

        report = srv.gc()
        assert report.deleted_blobs == [sha(b"orphan, old")]
        assert report.deleted_uploads == [upload_id] and report.removed_links == 1
        assert c.head(f"/v2/g/r/blobs/{sha(b'orphan, old')}").status_code == 404
        fresh = sha(b"orphan, fresh: a push in flight")
        assert c.head(f"/v2/g/r/blobs/{fresh}").status_code == 200
        for ref in ("v1", sha(body)):
            assert c.get(f"/v2/g/r/manifests/{ref}").content == body
        assert c.get("/v2/g/idx/manifests/multi").status_code == 200
        assert c.get(f"/v2/g/idx/blobs/{sha(b'child layer')}").status_code == 200
        assert c.get(old_upload).status_code == 404

        # Once the manifest is gone and the grace period has passed, its blobs go too.
        c.delete(f"/v2/g/r/manifests/{sha(body)}")
        assert sha(b"kept layer") in srv.gc().deleted_blobs


def test_fresh_manifest_restarts_grace_of_old_blobs(tmp_path: Path) -> None:
    """A blob uploaded long ago and referenced only now gets a new grace period."""
    root = tmp_path / "s"
    with RegistryServer(storage=root, gc_grace=3600) as srv, httpx.Client(base_url=srv.url) as c:
        body = image_manifest(c, "g/late", [b"old layer"])
        _age(root, b"old layer", 3500)
        assert sha(b"old layer") not in srv.gc().deleted_blobs  # still inside the grace period
        assert put_manifest(c, "g/late", "v1", body).status_code == 201
        assert c.delete(f"/v2/g/late/manifests/{sha(body)}").status_code == 202
        # 200 s later the blob is 3700 s old by its upload but 200 s by its last reference: kept.
        report = collect(srv.storage, grace=3600, now=time.time() + 200)
        assert sha(b"old layer") not in report.deleted_blobs and report.kept_young >= 1
        assert sha(b"old layer") in collect(srv.storage, grace=3600, now=time.time() + 3700).deleted_blobs


def test_janitor_expires_abandoned_uploads_but_not_active_ones(tmp_path: Path) -> None:
    clock = FakeClock()
    with RegistryServer(storage=tmp_path / "s", upload_ttl=100, janitor_interval=0, clock=clock) as srv, \
            httpx.Client(base_url=srv.url) as c:
        abandoned = c.post("/v2/j/r/blobs/uploads/").headers["Location"]
        active = c.post("/v2/j/r/blobs/uploads/").headers["Location"]
        for sent in range(10):  # 300 s in all: three times the TTL
            clock.advance(30)
            r = c.patch(active, content=b"x", headers={"Content-Range": f"{sent}-{sent}"})
            assert r.status_code == 202, "the active session was expired"
            active = r.headers["Location"]
            expired = srv.expire_uploads()
            assert (abandoned.rsplit("/", 1)[1] in expired) == (sent == 3), sent  # at 120 s, not 90 s
        assert c.get(abandoned).status_code == 404
        assert c.put(active, params={"digest": sha(b"x" * 10)}).status_code == 201


def test_the_janitor_runs_on_its_own(tmp_path: Path) -> None:
    clock = FakeClock()
    with RegistryServer(storage=tmp_path / "s", upload_ttl=100, janitor_interval=0.05, clock=clock) as srv, \
            httpx.Client(base_url=srv.url) as c:
        abandoned = c.post("/v2/j/r/blobs/uploads/").headers["Location"]
        clock.advance(101)
        wait_for(lambda: c.get(abandoned).status_code == 404, "the janitor never expired the session")


def test_offline_collect_on_storage(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "s")
    storage.blob_put(sha(b"x"), b"x")
    report = collect(storage, grace=0, now=time.time() + 1)
    assert report.deleted_blobs == [sha(b"x")] and storage.blob_stat(sha(b"x")) is None


def test_online_gc_loop(tmp_path: Path) -> None:
    clock = FakeClock()
    with RegistryServer(storage=tmp_path / "s", gc_interval=0.05, gc_grace=3600, clock=clock) as srv, \
            httpx.Client(base_url=srv.url) as c:
        body = image_manifest(c, "o/r", [b"referenced"])
        put_manifest(c, "o/r", "v1", body)
        orphan = push_blob(c, "o/r", b"orphan")
        clock.advance(3599)
        srv.gc()  # an online collection within the grace period keeps it
        assert c.head(f"/v2/o/r/blobs/{orphan}").status_code == 200
        clock.advance(2)
        wait_for(lambda: c.head(f"/v2/o/r/blobs/{orphan}").status_code == 404, "the gc loop never ran")
        assert c.get(f"/v2/o/r/blobs/{sha(b'referenced')}").content == b"referenced"
        assert c.get("/v2/o/r/manifests/v1").content == body
