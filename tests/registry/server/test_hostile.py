"""Hostile input: each gets the spec's error, and the storage directory stays consistent."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import OCI_MANIFEST, error_code, image_manifest, push_blob, put_manifest, sha


def raw_request(server: RegistryServer, request: bytes, close_early: bool = False) -> bytes:
    """Send bytes as they are (no client-side path normalisation); return the response head and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and not close_early:
                break
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def assert_storage_consistent(root: Path, outside: Path) -> None:
    """Every blob file hashes to its name; nothing was written beside the storage directory."""
    for path in (root / "blobs").rglob("*"):
        if path.is_file():
            algorithm = path.parent.parent.name
            assert f"{algorithm}:" + hashlib.new(algorithm, path.read_bytes()).hexdigest() == \
                f"{algorithm}:{path.name}", path
    assert sorted(p.name for p in outside.iterdir()) == ["storage"]


@pytest.mark.parametrize("path", [
    b"/v2/../../etc/blobs/uploads/", b"/v2/a/%2e%2e/%2e%2e/x/blobs/uploads/", b"/v2/A/B/blobs/uploads/",
    b"/v2/a//b/blobs/uploads/", b"/v2/_hidden/blobs/uploads/", b"/v2/a/_layers/blobs/uploads/",
    b"/v2/" + b"a" * 300 + b"/blobs/uploads/",
])
def test_bad_repository_names(server: RegistryServer, tmp_path: Path, path: bytes) -> None:
    raw = raw_request(server, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status_of(raw) in (400, 404), raw[:200]
    assert b"NAME_INVALID" in raw or b"NAME_UNKNOWN" in raw
    assert_storage_consistent(tmp_path / "storage", tmp_path)
    assert not list((tmp_path / "storage" / "uploads").iterdir())


def test_traversal_in_manifest_tag_and_upload_id(server: RegistryServer, client: httpx.Client,
                                                   tmp_path: Path) -> None:
    body = image_manifest(client, "t/r", [])
    raw = raw_request(server, b"PUT /v2/t/r/manifests/..%2f..%2f..%2fescape HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: " + OCI_MANIFEST.encode() + b"\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert status_of(raw) in (400, 404), raw[:300]
    for upload_id in ("..%2F..%2Fblobs", "..", "not-a-uuid", "%2e%2e"):
        r = client.patch(f"/v2/t/r/blobs/uploads/{upload_id}", content=b"x")
        assert r.status_code == 404 and error_code(r) in ("BLOB_UPLOAD_UNKNOWN", "NAME_UNKNOWN"), upload_id
    assert_storage_consistent(tmp_path / "storage", tmp_path)


def test_unknown_digest_algorithms(client: httpx.Client) -> None:
    for digest in ("md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:xyz", "sha256:" + "A" * 64, "nocolon"):
        r = client.get(f"/v2/h/r/blobs/{digest}")
        assert r.status_code in (400, 404), digest
        if r.status_code == 400:
            assert error_code(r) == "DIGEST_INVALID"
    loc = client.post("/v2/h/r/blobs/uploads/").headers["Location"]
    r = client.put(loc, params={"digest": "md5:d41d8cd98f00b204e9800998ecf8427e"}, content=b"")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = client.get("/v2/h/r/manifests/sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_oversized_and_malformed_manifests(client: httpx.Client, tmp_path: Path) -> None:
    big = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "pad": "x" * (4 * 1024 * 1024)}).encode()
    r = put_manifest(client, "h/m", "big", big)
    assert r.status_code == 413 and error_code(r) == "MANIFEST_INVALID"

    def chunks() -> object:
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    r = client.put("/v2/h/m/manifests/big2", content=chunks(),  # type: ignore[arg-type]
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413
    for bad in (b"{not json", b"[1, 2]", b'{"schemaVersion": 1}', b"\xff\xfe",
                json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}}).encode()):
        r = put_manifest(client, "h/m", "bad", bad)
        assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID", bad
    assert client.get("/v2/h/m/tags/list").status_code == 404
    assert_storage_consistent(tmp_path / "storage", tmp_path)


def test_bad_range_headers(client: httpx.Client) -> None:
    data = b"0123456789"
    digest = push_blob(client, "h/range", data)
    url = f"/v2/h/range/blobs/{digest}"
    assert client.get(url, headers={"Range": "bytes=5-2"}).status_code == 416
    assert client.get(url, headers={"Range": "bytes=100-200"}).status_code == 416
    assert client.get(url, headers={"Range": "bytes=abc"}).status_code == 416
    assert client.get(url, headers={"Range": "bytes=-3"}).content == b"789"
    # Upload chunks with nonsense ranges are refused and change nothing.
    loc = client.post("/v2/h/range/blobs/uploads/").headers["Location"]
    for bad in ("abc", "5-2", "-1-3", "0-99999999999999999999999"):
        r = client.patch(loc, content=b"x", headers={"Content-Range": bad})
        assert r.status_code in (400, 416), bad
    assert client.get(loc).headers["Range"] == "0-0"


