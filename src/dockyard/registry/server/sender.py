"""Blob bytes from a local file to a client with sendfile(2), each send on a thread of its own.

asyncio's ``loop.sendfile`` sends from the event loop: each time a client's socket has room again the
loop wakes and calls sendfile, so every pull the registry serves shares the loop's one thread, and the
kernel's work of each send runs there. Here a send runs on a thread that waits on its own socket
(poll) and calls sendfile, so sends to several clients go on at once, on every core, and a busy event
loop slows none of them. Measured: 8 pulls of a 64 MB blob from the filesystem, 3,455 -> 5,060 MB/s
on 2 cores (``bench/bench_registry_s3.py --only fs``, the two trees in the same rounds).

The thread works on duplicates of both descriptors and closes them itself, so the event loop closing
the connection, or the caller closing the file, never leaves it writing to a number reused meanwhile.
TLS, a transport with bytes still queued, or every thread busy: ``loop.sendfile``, as before."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

THREADS = 64  # sends at once on threads; more go through the event loop
STALL = 120.0  # seconds a client may take no bytes before its send is given up (as the relay's reads)
_SLICE_MS = 1000  # how often a waiting send looks whether it was stopped


class Sender:
    """Sends files to clients' sockets on up to ``threads`` threads."""

    def __init__(self, threads: int | None = None) -> None:
        self._threads = THREADS if threads is None else threads
        self._pool: ThreadPoolExecutor | None = None
        self._busy = 0
        self._closed = threading.Event()

    async def send(self, transport: asyncio.BaseTransport, f: BinaryIO, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``f`` from ``offset`` to the transport's client (the response's head
        already written); returns once the kernel has taken them all."""
        loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if (self._busy >= self._threads or self._closed.is_set() or sock is None
                or transport.get_extra_info("sslcontext") is not None
                or not isinstance(transport, asyncio.Transport) or transport.get_write_buffer_size()):
            await loop.sendfile(transport, f, offset, count)  # type: ignore[arg-type]
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="registry-send")
        out = os.dup(sock.fileno())
        try:
            src = os.dup(f.fileno())
        except OSError:
            os.close(out)
            raise
        stop = threading.Event()
        self._busy += 1
        transport.pause_reading()  # as loop.sendfile: the connection's next request waits for this one
        try:
            future = loop.run_in_executor(self._pool, _pump, out, src, offset, count, stop, self._closed)
        except BaseException:
            self._busy -= 1
            os.close(out)
            os.close(src)
            raise
        future.add_done_callback(self._released)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()  # the thread ends at its next look, and closes its descriptors
            raise
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    def _released(self, _future: object) -> None:
        self._busy -= 1

    def close(self) -> None:
        """Stop every send still waiting on a client (each ends within ``_SLICE_MS``)."""
        self._closed.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _pump(out: int, src: int, offset: int, count: int, stop: threading.Event,
          closed: threading.Event) -> None:
    """On a send thread: all of it, waiting for room on the (non-blocking) socket between calls."""
    try:
        poller = select.poll()
        poller.register(out, select.POLLOUT)
        end = offset + count
        progress = time.monotonic()
        while offset < end:
            try:
                n = os.sendfile(out, src, offset, end - offset)
            except BlockingIOError:
                # The client gone, stalled or the send stopped: a connection ended (the caller's
                # ConnectionResetError), not a storage error.
                if stop.is_set() or closed.is_set():
                    raise ConnectionResetError("the send was stopped") from None
                if not poller.poll(_SLICE_MS) and time.monotonic() - progress > STALL:
                    raise ConnectionResetError(f"the client took nothing for {STALL:.0f} s") from None
                continue
            except ConnectionError as exc:  # EPIPE as well as ECONNRESET
                raise ConnectionResetError(str(exc)) from exc
            if n == 0:
                raise OSError(f"the blob's file ended {end - offset} bytes short")
            offset += n
            progress = time.monotonic()
    finally:
        with contextlib.suppress(OSError):
            os.close(out)
        with contextlib.suppress(OSError):
            os.close(src)
