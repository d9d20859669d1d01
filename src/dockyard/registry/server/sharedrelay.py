"""The first pull through this replica of a blob another replica received: relayed, nothing kept.

The replica that received a push keeps the blob (its spool), and the bucket records where. A pull
through another replica streams that one's copy (``peer=``) to every GET that asks at once, from
memory: no cache entry is written and nothing is hashed here (nothing is stored; the client checks
the digest, as it does for a blob relayed from the bucket). A blob pulled again through this replica
is kept then (``sharedfetch``): a layer pulled once, as a CI job pulls what the job before pushed,
costs the replicas no second copy and no disk writes.

GETs that arrive while the first bytes are still held join the stream; a later one, or one that falls
more than ``WINDOW`` behind it, is served another way (the cache fill, or the rest from the bucket
with a Range request), so a slow client holds up nobody and memory stays bounded."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from aiohttp import web

from .relay import PIECE, Relay
from .sharedfetch import Followed, from_peer_then_bucket

# Bytes kept behind the front of the stream for followers (and at most this much more waiting for the
# event loop): a GET further behind finishes from the bucket.
WINDOW = 32 << 20


class SharedRelay(Followed):
    """One stream of a blob from a peer (the bucket for what it does not send) and the GETs following."""

    def __init__(self, size: int, url: str, peer: tuple[str, dict[str, str]], relay: Relay,
                 ended: Callable[[], object]) -> None:
        super().__init__()
        self.size = size
        self.url = url  # the bucket's URL of the blob
        self._relay = relay
        self._ended = ended  # forgets this relay (called once, when it is over)
        self._pieces: deque[tuple[int, bytes]] = deque()  # (offset, bytes) kept for followers
        self._front = 0  # bytes landed on the event loop
        self._landed = 0  # the same, as the fetch thread counts them
        self._base = 0  # offset of the first byte kept (0 until the window moved on)
        self._room = threading.Semaphore(WINDOW // PIECE)  # pieces handed to the loop, not yet landed
        self._stopped = False
        self._task = asyncio.ensure_future(self._run(peer))

    @property
    def joinable(self) -> bool:
        """A new GET can follow from the first byte."""
        return self._base == 0 and not (self.done and self.status != 200)

    def _land(self, offset: int, data: bytes) -> None:
        """On the loop: the next piece, for followers; pieces a full window behind are let go."""
        self._room.release()
        self._pieces.append((offset, data))
        self._front = offset + len(data)
        while self._pieces and self._pieces[0][0] + len(self._pieces[0][1]) <= self._front - WINDOW:
            self._pieces.popleft()
            self._base = self._pieces[0][0] if self._pieces else self._front
        self._wake()

    def _sink(self, piece: memoryview) -> bool:
        """On the fetch thread: a copy of the piece to the loop (its buffer is read into again); waits
        while a window of pieces has not landed yet. False stops the fetch."""
        if self._landed + len(piece) > self.size:
            return False  # more bytes than the blob has: not the blob
        while not self._room.acquire(timeout=0.5):
            if self._stopped:
                return False
        if self._stopped:
            return False
        offset, self._landed = self._landed, self._landed + len(piece)
        self._loop.call_soon_threadsafe(self._land, offset, bytes(piece))
        return True

    async def _run(self, peer: tuple[str, dict[str, str]]) -> None:
        try:
            await from_peer_then_bucket(self._relay, peer, self.url, self._sink, self._answered_soon,
                                        lambda: self._landed, self.size)
        except Exception:  # any failure only ends the stream: followers ask the bucket for the rest
            pass
        finally:
            self._stopped = True
            # Pieces already handed to the loop land before this: call_soon keeps the order.
            self._loop.call_soon(self._over)

    def _over(self) -> None:
        self.done = True
        self._ended()
        self._wake()

    async def serve(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse | None:
        """Send the whole blob to this GET as the stream brings it; None when it cannot follow from the
        start (the window moved on, or no source answered with the blob): the caller serves it another way."""
        self.readers += 1
        try:
            await self._wait(lambda: self.status is not None)
            if self.status != 200 or self._base > 0:
                return None
            resp = web.StreamResponse(headers=headers)
            resp.content_length = self.size
            await resp.prepare(request)
            sent = 0
            while sent < self.size:
                await self._wait(lambda: self._front > sent)  # noqa: B023 - awaited in this iteration
                if sent < self._base or (self.done and self._front <= sent):
                    # Too far behind the stream, or the stream ended short: the rest from the bucket.
                    await self._relay.finish(resp, self.url, sent, self.size)
                    break
                for offset, data in list(self._pieces):  # bytes are immutable: safe once let go
                    end = offset + len(data)
                    if end > sent:
                        await resp.write(memoryview(data)[sent - offset:])
                        sent = end
            await resp.write_eof()
            return resp
        finally:
            self.readers -= 1
            if self.readers == 0 and not self.done:
                self._stopped = True
                self._task.cancel()  # nobody left to serve
