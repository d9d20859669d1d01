"""Uploads on S3 that become blobs without a copy: the blob's key points to the session's one piece.

What must hold: the bytes are served from the piece, a digest pushed twice at once leaves one readable
blob, a piece is never removed while a pointer names it (session removal, expiry, GC's sweep), a crash
between the steps of a commit loses nothing, and sessions and blobs written by earlier versions (pieces
under ``uploads/<id>/data/``, blobs as plain objects) are still read and continued."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer
from dockyard.registry.server.gc import collect
from dockyard.registry.server.s3config import S3Settings
from dockyard.registry.server.s3storage import S3Storage
from tests.registry import s3kit

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, image_manifest, put_manifest, sha

pytestmark = [pytest.mark.slow, pytest.mark.seaweedfs]

PEER = {"s3_endpoint": s3kit.ENV["AWS_ENDPOINT_URL"], "s3_access_key": s3kit.ENV["AWS_ACCESS_KEY_ID"],
        "s3_secret_key": s3kit.ENV["AWS_SECRET_ACCESS_KEY"], "s3_region": "us-east-1"}


def storage_at(url: str, clock: FakeClock, part_size: int = 16 << 20) -> S3Storage:
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return S3Storage(S3Settings(bucket, prefix, endpoint=PEER["s3_endpoint"], region="us-east-1",
                                access_key=PEER["s3_access_key"], secret_key=PEER["s3_secret_key"],
                                part_size=part_size), clock)


@pytest.fixture
def store() -> Iterator[tuple[S3Storage, FakeClock]]:
    clock = FakeClock()
    yield storage_at(s3kit.s3_url("ptr"), clock), clock


def upload(storage: S3Storage, data: bytes, requests: int = 1) -> str:
    """A session holding ``data``, brought by ``requests`` appends; returns its id."""
    info = storage.upload_create("ptr/r")
    step = -(-len(data) // requests) if data else 1
    for start in range(0, max(len(data), 1), step):
        with storage.upload_append(info.id) as f:
            for at in range(start, min(start + step, len(data)), 1 << 20):  # 1 MiB at a time, as served
                f.write(data[at:min(at + (1 << 20), start + step)])
    return info.id


def keys(storage: S3Storage, under: str) -> list[str]:
    prefix = storage._key(under) + "/"
    return sorted(str(e["Key"])[len(prefix):] for e in storage._list(prefix))


def read(storage: S3Storage, digest: str) -> bytes:
    with storage.blob_open(digest) as f:
        return f.read()


def test_a_one_request_upload_becomes_a_pointer_to_its_piece(store: tuple[S3Storage, FakeClock]) -> None:
    storage, _ = store
    data = hashlib.sha256(b"pointer").digest() * (7 << 15)  # 7 MiB
    upload_id = upload(storage, data)
    storage.upload_commit(upload_id, sha(data))
    head = s3kit.client().head_object(Bucket=storage.bucket, Key=storage._blob_key(sha(data)))
    assert head["ContentLength"] == 0 and head["Metadata"]["size"] == str(len(data))
    assert head["Metadata"]["target"] == f"data/{upload_id}/{0:020d}"
    assert keys(storage, "data") == [f"{upload_id}/{0:020d}", f"{upload_id}/commit"]
    assert keys(storage, "uploads") == [] and storage.upload_stat(upload_id) is None  # the session ended
    info = storage.blob_stat(sha(data))
    assert info is not None and info.size == len(data) and storage.blob_size(sha(data)) == len(data)
    assert read(storage, sha(data)) == data
    assert httpx.get(storage.blob_url(sha(data))).content == data
    storage.link_blob("ptr/r", sha(data))
    located = storage.linked_blob_url("ptr/r", sha(data))
    assert located is not None and located[0] == len(data) and httpx.get(located[1]).content == data
    assert storage.linked_blob_url("other/r", sha(data)) is None


def test_a_request_larger_than_a_part_is_one_piece_sent_as_a_multipart_upload(
        store: tuple[S3Storage, FakeClock]) -> None:
    _, clock = store
    storage = storage_at(s3kit.s3_url("ptr"), clock, part_size=5 << 20)
    data = hashlib.sha256(b"parts").digest() * (12 << 15)  # 12 MiB: three parts of at least 5 MiB
    upload_id = upload(storage, data)
    assert storage._pieces(upload_id) == [(storage._data_key(upload_id, f"{0:020d}"), len(data))]
    etag = s3kit.client().head_object(Bucket=storage.bucket, Key=storage._pieces(upload_id)[0][0])["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart object of three parts
    storage.upload_commit(upload_id, sha(data))
    assert read(storage, sha(data)) == data


def test_a_session_of_several_pieces_is_joined_into_a_plain_blob(store: tuple[S3Storage, FakeClock]) -> None:
    storage, _ = store
    data = hashlib.sha256(b"joined").digest() * (12 << 15)
    upload_id = upload(storage, data, requests=2)
    assert len(storage._pieces(upload_id)) == 2
    storage.upload_commit(upload_id, sha(data))
    head = s3kit.client().head_object(Bucket=storage.bucket, Key=storage._blob_key(sha(data)))
    assert head["ContentLength"] == len(data) and "target" not in head["Metadata"]
    assert keys(storage, "data") == [] and read(storage, sha(data)) == data


def test_a_digest_pushed_twice_at_once_leaves_one_readable_blob(store: tuple[S3Storage, FakeClock]) -> None:
    storage, clock = store
    data = b"twice" * 100_000
    sessions = [upload(storage, data) for _ in range(4)]
    start = threading.Barrier(len(sessions))

    def commit(upload_id: str) -> None:
        start.wait()
        storage.upload_commit(upload_id, sha(data))

    threads = [threading.Thread(target=commit, args=(u,)) for u in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read(storage, sha(data)) == data
    head = s3kit.client().head_object(Bucket=storage.bucket, Key=storage._blob_key(sha(data)))
    winner = head["Metadata"]["target"].split("/")[1]
    assert winner in sessions
    # The others dropped their pieces (or, where the store let two writes through, GC's sweep will).
    clock.advance(3601)
    storage.sweep_data(3600)
    assert keys(storage, "data") == [f"{winner}/{0:020d}", f"{winner}/commit"]
    assert read(storage, sha(data)) == data


def test_a_commit_cut_short_loses_nothing(store: tuple[S3Storage, FakeClock]) -> None:
    """Killed after the pointer was written, before the session's info went: expiring the session
    later keeps the blob's piece. Killed before the pointer: the sweep removes the piece after grace."""
    storage, clock = store
    data = b"kept" * 50_000
    upload_id = upload(storage, data)
    real_delete = storage._delete_keys

    def dies_removing_the_info(doomed: list[str]) -> None:
        if any(k.endswith("/info") for k in doomed):
            raise SystemExit("killed")
        real_delete(doomed)

    storage._delete_keys = dies_removing_the_info  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        storage.upload_commit(upload_id, sha(data))
    storage._delete_keys = real_delete  # type: ignore[method-assign]
    assert storage.upload_stat(upload_id) is not None  # still looks like a session
    clock.advance(3 * 24 * 3600)
    assert [u.id for u in storage.uploads()] == [upload_id]
    assert storage.upload_delete(upload_id)  # what expiry does
    assert storage.sweep_data(3600) == []
    assert read(storage, sha(data)) == data and storage.upload_stat(upload_id) is None

    lost = b"never a blob" * 1000
    other = upload(storage, lost)
    marker = json.dumps({"digest": sha(lost), "at": clock()}).encode()
    storage._put(storage._data_key(other, "commit"), marker)
    storage._delete_keys([storage._upload_key(other, "info")])  # as if killed right after the marker
    assert storage.sweep_data(3600) == []  # within the grace period: a commit may still be under way
    clock.advance(3601)
    assert storage.sweep_data(3600, dry_run=True) == [other]
    assert keys(storage, "data") != [f"{upload_id}/{0:020d}", f"{upload_id}/commit"]
    assert storage.sweep_data(3600) == [other]
    assert keys(storage, "data") == [f"{upload_id}/{0:020d}", f"{upload_id}/commit"]


