"""Upload sessions are hashed as their bytes arrive: finishing one does not read it back."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import image_manifest, put_manifest, sha


def count_reads(server: RegistryServer) -> list[str]:
    """Record every upload read-back the server does from now on."""
    reads: list[str] = []
    original: Callable[[str], BinaryIO] = server.storage.upload_read

    def counting(upload_id: str) -> BinaryIO:
        reads.append(upload_id)
        return original(upload_id)

    storage: Any = server.storage
    storage.upload_read = counting
    return reads


def patch_all(c: httpx.Client, loc: str, parts: list[bytes], offset: int = 0) -> str:
    for part in parts:
        r = c.patch(loc, content=part, headers={"Content-Range": f"{offset}-{offset + len(part) - 1}"})
        assert r.status_code == 202, r.text
        loc, offset = r.headers["Location"], offset + len(part)
    return loc


def test_patch_by_patch_upload_is_not_read_back(tmp_path: Path) -> None:
    parts = [bytes([65 + i]) * (300_000 + i) for i in range(5)]
    with RegistryServer(storage=tmp_path / "s") as srv, httpx.Client(base_url=srv.url) as c:
        reads = count_reads(srv)
        loc = patch_all(c, c.post("/v2/u/r/blobs/uploads/").headers["Location"], parts[:4])
        r = c.put(loc, params={"digest": sha(b"".join(parts))}, content=parts[4],
                  headers={"Content-Range": f"{sum(map(len, parts[:4]))}-{sum(map(len, parts)) - 1}"})
        assert r.status_code == 201, r.text
        one_shot = c.post("/v2/u/r/blobs/uploads/", params={"digest": sha(b"once")}, content=b"once")
        assert one_shot.status_code == 201
        assert reads == []
        assert c.get(f"/v2/u/r/blobs/{sha(b''.join(parts))}").content == b"".join(parts)


def test_after_a_restart_the_session_is_hashed_from_disk_once(tmp_path: Path) -> None:
    parts = [b"x" * 200_000, b"y" * 100_000, b"z" * 50_000]
    with RegistryServer(storage=tmp_path / "s") as first, httpx.Client(base_url=first.url) as c:
        loc = patch_all(c, c.post("/v2/u/r/blobs/uploads/").headers["Location"], parts[:1])
    with RegistryServer(storage=tmp_path / "s") as second, httpx.Client(base_url=second.url) as c:
        reads = count_reads(second)
        loc = patch_all(c, loc, parts[1:], offset=len(parts[0]))
        assert len(reads) == 1  # the bytes the first process received, once; later ones incrementally
        r = c.put(loc, params={"digest": sha(b"".join(parts))})
        assert r.status_code == 201, r.text
        assert len(reads) == 1


def test_a_session_changed_by_another_writer_is_hashed_from_disk(tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "s") as srv, httpx.Client(base_url=srv.url) as c:
        loc = patch_all(c, c.post("/v2/u/r/blobs/uploads/").headers["Location"], [b"a" * 1000])
        # Another registry process sharing the storage appends to the same session.
        with srv.storage.upload_append(loc.rsplit("/", 1)[1]) as f:
            f.write(b"b" * 10)
        r = c.put(loc, params={"digest": sha(b"a" * 1000 + b"b" * 10)})
        assert r.status_code == 201, r.text


class SlowDisk:
    """A session file whose every write blocks for ``stall`` seconds, as on a congested disk."""

    def __init__(self, f: BinaryIO, stall: float) -> None:
        self.f, self.stall = f, stall

    def write(self, data: bytes) -> int:
        threading.Event().wait(self.stall)
        return self.f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> SlowDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


@pytest.mark.slow
def test_a_blocking_disk_write_does_not_block_other_requests(tmp_path: Path) -> None:
    stall = 1.5
    parts = [b"A" * (128 << 10), b"B" * (128 << 10)]
    with RegistryServer(storage=tmp_path / "s") as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        put_manifest(c, "u/app", "v1", image_manifest(c, "u/app", [b"layer"]))
        storage: Any = srv.storage
        append = storage.upload_append
        storage.upload_append = lambda upload_id: SlowDisk(append(upload_id), stall)
        done = threading.Event()

        def upload() -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as up:
                r = up.post("/v2/u/app/blobs/uploads/", params={"digest": sha(b"".join(parts))},
                            content=iter(parts))
                assert r.status_code == 201, r.text
            done.set()

        thread = threading.Thread(target=upload)
        thread.start()
        latencies = []
        while not done.is_set() and thread.is_alive():
            began = time.perf_counter()
            assert c.get("/v2/u/app/manifests/v1").status_code == 200
            latencies.append(time.perf_counter() - began)
        thread.join(60)
    assert done.is_set() and len(latencies) >= 3
    # With the write on the event loop, every GET waits out a stall.
    assert max(latencies) < stall / 2, (len(latencies), max(latencies))
