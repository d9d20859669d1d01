"""One fetch from the object store for every concurrent GET of a blob this replica has not cached.

The fetch (on a thread: ``Relay.fetch``) writes the blob into its new blob-cache entry; each GET, the
first one too, sends the bytes from that file as they land (sendfile), so N clients pulling a new layer
at once read the bucket once, and a slow client holds up nobody else. A GET that has sent part of the
blob when the fetch fails (the store, a full disk) asks the store for the rest with a Range request. The
fetch stops, and its entry is dropped, when no GET is left to serve."""

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
# A peer (another replica's blob cache) that does not answer within this long is given up for the
# bucket: a replica that is down costs a refused connection, one that hangs this many seconds.
PEER_TIMEOUT = 5.0


async def from_peer_then_bucket(relay: Relay, peer: tuple[str, dict[str, str]] | None, url: str,
                                sink: Callable[[memoryview], bool], answered: Callable[[int], None],
                                landed: Callable[[], int], size: int,
                                go_on: Callable[[], bool] = lambda: True) -> None:
    """Hand ``sink`` (on a fetch thread) the blob's bytes from ``peer`` (URL and headers of another
    replica's cache entry: the replica that received the push), then from the bucket at ``url`` for
    what it did not send (all of it when it is down, slow or without the blob), from ``landed()`` on.
    ``answered(200)`` (on the fetch thread) once a source answered with the blob, or the bucket's
    status when it did not; the bucket is not asked when ``go_on()`` is False."""
    if peer is not None:
        with contextlib.suppress(Exception):
            await relay.fetch(peer[0], sink, lambda status: answered(200) if status == 200 else None,
                              peer[1], attempts=1, timeout=PEER_TIMEOUT)
    if landed() < size and go_on():
        rest = {"Range": f"bytes={landed()}-"} if landed() else {}
        await relay.fetch(url, sink, lambda status: answered(200 if status in (200, 206) else status), rest)


class Followed:
    """A fetch that GETs follow: its source's answer (``status``), whether it is over (``done``), and
    the waiting of followers for either or for more bytes (``_wait``, woken by ``_wake``)."""

    def __init__(self) -> None:
        self.status: int | None = None  # the source's answer, once known (200: the blob)
        self.done = False  # no more bytes will come
        self.readers = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _answered(self, status: int) -> None:
        self.status = status
        self._wake()

    def _answered_soon(self, status: int) -> None:
        """On the fetch thread: ``_answered`` on the loop (before anything the thread sends after)."""
        self._loop.call_soon_threadsafe(self._answered, status)

    async def _wait(self, ready: Callable[[], bool]) -> None:
        while not (ready() or self.done):
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter


class SharedFetch(Followed):
    """The fetch of one blob into ``fill``, and the GETs following it."""

    def __init__(self, fill: Fill, url: str, relay: Relay, io: IoPool, ended: Callable[[], None],
                 peer: tuple[str, dict[str, str]] | None = None) -> None:
        super().__init__()
        self.fill = fill
        self.url = url
        self.peer = peer  # (URL, headers) of another replica's cache entry of the blob, asked first
        self._given_up = False  # the entry was dropped (a write failed): nothing more is fetched
        self._relay = relay
        self._io = io
        self._ended = ended  # forgets this fetch (called once, when it is over)
        self.written = 0  # bytes in the entry's file, readable by followers
        self._landed = 0  # the same, as the fetch thread counts them (``written`` follows it)
        self._told = 0  # ``_landed`` when followers were last woken
        self._task = asyncio.ensure_future(self._run())

    def _advance(self, written: int) -> None:
        self.written = max(self.written, written)
        self._wake()

    def _sink(self, piece: memoryview) -> bool:
        """On the fetch thread: the next piece of the body into the entry (hashed there); followers are
        woken once ``FOLLOW_STEP`` more bytes landed. False stops the fetch."""
        if self._landed + len(piece) > self.fill.size:
            return False  # more bytes than the blob has: not the blob, and never fill the disk
        if not self.fill.write(piece):
            self._given_up = True
            return False  # the entry was given up: followers ask the store for the rest
        self._landed += len(piece)
        if self._landed - self._told >= FOLLOW_STEP or self._landed == self.fill.size:
            self._told = self._landed
            self._loop.call_soon_threadsafe(self._advance, self._landed)
        return True

    async def _run(self) -> None:
        try:
            # Another replica's copy, if it has one, hashed here as the bucket's bytes would be.
            await from_peer_then_bucket(self._relay, self.peer, self.url, self._sink, self._answered_soon,
                                        lambda: self._landed, self.fill.size, lambda: not self._given_up)
            self._advance(self._landed)  # what landed since followers were last woken
            if self.status == 200 and self._landed == self.fill.size:
                await self._io.run(self.fill.commit)
        except Exception:  # any failure only ends the fetch: followers ask the store for the rest
            pass
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._io.run(self.fill.abort))  # nothing after a commit
            self.done = True
            self._ended()
            self._wake()

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
            if self.readers == 0 and not self.done and self.written < self.fill.size:
                self._task.cancel()  # nobody left to serve: the entry is not worth finishing
