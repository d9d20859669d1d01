"""The S3 registry's local blob cache (``--blob-cache DIR[,size=N]``): hits, verification, bounds, crashes,
deletes made through another replica, and one fetch from the bucket shared by concurrent pulls."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.server import RegistryServer
from dockyard.registry.server.app import peer_token
from dockyard.registry.server.blobcache import BlobCache, Spool, parse_option
from dockyard.registry.server.s3storage import S3Storage
from dockyard.registry.server.sharedfetch import FOLLOW_STEP
from tests.registry import s3kit

sys.path.insert(0, str(Path(__file__).parent))
from regkit import count_loop_sendfile, push_blob, sha
from storeproxy import StoreProxy

PEER = {"s3_endpoint": s3kit.ENV["AWS_ENDPOINT_URL"], "s3_access_key": s3kit.ENV["AWS_ACCESS_KEY_ID"],
        "s3_secret_key": s3kit.ENV["AWS_SECRET_ACCESS_KEY"]}


def entries(root: Path) -> list[str]:
    """Published entries (not fills in progress)."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".part"))


def published(root: Path, *digests: str) -> list[str]:
    """The entries once those of ``digests`` are there (a fill is published just after its last byte
    went out, so the client may see the whole blob a moment before)."""
    names = [d.replace(":", "-") for d in digests]
    deadline = time.monotonic() + 30
    while not all((root / n).exists() for n in names):
        assert time.monotonic() < deadline, entries(root)
        time.sleep(0.02)
    return entries(root)


def range_from(header: str) -> int:
    """The first byte an open-ended Range header (``bytes=N-``) asks for."""
    found = re.fullmatch(r"bytes=(\d+)-", header)
    assert found, header
    return int(found.group(1))


def fill(cache: BlobCache, data: bytes) -> bool:
    f = cache.fill(sha(data), len(data))
    assert f is not None
    for start in range(0, len(data), 1000):
        f.write(data[start:start + 1000])
    return f.commit()


# -- the cache itself (no peer) ---------------------------------------------------------------------


def test_the_option_takes_a_directory_and_a_size(tmp_path: Path) -> None:
    assert parse_option(f"{tmp_path}/c,size=2GiB") == (tmp_path / "c", 2 << 30, None)
    assert parse_option(f"{tmp_path}/c")[1] == 10 << 30
    assert parse_option(f"{tmp_path}/c,peer=http://10.0.0.5:5000/,size=1GB") == (tmp_path / "c", 10**9,
                                                                                 "http://10.0.0.5:5000")
    for bad, message in [("d,size=lots", "invalid size"), ("d,ttl=3", "unknown option"), (",size=1", "DIR"),
                         ("d,peer=10.0.0.5:5000", "http")]:
        with pytest.raises(InvalidArgument, match=message):
            parse_option(bad)


def test_an_entry_is_published_only_whole_and_matching(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 1 << 20)
    data = os.urandom(5000)
    f = cache.fill(sha(data), len(data))
    assert f is not None and cache.fill(sha(data), len(data)) is None  # one fill of a blob at a time
    f.write(data[:2000])
    f.write(b"x" * 3000)  # the right size, the wrong bytes
    assert not f.commit()
    assert list(tmp_path.iterdir()) == [] and cache.open(sha(data), len(data)) is None
    assert fill(cache, data)
    got = cache.open(sha(data), len(data))
    assert got is not None and got.read() == data
    got.close()


def test_a_failed_write_gives_up_the_entry_quietly(tmp_path: Path) -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    cache = BlobCache(tmp_path, 1 << 20)
    data = os.urandom(3000)
    f = cache.fill(sha(data), len(data))
    assert f is not None
    f._file = Full()  # type: ignore[assignment]
    f.write(data[:1000])  # no exception: the pull goes on without a copy
    f.write(data[1000:])
    assert not f.commit()
    assert list(tmp_path.iterdir()) == []
    assert fill(cache, data)  # and the next pull may try again


