"""Serving a blob that lives in an object store: its bytes are relayed from a pre-signed URL.

The relay is native asyncio (aiohttp both ways), so a pull costs no worker thread, and the client's
Range header is passed on, so 206 and 416 come from the store itself."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

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

    @contextlib.asynccontextmanager
    async def get(self, url: str, headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        """The store's answer to GET ``url``; throttling and 5xx are retried with backoff (as the S3
        client does), and the last answer is handed over whatever it is."""
        for attempt in range(ATTEMPTS):
            async with self.session().get(url, headers=headers) as upstream:
                if upstream.status in RETRY and attempt < ATTEMPTS - 1:
                    await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
                    continue
                yield upstream
                return
        raise AssertionError("unreachable: the last attempt yields")

    async def serve(self, request: web.Request, url: str, headers: dict[str, str]) -> web.StreamResponse:
        """GET ``url`` and stream it to the client under ``headers`` (the registry's own); after the
        first byte is sent a failure can only cut the response short."""
        wanted = {"Range": request.headers["Range"]} if "Range" in request.headers else {}
        async with self.get(url, wanted) as upstream:
            if upstream.status not in (200, 206, 416):
                # The caller's error handling turns this into a 500 with the store's answer.
                raise OSError(f"object store answered {upstream.status} for a blob it listed")
            resp = web.StreamResponse(status=upstream.status, headers=headers)
            for name in _PASSED_ON:
                if name in upstream.headers:
                    resp.headers[name] = upstream.headers[name]
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():  # as it arrives: no re-buffering
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def finish(self, resp: web.StreamResponse, url: str, offset: int, size: int) -> None:
        """Write bytes ``offset`` to ``size`` of the blob at ``url`` to a response already under way
        (what a shared fetch that failed part-way did not deliver)."""
        async with self.get(url, {"Range": f"bytes={offset}-"}) as upstream:
            if upstream.status != 206 or not upstream.headers.get("Content-Range", "").startswith(
                    f"bytes {offset}-{size - 1}/"):
                raise OSError(f"object store answered {upstream.status} for the rest of a blob from {offset}")
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
