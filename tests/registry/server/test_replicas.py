"""Three registry replicas on one S3 bucket (SeaweedFS): read-after-write, sessions that move between
replicas, one winner per tag, garbage collection under a lease and a grace period."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer
from dockyard.registry.server.s3storage import S3Storage
from tests.registry import s3kit

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, image_manifest, put_manifest, sha

pytestmark = [pytest.mark.seaweedfs, pytest.mark.slow]
PEER = {"s3_endpoint": s3kit.ENV["AWS_ENDPOINT_URL"], "s3_access_key": s3kit.ENV["AWS_ACCESS_KEY_ID"],
        "s3_secret_key": s3kit.ENV["AWS_SECRET_ACCESS_KEY"]}


@contextlib.contextmanager
def replicas(n: int = 3, **options: object) -> Iterator[list[httpx.Client]]:
    url = s3kit.s3_url("replicas")
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(RegistryServer(storage=url, **PEER, **options)) for _ in range(n)]
        yield [stack.enter_context(httpx.Client(base_url=s.url, timeout=60)) for s in servers]


def test_a_push_through_one_replica_is_pullable_through_the_others_at_once() -> None:
    with replicas() as (a, b, c):
        layers = [b"layer %d " % i * 1000 for i in range(3)]
        body = image_manifest(a, "team/app", layers)
        assert put_manifest(a, "team/app", "v1", body).status_code == 201

        def pull(client: httpx.Client) -> list[bytes]:
            got = [client.get("/v2/team/app/manifests/v1").content]
            got += [client.get(f"/v2/team/app/blobs/{sha(layer)}").content for layer in layers]
            return got

        with ThreadPoolExecutor(4) as pool:  # no sleep, no retry: the first read sees the write
            results = list(pool.map(pull, [b, c, b, c]))
        assert all(r == [body, *layers] for r in results)
        assert b.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]
        assert c.get("/v2/_catalog").json() == {"repositories": ["team/app"]}


def test_an_upload_started_on_one_replica_is_continued_and_closed_on_others() -> None:
    with replicas() as (a, b, c):
        data = bytes(range(256)) * (26 * 1024 * 4)  # 26 MiB: pieces of the part size and a tail
        cuts = [0, 3 << 20, 9 << 20, 23 << 20, len(data)]
        loc = a.post("/v2/move/r/blobs/uploads/").headers["Location"]
        for client, start, end in zip([a, b, c, a], cuts[:-1], cuts[1:], strict=True):
            r = client.patch(loc, content=data[start:end], headers={"Content-Range": f"{start}-{end - 1}"})
            assert r.status_code == 202, r.text
            loc = r.headers["Location"]
            assert b.get(loc).headers["Range"] == f"0-{end - 1}"  # every replica sees the session's size
        r = b.put(loc, params={"digest": sha(data)})
        assert r.status_code == 201, r.text
        assert c.get(f"/v2/move/r/blobs/{sha(data)}").content == data
        # A wrong digest on close is caught on a replica that never saw a byte of it.
        loc = a.post("/v2/move/r/blobs/uploads/").headers["Location"]
        a.patch(loc, content=b"abc", headers={"Content-Range": "0-2"})
        r = c.put(loc, params={"digest": sha(b"abd")})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_concurrent_pushes_of_one_tag_leave_one_consistent_winner() -> None:
    with replicas() as clients:
        bodies = [image_manifest(cl, "race/r", [b"from replica %d" % i]) for i, cl in enumerate(clients)]
        for round_no in range(5):
            barrier = threading.Barrier(len(clients))

            def push(i: int, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()
                return put_manifest(clients[i], "race/r", "latest", bodies[i]).status_code

            with ThreadPoolExecutor(len(clients)) as pool:
                assert list(pool.map(push, range(len(clients)))) == [201] * len(clients)
            seen = {cl.get("/v2/race/r/manifests/latest").content for cl in clients}
            assert len(seen) == 1, f"round {round_no}: replicas disagree"
            winner = seen.pop()
            assert winner in bodies
            digest = clients[0].head("/v2/race/r/manifests/latest").headers["Docker-Content-Digest"]
            assert digest == sha(winner)


def test_only_one_replica_holds_the_gc_lease() -> None:
    clock = FakeClock()
    url = s3kit.s3_url("lease")
    with RegistryServer(storage=url, clock=clock, **PEER) as one, \
            RegistryServer(storage=url, clock=clock, **PEER) as two:
        s1, s2 = one.storage, two.storage
        assert isinstance(s1, S3Storage) and isinstance(s2, S3Storage)
        assert s1.lease("one", 60)
        assert not s2.lease("two", 60)
        assert s1.lease("one", 60)  # the holder renews
        clock.advance(61)
        assert s2.lease("two", 60)  # expired: taken over
        assert not s1.lease("one", 60)
        s2.release("two")
        assert s1.lease("one", 60)

        # Two replicas racing for a free lease: exactly one wins, every time.
        for attempt in range(5):
            s1.release("one")
            s2.release("two")
            barrier = threading.Barrier(2)

            def take(storage: S3Storage, holder: str, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait()
                return storage.lease(holder, 60)

            with ThreadPoolExecutor(2) as pool:
                won = list(pool.map(take, [s1, s2], ["one", "two"]))
            assert sorted(won) == [False, True], f"attempt {attempt}: {won}"


def test_gc_on_one_replica_spares_what_a_push_through_another_still_needs() -> None:
    clock = FakeClock()
    url = s3kit.s3_url("gc")
    with RegistryServer(storage=url, clock=clock, gc_grace=3600, **PEER) as a, \
            RegistryServer(storage=url, clock=clock, gc_grace=3600, **PEER) as b, \
            httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
        clock.advance(-7200)
        old = sha(b"abandoned long ago")
        assert cb.post("/v2/gc/r/blobs/uploads/", params={"digest": old},
                       content=b"abandoned long ago").status_code == 201
        clock.advance(7200)
        # A push in progress on B: blobs uploaded, manifest not yet put.
        body = image_manifest(cb, "gc/r", [b"pushed through b"])
        report = a.gc()
        assert report.deleted_blobs == [old]
        assert put_manifest(cb, "gc/r", "v1", body).status_code == 201
        assert ca.get(f"/v2/gc/r/blobs/{sha(b'pushed through b')}").content == b"pushed through b"
        clock.advance(7200)
        assert a.gc().deleted_blobs == []  # referenced now: kept however old


def test_the_gc_loop_waits_for_the_lease() -> None:
    clock = FakeClock()
    url = s3kit.s3_url("gcloop")
    with RegistryServer(storage=url, clock=clock, gc_grace=60, **PEER) as setup, \
            httpx.Client(base_url=setup.url) as c:
        digest = sha(b"garbage")
        c.post("/v2/loop/r/blobs/uploads/", params={"digest": digest}, content=b"garbage")
        storage = setup.storage
        assert isinstance(storage, S3Storage)
        clock.advance(3600)
        assert storage.lease("someone else", 10_000)
    with RegistryServer(storage=url, clock=clock, gc_grace=60, gc_interval=0.2, **PEER):
        time.sleep(2)  # ten rounds: each finds the lease held
        assert storage.blob_stat(digest) is not None
        storage.release("someone else")
        deadline = time.monotonic() + 30
        while storage.blob_stat(digest) is not None:
            assert time.monotonic() < deadline, "the loop never collected after the lease was freed"
            time.sleep(0.1)


def test_registry_gc_cli_on_a_bucket_takes_the_lease() -> None:
    url = s3kit.s3_url("gccli")
    with RegistryServer(storage=url, **PEER) as srv, httpx.Client(base_url=srv.url) as c:
        c.post("/v2/cli/r/blobs/uploads/", params={"digest": sha(b"orphan")}, content=b"orphan")
        storage = srv.storage
        assert isinstance(storage, S3Storage)
        env = {**os.environ, **s3kit.ENV}
        cmd = [sys.executable, "-m", "dockyard", "registry", "gc", "--storage", url, "--grace", "0"]
        assert storage.lease("a replica", 600)
        busy = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert busy.returncode != 0 and "lease" in busy.stderr and "Traceback" not in busy.stderr
        assert storage.blob_stat(sha(b"orphan")) is not None
        storage.release("a replica")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"deleted blob {sha(b'orphan')}" in done.stdout
        assert storage.blob_stat(sha(b"orphan")) is None
        assert storage.lease("a replica", 600)  # the CLI gave its lease back
