"""Serving a blob that lives in an object store: its bytes are relayed from a pre-signed URL.

The relay is native asyncio (aiohttp both ways), so a pull costs no worker thread, and the client's
Range header is passed on, so 206 and 416 come from the store itself."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .blobcache import Fill
    from .iopool import IoPool

ATTEMPTS, BACKOFF_CAP = 8, 2.0
RETRY = {429, 500, 502, 503, 504}  # throttling and server errors: worth another try

_PASSED_ON = ("Content-Length", "Content-Range")


class Relay:
    """One connection pool to the object store, opened on first use (on the serving loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No total timeout: a large blob to a slow client may take long; a stalled read still ends.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
            # A 1 MiB read buffer (not 64 KiB): the bytes move in larger pieces, with fewer pauses of
            # the store's socket and fewer writes to the client's.
            self._session = aiohttp.ClientSession(
                timeout=timeout, auto_decompress=False, read_bufsize=1 << 20,
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300))
        return self._session

    async def serve(self, request: web.Request, url: str, headers: dict[str, str],
                    fill: Fill | None = None, io: IoPool | None = None) -> web.StreamResponse:
        """GET ``url`` and stream it to the client under ``headers`` (the registry's own).

        Throttling and 5xx answers are retried with backoff (as the S3 client does) until the first
        byte is sent; after that a failure can only cut the response short. With a ``fill`` (a blob
        cache entry) the bytes are also written there on ``io``'s threads, and published at the end."""
        wanted = {"Range": request.headers["Range"]} if "Range" in request.headers else {}
        for attempt in range(ATTEMPTS):
            async with self.session().get(url, headers=wanted) as upstream:
                if upstream.status in RETRY and attempt < ATTEMPTS - 1:
                    await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
                    continue
                if upstream.status not in (200, 206, 416):
                    # The caller's error handling turns this into a 500 with the store's answer.
                    raise OSError(f"object store answered {upstream.status} for a blob it listed")
                resp = web.StreamResponse(status=upstream.status, headers=headers)
                for name in _PASSED_ON:
                    if name in upstream.headers:
                        resp.headers[name] = upstream.headers[name]
                await resp.prepare(request)
                if fill is None or io is None or upstream.status != 200:
                    async for chunk in upstream.content.iter_any():  # as it arrives: no re-buffering
                        await resp.write(chunk)
                else:
                    await self._tee(upstream, resp, fill, io)
                await resp.write_eof()
                return resp
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    async def _tee(upstream: aiohttp.ClientResponse, resp: web.StreamResponse, fill: Fill,
                   io: IoPool) -> None:
        """Relay and fill the cache entry: each piece is written to disk on a thread while the next
        one is relayed; the entry is published only once the whole blob is there and matches."""
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(io.run(fill.write, chunk))
            if pending is not None:
                await pending
                pending = None
            await io.run(fill.commit)
        finally:
            if pending is not None:  # the client went away: the caller aborts once this write is done
                await asyncio.wait([pending])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
