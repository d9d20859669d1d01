"""The HTTP API of the OCI distribution spec 1.1, as an aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, BinaryIO, ParamSpec, TypeVar

from aiohttp import web

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Hasher, InvalidDigest, validate
from dockyard.record import record

from .apierrors import ApiError
from .auth import Access, Authorizer, basic_credentials
from .blobcache import BlobCache
from .hooks import Actor, Hooks
from .iopool import IoPool
from .relay import Relay
from .sender import Sender
from .sharedfetch import SharedFetch
from .sharedrelay import SharedRelay
from .storage import Storage, UploadInfo, canonical_upload_id
from .uploads import Uploads

log = logging.getLogger("dockyard.registry")

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_DESCRIPTOR_SIZE = 2**63 - 1  # descriptor sizes are int64 in the OCI image spec
_ZERO_SUFFIX_RANGE = re.compile(r"\s*bytes\s*=\s*-0+\s*")
# Headers FileResponse answers (206, 304, 412): a GET with none of them is a whole blob, sent by ``sender``.
_CONDITIONAL = ("Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_ROUTES = [
    ("uploads", re.compile(r"(?P<name>.+)/blobs/uploads/?")),
    ("upload", re.compile(r"(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)")),
    ("blob", re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)")),
    ("manifest", re.compile(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)")),
    ("tags", re.compile(r"(?P<name>.+)/tags/list")),
    ("referrers", re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)")),
]
_KNOWN_MANIFESTS = mt.MANIFESTS | mt.INDEXES
API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


@record
class Settings:
    """Request-handling switches (``ServerConfig`` in ``server.py`` documents each)."""

    delete_enabled: bool = True
    read_only: bool = False
    auto_mount: bool = True
    cross_mount: bool = True
    redirect: bool = False


def check_name(name: str) -> str:
    if len(name) > 255 or not NAME_RE.fullmatch(name):
        raise ApiError(400, "NAME_INVALID", detail={"name": name[:300]})
    return name


def check_digest(value: str, code: str = "DIGEST_INVALID") -> str:
    try:
        validate(value)
    except InvalidDigest as exc:
        raise ApiError(400, code, f"invalid digest {value[:200]!r}: {exc}") from exc
    return value


def _range_header(size: int) -> str:
    # The spec's (and distribution's) upload Range is "0-<last byte>", without a "bytes=" prefix.
    return f"0-{max(size - 1, 0)}"


def _parse_content_range(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d+|\*))?", value.strip())
    if not m:
        raise ApiError(416, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {value[:100]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise ApiError(416, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {value[:100]!r}")
    return start, end


def _descriptor_of(manifest: dict[str, Any], digest: str, size: int, media_type: str) -> dict[str, Any]:
    """The descriptor the referrers API lists for a manifest that has a subject."""
    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    artifact_type = manifest.get("artifactType")
    if not artifact_type and media_type in mt.MANIFESTS:
        artifact_type = (manifest.get("config") or {}).get("mediaType")
    if artifact_type:
        desc["artifactType"] = artifact_type
    if manifest.get("annotations"):
        desc["annotations"] = manifest["annotations"]
    return desc


class Registry:
    """Request handling over a ``Storage``; ``make_app`` wires it into aiohttp."""

    def __init__(self, storage: Storage, settings: Settings | None = None,
                 authorizer: Authorizer | None = None, upstream: Any = None, io_workers: int = 8,
                 hooks: Hooks | None = None, blob_cache: BlobCache | None = None) -> None:
        self.storage = storage
        self.blob_cache = blob_cache  # an object store's blobs kept on this replica's disk
        # The bucket's key for asking other replicas' caches (``peer_token``); None: never asked.
        self.peer_key: bytes | None = None
        self.hooks = hooks or Hooks()
        self.settings = settings or Settings()
        self.auth = authorizer or Authorizer()
        self.upstream = upstream  # a proxy.Upstream when serving as a pull-through mirror
        self.io = IoPool(io_workers)  # file I/O runs here, never on the event loop
        # Local files answer in microseconds: called inline. An object store's round trips go to the pool.
        self._inline = not getattr(storage, "remote", False)
        self.uploads = Uploads(storage, self.io, self.call, blob_cache)
        self.relay = Relay()  # blob bytes from an object store
        self.sender = Sender()  # blob bytes from local files
        self._fetches: dict[str, SharedFetch] = {}  # digest -> the blob cache fill GETs follow
        self._relays: dict[str, SharedRelay] = {}  # digest -> a first pull from a peer GETs follow
        # digest -> done when the GET asking the cache for a fill has its answer: others wait for it
        # rather than each asking (the worker's answers may come back in either order).
        self._claims: dict[str, asyncio.Future[None]] = {}
        self.inflight = 0  # requests being handled; graceful shutdown waits for 0
        self._dispatch: dict[tuple[str, str], Handler] = {
            ("uploads", "POST"): self.upload_start,
            ("upload", "PATCH"): self.upload_patch,
            ("upload", "PUT"): self.upload_finish,
            ("upload", "GET"): self.upload_status,
            ("upload", "DELETE"): self.upload_cancel,
            ("blob", "GET"): self.blob_get,
            ("blob", "HEAD"): self.blob_get,
            ("blob", "DELETE"): self.blob_delete,
            ("manifest", "GET"): self.manifest_get,
            ("manifest", "HEAD"): self.manifest_get,
            ("manifest", "PUT"): self.manifest_put,
            ("manifest", "DELETE"): self.manifest_delete,
            ("tags", "GET"): self.tags_list,
            ("referrers", "GET"): self.referrers_list,
        }

    # -- plumbing --------------------------------------------------------------------------------

    async def _all(self, calls: list[Awaitable[T]]) -> list[T]:
        """Storage calls at once against an object store (each is a round trip); in order on local disk."""
        if self._inline:
            return [await c for c in calls]
        return list(await asyncio.gather(*calls))

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A storage call: inline for a local driver, on the worker pool for a remote one."""
        if self._inline:
            return fn(*args, **kwargs)
        return await self.io.run(fn, *args, **kwargs)

    def authorize(self, request: web.Request, needed: list[Access]) -> str | None:
        base_url = f"{request.scheme}://{request.host}"
        return self.auth.check(request.headers.get("Authorization", ""), needed, base_url)

    async def route(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        if tail == "":
            self.authorize(request, [])
            return web.json_response({}, headers=API_HEADER)
        if tail == "_catalog":
            if request.method != "GET":
                raise ApiError(405, "UNSUPPORTED", f"{request.method} is not allowed on the catalog")
            return await self.catalog(request)
        for kind, pattern in _ROUTES:
            m = pattern.fullmatch(tail)
            if m is None:
                continue
            params = m.groupdict()
            check_name(params["name"])
            if kind == "upload":
                # One spelling per session before any lock or cache is looked up by it.
                upload_id = canonical_upload_id(params["id"])
                if upload_id is None:
                    raise ApiError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": params["id"][:100]})
                params["id"] = upload_id
            handler = self._dispatch.get((kind, request.method))
            if handler is None:
                raise ApiError(405, "UNSUPPORTED", f"{request.method} is not allowed on {kind} URLs")
            return await handler(request, params)
        raise ApiError(404, "NAME_UNKNOWN" if "/" in tail else "UNSUPPORTED",
                       f"no route for /v2/{tail[:200]}")

    def _need(self, request: web.Request, name: str, action: str) -> Actor:
        account = self.authorize(request, [Access("repository", name, frozenset({action}))])
        return Actor(account, request.remote or "")

    def _writable(self) -> None:
        if self.settings.read_only or self.upstream is not None:
            raise ApiError(405, "UNSUPPORTED", "this registry is read-only (a mirror or in read-only mode)")

    # -- catalog, tags, referrers ----------------------------------------------------------------

    @staticmethod
    def _page(request: web.Request, items: list[str], url: str) -> tuple[list[str], dict[str, str]]:
        last = request.query.get("last", "")
        n_text = request.query.get("n")
        if last:
            items = [item for item in items if item > last]
        headers: dict[str, str] = {}
        if n_text is not None:
            if not n_text.isdigit() or len(n_text) > 9:
                raise ApiError(400, "PAGINATION_NUMBER_INVALID", detail={"n": n_text[:50]})
            n = int(n_text)
            if len(items) > n:
                items = items[:n]
                if items:
                    headers["Link"] = f'<{url}?n={n}&last={items[-1]}>; rel="next"'
        return items, headers

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request, [Access("registry", "catalog", frozenset({"*"}))])
        repos, headers = self._page(request, await self.call(self.storage.repositories), "/v2/_catalog")
        return web.json_response({"repositories": repos}, headers={**API_HEADER, **headers})

    async def tags_list(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name = p["name"]
        self._need(request, name, "pull")
        if not await self.call(self.storage.repo_exists, name):
            raise ApiError(404, "NAME_UNKNOWN", detail={"name": name})
        tags = sorted(await self.call(self.storage.tags, name))
        tags, headers = self._page(request, tags, f"/v2/{name}/tags/list")
        return web.json_response({"name": name, "tags": tags}, headers={**API_HEADER, **headers})

    async def referrers_list(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name = p["name"]
        self._need(request, name, "pull")
        subject = check_digest(p["digest"])
        manifests = await self.call(self.storage.referrers, name, subject)
        headers = dict(API_HEADER)
        wanted = request.query.get("artifactType")
        if wanted:
            manifests = [m for m in manifests if m.get("artifactType") == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
        return web.Response(body=json.dumps(body).encode(), content_type=mt.OCI_INDEX, headers=headers)

    # -- blobs -----------------------------------------------------------------------------------

    async def blob_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name = p["name"]
        self._need(request, name, "pull")
        digest = check_digest(p["digest"])
        if not self._inline:
            return await self._remote_blob_get(request, name, digest)
        info = self.storage.blob_stat(digest) if self.storage.is_linked(name, digest) else None
        if info is None and self.upstream is not None:
            response: web.StreamResponse = await self.upstream.serve_blob(self, request, name, digest)
            return response
        if info is None:
            raise ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest})
        headers = self._blob_headers(request, digest, info.size)
        whole = request.method == "GET" and not any(h in request.headers for h in _CONDITIONAL)
        if info.path is not None and whole:
            # A whole blob, as clients pull layers: sent on a thread of its own (``sender``).
            try:
                f = await self.io.run(open, info.path, "rb")
            except FileNotFoundError:
                raise ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest}) from None
            headers["Last-Modified"] = formatdate(os.fstat(f.fileno()).st_mtime, usegmt=True)
            return await self._send_file(request, f, info.size, headers)
        if info.path is not None:
            # FileResponse uses sendfile(2) and implements Range (206) and unsatisfiable ranges (416),
            # and conditional requests.
            return web.FileResponse(info.path, chunk_size=1 << 20, headers=headers)
        return await self._stream_blob(request, digest, info.size, headers)

    @staticmethod
    def _blob_headers(request: web.Request, digest: str, size: int) -> dict[str, str]:
        if _ZERO_SUFFIX_RANGE.fullmatch(request.headers.get("Range", "")):
            # "The last 0 bytes" selects nothing, so the range is unsatisfiable (RFC 9110); aiohttp would
            # answer with the whole blob.
            raise ApiError(416, "RANGE_INVALID", "range not satisfiable",
                           headers={"Content-Range": f"bytes */{size}"})
        return {**API_HEADER, "Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
                "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000",
                "Content-Type": "application/octet-stream"}

    async def _remote_blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """A blob in an object store: link and size asked in the bucket, bytes relayed, redirected or
        (with a blob cache) read from this replica's disk."""
        url: str | None = None
        locate = getattr(self.storage, "linked_blob_url", None)
        fresh = getattr(self.storage, "linked_blob_size", None)
        origin: str | None = None  # the replica that committed the blob, if it said where to ask it
        if locate is not None:  # asked now, not remembered: a delete through any replica is seen at once
            found = await self.call(locate, name, digest)  # the URL names a pointer's piece
            linked = found is not None
            size, url, origin = found if found is not None else (None, None, None)
        elif fresh is not None:
            size = await self.call(fresh, name, digest)
            linked = size is not None
        else:
            linked, size = await asyncio.gather(self.call(self.storage.is_linked, name, digest),
                                                self.call(self.storage.blob_size, digest))
        if not linked or size is None:
            if self.upstream is not None:
                response: web.StreamResponse = await self.upstream.serve_blob(self, request, name, digest)
                return response
            raise ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest})
        headers = self._blob_headers(request, digest, size)
        blob_url = getattr(self.storage, "blob_url", None)
        if request.method == "HEAD" or blob_url is None:
            return await self._stream_blob(request, digest, size, headers)
        if url is None:
            url = blob_url(digest)  # signing is local: no round trip
        if self.settings.redirect:
            # As distribution's "redirect": the client fetches the bytes from the object store itself.
            return web.Response(status=307, headers={**API_HEADER, "Location": url,
                                                     "Docker-Content-Digest": digest})
        cache = self.blob_cache
        if cache is None or "Range" in request.headers:  # ranges: the store answers them
            return await self.relay.serve(request, url, headers)
        f = await self.io.run(cache.open, digest, size)
        if f is not None:
            return await self._send_file(request, f, size, headers)
        peer = self._peer(origin, digest)
        if peer is not None and digest not in self._fetches:
            # Another replica received it: its first pull through this one is relayed from there and
            # kept only if it is pulled again (``sharedrelay``).
            relayed = self._relays.get(digest)
            if relayed is None and cache.first_pull(digest):
                relayed = self._relays[digest] = SharedRelay(
                    size, url, peer, self.relay, lambda: self._relays.pop(digest, None))
            if relayed is not None and relayed.joinable:
                streamed = await relayed.serve(request, headers)
                if streamed is not None:
                    return streamed
        shared = self._fetches.get(digest)
        claim = self._claims.get(digest)
        if shared is None and claim is not None:
            await asyncio.shield(claim)  # another GET is asking for the fill: follow its fetch
            shared = self._fetches.get(digest)
            if shared is None:
                f = await self.io.run(cache.open, digest, size)  # its fetch may be over already
                if f is not None:
                    return await self._send_file(request, f, size, headers)
        elif shared is None:
            claim = self._claims[digest] = asyncio.get_running_loop().create_future()
            try:
                fill = await self.io.run(cache.fill, digest, size)
                if fill is not None:  # else here already, too large to keep, or no room: served below
                    shared = self._fetches[digest] = SharedFetch(
                        fill, url, self.relay, self.io, lambda: self._forget_fetch(digest),
                        peer)
            finally:
                del self._claims[digest]
                claim.set_result(None)
        if shared is not None:
            followed = await shared.serve(request, headers, size)
            if followed is not None:
                return followed
            f = await self.io.run(cache.open, digest, size)  # published since
            if f is not None:
                return await self._send_file(request, f, size, headers)
        return await self.relay.serve(request, url, headers)

    def _peer(self, origin: str | None, digest: str) -> tuple[str, dict[str, str]] | None:
        """(URL, headers) to ask the replica that committed a blob for its cache entry, or None (it
        did not say where, it is this one, or this one does not ask peers)."""
        cache = self.blob_cache
        if origin is None or self.peer_key is None or cache is None or origin == cache.peer_url:
            return None
        token = peer_token(self.peer_key, digest)
        return f"{origin}/_dockyard/peer/blobs/{digest}", {"X-Dockyard-Peer": token}

    async def peer_blob(self, request: web.Request) -> web.StreamResponse:
        """Another replica asks for a blob in this one's cache (signed with the bucket's peer key: only
        replicas on the bucket can ask). The bytes only, with no registry check: the asking replica
        checked the blob's link in the bucket, and verifies the bytes' digest."""
        digest = request.match_info["digest"]
        cache = self.blob_cache
        given = request.headers.get("X-Dockyard-Peer", "")
        if cache is None or self.peer_key is None or \
                not hmac.compare_digest(given.encode(), peer_token(self.peer_key, digest).encode()):
            raise web.HTTPNotFound()
        f = await self.io.run(cache.open, digest)
        if f is None:
            raise web.HTTPNotFound()
        size = os.fstat(f.fileno()).st_size
        return await self._send_file(request, f, size, {"Content-Type": "application/octet-stream"})

    def _forget_fetch(self, digest: str) -> None:
        self._fetches.pop(digest, None)

    async def _send_file(self, request: web.Request, f: BinaryIO, size: int,
                         headers: dict[str, str]) -> web.StreamResponse:
        """A whole blob from an open local file, with sendfile(2) on a thread of its own (``sender``)."""
        try:
            resp = web.StreamResponse(headers=headers)
            resp.content_length = size
            await resp.prepare(request)
            if request.transport is None:
                raise ConnectionResetError("client went away")
            await self.sender.send(request.transport, f, 0, size)
            await resp.write_eof()
            return resp
        finally:
            f.close()

    async def _stream_blob(self, request: web.Request, digest: str, size: int,
                           headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        if request.method == "GET":
            f = await self.io.run(self.storage.blob_open, digest)
            try:
                while chunk := await self.io.run(f.read, 1 << 20):
                    await resp.write(chunk)
            finally:
                await self.io.run(f.close)
        return resp

    async def blob_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name = p["name"]
        self._need(request, name, "delete")
        self._writable()
        digest = check_digest(p["digest"])
        if not self.settings.delete_enabled:
            raise ApiError(405, "UNSUPPORTED", "deletion is disabled on this registry")
        if not await self.call(self.storage.unlink_blob, name, digest):
            raise ApiError(404, "BLOB_UNKNOWN", detail={"digest": digest})
        # The bytes stay until garbage collection finds nothing else needs them.
        return web.Response(status=202, headers={**API_HEADER, "Docker-Content-Digest": digest})

    # -- uploads ---------------------------------------------------------------------------------

    def _upload_headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
        return {**API_HEADER, "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
                "Range": _range_header(size), "Docker-Upload-UUID": upload_id}

    def _blob_created(self, name: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={
            **API_HEADER, "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})

    async def upload_start(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name = p["name"]
        actor = self._need(request, name, "push")
        self._writable()
        await self.hooks.upload(actor, name, request.content_length)
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source and self.settings.cross_mount:
            check_digest(mount)
            if NAME_RE.fullmatch(source) and self._may_pull(request, source) \
                    and await self.call(self.storage.is_linked, source, mount) \
                    and await self.call(self.storage.blob_size, mount) is not None:
                await self.call(self.storage.link_blob, name, mount)
                await self.call(self.storage.blob_touch, mount)
                return self._blob_created(name, mount)
            # Not mountable: fall back to an ordinary session, as the spec asks (202).
        elif mount and self.settings.auto_mount and self.settings.cross_mount and not self.auth.enabled:
            # Without "from", mount any blob the registry has: only when every repository is readable
            # by everyone anyway, so this cannot leak content across access boundaries.
            check_digest(mount)
            if await self.call(self.storage.blob_size, mount) is not None:
                await self.call(self.storage.link_blob, name, mount)
                await self.call(self.storage.blob_touch, mount)
                return self._blob_created(name, mount)
        digest = request.query.get("digest")
        if digest is not None:
            check_digest(digest)  # before the session exists: a refused digest leaves nothing behind
        info = await self.call(self.storage.upload_create, name)
        if digest is not None:
            try:
                size = await self.uploads.receive(request, info.id, 0, None, info)
                return await self._commit(actor, name, info.id, digest, size)
            except BaseException:
                await self.uploads.drop(info.id)
                raise
        return web.Response(status=202, headers={**self._upload_headers(name, info.id, 0),
                                                 "Content-Length": "0"})

    def _may_pull(self, request: web.Request, repo: str) -> bool:
        try:
            self._need(request, repo, "pull")
        except ApiError:
            return False
        return True

    async def _session(self, name: str, upload_id: str) -> UploadInfo:
        info = await self.call(self.storage.upload_stat, upload_id)
        if info is None or info.repo != name:
            raise ApiError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id[:100]})
        return info

    def forget_uploads(self, upload_ids: list[str]) -> None:
        """Drop cached hashes of sessions that were removed from storage behind our back (expiry)."""
        self.uploads.forget(upload_ids)

    def _check_range(self, request: web.Request, size: int, name: str, upload_id: str) -> int | None:
        value = request.headers.get("Content-Range")
        if value is None:
            return None
        start, end = _parse_content_range(value)
        if start != size:
            raise ApiError(416, "BLOB_UPLOAD_INVALID",
                           f"chunk starts at {start} but the upload has {size} bytes",
                           headers=self._upload_headers(name, upload_id, size))
        length = end - start + 1
        declared = request.content_length
        if declared is not None and declared != length:
            raise ApiError(400, "SIZE_INVALID",
                           f"Content-Range covers {length} bytes but Content-Length is {declared}")
        return length

    async def upload_patch(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, upload_id = p["name"], p["id"]
        actor = self._need(request, name, "push")
        self._writable()
        await self.hooks.upload(actor, name, request.content_length)
        async with self.uploads.locked(upload_id):
            info = await self._session(name, upload_id)
            expected = self._check_range(request, info.size, name, upload_id)
            size = await self.uploads.receive(request, upload_id, info.size, expected, info)
        return web.Response(status=202, headers={**self._upload_headers(name, upload_id, size),
                                                 "Content-Length": "0"})

    async def upload_finish(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, upload_id = p["name"], p["id"]
        actor = self._need(request, name, "push")
        self._writable()
        digest = request.query.get("digest")
        if not digest:
            raise ApiError(400, "DIGEST_INVALID", "the digest query parameter is required")
        check_digest(digest)
        if request.content_length:
            await self.hooks.upload(actor, name, request.content_length)
        async with self.uploads.locked(upload_id):
            info = await self._session(name, upload_id)
            expected = self._check_range(request, info.size, name, upload_id)
            size = await self.uploads.receive(request, upload_id, info.size, expected, info)
            return await self._commit(actor, name, upload_id, digest, size)

    async def _commit(self, actor: Actor, name: str, upload_id: str, digest: str, size: int) -> web.Response:
        actual = await self.uploads.digest(upload_id, digest.partition(":")[0])
        if actual != digest:
            await self.uploads.drop(upload_id)
            raise ApiError(400, "DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        try:
            # Chunks streamed without a length were not weighed as they came: the whole blob is, here.
            await self.hooks.committing(actor, name, digest, size)
        except ApiError:
            await self.uploads.drop(upload_id)
            raise
        try:
            await self.io.run(self.storage.upload_commit, upload_id, digest)
            await self.call(self.storage.link_blob, name, digest)
        except BaseException:
            self.uploads.drop_spool(upload_id)
            raise
        # The blob is in the bucket: its bytes, kept as they arrived, become this replica's cache entry,
        # so a pull through here reads nothing back.
        await self.uploads.publish(upload_id, digest)
        return self._blob_created(name, digest)

    async def upload_status(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, upload_id = p["name"], p["id"]
        self._need(request, name, "push")
        size = (await self._session(name, upload_id)).size
        return web.Response(status=204, headers=self._upload_headers(name, upload_id, size))

    async def upload_cancel(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, upload_id = p["name"], p["id"]
        self._need(request, name, "push")
        async with self.uploads.locked(upload_id):
            await self._session(name, upload_id)
            await self.uploads.drop(upload_id)
        return web.Response(status=204, headers=API_HEADER)

    # -- manifests -------------------------------------------------------------------------------

    async def resolve(self, name: str, ref: str) -> str | None:
        """The digest a tag or digest reference names in the repository, if it is there."""
        if ":" in ref:
            check_digest(ref)
            return ref if await self.call(self.storage.manifest_media_type, name, ref) is not None else None
        if not TAG_RE.fullmatch(ref):
            raise ApiError(404 if ref.startswith(".") else 400, "MANIFEST_UNKNOWN" if ref.startswith(".")
                           else "TAG_INVALID", detail={"tag": ref[:200]})
        return await self.call(self.storage.tag_get, name, ref)

    async def _lookup(self, name: str, ref: str) -> tuple[str, str] | None:
        """(digest, media type) of a manifest by tag or digest, if the repository has it."""
        tag_resolve = getattr(self.storage, "tag_resolve", None)
        if tag_resolve is not None and ":" not in ref and TAG_RE.fullmatch(ref):
            # An object store keeps the media type with the tag: one round trip instead of two.
            hit = await self.call(tag_resolve, name, ref)
            if hit is None:
                return None
            if hit[1] is not None:
                return str(hit[0]), str(hit[1])
        digest = await self.resolve(name, ref)
        media_type = await self.call(self.storage.manifest_media_type, name, digest) if digest else None
        return (digest, media_type) if digest and media_type is not None else None

    async def manifest_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, ref = p["name"], p["ref"]
        actor = self._need(request, name, "pull")
        if self.upstream is not None:
            found = await self.upstream.manifest(self, name, ref)
        else:
            found = await self._lookup(name, ref)
        if found is None:
            raise ApiError(404, "MANIFEST_UNKNOWN", detail={"name": name, "reference": ref[:200]})
        digest, media_type = found
        try:
            body = await self.io.run(self.storage.blob_read, digest)
        except FileNotFoundError:
            raise ApiError(404, "MANIFEST_UNKNOWN", detail={"name": name, "reference": ref[:200]})
        headers = {**API_HEADER, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if request.method == "GET":
            await self.hooks.pulled(actor, name, ref, digest)
        return web.Response(body=body, content_type=media_type, headers=headers)

    async def _read_limited(self, request: web.Request, limit: int) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "MANIFEST_INVALID", f"manifest is larger than {limit} bytes")
        data = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            data += chunk
            if len(data) > limit:
                raise ApiError(413, "MANIFEST_INVALID", f"manifest is larger than {limit} bytes")
        return bytes(data)

    async def manifest_put(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, ref = p["name"], p["ref"]
        actor = self._need(request, name, "push")
        self._writable()
        if ":" in ref:
            check_digest(ref)
        elif not TAG_RE.fullmatch(ref):
            raise ApiError(400, "TAG_INVALID", detail={"tag": ref[:200]})
        body = await self._read_limited(request, MAX_MANIFEST_SIZE)
        digest, subject = await self._store_manifest(name, ref, body, request.content_type, actor=actor)
        headers = {**API_HEADER, "Location": f"/v2/{name}/manifests/{digest}",
                   "Docker-Content-Digest": digest, "Content-Length": "0"}
        if subject:
            headers["OCI-Subject"] = subject
        return web.Response(status=201, headers=headers)

    async def store_manifest(self, name: str, ref: str, body: bytes, content_type: str,
                             verify_blobs: bool = True, actor: Actor | None = None) -> str:
        """Validate and store a manifest under a tag or digest; returns its digest.

        With an ``actor`` (a client's push, not the mirror filling its cache) the hooks are asked first
        and told after."""
        digest, _ = await self._store_manifest(name, ref, body, content_type, verify_blobs, actor)
        return digest

    async def _store_manifest(self, name: str, ref: str, body: bytes, content_type: str,
                              verify_blobs: bool = True,
                              actor: Actor | None = None) -> tuple[str, str | None]:
        """``store_manifest``, also giving the digest of the manifest's subject (if it has one)."""
        try:
            manifest = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "MANIFEST_INVALID", f"manifest is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ApiError(400, "MANIFEST_INVALID", "manifest JSON is nested too deeply") from exc
        if not isinstance(manifest, dict):
            raise ApiError(400, "MANIFEST_INVALID", "manifest must be a JSON object")
        algorithm = ref.partition(":")[0] if ":" in ref else "sha256"
        hasher = Hasher(algorithm)
        hasher.update(body)
        digest = str(hasher.digest())
        if ":" in ref and digest != ref:
            raise ApiError(400, "DIGEST_INVALID", detail={"expected": ref, "actual": digest})
        declared = manifest.get("mediaType")
        media_type = declared if isinstance(declared, str) and declared else content_type
        if declared and content_type and content_type in _KNOWN_MANIFESTS and declared != content_type:
            raise ApiError(400, "MANIFEST_INVALID",
                           f"mediaType {declared!r} does not match Content-Type {content_type!r}")
        if manifest.get("schemaVersion") != 2 or media_type not in _KNOWN_MANIFESTS:
            if media_type == "application/json" and manifest.get("schemaVersion") == 2:
                media_type = mt.OCI_INDEX if "manifests" in manifest else mt.OCI_MANIFEST
            else:
                raise ApiError(400, "MANIFEST_INVALID",
                               f"unsupported manifest (media type {media_type!r}, schemaVersion "
                               f"{manifest.get('schemaVersion')!r})")
        self._validate_shape(manifest, media_type)
        if verify_blobs:
            await self._verify_references(name, manifest, media_type)
        if actor is not None:
            await self.hooks.manifest(actor, name, ref, digest, manifest, len(body))
        subject = manifest.get("subject")
        referrer = (subject["digest"], _descriptor_of(manifest, digest, len(body), media_type)) \
            if isinstance(subject, dict) and isinstance(subject.get("digest"), str) else None
        await self.io.run(write_manifest, self.storage, name, None if ":" in ref else ref, digest, body,
                          media_type, referrer)
        if actor is not None:
            await self.hooks.pushed(actor, name, ref, digest, media_type, len(body), manifest)
        return digest, referrer[0] if referrer is not None else None

    @staticmethod
    def _validate_shape(manifest: dict[str, Any], media_type: str) -> None:
        def descriptor(item: object, where: str) -> None:
            if not isinstance(item, dict):
                raise ApiError(400, "MANIFEST_INVALID", f"{where} is not a descriptor")
            size = item.get("size")
            if not isinstance(item.get("mediaType", ""), str) or not isinstance(size, int) \
                    or isinstance(size, bool):
                raise ApiError(400, "MANIFEST_INVALID", f"{where} needs a mediaType and an integer size")
            if not 0 <= size <= MAX_DESCRIPTOR_SIZE:
                raise ApiError(400, "MANIFEST_INVALID", f"{where} has size {size}, outside 0..2^63-1")
            check_digest(str(item.get("digest", "")), "MANIFEST_INVALID")

        if media_type in mt.INDEXES:
            items = manifest.get("manifests")
            if not isinstance(items, list):
                raise ApiError(400, "MANIFEST_INVALID", "index has no manifests list")
            for i, item in enumerate(items):
                descriptor(item, f"manifests[{i}]")
        else:
            descriptor(manifest.get("config"), "config")
            layers = manifest.get("layers")
            if not isinstance(layers, list):
                raise ApiError(400, "MANIFEST_INVALID", "manifest has no layers list")
            for i, item in enumerate(layers):
                descriptor(item, f"layers[{i}]")
        if "subject" in manifest:
            descriptor(manifest["subject"], "subject")

    async def _verify_references(self, name: str, manifest: dict[str, Any], media_type: str) -> None:
        async def child_missing(digest: str) -> bool:
            return await self.call(self.storage.manifest_media_type, name, digest) is None

        known = getattr(self.storage, "known_in_use", None)

        async def blob_missing(digest: str) -> bool:
            if self._inline:  # local files: three system calls, no task or future for any of them
                if not self.storage.is_linked(name, digest) or self.storage.blob_size(digest) is None:
                    return True
                self.storage.blob_touch(digest)
                return False
            linked, size = await asyncio.gather(self.call(self.storage.is_linked, name, digest),
                                                self.call(self.storage.blob_size, digest))
            if not linked or size is None:
                return True
            # Restart the GC grace period of what this fresh manifest now holds on to.
            await self.call(self.storage.blob_touch, digest)
            return False

        if media_type in mt.INDEXES:
            digests = [item["digest"] for item in manifest["manifests"]]
            check = child_missing
        else:
            # Foreign layers (with urls) live elsewhere.
            digests = [item["digest"] for item in [manifest["config"], *manifest["layers"]]
                       if not item.get("urls")]
            check = blob_missing
        unique = list(dict.fromkeys(digests))
        if check is blob_missing and known is not None:
            # What the storage's memory vouches for needs no trip to the worker pool (nor a coroutine).
            unique = [d for d in unique if not known(name, d)]
        if not unique:
            return
        gone = await self._all([check(d) for d in unique])
        missing = [d for d, is_gone in zip(unique, gone, strict=True) if is_gone]
        if missing:
            raise ApiError(400, "MANIFEST_BLOB_UNKNOWN", detail={"digests": missing[:20]})

    async def manifest_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        name, ref = p["name"], p["ref"]
        actor = self._need(request, name, "delete")
        self._writable()
        if not self.settings.delete_enabled:
            raise ApiError(405, "UNSUPPORTED", "deletion is disabled on this registry")
        if ":" not in ref:
            if not TAG_RE.fullmatch(ref):
                raise ApiError(400, "TAG_INVALID", detail={"tag": ref[:200]})
            await self.hooks.deleting(actor, name, ref, [ref])
            if not await self.call(self.storage.tag_delete, name, ref):
                raise ApiError(404, "MANIFEST_UNKNOWN", detail={"name": name, "reference": ref})
            await self.hooks.deleted(actor, name, ref)
            return web.Response(status=202, headers=API_HEADER)
        digest = check_digest(ref)
        if await self.call(self.storage.manifest_media_type, name, digest) is None:
            raise ApiError(404, "MANIFEST_UNKNOWN", detail={"name": name, "reference": ref})
        tags = [tag for tag, target in (await self.call(self.storage.tags, name)).items() if target == digest]
        await self.hooks.deleting(actor, name, digest, tags)
        await self.io.run(remove_manifest, self.storage, name, digest)
        await self.hooks.deleted(actor, name, digest)
        return web.Response(status=202, headers=API_HEADER)


def subject_of(body: bytes) -> str | None:
    """The digest of a manifest's ``subject``, if it has one."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        subject = json.loads(body).get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            return str(subject["digest"])
    return None


def write_manifest(storage: Storage, name: str, tag: str | None, digest: str, body: bytes, media_type: str,
                   referrer: tuple[str, dict[str, Any]] | None) -> None:
    """Store a checked manifest: its bytes, links and referrer entry, then the tag (last, so a tag
    another replica can read always names a complete manifest). One worker job, not one per write:
    each hop between the event loop and a worker costs CPU, which a busy registry is short of; the
    price is a few small requests made one after the other (an object store's ``manifest_put`` writes
    the bytes and the revision link side by side)."""
    both = getattr(storage, "manifest_put", None)
    if both is not None:  # an object store: the bytes and the revision link written at once
        both(name, digest, body, media_type)
    else:
        storage.blob_put(digest, body)
        if not getattr(storage, "MANIFEST_LINKS_BLOB", False):
            storage.link_blob(name, digest)
        storage.manifest_link(name, digest, media_type)
    if referrer is not None:
        storage.referrer_add(name, *referrer)
    if tag is not None:
        storage.tag_set(name, tag, digest)


def remove_manifest(storage: Storage, name: str, digest: str) -> None:
    """Delete a manifest from a repository: its referrer entry, the tags naming it, then its link."""
    with contextlib.suppress(FileNotFoundError):
        subject = subject_of(storage.blob_read(digest))
        if subject:
            storage.referrer_remove(name, subject, digest)
    for tag, target in storage.tags(name).items():
        if target == digest:
            storage.tag_delete(name, tag)
    storage.manifest_unlink(name, digest)


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs "%{User-Agent}i"'


def peer_token(key: bytes, digest: str) -> str:
    """What a replica sends to ask another's cache for ``digest``: an HMAC with the bucket's peer key."""
    return hmac.new(key, digest.encode(), "sha256").hexdigest()


def make_app(registry: Registry) -> web.Application:
    """The aiohttp application: ``/v2/...``, ``/token`` (token mode) and ``/healthz``."""

    @web.middleware
    async def errors(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        registry.inflight += 1
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPRequestRangeNotSatisfiable as exc:
            return ApiError(416, "RANGE_INVALID", exc.text or "range not satisfiable",
                            headers=dict(exc.headers)).response()
        except web.HTTPException as exc:
            if exc.status >= 400:
                codes = {404: "NAME_UNKNOWN", 405: "UNSUPPORTED", 401: "UNAUTHORIZED"}
                code = codes.get(exc.status, "UNSUPPORTED")
                return ApiError(exc.status, code, exc.reason).response()
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except OSError as exc:
            log.error("storage error on %s %s: %s", request.method, request.path, exc)
            return ApiError(500, "UNKNOWN", f"storage error: {exc.strerror or exc}").response()
        finally:
            registry.inflight -= 1

    async def v2(request: web.Request) -> web.StreamResponse:
        return await registry.route(request)

    async def health(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "time": time.time()})

    async def token(request: web.Request) -> web.StreamResponse:
        if not registry.auth.token_mode:
            raise ApiError(404, "UNSUPPORTED", "this registry does not issue tokens")
        scopes = request.query.getall("scope", [])
        service = request.query.get("service", "")
        user = password = None
        if request.method == "POST":
            form = await request.post()
            scopes = [str(s) for s in form.getall("scope", [])] or scopes
            service = str(form.get("service", service))
            if form.get("grant_type") == "password":
                user, password = str(form.get("username", "")), str(form.get("password", ""))
        # On a worker thread: bcrypt is slow on purpose, and team accounts may be bucket round trips.
        authorization = request.headers.get("Authorization", "")
        try:
            result = await registry.io.run(registry.auth.token, authorization, scopes, service, user,
                                           password)
        except ApiError as exc:
            if exc.status == 401:
                creds = basic_credentials(authorization) if authorization else None
                tried = creds[0] if creds is not None else user
                await registry.hooks.login_failed(Actor(tried or None, request.remote or ""))
            raise
        return web.json_response(result)

    app = web.Application(middlewares=[errors], client_max_size=MAX_MANIFEST_SIZE + 1024)
    app.router.add_route("*", "/v2/{tail:.*}", v2)
    app.router.add_route("*", "/v2", v2)
    app.router.add_get("/healthz", health)
    app.router.add_get("/_dockyard/peer/blobs/{digest}", registry.peer_blob)
    app.router.add_route("GET", "/token", token)
    app.router.add_route("POST", "/token", token)
    return app
