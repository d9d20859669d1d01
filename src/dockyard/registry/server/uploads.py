"""Upload sessions: one lock per session, bytes hashed as they arrive, file I/O in the worker pool.

Finishing an upload never re-reads it: each PATCH (or PUT, or one-shot POST) feeds the session's running
hash. That hash is only a cache, trusted while the data file still has the size and mtime it had after
our last write; a session continued by another process or after a restart is hashed from disk once (in
the pool) and incrementally from there on.

With a blob cache (an object store's replica), the bytes also go to a *spool* in the cache directory,
written from the same pieces the running hash is fed, and the commit publishes it as the blob's entry
once the digest matched and the blob is in the bucket: a pull through the replica that received the
push is served from its disk. A spool lives only while the running hash does: a session continued
elsewhere, a failed request, a cancel or an expiry drops it (the blob is then fetched on its first pull).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

from aiohttp import web

from dockyard.oci.digest import Hasher

from .apierrors import ApiError
from .blobcache import BlobCache, Spool
from .iopool import IoPool
from .storage import Storage, UploadInfo

CHUNK = 1 << 20
MAX_SPOOLS = 64  # sessions with a spool at once (a session left open holds a file): the oldest go first
Call = Callable[..., Awaitable[Any]]


def write_and_hash(f: BinaryIO, hasher: Hasher, chunk: bytes, spool: Spool | None = None) -> None:
    """Append one chunk and feed it to the running hash, and to the spool if any (on a worker: each
    releases the GIL)."""
    f.write(chunk)
    f.flush()  # the session's size (GET on the session, another process) counts what arrived
    hasher.update(chunk)
    if spool is not None:
        spool.write(chunk)  # gives up quietly (a full disk): the upload goes on without it


class Uploads:
    """The open sessions' locks and running hashes, keyed by canonical session id."""

    def __init__(self, storage: Storage, io: IoPool, call: Call | None = None,
                 cache: BlobCache | None = None) -> None:
        self.storage = storage
        self.io = io
        self.cache = cache  # where committed uploads are kept for pulls through this replica
        # id -> the spool holding exactly the bytes the running hash in ``_hashers`` was fed (oldest first)
        self._spools: OrderedDict[str, Spool] = OrderedDict()
        # id -> (spool, digest, bytes hashed) between the commit's digest check and its publish
        self._verified: dict[str, tuple[Spool, str, int]] = {}
        self.call: Call = call or io.run  # how quick storage calls (stat) are made
        self._hashers: dict[str, tuple[Hasher, int]] = {}  # id -> (hash, data mtime_ns after it)
        # id -> the session as the last receive left it: the commit that follows in the same request
        # needs no storage call to learn it again (on an object store, each is a round trip or two).
        self._received: dict[str, UploadInfo] = {}
        # Requests on one session run one at a time (two PATCHes at once would interleave bytes).
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # id -> (lock, requests holding or waiting)

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(upload_id, (asyncio.Lock(), 0))
        self._locks[upload_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            # Nobody inside or waiting: the lock goes (a later request makes a new one), so the table
            # never grows with sessions, and no storage call is needed to tell the session ended.
            lock, users = self._locks.get(upload_id, (lock, 1))
            if users <= 1:
                self._locks.pop(upload_id, None)
            else:
                self._locks[upload_id] = (lock, users - 1)

    def forget(self, upload_ids: list[str]) -> None:
        """Drop what is cached about sessions removed from storage behind our back (expiry)."""
        for upload_id in upload_ids:
            self._hashers.pop(upload_id, None)
            self._received.pop(upload_id, None)
            self._locks.pop(upload_id, None)
            self.drop_spool(upload_id)

    def drop_spool(self, upload_id: str) -> None:
        """Give up the session's spool, if any (a close and an unlink: quick enough for the event loop)."""
        spool = self._spools.pop(upload_id, None)
        verified = self._verified.pop(upload_id, None)
        for doomed in (spool, verified[0] if verified else None):
            if doomed is not None:
                doomed.abort()

    async def drop(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        self._received.pop(upload_id, None)
        self.drop_spool(upload_id)
        await self.io.run(self.storage.upload_delete, upload_id)

    def _cached(self, info: UploadInfo, algorithm: str) -> Hasher | None:
        """The session's running hash if it still covers exactly the session's bytes; else None, and
        the session's spool is dropped (it holds bytes that are no longer, or not all, the session's)."""
        entry = self._hashers.pop(info.id, None)
        hasher: Hasher | None = None
        if entry is None:
            hasher = Hasher(algorithm) if info.size == 0 else None
        elif entry[0].size == info.size and entry[1] == info.mtime_ns and entry[0].algorithm == algorithm:
            hasher = entry[0]
        spool = self._spools.get(info.id)
        if spool is not None and (hasher is None or not spool.live or spool.size != hasher.size):
            self.drop_spool(info.id)
        return hasher

    def _hash_from_disk(self, upload_id: str, algorithm: str) -> Hasher:
        hasher = Hasher(algorithm)
        with self.storage.upload_read(upload_id) as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        return hasher

    async def _hasher(self, info: UploadInfo, algorithm: str = "sha256") -> Hasher:
        hasher = self._cached(info, algorithm)
        if hasher is None:
            hasher = await self.io.run(self._hash_from_disk, info.id, algorithm)
        return hasher

    async def receive(self, request: web.Request, upload_id: str, size: int,
                      expected: int | None = None, info: UploadInfo | None = None) -> int:
        """Append the request body to the session (which must hold ``size`` bytes); returns the new size.

        ``info``: the session as the caller just read it (under the session's lock), if it did.
        On any failure the session is cut back to ``size`` bytes."""
        self._received.pop(upload_id, None)
        if info is None or info.id != upload_id:
            info = await self.call(self.storage.upload_stat, upload_id)
        if info is None or info.size != size:
            raise ApiError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        hasher = await self._hasher(info)
        spool = self._spools.pop(upload_id, None)  # back in the table only if this request succeeds
        received = 0
        try:
            if spool is None and hasher.size == 0 and self.cache is not None:
                spool = await self.io.run(self.cache.spool)
            f = await self.io.run(self.storage.upload_append, upload_id)
            try:
                async for chunk in request.content.iter_chunked(CHUNK):
                    await self.io.run(write_and_hash, f, hasher, chunk, spool)
                    received += len(chunk)
            finally:
                await self.io.run(f.close)
            if received:
                await self.io.run(self.storage.upload_touch, upload_id)
            if expected is not None and received != expected:
                raise ApiError(400, "SIZE_INVALID",
                               f"Content-Range announced {expected} bytes but {received} arrived")
        except BaseException:
            if spool is not None:
                spool.abort()
            with contextlib.suppress(OSError):
                await self.io.run(self.storage.upload_truncate, upload_id, size)
            raise
        after = await self.call(self.storage.upload_stat, upload_id)
        if after is not None and after.size == hasher.size:
            self._hashers[upload_id] = (hasher, after.mtime_ns)
            self._received[upload_id] = after
            if spool is not None and spool.live and spool.size == hasher.size:
                self._spools[upload_id] = spool
                while len(self._spools) > MAX_SPOOLS:
                    self._spools.popitem(last=False)[1].abort()
                spool = None
        if spool is not None:
            spool.abort()
        return size + received

    async def digest(self, upload_id: str, algorithm: str) -> str:
        """The digest of the session's bytes: from the running hash, or read from disk when stale."""
        info = self._received.pop(upload_id, None) or await self.call(self.storage.upload_stat, upload_id)
        if info is None:
            raise ApiError(404, "BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        hasher = await self._hasher(info, algorithm)
        digest = str(hasher.digest())
        spool = self._spools.pop(upload_id, None)  # still there only if it matches the running hash
        if spool is not None:
            self._verified[upload_id] = (spool, digest, hasher.size)
        return digest

    async def publish(self, upload_id: str, digest: str) -> bool:
        """Keep the committed session's spool as the entry of ``digest`` (called once the blob is in
        the bucket, with the digest ``digest`` returned for it); True when published."""
        verified = self._verified.pop(upload_id, None)
        self.drop_spool(upload_id)
        if verified is None:
            return False
        spool, hashed_digest, hashed = verified
        if hashed_digest != digest:
            spool.abort()
            return False
        return await self.io.run(spool.publish, digest, hashed)
