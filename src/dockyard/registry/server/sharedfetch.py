"""One fetch from the object store for every concurrent GET of a blob this replica has not cached.

The fetch writes the blob into its new blob-cache entry; each GET, the first one too, sends the bytes
from that file as they land (sendfile), so N clients pulling a new layer at once read the bucket once,
and a slow client holds up nobody else. A GET that has sent part of the blob when the fetch fails (the
store, a full disk) asks the store for the rest with a Range request. The fetch stops, and its entry is
dropped, when no GET is left to serve."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import BinaryIO

from aiohttp import web

from .blobcache import Fill
from .iopool import IoPool
from .relay import Relay

# Followers are woken, and send, once this much more has landed (or the fetch ended): a few large
# sendfile calls per client rather than one per piece read from the store, each costing the event loop.
FOLLOW_STEP = 4 << 20
WRITE_AHEAD = 8 << 20  # bytes read from the store while the previous write is still under way


class SharedFetch:
    """The fetch of one blob into ``fill``, and the GETs following it."""

    def __init__(self, fill: Fill, url: str, relay: Relay, io: IoPool, ended: Callable[[], None]) -> None:
        self.fill = fill
        self.url = url
        self._relay = relay
        self._io = io
        self._ended = ended  # forgets this fetch (called once, when it is over)
        self.status: int | None = None  # the store's answer, once known
        self.written = 0  # bytes in the entry's file, readable by followers
        self._told = 0  # ``written`` when followers were last woken
        self.done = False  # no more bytes will come: published, failed or stopped
        self.readers = 0
        self._changed = asyncio.Condition()
        self._task = asyncio.ensure_future(self._run())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        pending: asyncio.Future[bool] | None = None
        size = 0  # bytes in the write under way
        try:
            async with self._relay.get(self.url, {}) as upstream:
                self.status = upstream.status
                await self._notify()
                if upstream.status != 200:
                    return
                # Pieces are written on a worker while the next ones are read from the store. While a
                # write is under way the pieces read meanwhile gather (up to WRITE_AHEAD bytes) and go
                # to the next write together: a trip to a worker and back costs the fetch far more than
                # the write itself when the machine is busy (each wake-up waits for a core), and a
                # fetch that waited for every piece's write read the bucket at a quarter of its speed.
                batch: list[bytes] = []
                batched = 0
                async for chunk in upstream.content.iter_any():
                    batch.append(chunk)
                    batched += len(chunk)
                    if self.written + size + batched > self.fill.size:
                        return  # more bytes than the blob has: not the blob, and never fill the disk
                    if pending is not None and not pending.done() and batched < WRITE_AHEAD:
                        continue
                    if not await self._landed(pending, size):
                        return  # the entry was given up: followers ask the store for the rest
                    pending, size = asyncio.ensure_future(self._io.run(self.fill.write_all, batch)), batched
                    batch, batched = [], 0
                if not await self._landed(pending, size):
                    return
                pending = None
                if batch:
                    if not await self._io.run(self.fill.write_all, batch):
                        return
                    self.written += batched
                await self._io.run(self.fill.commit)
        except Exception:  # any failure only ends the fetch: followers ask the store for the rest
            pass
        finally:
            if pending is not None:  # stopped mid-write: let the write finish before the entry goes
                await asyncio.wait([pending])
            with contextlib.suppress(Exception):
                await asyncio.shield(self._io.run(self.fill.abort))  # nothing after a commit
            self.done = True
            self._ended()
            await asyncio.shield(self._notify())

    async def _landed(self, pending: asyncio.Future[bool] | None, size: int) -> bool:
        """Wait for the write under way (if any); count its ``size`` bytes and wake followers once
        enough has landed. False: the entry was given up."""
        if pending is None:
            return True
        if not await pending:
            return False
        self.written += size
        if self.written - self._told >= FOLLOW_STEP:
            self._told = self.written
            await self._notify()
        return True

    async def _wait(self, ready: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: ready() or self.done)

    async def serve(self, request: web.Request, headers: dict[str, str],
                    size: int) -> web.StreamResponse | None:
        """Send the whole blob to this GET as the fetch brings it; None when it cannot follow (the
        entry is gone, or the store did not answer 200): the caller serves it another way."""
        self.readers += 1
        f: BinaryIO | None = None
        try:
            try:
                f = await self._io.run(open, self.fill.temp, "rb")
            except FileNotFoundError:
                return None  # published (renamed) or dropped meanwhile
            await self._wait(lambda: self.status is not None)
            if self.status != 200:
                return None
            resp = web.StreamResponse(headers=headers)
            resp.content_length = size
            await resp.prepare(request)
            sent = 0
            loop = asyncio.get_running_loop()
            while sent < size:
                # (B023: the lambda is awaited here, in this iteration)
                await self._wait(lambda: self.written - sent >= FOLLOW_STEP or self.written >= size)  # noqa: B023
                if self.written > sent:
                    if request.transport is None:
                        raise ConnectionResetError("client went away")
                    count = min(self.written, size) - sent
                    await loop.sendfile(request.transport, f, sent, count)
                    sent += count
                else:  # the fetch ended short of the blob
                    await self._relay.finish(resp, self.url, sent, size)
                    break
            await resp.write_eof()
            return resp
        finally:
            if f is not None:
                f.close()
            self.readers -= 1
            if self.readers == 0 and not self.done:
                self._task.cancel()  # nobody left to serve: the entry is not worth finishing
