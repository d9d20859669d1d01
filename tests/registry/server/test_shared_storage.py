"""Two registry instances on one storage directory: no state lives only in a process."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import image_manifest, put_manifest, sha


def test_two_servers_share_one_storage(tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "s") as a, RegistryServer(storage=tmp_path / "s") as b, \
            httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
        body = image_manifest(ca, "shared/r", [b"layer via a"])
        assert put_manifest(ca, "shared/r", "v1", body).status_code == 201
        assert cb.get("/v2/shared/r/manifests/v1").content == body
        assert cb.get(f"/v2/shared/r/blobs/{sha(b'layer via a')}").content == b"layer via a"
        # An upload started on one instance is continued and closed on the other.
        data = b"0123456789" * 1000
        loc = ca.post("/v2/shared/r/blobs/uploads/").headers["Location"]
        loc = ca.patch(loc, content=data[:4000], headers={"Content-Range": "0-3999"}).headers["Location"]
        loc = cb.patch(loc, content=data[4000:7000],
                       headers={"Content-Range": "4000-6999"}).headers["Location"]
        # Back on the first instance: its cached hash is stale (the file changed), so it re-hashes.
        loc = ca.patch(loc, content=data[7000:], headers={"Content-Range": "7000-9999"}).headers["Location"]
        r = ca.put(loc, params={"digest": sha(data)})
        assert r.status_code == 201, r.text
        assert cb.get(f"/v2/shared/r/blobs/{sha(data)}").content == data
        assert cb.get("/v2/_catalog").json() == {"repositories": ["shared/r"]}