def test_gc_removes_an_unreferenced_pointer_blob_with_its_piece_and_keeps_a_referenced_one() -> None:
    clock = FakeClock()
    with RegistryServer(storage=s3kit.s3_url("ptrgc"), clock=clock, **PEER) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        storage = srv.storage
        assert isinstance(storage, S3Storage)
        body = image_manifest(c, "gc/r", [b"kept layer" * 1000])
        assert put_manifest(c, "gc/r", "v1", body).status_code == 201
        loose = b"nobody refers to me" * 1000
        r = c.post("/v2/gc/r/blobs/uploads/", params={"digest": sha(loose)}, content=loose)
        assert r.status_code == 201
        assert len(keys(storage, "data")) == 2 * 3  # config, layer, loose: a piece and a marker each
        clock.advance(7200)
        report = collect(storage, grace=3600, now=clock())
        assert report.deleted_blobs == [sha(loose)] and report.swept_data == []
        assert len(keys(storage, "data")) == 2 * 2
        assert c.get(f"/v2/gc/r/blobs/{sha(b'kept layer' * 1000)}").content == b"kept layer" * 1000
        assert c.get(f"/v2/gc/r/blobs/{sha(loose)}").status_code == 404


def test_sessions_and_blobs_of_the_earlier_layout_are_read_and_continued(
        store: tuple[S3Storage, FakeClock]) -> None:
    storage, clock = store
    client = s3kit.client()
    plain = b"a blob written as a plain object"
    client.put_object(Bucket=storage.bucket, Key=storage._blob_key(sha(plain)), Body=plain,
                      Metadata={"mtime": repr(clock())})
    assert read(storage, sha(plain)) == plain and storage.blob_size(sha(plain)) == len(plain)
    assert storage.blob_read(sha(plain)) == plain
    # A session an earlier version began: its info, and 6 MiB in a piece under uploads/<id>/data/.
    upload_id = "0b7e3c59-3d5e-4a43-9c55-0d0a5a3b9a7e"
    head = hashlib.sha256(b"old").digest() * (6 << 15)
    client.put_object(Bucket=storage.bucket, Key=storage._upload_key(upload_id, "info"),
                      Body=json.dumps({"repo": "ptr/r", "started": clock()}).encode())
    client.put_object(Bucket=storage.bucket, Key=storage._upload_key(upload_id, "data", f"{0:020d}"),
                      Body=head)
    info = storage.upload_stat(upload_id)
    assert info is not None and info.size == len(head)
    with storage.upload_append(upload_id) as f:
        f.write(b"and a tail")
    data = head + b"and a tail"
    with storage.upload_read(upload_id) as f:
        assert f.read() == data
    storage.upload_commit(upload_id, sha(data))
    assert read(storage, sha(data)) == data
    assert keys(storage, "uploads") == [] and keys(storage, "data") == []


