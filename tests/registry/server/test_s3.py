"""The S3 storage driver on SeaweedFS: settings, bucket creation, multipart joins, redirects, retries."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.server import RegistryServer
from dockyard.registry.server.s3config import S3Settings, resolve
from dockyard.registry.server.s3storage import MIN_PART, S3Storage
from tests.registry import s3kit

sys.path.insert(0, str(Path(__file__).parent))
from regkit import OCI_MANIFEST, FakeClock, image_manifest, put_manifest, sha

pytestmark = pytest.mark.slow

PEER = {"s3_endpoint": s3kit.ENV["AWS_ENDPOINT_URL"], "s3_access_key": s3kit.ENV["AWS_ACCESS_KEY_ID"],
        "s3_secret_key": s3kit.ENV["AWS_SECRET_ACCESS_KEY"], "s3_region": "us-east-1"}


# -- settings (no peer needed) ---------------------------------------------------------------------


def test_flags_win_over_the_file_which_wins_over_the_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:1")
    monkeypatch.setenv("AWS_REGION", "env-region")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert resolve("s3://bkt/a/b/") == S3Settings("bkt", "a/b", "http://env:1", "env-region", "env-key",
                                                  "env-secret")
    conf = tmp_path / "s3.toml"
    conf.write_text('[s3]\nendpoint = "http://file:2"\nregion = "file-region"\nredirect = true\n')
    got = resolve("s3://bkt", str(conf), endpoint="http://flag:3", region=None)
    assert (got.endpoint, got.region, got.access_key, got.redirect) == \
        ("http://flag:3", "file-region", "env-key", True)


@pytest.mark.parametrize(("url", "text", "message"), [
    ("s3://ab/x", "", "bucket name must be 3-63"),
    ("s3://Upper/x", "", "bucket name must be 3-63"),
    ("s3://bkt", "[s3]\nendpont = 'x'\n", "unknown key 'endpont'"),
    ("s3://bkt", "[s3]\nredirect = 'yes'\n", "redirect must be a bool"),
    ("s3://bkt", "[s3\n", "s3.toml"),
    ("s3://bkt", "[s3]\npart_size = 1024\n", "at least 5 MiB"),
])
def test_bad_settings_are_one_clear_line(tmp_path: Path, url: str, text: str, message: str) -> None:
    conf = tmp_path / "s3.toml"
    conf.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        resolve(url, str(conf) if text else None)


# -- against SeaweedFS -----------------------------------------------------------------------------


@pytest.fixture
def s3_server() -> Iterator[RegistryServer]:
    with RegistryServer(storage=s3kit.s3_url("api"), **PEER) as srv:
        yield srv


@pytest.mark.seaweedfs
def test_the_bucket_is_created_when_missing() -> None:
    bucket = f"dy-new-{uuid.uuid4().hex[:10]}"
    client = s3kit.client()
    try:
        with RegistryServer(storage=f"s3://{bucket}/reg", **PEER) as srv, httpx.Client(base_url=srv.url) as c:
            digest = sha(b"in a new bucket")
            assert c.post("/v2/r/blobs/uploads/", params={"digest": digest},
                          content=b"in a new bucket").status_code == 201
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert f"reg/blobs/sha256/{digest[7:9]}/{digest[7:]}" in keys
    finally:
        # SeaweedFS gives every bucket volumes of its own: a bucket left behind by each run fills the peer.
        with contextlib.suppress(Exception):
            listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
            if listed:
                client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
            client.delete_bucket(Bucket=bucket)


@pytest.mark.seaweedfs
def test_small_chunks_are_joined_into_multipart_sized_parts(s3_server: RegistryServer) -> None:
    """3 MiB PATCHes (under S3's 5 MiB part minimum) end up as one multipart object, byte-exact."""
    storage = s3_server.storage
    assert isinstance(storage, S3Storage)
    data = hashlib.sha256(b"seed").digest() * (21 * (1 << 20) // 32 + 7)  # 21 MiB and a bit
    step = 3 << 20
    with httpx.Client(base_url=s3_server.url, timeout=60) as c:
        loc = c.post("/v2/big/blobs/uploads/").headers["Location"]
        upload_id = loc.rsplit("/", 1)[1]
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            r = c.patch(loc, content=chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"})
            assert r.status_code == 202, r.text
            loc = r.headers["Location"]
            pieces = storage._pieces(upload_id)
            # Every piece but the last is at least the part minimum: the session can always be joined.
            assert all(size >= MIN_PART for _, size in pieces[:-1])
            assert sum(size for _, size in pieces) == start + len(chunk)
        assert len(storage._pieces(upload_id)) >= 2
        r = c.put(loc, params={"digest": sha(data)})
        assert r.status_code == 201, r.text
        got = c.get(f"/v2/big/blobs/{sha(data)}")
        assert got.status_code == 200 and got.content == data
    head = s3kit.client().head_object(Bucket=storage.bucket, Key=storage._blob_key(sha(data)))
    assert head["ETag"].strip('"').rsplit("-", 1)[-1].isdigit() and "-" in head["ETag"]  # a multipart ETag
    assert storage._pieces(upload_id) == []  # the session's pieces are gone


@pytest.mark.seaweedfs
def test_a_failed_patch_is_cut_back_to_the_last_good_size(s3_server: RegistryServer) -> None:
    storage = s3_server.storage
    assert isinstance(storage, S3Storage)
    with httpx.Client(base_url=s3_server.url, timeout=60) as c:
        loc = c.post("/v2/cut/blobs/uploads/").headers["Location"]
        upload_id = loc.rsplit("/", 1)[1]
        loc = c.patch(loc, content=b"a" * 1000, headers={"Content-Range": "0-999"}).headers["Location"]
        # Announces 2000 bytes, sends 500: refused, and the session holds its 1000 bytes again.
        r = c.patch(loc, content=b"b" * 500, headers={"Content-Range": "1000-2999"})
        assert r.status_code == 400
        info = storage.upload_stat(upload_id)
        assert info is not None and info.size == 1000
        loc = c.patch(loc, content=b"c" * 24, headers={"Content-Range": "1000-1023"}).headers["Location"]
        data = b"a" * 1000 + b"c" * 24
        assert c.put(loc, params={"digest": sha(data)}).status_code == 201
        assert c.get(f"/v2/cut/blobs/{sha(data)}").content == data


@pytest.mark.seaweedfs
def test_redirect_sends_blob_gets_to_a_presigned_url() -> None:
    with RegistryServer(storage=s3kit.s3_url("redirect"), redirect=True, **PEER) as srv, \
            httpx.Client(base_url=srv.url) as c:
        body = image_manifest(c, "red/r", [b"redirected layer"])
        assert put_manifest(c, "red/r", "v1", body).status_code == 201
        r = c.get(f"/v2/red/r/blobs/{sha(b'redirected layer')}")
        assert r.status_code == 307
        assert r.headers["Location"].startswith(s3kit.SEAWEEDFS_S3) and "Signature" in r.headers["Location"]
        assert httpx.get(r.headers["Location"]).content == b"redirected layer"
        # HEAD is answered here (size and digest), and manifests are never redirected.
        head = c.head(f"/v2/red/r/blobs/{sha(b'redirected layer')}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(b"redirected layer"))
        assert c.get("/v2/red/r/manifests/v1").content == body


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Forwards to SeaweedFS, but answers 503 SlowDown to every fifth request."""

    calls = 0
    refused = 0
    refuse_every = 5
    seen: ClassVar[list[tuple[str, str]]] = []

    def _any(self) -> None:
        type(self).calls += 1
        type(self).seen.append((self.command, self.path.split("?")[0]))
        if self.refuse_every and type(self).calls % self.refuse_every == 1:
            type(self).refused += 1
            body = b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        req = urllib.request.Request(s3kit.SEAWEEDFS_S3 + self.path, data=data, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, payload = resp.status, resp.headers.items(), resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, payload = exc.code, exc.headers.items(), exc.read()
        self.send_response(status)
        head = self.command == "HEAD"  # a HEAD's Content-Length is the object's, not this empty body's
        for k, v in headers:
            skip = ("transfer-encoding", "connection") if head else ("transfer-encoding", "connection",
                                                                     "content-length")
            if k.lower() not in skip:
                self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.seaweedfs
def test_throttling_and_5xx_are_retried_with_backoff() -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with RegistryServer(storage=s3kit.s3_url("flaky"), **{**PEER, "s3_endpoint": endpoint}) as srv, \
                httpx.Client(base_url=srv.url, timeout=60) as c:
            body = image_manifest(c, "flaky/r", [b"layer one", b"layer two"])
            assert put_manifest(c, "flaky/r", "v1", body).status_code == 201
            assert c.get("/v2/flaky/r/manifests/v1").content == body
            # Three store calls per blob GET (link, size, the relayed bytes), every fifth refused: in
            # five GETs in a row the relayed GET itself is refused at least once.
            for _ in range(6):
                assert c.get(f"/v2/flaky/r/blobs/{sha(b'layer two')}").content == b"layer two"
    finally:
        proxy.shutdown()
    assert _Flaky.refused >= 5  # a fifth of all calls were refused once, and every request still worked


class _Counting(_Flaky):
    """Forwards everything, and keeps the list of requests."""

    refuse_every = 0
    seen: ClassVar[list[tuple[str, str]]] = []


@pytest.mark.seaweedfs
def test_a_manifest_put_asks_nothing_it_knows_and_writes_three_objects() -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with RegistryServer(storage=s3kit.s3_url("count"), **{**PEER, "s3_endpoint": endpoint}) as srv, \
                httpx.Client(base_url=srv.url, timeout=60) as c:
            body = image_manifest(c, "count/r", [b"layer one", b"layer two"])
            assert put_manifest(c, "count/r", "v0", body).status_code == 201
            _Counting.seen.clear()
            for n in range(1, 6):  # the same config and layers: their existence is known
                tagged = f'"annotations": {{"n": "{n}"}}, "schemaVersion"'.encode()
                again = body.replace(b'"schemaVersion"', tagged)
                assert put_manifest(c, "count/r", f"v{n}", again).status_code == 201
            seen = list(_Counting.seen)
            assert c.get("/v2/count/r/manifests/v5").content == again
    finally:
        proxy.shutdown()
    # Per PUT: the manifest bytes, its revision link (which links it as a blob too), the tag; no HEAD
    # of the layers.
    assert [m for m, _ in seen].count("PUT") == 15, seen
    assert len(seen) == 15, seen


@pytest.mark.seaweedfs
def test_tags_and_revision_links_are_empty_objects_and_the_earlier_layout_is_still_read() -> None:
    """A manifest PUT's tag and revision link carry their values as metadata and no bytes (on SeaweedFS
    an empty object is a filer entry, with no volume write); what earlier versions wrote (the digest and
    the media type as the objects' bytes) is read by every path that reads them."""
    url = s3kit.s3_url("empty")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    s3 = s3kit.client()
    with RegistryServer(storage=url, **PEER) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        body = image_manifest(c, "empty/r", [b"one layer"])
        digest = sha(body)
        assert put_manifest(c, "empty/r", "v1", body).status_code == 201
        repo = f"{prefix}/repositories/empty/r"
        tag = s3.get_object(Bucket=bucket, Key=f"{repo}/_tags/v1")
        assert tag["Body"].read() == b""
        assert tag["Metadata"] == {"digest": digest, "mediatype": OCI_MANIFEST}
        link = s3.get_object(Bucket=bucket, Key=f"{repo}/_manifests/{digest.replace(':', '/')}")
        assert link["Body"].read() == b""
        assert link["Metadata"] == {"mediatype": OCI_MANIFEST}

        # The earlier layout, written as the previous version did, in another repository.
        old = f"{prefix}/repositories/empty/old"
        s3.put_object(Bucket=bucket, Key=f"{old}/_manifests/{digest.replace(':', '/')}",
                      Body=OCI_MANIFEST.encode())
        s3.put_object(Bucket=bucket, Key=f"{old}/_tags/v0", Body=digest.encode())
        s3.put_object(Bucket=bucket, Key=f"{old}/_tags/typed", Body=digest.encode(),
                      Metadata={"mediatype": OCI_MANIFEST})
    with RegistryServer(storage=url, **PEER) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for ref in ("v0", "typed", digest):
            got = c.get(f"/v2/empty/old/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200, (ref, got.text)
            assert got.content == body
            assert got.headers["Content-Type"] == OCI_MANIFEST
            assert got.headers["Docker-Content-Digest"] == digest
        assert c.get("/v2/empty/old/tags/list").json()["tags"] == ["typed", "v0"]
        assert c.get("/v2/empty/r/tags/list").json()["tags"] == ["v1"]
        assert srv.storage.tag_get("empty/old", "v0") == digest
        assert srv.storage.tag_get("empty/r", "v1") == digest
        assert srv.storage.manifest_media_type("empty/old", digest) == OCI_MANIFEST
        # A tag of the earlier layout set again by this version is rewritten in the new form.
        s3.put_object(Bucket=bucket, Key=f"{repo}/_tags/v0", Body=b"sha256:" + b"0" * 64)
        assert put_manifest(c, "empty/r", "v0", body).status_code == 201
        assert s3.get_object(Bucket=bucket, Key=f"{repo}/_tags/v0")["Body"].read() == b""
        assert c.get("/v2/empty/r/manifests/v0").content == body


class _Slow(_Flaky):
    """Forwards everything, each PUT 0.3 s late, and keeps when each PUT began and ended."""

    refuse_every = 0
    puts: ClassVar[list[tuple[str, float, float]]] = []

    def do_PUT(self) -> None:
        began = time.monotonic()
        time.sleep(0.3)
        self._any()
        type(self).puts.append((self.path.split("?")[0], began, time.monotonic()))


@pytest.mark.seaweedfs
def test_a_manifest_s_bytes_and_revision_link_are_written_at_once_and_the_tag_after_both() -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with RegistryServer(storage=s3kit.s3_url("both"), **{**PEER, "s3_endpoint": endpoint}) as srv, \
                httpx.Client(base_url=srv.url, timeout=60) as c:
            body = image_manifest(c, "both/r", [b"a layer"])
            _Slow.puts.clear()
            assert put_manifest(c, "both/r", "v1", body).status_code == 201
            assert c.get("/v2/both/r/manifests/v1").content == body
            # The proxy notes a PUT after its answer went out: the registry may have answered its
            # client (and this test read the list) before the tag's entry was added.
            deadline = time.monotonic() + 5
            while not any(p[0].endswith("/_tags/v1") for p in _Slow.puts) and time.monotonic() < deadline:
                time.sleep(0.01)
            puts = list(_Slow.puts)
    finally:
        proxy.shutdown()
    hexpart = sha(body).partition(":")[2]
    (blob,) = [p for p in puts if p[0].endswith(f"/blobs/sha256/{hexpart[:2]}/{hexpart}")]
    (link,) = [p for p in puts if p[0].endswith(f"/_manifests/sha256/{hexpart}")]
    (tag,) = [p for p in puts if p[0].endswith("/_tags/v1")]
    assert blob[1] < link[2] and link[1] < blob[2], puts  # the two overlapped
    assert tag[1] >= max(blob[2], link[2]) - 0.05, puts  # the tag only once both had landed


@pytest.mark.seaweedfs
def test_a_manifest_is_a_blob_of_its_repository_until_it_is_deleted() -> None:
    url = s3kit.s3_url("mlink")
    with RegistryServer(storage=url, **PEER) as one, RegistryServer(storage=url, **PEER) as two, \
            httpx.Client(base_url=one.url) as a, httpx.Client(base_url=two.url) as b:
        body = image_manifest(a, "mlink/r", [b"a layer"])
        assert put_manifest(a, "mlink/r", "v1", body).status_code == 201
        assert b.get(f"/v2/mlink/r/blobs/{sha(body)}").content == body
        assert one.storage.is_linked("mlink/r", sha(body))
        assert sha(body) in one.storage.linked_blobs("mlink/r")
        assert a.delete(f"/v2/mlink/r/manifests/{sha(body)}").status_code == 202
        assert b.get(f"/v2/mlink/r/blobs/{sha(body)}").status_code == 404
        assert not two.storage.is_linked("mlink/r", sha(body))


@pytest.mark.seaweedfs
def test_a_manifest_put_goes_to_the_worker_pool_once_and_touches_its_blobs_a_minute_later() -> None:
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    clock = FakeClock()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with RegistryServer(storage=s3kit.s3_url("hops"), clock=clock,
                            **{**PEER, "s3_endpoint": endpoint}) as srv, \
                httpx.Client(base_url=srv.url, timeout=60) as c:
            body = image_manifest(c, "hops/r", [b"layer one", b"layer two"])
            assert put_manifest(c, "hops/r", "v0", body).status_code == 201
            assert srv.registry is not None
            pool = srv.registry.io
            jobs: list[str] = []
            real_run = pool.run

            async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
                jobs.append(getattr(fn, "__name__", repr(fn)))
                return await real_run(fn, *args, **kwargs)

            pool.run = counted  # type: ignore[method-assign]
            again = body.replace(b'"schemaVersion"', b'"annotations": {"n": "1"}, "schemaVersion"')
            assert put_manifest(c, "hops/r", "v1", again).status_code == 201
            assert jobs == ["write_manifest"]  # its blobs were known: no call for them at all
            _Counting.seen.clear()
            clock.advance(61)  # past what is remembered: the blobs are asked about and touched again
            third = body.replace(b'"schemaVersion"', b'"annotations": {"n": "2"}, "schemaVersion"')
            assert put_manifest(c, "hops/r", "v2", third).status_code == 201
            touched = [path.partition("/touched/")[2] for method, path in _Counting.seen
                       if method == "PUT" and "/touched/" in path]
            assert sorted(touched) == sorted(f"sha256/{sha(b).partition(':')[2]}"
                                             for b in (b"{}", b"layer one", b"layer two")), touched
    finally:
        proxy.shutdown()


@pytest.mark.seaweedfs
def test_blob_gets_are_relayed_with_ranges(s3_server: RegistryServer) -> None:
    with httpx.Client(base_url=s3_server.url) as c:
        data = bytes(range(256)) * 40
        body = image_manifest(c, "range/r", [data])
        assert put_manifest(c, "range/r", "v1", body).status_code == 201
        url = f"/v2/range/r/blobs/{sha(data)}"
        whole = c.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["Docker-Content-Digest"] == sha(data)
        part = c.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert c.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
        assert c.get(f"/v2/range/r/blobs/{sha(b'never pushed')}").status_code == 404


@pytest.mark.seaweedfs
def test_sessions_expire_by_when_bytes_last_arrived() -> None:
    clock = FakeClock()
    with RegistryServer(storage=s3kit.s3_url("expiry"), clock=clock, upload_ttl=600, **PEER) as srv, \
            httpx.Client(base_url=srv.url) as c:
        idle = c.post("/v2/exp/r/blobs/uploads/").headers["Location"]
        busy = c.post("/v2/exp/r/blobs/uploads/").headers["Location"]
        clock.advance(500)
        c.patch(busy, content=b"still here", headers={"Content-Range": "0-9"})
        clock.advance(200)
        assert srv.expire_uploads() == [idle.rsplit("/", 1)[1]]
        assert c.get(idle).status_code == 404
        assert c.get(busy).headers["Range"] == "0-9"


@pytest.mark.seaweedfs
def test_a_push_asks_the_store_no_more_than_it_must() -> None:
    """POST, one PATCH, PUT: each request reads the session once (and once more after its bytes are
    stored), the commit reuses what the PUT's receive found, and the blob is a pointer to the piece."""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with RegistryServer(storage=s3kit.s3_url("calls"), **{**PEER, "s3_endpoint": endpoint}) as srv, \
                httpx.Client(base_url=srv.url, timeout=60) as c:
            data = b"counted" * 1000
            _Counting.seen.clear()
            loc = c.post("/v2/calls/r/blobs/uploads/").headers["Location"]
            loc = c.patch(loc, content=data).headers["Location"]
            assert c.put(loc, params={"digest": sha(data)}).status_code == 201
            seen = list(_Counting.seen)
            assert c.get(f"/v2/calls/r/blobs/{sha(data)}").content == data
    finally:
        proxy.shutdown()
    info_reads = [p for m, p in seen if m == "GET" and p.endswith("/info")]
    # PATCH: the session, then again after its bytes; PUT: the session, then again after its (no) bytes;
    # the touch after the PATCH's bytes reads it once more.
    assert len(info_reads) == 5, seen
    assert not any("/uploads/" in p and "/data/" in p for _, p in seen)  # the pieces are under data/
    assert len(seen) <= 20, seen


@pytest.mark.seaweedfs
def test_a_write_skipped_from_memory_does_not_renew_the_memory() -> None:
    """A replica that wrote a revision link skips writing it again for a minute, but only counting from
    when it wrote it: a manifest deleted through another replica is linked again by a push that comes
    a minute after the write, however many pushes in between were skipped."""
    url, clock = s3kit.s3_url("renew"), FakeClock()
    with RegistryServer(storage=url, clock=clock, **PEER) as one, \
            RegistryServer(storage=url, clock=clock, **PEER) as two, \
            httpx.Client(base_url=one.url, timeout=60) as a, httpx.Client(base_url=two.url, timeout=60) as b:
        body = image_manifest(a, "renew/r", [b"a layer"])
        digest = sha(body)
        assert put_manifest(a, "renew/r", "v1", body).status_code == 201
        clock.advance(40)
        assert put_manifest(a, "renew/r", "v2", body).status_code == 201  # the link is known: not written
        clock.advance(10)
        assert b.delete(f"/v2/renew/r/manifests/{digest}").status_code == 202
        assert b.get(f"/v2/renew/r/manifests/{digest}").status_code == 404
        clock.advance(20)  # 70 s after the link was written, 30 s after the skipped write
        assert put_manifest(a, "renew/r", "v3", body).status_code == 201
        got = b.get(f"/v2/renew/r/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == body