def test_the_size_bound_holds_and_the_least_recently_used_go_first(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 10_000)
    blobs = [os.urandom(4000) for _ in range(4)]
    for data in blobs[:2]:
        assert fill(cache, data)
    hit = cache.open(sha(blobs[0]), 4000)  # used: the second one is now the oldest
    assert hit is not None
    hit.close()
    assert fill(cache, blobs[2])
    assert entries(tmp_path) == sorted(sha(b).replace(":", "-") for b in (blobs[0], blobs[2]))
    assert cache.used == 8000
    assert cache.fill(sha(b"x" * 10_001), 10_001) is None  # larger than the whole cache: not kept
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 10_000


def test_a_changed_entry_is_never_served(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 1 << 20)
    data = os.urandom(8000)
    assert fill(cache, data)
    path = cache.path(sha(data))
    path.chmod(0o644)
    with open(path, "r+b") as f:  # same size, one byte flipped
        f.seek(4000)
        f.write(bytes([data[4000] ^ 1]))
    assert cache.open(sha(data), len(data)) is None
    assert not path.exists()


def test_entries_left_by_an_earlier_run_are_verified_and_part_files_removed(tmp_path: Path) -> None:
    good, bad = os.urandom(3000), os.urandom(3000)
    (tmp_path / sha(good).replace(":", "-")).write_bytes(good)
    (tmp_path / sha(bad).replace(":", "-")).write_bytes(b"y" * 3000)  # e.g. a crash before the data hit disk
    (tmp_path / f"{sha(good).replace(':', '-')}.1234.part").write_bytes(good[:100])
    cache = BlobCache(tmp_path, 1 << 20)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    assert cache.open(sha(bad), 3000) is None
    got = cache.open(sha(good), 3000)
    assert got is not None and got.read() == good
    got.close()


# -- served by the registry on SeaweedFS --------------------------------------------------------------


@contextlib.contextmanager
def cached_registry(tmp: Path, url: str | None = None, size: str = "1GiB",
                    **options: object) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp / f"cache-{os.urandom(4).hex()}"
    with RegistryServer(storage=url or s3kit.s3_url("cache"), blob_cache=f"{root},size={size}",
                        **PEER, **options) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        yield c, root


def overwrite_in_bucket(server_client: httpx.Client, storage_url: str, digest: str, data: bytes) -> None:
    bucket, _, prefix = storage_url[len("s3://"):].partition("/")
    algorithm, _, hexpart = digest.partition(":")
    s3kit.client().put_object(Bucket=bucket, Key=f"{prefix}/blobs/{algorithm}/{hexpart[:2]}/{hexpart}",
                              Body=data, Metadata={"mtime": repr(time.time())})


