"""Pull-through mirror: serve what an upstream registry has, keeping a copy of every byte fetched.

Blobs and manifests by digest are immutable, so once cached they are served locally forever (until
garbage collection). A tag is looked up upstream again when its cached answer is older than the TTL;
if the upstream cannot be reached, the last known answer is served.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Hasher

from .apierrors import ApiError
from .uploads import write_and_hash

if TYPE_CHECKING:
    from .app import Registry

_ACCEPT = ", ".join([*mt.MANIFEST_ACCEPT, "*/*;q=0.1"])
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


class Upstream:
    """The remote registry a mirror fetches from, with Basic or Bearer-token auth as it asks."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 tag_ttl: float = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url.rstrip("/")
        self.clock = clock  # a tag is looked up again once tag_ttl has passed on this clock
        self.username = username
        self.password = password
        self.tag_ttl = tag_ttl
        self._session: aiohttp.ClientSession | None = None
        self._auth: dict[str, str] = {}  # repository -> Authorization header value
        self._tag_checked: dict[tuple[str, str], float] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                                                sock_read=60))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _authenticate(self, repo: str, challenge: str) -> bool:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_RE.findall(params_text))
        basic = None
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            basic = "Basic " + base64.b64encode(raw).decode()
        if scheme.lower() == "basic":
            if basic is None:
                return False
            self._auth[repo] = basic
            return True
        if scheme.lower() != "bearer" or "realm" not in params:
            return False
        query = {"service": params.get("service", ""), "scope": f"repository:{repo}:pull"}
        headers = {"Authorization": basic} if basic else {}
        async with self._client().get(params["realm"], params=query, headers=headers) as resp:
            if resp.status != 200:
                return False
            body = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._auth[repo] = f"Bearer {token}"
        return True

    async def request(self, method: str, repo: str, path: str,
                      headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """Send a request for ``/v2/<repo>/<path>``, answering one auth challenge if needed."""
        url = f"{self.url}/v2/{repo}/{path}"
        for attempt in range(2):
            sent = dict(headers or {})
            if repo in self._auth:
                sent["Authorization"] = self._auth[repo]
            resp = await self._client().request(method, url, headers=sent)
            if resp.status != 401 or attempt == 1:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            if not await self._authenticate(repo, challenge):
                break
        raise ApiError(401, "UNAUTHORIZED", f"the upstream registry {self.url} refused our credentials")

    # -- manifests -------------------------------------------------------------------------------

    async def _fetch_manifest(self, registry: Registry, name: str, ref: str) -> tuple[str, str] | None:
        resp = await self.request("GET", name, f"manifests/{ref}", {"Accept": _ACCEPT})
        async with resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise ApiError(502, "UNKNOWN", f"upstream {self.url} answered {resp.status} for {name}:{ref}")
            body = await resp.content.read(4 * 1024 * 1024 + 1)
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = await registry.store_manifest(name, ref, body, content_type, verify_blobs=False)
        media_type = await registry.call(registry.storage.manifest_media_type, name, digest) or content_type
        return digest, media_type

    async def manifest(self, registry: Registry, name: str, ref: str) -> tuple[str, str] | None:
        local = await registry.resolve(name, ref)
        media_type = await registry.call(registry.storage.manifest_media_type, name, local) if local else None
        if local and media_type is not None:
            fresh = self.clock() - self._tag_checked.get((name, ref), float("-inf")) < self.tag_ttl
            if ":" in ref or fresh:
                return local, media_type
        try:
            found = await self._fetch_manifest(registry, name, ref)
        except (aiohttp.ClientError, TimeoutError, ApiError):
            if local and media_type is not None:
                return local, media_type  # upstream unreachable: the last known answer is better than none
            raise
        if found is not None and ":" not in ref:
            self._tag_checked[(name, ref)] = self.clock()
        return found

    # -- blobs -----------------------------------------------------------------------------------

    async def serve_blob(self, registry: Registry, request: web.Request, name: str,
                         digest: str) -> web.StreamResponse:
        """Stream a blob from upstream to the client while writing it to the cache."""
        method = "HEAD" if request.method == "HEAD" else "GET"
        upstream = await self.request(method, name, f"blobs/{digest}")
        async with upstream:
            if upstream.status == 404:
                raise ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest})
            if upstream.status != 200:
                raise ApiError(502, "UNKNOWN", f"upstream {self.url} answered {upstream.status} for {digest}")
            headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                       "Docker-Distribution-API-Version": "registry/2.0"}
            resp = web.StreamResponse(headers=headers)
            if upstream.content_length is not None:
                resp.content_length = upstream.content_length
            await resp.prepare(request)
            if method == "HEAD":
                return resp
            storage, io = registry.storage, registry.io
            session = await io.run(storage.upload_create, name)
            hasher = Hasher(digest.partition(":")[0])
            ok = False
            # The last chunk is held back until the bytes are verified and cached: a client never
            # gets a complete blob that fails its digest, and once it has it, so does the cache.
            held = b""
            try:
                f = await io.run(storage.upload_append, session.id)
                try:
                    async for chunk in upstream.content.iter_chunked(1 << 20):
                        await io.run(write_and_hash, f, hasher, chunk)
                        if held:
                            await resp.write(held)
                        held = chunk
                finally:
                    await io.run(f.close)
                ok = hasher.digest() == digest
            finally:
                if ok:
                    await io.run(storage.upload_commit, session.id, digest)
                    await registry.call(storage.link_blob, name, digest)
                else:
                    with contextlib.suppress(OSError):
                        await io.run(storage.upload_delete, session.id)
            if not ok:
                raise ConnectionResetError(f"upstream sent bytes that do not match {digest}")
            await resp.write(held)
            await resp.write_eof()
            return resp