def test_registry_gc_names_the_left_over_bytes_it_removes() -> None:
    url = s3kit.s3_url("ptrcli")
    storage = storage_at(url, FakeClock())
    orphan = upload(storage, b"lost a race" * 1000)
    storage._put(storage._data_key(orphan, "commit"),
                 json.dumps({"digest": sha(b"lost a race" * 1000), "at": time.time() - 10}).encode())
    storage._delete_keys([storage._upload_key(orphan, "info")])
    kept = upload(storage, b"a blob" * 1000)
    storage.upload_commit(kept, sha(b"a blob" * 1000))
    env = {**os.environ, **s3kit.ENV}
    gc = [sys.executable, "-m", "dockyard", "registry", "gc", "--storage", url, "--grace", "5"]
    dry = subprocess.run([*gc, "--dry-run"], capture_output=True, text=True, timeout=60, env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete the bytes of committed upload {orphan} (no blob names them)" in dry.stdout
    real = subprocess.run(gc, capture_output=True, text=True, timeout=60, env=env)
    assert f"deleted the bytes of committed upload {orphan}" in real.stdout, real.stdout + real.stderr
    assert keys(storage, "data") == [f"{kept}/{0:020d}", f"{kept}/commit"]


def test_removing_a_session_aborts_the_multipart_upload_a_killed_request_left(
        store: tuple[S3Storage, FakeClock]) -> None:
    storage, _ = store
    upload_id = upload(storage, b"first request" * 1000)
    # The next request's piece was being sent as a multipart upload when its process was killed.
    key = storage._data_key(upload_id, f"{13000:020d}")
    started = storage._multipart_start(key)
    storage._multipart_part(key, started, 1, bytearray(b"cut short" * 1000))
    client = s3kit.client()
    pending = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage._data_key(upload_id))
    assert [u["Key"] for u in pending.get("Uploads", [])] == [key]
    assert storage.upload_delete(upload_id)
    pending = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage._data_key(upload_id))
    assert pending.get("Uploads", []) == [] and keys(storage, "data") == []
