"""Helpers for the team-registry tests: a registry with ``team=True`` and token-authenticated clients."""

from __future__ import annotations

import json
from typing import Any

import httpx

from dockyard.registry.server import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PASSWORDS = {"root": "root-pass-1", "ann": "ann-pass-12", "dev": "dev-pass-12", "gus": "gus-pass-12",
             "out": "out-pass-12"}


def seed(server: RegistryServer) -> None:
    """Users root (admin); ann (maintainer), dev (developer), gus (guest) of project ``team``; out."""
    assert server.team is not None
    d = server.team.directory
    d.rounds = 4  # fast hashes for tests
    d.user_add("root", PASSWORDS["root"], admin=True)
    for user in ("ann", "dev", "gus", "out"):
        d.user_add(user, PASSWORDS[user])
    d.project_create("team")
    d.member_add("team", "ann", "maintainer")
    d.member_add("team", "dev", "developer")
    d.member_add("team", "gus", "guest")


def token(server: RegistryServer, scope: str, user: str | None = None, password: str | None = None) -> str:
    auth = (user, password if password is not None else PASSWORDS[user]) if user else None
    r = httpx.get(f"{server.url}/token", params={"service": "dockyard-registry", "scope": scope}, auth=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def granted(server: RegistryServer, repo: str, user: str | None, password: str | None = None) -> set[str]:
    """The actions the token service grants on ``repo`` when asked for all of them."""
    import jwt

    tok = token(server, f"repository:{repo}:pull,push,delete", user, password)
    claims = jwt.decode(tok, options={"verify_signature": False})
    return {a for item in claims["access"] for a in item["actions"]}


def client(server: RegistryServer, repo: str, user: str | None, actions: str = "pull,push,delete",
           password: str | None = None) -> httpx.Client:
    tok = token(server, f"repository:{repo}:{actions}", user, password)
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {tok}"})


def push_image(c: httpx.Client, repo: str, tag: str, layers: list[bytes], config: bytes = b"{}",
               **extra: Any) -> httpx.Response:
    """Push blobs (monolithic, with Content-Length) and the manifest; returns the manifest PUT's answer."""
    import hashlib

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201, r.text
        return {"digest": digest, "size": len(data)}

    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(data)}
                           for data in layers], **extra}
    return c.put(f"/v2/{repo}/manifests/{tag}", content=json.dumps(manifest).encode(),
                 headers={"Content-Type": OCI_MANIFEST})