@pytest.mark.seaweedfs
def test_a_second_pull_is_served_from_the_cache(tmp_path: Path) -> None:
    url = s3kit.s3_url("cache")
    with cached_registry(tmp_path, url) as (c, root), \
            RegistryServer(storage=url, **PEER) as other, httpx.Client(base_url=other.url) as b:
        data = os.urandom(3 << 20)
        digest = push_blob(b, "cache/r", data)  # through another replica: the first pull fills the cache
        first = c.get(f"/v2/cache/r/blobs/{digest}")
        assert first.status_code == 200 and first.content == data
        assert published(root, digest) == [digest.replace(":", "-")]
        # The bucket's copy is swapped for other bytes of the same size: a hit does not read it.
        overwrite_in_bucket(c, url, digest, b"z" * len(data))
        second = c.get(f"/v2/cache/r/blobs/{digest}")
        assert second.status_code == 200 and second.content == data
        assert second.headers["Docker-Content-Digest"] == digest
        assert second.headers["Content-Length"] == str(len(data))
        part = c.get(f"/v2/cache/r/blobs/{digest}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == b"z" * 10  # ranges come from the store


@pytest.mark.seaweedfs
def test_a_corrupt_entry_is_not_served_and_is_filled_again(tmp_path: Path) -> None:
    with cached_registry(tmp_path) as (c, root):
        data = os.urandom(2 << 20)
        digest = push_blob(c, "cache/r", data)
        assert c.get(f"/v2/cache/r/blobs/{digest}").content == data
        published(root, digest)
        entry = root / digest.replace(":", "-")
        entry.chmod(0o644)
        with open(entry, "r+b") as f:
            f.seek(1 << 20)
            f.write(b"\0" * 16)
        assert c.get(f"/v2/cache/r/blobs/{digest}").content == data  # from the bucket
        published(root, digest)
        assert c.get(f"/v2/cache/r/blobs/{digest}").content == data  # from a fresh entry
        assert entry.read_bytes() == data


@pytest.mark.seaweedfs
def test_a_delete_through_another_replica_404s_at_once(tmp_path: Path) -> None:
    url = s3kit.s3_url("cache")
    with cached_registry(tmp_path, url) as (a, root), \
            RegistryServer(storage=url, **PEER) as other, httpx.Client(base_url=other.url) as b:
        kept, unlinked = os.urandom(1 << 20), os.urandom(1 << 20)
        for data in (kept, unlinked):
            push_blob(b, "cache/r", data)
            assert a.get(f"/v2/cache/r/blobs/{sha(data)}").content == data  # cached on a
        published(root, sha(kept), sha(unlinked))
        assert b.delete(f"/v2/cache/r/blobs/{sha(unlinked)}").status_code == 202
        assert a.get(f"/v2/cache/r/blobs/{sha(unlinked)}").status_code == 404
        assert a.head(f"/v2/cache/r/blobs/{sha(unlinked)}").status_code == 404
        # The bytes themselves gone (as garbage collection through b would do): 404 too.
        bucket, _, prefix = url[len("s3://"):].partition("/")
        hexpart = sha(kept).partition(":")[2]
        s3kit.client().delete_object(Bucket=bucket, Key=f"{prefix}/blobs/sha256/{hexpart[:2]}/{hexpart}")
        assert a.get(f"/v2/cache/r/blobs/{sha(kept)}").status_code == 404


@pytest.mark.seaweedfs
def test_the_registry_keeps_the_cache_under_its_bound(tmp_path: Path) -> None:
    with cached_registry(tmp_path, size="5MiB") as (c, root):
        blobs = [os.urandom(2 << 20) for _ in range(4)]
        for data in blobs:
            push_blob(c, "cache/r", data)
            assert c.get(f"/v2/cache/r/blobs/{sha(data)}").content == data
            published(root, sha(data))
        assert sum(p.stat().st_size for p in root.iterdir()) <= 5 << 20
        assert entries(root) == sorted(sha(d).replace(":", "-") for d in blobs[2:])


def test_blob_cache_needs_object_storage(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--blob-cache is for s3://"):
        RegistryServer(storage=str(tmp_path / "fs"), blob_cache=str(tmp_path / "c"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_process(storage: str, cache: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr",
                             f"127.0.0.1:{port}", "--storage", storage, "--blob-cache", str(cache),
                             "--no-access-log"], env={**os.environ, **s3kit.ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_a_kill_mid_fill_leaves_no_entry(tmp_path: Path) -> None:
    url, cache = s3kit.s3_url("cache-kill"), tmp_path / "cache"
    data = os.urandom(48 << 20)
    with RegistryServer(storage=url, **PEER) as other, httpx.Client(base_url=other.url, timeout=60) as b:
        digest = push_blob(b, "kill/r", data)  # through another replica: cold here
    with serve_process(url, cache) as (proc, base), httpx.Client(base_url=base, timeout=60) as c, \
            c.stream("GET", f"/v2/kill/r/blobs/{digest}") as r:
        next(r.iter_raw(1 << 16))  # the fill has begun; the client now stops reading
        deadline = time.monotonic() + 30
        while not any(p.name.endswith(".part") for p in cache.iterdir()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert entries(cache) == []
    with serve_process(url, cache) as (_proc, base), httpx.Client(base_url=base, timeout=60) as c:
        assert list(cache.iterdir()) == []  # the half-written fill is gone at the next start
        assert c.get(f"/v2/kill/r/blobs/{digest}").content == data
        assert published(cache, digest) == [digest.replace(":", "-")]


@pytest.mark.seaweedfs
def test_a_client_gone_mid_pull_leaves_no_entry(tmp_path: Path) -> None:
    url = s3kit.s3_url("cache")
    with cached_registry(tmp_path, url) as (c, root), \
            RegistryServer(storage=url, **PEER) as other, httpx.Client(base_url=other.url) as b:
        data = os.urandom(24 << 20)
        digest = push_blob(b, "cache/r", data)  # through another replica: cold here
        with c.stream("GET", f"/v2/cache/r/blobs/{digest}") as r:
            next(r.iter_raw(1 << 16))
        deadline = time.monotonic() + 30
        while any(root.iterdir()):  # the server sees the connection close and drops the fill
            assert time.monotonic() < deadline, list(root.iterdir())
            time.sleep(0.05)
        assert c.get(f"/v2/cache/r/blobs/{digest}").content == data
        assert published(root, digest) == [digest.replace(":", "-")]


# -- one fetch from the bucket for concurrent pulls ----------------------------------------------------


@contextlib.contextmanager
def behind_proxy(tmp: Path, rate: float | None = None
                 ) -> Iterator[tuple[httpx.Client, Path, StoreProxy, Callable[[str], str], httpx.Client]]:
    """A cached registry whose traffic to the bucket goes through a proxy that sees (and shapes) it,
    where a blob's bytes are in the bucket (its key, or the upload piece its key points to), and another
    replica without a cache on the same bucket (what it receives is cold in the first)."""
    root = tmp / "cache"
    url = s3kit.s3_url("shared")
    with StoreProxy(s3kit.ENV["AWS_ENDPOINT_URL"], rate) as proxy, \
            RegistryServer(storage=url, blob_cache=f"{root},size=1GiB",
                           **{**PEER, "s3_endpoint": proxy.url}) as srv, \
            RegistryServer(storage=url, **PEER) as other, \
            httpx.Client(base_url=srv.url, timeout=60) as c, \
            httpx.Client(base_url=other.url, timeout=60) as b:
        storage = srv.storage
        assert isinstance(storage, S3Storage)
        yield c, root, proxy, storage._bytes_key, b


@pytest.mark.seaweedfs
def test_concurrent_pulls_of_a_new_blob_read_the_bucket_once(tmp_path: Path) -> None:
    with behind_proxy(tmp_path, rate=8 << 20) as (c, root, proxy, where, b):  # the fetch takes ~1 s
        data = os.urandom(6 << 20)
        digest = push_blob(b, "shared/r", data)
        url = f"{c.base_url}/v2/shared/r/blobs/{digest}"
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: httpx.get(url, timeout=60), range(4)))
        assert [(b.status_code, b.content == data) for b in bodies] == [(200, True)] * 4
        assert {b.headers["Content-Length"] for b in bodies} == {str(len(data))}
        assert proxy.gets(where(digest)) == [""]  # four pulls, one read of the bucket
        assert published(root, digest) == [digest.replace(":", "-")]


@pytest.mark.seaweedfs
def test_followers_send_a_slow_fetch_in_few_large_pieces(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each GET following a fetch sends once per ``FOLLOW_STEP`` landed, not once per piece read from
    the store (each sendfile call costs the event loop; a slow store hands over many small pieces)."""
    calls = count_loop_sendfile(monkeypatch)
    with behind_proxy(tmp_path, rate=8 << 20) as (c, _root, proxy, where, b):
        data = os.urandom(12 << 20)
        digest = push_blob(b, "shared/r", data)
        url = f"{c.base_url}/v2/shared/r/blobs/{digest}"
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: httpx.get(url, timeout=60), range(4)))
        assert [(b.status_code, b.content == data) for b in bodies] == [(200, True)] * 4
        assert proxy.gets(where(digest)) == [""]
    assert sum(count or 0 for count in calls) == 4 * len(data)
    assert len(calls) <= 4 * (len(data) // FOLLOW_STEP + 1), len(calls)


@pytest.mark.seaweedfs
def test_a_fetch_reads_the_store_while_the_event_loop_is_busy(tmp_path: Path) -> None:
    """The fetch into the cache runs on a thread of its own: a busy event loop (here: blocked outright)
    does not slow it, where a fetch read by the loop stopped with it."""
    root = tmp_path / "cache"
    url = s3kit.s3_url("shared")
    with StoreProxy(s3kit.ENV["AWS_ENDPOINT_URL"], 8 << 20) as proxy, \
            RegistryServer(storage=url, blob_cache=f"{root},size=1GiB",
                           **{**PEER, "s3_endpoint": proxy.url}) as srv, \
            RegistryServer(storage=url, **PEER) as other, \
            httpx.Client(base_url=srv.url, timeout=60) as c, httpx.Client(base_url=other.url) as b:
        data = os.urandom(32 << 20)  # ~4 s from the store
        digest = push_blob(b, "shared/r", data)
        loop = srv._loop
        assert loop is not None

        def landed() -> int:
            return sum(p.stat().st_size for p in root.glob("*.part"))

        with c.stream("GET", f"/v2/shared/r/blobs/{digest}") as r:
            pieces = r.iter_raw(1 << 16)
            head = next(pieces)
            loop.call_soon_threadsafe(time.sleep, 1.8)  # the event loop does nothing else meanwhile
            time.sleep(0.4)
            before = landed()
            time.sleep(1.0)
            assert landed() - before >= 4 << 20, (before, landed())
            assert head + b"".join(pieces) == data
        storage = srv.storage
        assert isinstance(storage, S3Storage)
        assert proxy.gets(storage._bytes_key(digest)) == [""]  # one read of the bucket
        assert published(root, digest) == [digest.replace(":", "-")]


@pytest.mark.seaweedfs
def test_a_slow_client_holds_up_no_other(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (c, root, proxy, where, b):
        data = os.urandom(24 << 20)  # far more than the sockets buffer while the first client waits
        digest = push_blob(b, "shared/r", data)
        with c.stream("GET", f"/v2/shared/r/blobs/{digest}") as slow:
            pieces = slow.iter_raw(1 << 16)
            head = next(pieces)
            other = httpx.get(f"{c.base_url}/v2/shared/r/blobs/{digest}", timeout=30)
            assert other.status_code == 200 and other.content == data
            assert head + b"".join(pieces) == data
        assert proxy.gets(where(digest)) == [""]
        assert published(root, digest) == [digest.replace(":", "-")]


@pytest.mark.seaweedfs
def test_a_fetch_cut_short_is_finished_from_the_bucket(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (c, root, proxy, where, b):
        data = os.urandom(8 << 20)
        digest = push_blob(b, "shared/r", data)
        hexpart = where(digest)
        cuts = [3 << 20]  # the store's first answer for the blob ends after 3 MiB

        def cut(method: str, path: str, rng: str) -> int | None:
            return cuts.pop() if method == "GET" and hexpart in path and not rng and cuts else None

        proxy.cut = cut
        got = c.get(f"/v2/shared/r/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        first, rest = proxy.gets(hexpart)
        assert first == "" and 0 < range_from(rest) <= 3 << 20, rest  # only what the client still lacks
        time.sleep(0.2)
        assert entries(root) == []  # a cut-short fill is never published
        assert c.get(f"/v2/shared/r/blobs/{digest}").content == data
        assert published(root, digest) == [digest.replace(":", "-")]


# -- a push kept by the replica that received it -------------------------------------------------------


def spooled(cache: BlobCache, data: bytes, pieces: int = 3) -> Spool:
    spool = cache.spool()
    assert spool is not None
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        assert spool.write(data[start:start + step])
    return spool


def test_a_spool_is_published_only_with_every_hashed_byte(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 1 << 20)
    data = os.urandom(5000)
    assert not spooled(cache, data).publish(sha(data), len(data) + 1)  # the hash saw more than was kept
    assert list(tmp_path.iterdir()) == []
    assert spooled(cache, data).publish(sha(data), len(data))
    got = cache.open(sha(data), len(data))
    assert got is not None and got.read() == data
    got.close()
    assert not spooled(cache, data).publish(sha(data), len(data))  # here already: the spool goes
    assert entries(tmp_path) == [sha(data).replace(":", "-")] == [p.name for p in tmp_path.iterdir()]
    assert cache.used == len(data)


def test_a_spool_larger_than_the_cache_or_refused_by_the_disk_is_given_up(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 4000)
    spool = cache.spool()
    assert spool is not None and spool.write(b"a" * 3000)
    assert not spool.write(b"b" * 1001)  # past the bound: given up, the upload goes on without it
    assert not spool.live and not spool.publish(sha(b"a" * 3000 + b"b" * 1001), 4001)
    assert list(tmp_path.iterdir()) == []

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    spool = cache.spool()
    assert spool is not None
    spool._file = Full()  # type: ignore[assignment]
    assert not spool.write(b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_a_spool_left_by_a_crash_is_removed_at_the_next_start(tmp_path: Path) -> None:
    spool = BlobCache(tmp_path, 1 << 20).spool()
    assert spool is not None and spool.write(b"x" * 100)
    BlobCache(tmp_path, 1 << 20)  # the process died with the upload open
    assert list(tmp_path.iterdir()) == []


@pytest.mark.seaweedfs
def test_a_pull_through_the_replica_that_received_the_push_reads_nothing_from_the_bucket(
        tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (c, root, proxy, where, _b):
        whole = os.urandom(6 << 20)
        digest = push_blob(c, "shared/r", whole)  # one request
        # Kept by the commit, before the 201: no wait.
        assert entries(root) == [digest.replace(":", "-")] == [p.name for p in root.iterdir()]
        chunked = os.urandom(7 << 20)  # POST, two PATCHes, PUT: joined in the bucket
        loc = c.post("/v2/shared/r/blobs/uploads/").headers["Location"]
        for start, end in ((0, 6 << 20), (6 << 20, len(chunked))):
            r = c.patch(loc, content=chunked[start:end], headers={"Content-Range": f"{start}-{end - 1}"})
            assert r.status_code == 202, r.text
            loc = r.headers["Location"]
        assert c.put(loc, params={"digest": sha(chunked)}).status_code == 201
        assert entries(root) == sorted(d.replace(":", "-") for d in (digest, sha(chunked)))
        for data in (whole, chunked):
            got = c.get(f"/v2/shared/r/blobs/{sha(data)}")
            assert got.status_code == 200 and got.content == data
            assert proxy.gets(where(sha(data))) == []  # not one byte read back from the bucket
        assert c.head(f"/v2/shared/r/blobs/{digest}").headers["Content-Length"] == str(len(whole))


@pytest.mark.seaweedfs
def test_an_upload_continued_elsewhere_or_refused_is_not_kept(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (c, root, proxy, where, b):
        data = os.urandom(12 << 20)
        loc = c.post("/v2/shared/r/blobs/uploads/").headers["Location"]
        r = c.patch(loc, content=data[:6 << 20], headers={"Content-Range": f"0-{(6 << 20) - 1}"})
        assert r.status_code == 202
        r = b.patch(loc, content=data[6 << 20:], headers={"Content-Range": f"{6 << 20}-{len(data) - 1}"})
        assert r.status_code == 202  # the other replica brought the rest: this one holds only a part
        assert c.put(loc, params={"digest": sha(data)}).status_code == 201
        assert list(root.iterdir()) == []
        got = c.get(f"/v2/shared/r/blobs/{sha(data)}")
        assert got.status_code == 200 and got.content == data
        assert proxy.gets(where(sha(data))) == [""]  # read from the bucket, and kept from then on
        published(root, sha(data))

        wrong = os.urandom(1 << 20)
        r = c.post("/v2/shared/r/blobs/uploads/", params={"digest": sha(b"other")}, content=wrong)
        assert r.status_code == 400
        loc = c.post("/v2/shared/r/blobs/uploads/").headers["Location"]
        assert c.patch(loc, content=wrong).status_code == 202
        assert c.delete(loc).status_code == 204  # cancelled
        assert [p.name for p in root.iterdir()] == [sha(data).replace(":", "-")]


# -- replicas asking each other's caches (peer=URL) ------------------------------------------------------


@contextlib.contextmanager
def peers(tmp: Path) -> Iterator[tuple[httpx.Client, httpx.Client, StoreProxy, Callable[[str], str],
                                       RegistryServer, Path, StoreProxy]]:
    """Replica a (which receives pushes) and replica b (whose traffic to the bucket goes through a
    proxy), both with a cache and a ``peer=`` URL, on one bucket; a's ``peer=`` URL is a second proxy
    in front of it, so the tests see (and shape) what b asks a for."""
    url = s3kit.s3_url("peer")
    port_a, port_b = _free_port(), _free_port()
    cache_a, cache_b = tmp / "a", tmp / "b"
    with StoreProxy(s3kit.ENV["AWS_ENDPOINT_URL"]) as proxy, \
            StoreProxy(f"http://127.0.0.1:{port_a}") as to_a, \
            RegistryServer(storage=url, port=port_a, blob_cache=f"{cache_a},peer={to_a.url}",
                           **PEER) as srv_a, \
            RegistryServer(storage=url, port=port_b, blob_cache=f"{cache_b},peer=http://127.0.0.1:{port_b}",
                           **{**PEER, "s3_endpoint": proxy.url}) as srv_b, \
            httpx.Client(base_url=srv_a.url, timeout=60) as a, \
            httpx.Client(base_url=srv_b.url, timeout=60) as b:
        storage = srv_b.storage
        assert isinstance(storage, S3Storage)
        yield a, b, proxy, storage._bytes_key, srv_a, cache_b, to_a


def kept_nothing(cache: Path) -> bool:
    """Nothing written in a replica's cache directory, not even a fill in progress."""
    time.sleep(0.2)  # a fill would be under way by now
    return list(cache.iterdir()) == []


@pytest.mark.seaweedfs
def test_a_blob_another_replica_received_is_relayed_and_kept_when_pulled_again(tmp_path: Path) -> None:
    with peers(tmp_path) as (a, b, proxy, where, srv_a, cache_b, to_a):
        data = os.urandom(9 << 20)
        digest = push_blob(a, "peer/r", data)
        got = b.get(f"/v2/peer/r/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        assert to_a.gets(digest) == [""] and proxy.gets(where(digest)) == []  # from a, not the bucket
        assert kept_nothing(cache_b)  # a first pull: relayed, not written
        assert b.get(f"/v2/peer/r/blobs/{digest}").content == data
        assert published(cache_b, digest) == [digest.replace(":", "-")]  # pulled again: hashed and kept
        assert to_a.gets(digest) == ["", ""] and proxy.gets(where(digest)) == []
        srv_a.stop()
        assert b.get(f"/v2/peer/r/blobs/{digest}").content == data  # from b's own disk
        assert proxy.gets(where(digest)) == []


@pytest.mark.seaweedfs
def test_concurrent_first_pulls_share_one_stream_from_the_peer(tmp_path: Path) -> None:
    with peers(tmp_path) as (a, b, proxy, where, _srv_a, cache_b, to_a):
        data = os.urandom(12 << 20)
        digest = push_blob(a, "peer/r", data)
        to_a.rate = 8 << 20  # ~1.5 s: the pulls overlap
        url = f"{b.base_url}/v2/peer/r/blobs/{digest}"
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: httpx.get(url, timeout=60), range(4)))
        assert [(r.status_code, r.content == data) for r in bodies] == [(200, True)] * 4
        assert {r.headers["Content-Length"] for r in bodies} == {str(len(data))}
        assert to_a.gets(digest) == [""] and proxy.gets(where(digest)) == []  # four pulls, one stream
        assert kept_nothing(cache_b)


@pytest.mark.seaweedfs
def test_a_pull_left_a_window_behind_the_relay_finishes_from_the_bucket(tmp_path: Path) -> None:
    from dockyard.registry.server.sharedrelay import WINDOW

    with peers(tmp_path) as (a, b, proxy, where, _srv_a, cache_b, to_a):
        data = os.urandom(WINDOW + (32 << 20))  # far more than the sockets hold for the stalled client
        digest = push_blob(a, "peer/r", data)
        to_a.rate = 32 << 20  # ~2 s: the second pull joins the stream while it is under way
        with b.stream("GET", f"/v2/peer/r/blobs/{digest}") as slow:
            pieces = slow.iter_raw(1 << 16)
            head = next(pieces)  # then it stops reading
            other = httpx.get(f"{b.base_url}/v2/peer/r/blobs/{digest}", timeout=60)
            assert other.status_code == 200 and other.content == data  # not held up by the slow one
            assert head + b"".join(pieces) == data
        assert to_a.gets(digest) == [""]
        (rest,) = proxy.gets(where(digest))  # the slow pull's rest, from where it had got to
        assert 0 < range_from(rest) < len(data) - WINDOW, rest
        assert kept_nothing(cache_b)


@pytest.mark.seaweedfs
def test_a_relay_the_peer_cuts_short_is_finished_from_the_bucket(tmp_path: Path) -> None:
    with peers(tmp_path) as (a, b, proxy, where, _srv_a, cache_b, to_a):
        data = os.urandom(8 << 20)
        digest = push_blob(a, "peer/r", data)
        cuts = [3 << 20]  # a's answer ends after 3 MiB (a replica killed mid-stream)
        to_a.cut = lambda method, path, _rng: cuts.pop() if method == "GET" and digest in path and cuts \
            else None
        got = b.get(f"/v2/peer/r/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        (rest,) = proxy.gets(where(digest))
        assert 0 < range_from(rest) <= 3 << 20, rest
        assert kept_nothing(cache_b)


@pytest.mark.seaweedfs
def test_a_peer_that_is_down_or_lacks_the_blob_leaves_the_bucket_to_serve_it(tmp_path: Path) -> None:
    with peers(tmp_path) as (a, b, proxy, where, srv_a, cache_b, _to_a):
        lacking = os.urandom(3 << 20)
        digest = push_blob(a, "peer/r", lacking)
        entry = srv_a.blob_cache.path(digest)  # type: ignore[union-attr]
        entry.unlink()  # evicted, say
        assert b.get(f"/v2/peer/r/blobs/{digest}").content == lacking
        assert proxy.gets(where(digest)) == [""]
        assert b.get(f"/v2/peer/r/blobs/{digest}").content == lacking  # pulled again: kept
        assert proxy.gets(where(digest)) == ["", ""]
        published(cache_b, digest)

        data = os.urandom(5 << 20)
        digest = push_blob(a, "peer/r", data)
        srv_a.stop()  # the replica that has it is gone
        for _ in range(2):
            got = b.get(f"/v2/peer/r/blobs/{digest}")
            assert got.status_code == 200 and got.content == data
        assert proxy.gets(where(digest)) == ["", ""]
        published(cache_b, digest)


@pytest.mark.seaweedfs
def test_only_replicas_on_the_bucket_may_ask_a_cache(tmp_path: Path) -> None:
    with peers(tmp_path) as (a, _b, _proxy, _where, srv_a, _cache_b, _to_a):
        data = os.urandom(1 << 20)
        digest = push_blob(a, "peer/r", data)
        url = f"/_dockyard/peer/blobs/{digest}"
        assert a.get(url).status_code == 404
        assert a.get(url, headers={"X-Dockyard-Peer": "0" * 64}).status_code == 404
        storage = srv_a.storage
        assert isinstance(storage, S3Storage)
        token = peer_token(storage.peer_key(), digest)  # the key is in the bucket: replicas share it
        got = a.get(url, headers={"X-Dockyard-Peer": token})
        assert got.status_code == 200 and got.content == data
        other = sha(b"not here")
        assert a.get(f"/_dockyard/peer/blobs/{other}",
                     headers={"X-Dockyard-Peer": peer_token(storage.peer_key(), other)}).status_code == 404