def test_uploads_that_lie_about_their_size(server: RegistryServer, client: httpx.Client,
                                           tmp_path: Path) -> None:
    loc = client.post("/v2/h/lie/blobs/uploads/").headers["Location"]
    client.patch(loc, content=b"A" * 10, headers={"Content-Range": "0-9"})
    # The range promises 100 bytes; the body has 50.
    r = client.patch(loc, content=b"B" * 50, headers={"Content-Range": "10-109"})
    assert r.status_code == 400 and error_code(r) == "SIZE_INVALID"
    assert client.get(loc).headers["Range"] == "0-9"
    # Content-Length promises 1000 bytes, the client sends 300 and hangs up.
    raw = raw_request(server, f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                      + b"C" * 300, close_early=True)
    assert raw == b"" or status_of(raw) >= 400
    # The server learns of the hang-up on its own time (a loaded machine shows the bytes still being
    # received for a moment); then the partial chunk is cut back, never kept.
    for _ in range(400):
        if client.get(loc).headers["Range"] == "0-9":
            break
        time.sleep(0.025)
    assert client.get(loc).headers["Range"] == "0-9"
    # The digest says one thing, the bytes another.
    r = client.put(loc, params={"digest": sha(b"A" * 10 + b"D" * 5)}, content=b"E" * 5)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    # A monolithic upload whose digest names more bytes than arrived.
    r = client.post("/v2/h/lie/blobs/uploads/", params={"digest": sha(b"F" * 100)}, content=b"F" * 99)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/h/lie/blobs/{sha(b'F' * 100)}").status_code == 404
    assert_storage_consistent(tmp_path / "storage", tmp_path)
    # Nothing half-written stays behind: no sessions, no staging files.
    assert os.listdir(tmp_path / "storage" / "uploads") == []
    assert os.listdir(tmp_path / "storage" / "tmp") == []


def test_concurrent_patches_on_one_session_never_make_a_corrupt_blob(server: RegistryServer,
                                                                      tmp_path: Path) -> None:
    import asyncio

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            loc = (await c.post("/v2/h/race/blobs/uploads/")).headers["Location"]
            parts = [bytes([65 + i]) * 300_000 for i in range(6)]
            results = await asyncio.gather(*(c.patch(loc, content=p) for p in parts))
            assert all(r.status_code == 202 for r in results)
            size = int((await c.get(loc)).headers["Range"].split("-")[1]) + 1
            assert size == sum(len(p) for p in parts)
            # Whatever order the chunks landed in, only the digest of the bytes really stored commits.
            wrong = await c.put(loc, params={"digest": sha(b"".join(parts))})
            right_order = wrong.status_code == 201
            if not right_order:
                assert error_code(wrong) == "DIGEST_INVALID"

    asyncio.run(main())
    assert_storage_consistent(tmp_path / "storage", tmp_path)


def test_deeply_nested_manifest_is_manifest_invalid(client: httpx.Client, tmp_path: Path) -> None:
    for body in (b"[" * 200_000, b'{"a":' * 100_000):
        r = put_manifest(client, "h/deep", "v1", body)
        assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID", r.text[:200]
    assert_storage_consistent(tmp_path / "storage", tmp_path)


@pytest.mark.parametrize("size", [-1, 2**63, 2**64, True])
def test_descriptor_sizes_outside_int64_are_refused(client: httpx.Client, size: object) -> None:
    manifest = json.loads(image_manifest(client, "h/size", [b"layer"]))
    manifest["layers"][0]["size"] = size
    r = put_manifest(client, "h/size", "v1", json.dumps(manifest).encode())
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID", r.text
    manifest["layers"][0]["size"] = 2**63 - 1  # the largest int64 is a valid size
    assert put_manifest(client, "h/size", "v1", json.dumps(manifest).encode()).status_code == 201


def test_zero_length_suffix_range_is_unsatisfiable(client: httpx.Client) -> None:
    digest = push_blob(client, "h/range", b"0123456789")
    for value in ("bytes=-0", "bytes=-000"):
        r = client.get(f"/v2/h/range/blobs/{digest}", headers={"Range": value})
        assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10", value
    assert client.get(f"/v2/h/range/blobs/{digest}", headers={"Range": "bytes=-1"}).content == b"9"


@pytest.mark.parametrize("digest", ["sha256:" + "0" * 64, "sha256:zz", "sha512:" + "0" * 128, "md5:00"])
def test_one_shot_upload_with_a_wrong_digest_leaves_no_session(client: httpx.Client, tmp_path: Path,
                                                              digest: str) -> None:
    r = client.post("/v2/h/once/blobs/uploads/", params={"digest": digest}, content=b"abc")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert os.listdir(tmp_path / "storage" / "uploads") == []


def test_one_session_spelled_two_ways_takes_one_lock(server: RegistryServer, client: httpx.Client) -> None:
    """A PATCH on <ID> waits for the PATCH on <id> still receiving its body; never interleaves."""
    import threading

    loc = client.post("/v2/h/case/blobs/uploads/").headers["Location"]
    upload_id = loc.rsplit("/", 1)[1]
    upper = loc[: -len(upload_id)] + upload_id.upper()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\naaaaa".encode())
        with httpx.Client(base_url=server.url, timeout=30) as poll:
            for _ in range(400):  # until the first half is on disk (the handler holds the lock)
                if poll.get(loc).headers["Range"] == "0-4":
                    break
                threading.Event().wait(0.025)
            else:
                pytest.fail("the first half of the body never arrived")
        second: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: second.append(client.patch(upper, content=b"bbbbb")))
        thread.start()
        thread.join(1.0)  # give it the chance to interleave; with one lock it cannot finish yet
        sock.sendall(b"aaaaa")
        assert sock.recv(4096).startswith(b"HTTP/1.1 202")
        thread.join(30)
    assert second and second[0].status_code == 202, second
    r = client.put(loc, params={"digest": sha(b"a" * 10 + b"b" * 5)})
    assert r.status_code == 201, r.text
