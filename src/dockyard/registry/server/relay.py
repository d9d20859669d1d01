"""Serving a blob that lives in an object store: its bytes are relayed from a pre-signed URL.

The relay is native asyncio (aiohttp both ways), so a pull costs no worker thread, and the client's
Range header is passed on, so 206 and 416 come from the store itself.

A blob fetched into the blob cache is read on a thread of its own instead (``fetch``): blocking reads
into one buffer, each piece handed whole to the cache file, cost a few system calls per MiB, where the
event loop's reader costs a callback, a Python object and a copy per socket read (~64 KiB); and the
fetch runs at the store's pace whatever else the event loop is doing."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import random
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

ATTEMPTS, BACKOFF_CAP = 8, 2.0
RETRY = {429, 500, 502, 503, 504}  # throttling and server errors: worth another try

_PASSED_ON = ("Content-Length", "Content-Range")
# Bytes a fetch reads before it hands them on. Not more: the piece is copied from the socket, hashed
# and copied to the file while it is in the CPU's cache; 4 MiB pieces cost ~3x the system time (64 MiB
# into a new file: 0.11-0.22 s against ~0.04 s for 1 MiB or 256 KiB).
PIECE = 1 << 20
FETCH_THREADS = 16  # cold blobs fetched at once (more wait for a thread; pulls of each follow it)


def _tls() -> ssl.SSLContext:
    """What boto3 verifies the store against (AWS_CA_BUNDLE, else botocore's bundle), as ``s3http``."""
    from botocore.httpsession import get_cert_path

    return ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True))


class Relay:
    """One connection pool to the object store, opened on first use (on the serving loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._tls_context: ssl.SSLContext | None = None

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

    async def fetch(self, url: str, sink: Callable[[memoryview], bool], answered: Callable[[int], None],
                    headers: dict[str, str] | None = None, attempts: int = ATTEMPTS,
                    timeout: float = 120) -> int:
        """GET ``url`` on a fetch thread (throttling and 5xx retried as ``get`` does, up to ``attempts``
        tries) and hand the body to ``sink`` (on that thread) in pieces of up to ``PIECE`` bytes, until
        it ends or ``sink`` says False; ``answered(status)`` is called on the thread once the store
        answered (the body is read only when 200, or 206 when ``headers`` ask for a Range). Returns the
        bytes handed over. Cancelling stops the thread at its next piece (and waits for it: nothing
        runs on after the caller resumes)."""
        stop = threading.Event()
        if self._threads is None:
            self._threads = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="registry-fetch")
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, self._fetch, url, sink, answered, stop, headers or {}, attempts, timeout)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([future])
            raise

    def _connect(self, url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        if parts.scheme == "https":
            if self._tls_context is None:
                self._tls_context = _tls()
            tls = self._tls_context
            return http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=tls), target
        return http.client.HTTPConnection(parts.netloc, timeout=timeout), target

    def _fetch(self, url: str, sink: Callable[[memoryview], bool], answered: Callable[[int], None],
               stop: threading.Event, headers: dict[str, str], attempts: int, timeout: float) -> int:
        expect = 206 if "Range" in headers else 200
        for attempt in range(attempts):
            conn, target = self._connect(url, timeout)
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
                if resp.status in RETRY and attempt < attempts - 1 and not stop.is_set():
                    resp.read()
                    time.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
                    continue
                answered(resp.status)
                offset = headers.get("Range", "").removeprefix("bytes=").partition("-")[0]
                if resp.status != expect or (expect == 206 and not str(
                        resp.getheader("Content-Range", "")).startswith(f"bytes {offset}-")):
                    return 0
                buffer = memoryview(bytearray(PIECE))
                done = 0
                while not stop.is_set():
                    n = resp.readinto(buffer)  # fills the buffer unless the body ends first
                    if not n or not sink(buffer[:n]):
                        break
                    done += n
                return done
            finally:
                conn.close()
        raise AssertionError("unreachable: the last attempt returns")

    async def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)  # a running fetch ends with its pull
        if self._session is not None:
            await self._session.close()
