"""A TCP proxy in front of the object store peer, for tests that need to see or shape the registry's
traffic to it: it records each HTTP request line, can slow the store's answers to a rate, and can cut
the first answer to a chosen GET short (the store failing part-way). Bytes pass unchanged, so pre-signed
URLs made for the proxy's address stay valid."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

_REQUEST = re.compile(rb"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n((?:[^\r\n]+\r\n)*)\r\n")


class StoreProxy:
    def __init__(self, target: str, rate: float | None = None) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate  # bytes per second from the store, None: as fast as it goes
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header or "")
        self.cut: Callable[[str, str, str], int | None] = lambda _m, _p, _r: None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.Server
        self.url = ""

    def __enter__(self) -> StoreProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def gets(self, fragment: str) -> list[str]:
        """Range headers ("" for none) of the GETs whose path holds ``fragment``."""
        return [rng for method, path, rng in list(self.requests) if method == "GET" and fragment in path]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        budget: list[int | None] = [None]  # bytes of the store's answer left before the cut

        async def upward() -> None:
            pending = b""
            while data := await reader.read(1 << 16):
                pending = (pending + data)[-(1 << 16):]
                for m in _REQUEST.finditer(pending):
                    method, path = m.group(1).decode(), m.group(2).decode()
                    rng = next((line.split(b":", 1)[1].strip().decode() for line in m.group(3).split(b"\r\n")
                                if line.lower().startswith(b"range:")), "")
                    self.requests.append((method, path, rng))
                    cut = self.cut(method, path, rng)
                    if cut is not None:
                        budget[0] = cut
                    pending = pending[m.end():]
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downward() -> None:
            while data := await up_reader.read(1 << 16):
                if budget[0] is not None:
                    if len(data) >= budget[0]:
                        writer.write(data[:budget[0]])
                        await writer.drain()
                        writer.close()  # the answer ends here, mid-body
                        up_writer.close()
                        return
                    budget[0] -= len(data)
                writer.write(data)
                await writer.drain()
                if self.rate:
                    await asyncio.sleep(len(data) / self.rate)
            writer.close()

        tasks = [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=60)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()
