"""Helpers for the registry server tests (imported by path: tests are not a package)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import httpx
import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def count_loop_sendfile(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The byte count of each call of the event loop's own sendfile from now on (each still sent)."""
    calls: list[int | None] = []
    real = asyncio.BaseEventLoop.sendfile

    async def counted(self: asyncio.BaseEventLoop, transport: Any, file: Any, offset: int = 0,
                      count: int | None = None, **kwargs: Any) -> int:
        calls.append(count)
        return await real(self, transport, file, offset, count, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "sendfile", counted)
    return calls


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def image_manifest(client: httpx.Client, repo: str, layers: list[bytes], config: bytes = b"{}",
                   media_type: str = OCI_MANIFEST, **extra: Any) -> bytes:
    """Push config and layers; return the manifest bytes (not pushed)."""
    docker = media_type == DOCKER_MANIFEST
    cfg = {"mediaType": "application/vnd.docker.container.image.v1+json" if docker
           else "application/vnd.oci.image.config.v1+json", "digest": push_blob(client, repo, config),
           "size": len(config)}
    layer_type = "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker \
        else "application/vnd.oci.image.layer.v1.tar+gzip"
    descs = [{"mediaType": layer_type, "digest": push_blob(client, repo, data), "size": len(data)}
             for data in layers]
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": cfg, "layers": descs,
                       **extra}).encode()


def put_manifest(client: httpx.Client, repo: str, ref: str, body: bytes,
                 media_type: str = OCI_MANIFEST) -> httpx.Response:
    return client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


def error_code(resp: httpx.Response) -> str:
    return str(resp.json()["errors"][0]["code"])


class FakeClock:
    """A clock the test moves on by hand (``ServerConfig.clock``): TTL tests never sleep."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
