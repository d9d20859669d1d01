"""Read-ahead on a thread: ``ReadAhead(stream)`` reads ``stream`` in pieces on its own thread, so
whatever that stream does on the way (file reads, decompression, sha256: all release the GIL) runs
on one core while the consumer (a tar extraction) runs on another.

    with ReadAhead(HashingReader(raw)) as r:      # the hash is computed on the reading thread
        apply_layer_overlay(r, target)
        while r.read(1 << 20): pass
    # after EOF the wrapped stream is finished: its digest is final

An error of the wrapped stream is raised by the consumer's next ``read``; leaving the ``with`` block
stops the thread (a consumer that failed does not leave it reading).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from dockyard.archive.reader import Readable

__all__ = ["ReadAhead"]

_END = object()


class ReadAhead:
    """A readable over ``stream`` whose pieces of ``piece`` bytes are read ahead, ``depth`` deep."""

    def __init__(self, stream: Readable, piece: int = 1 << 20, depth: int = 4) -> None:
        self._stream = stream
        self._piece = piece
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._stream.read(self._piece)
                if not data:
                    break
                if not self._put(bytes(data)):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised by its next read
            self._put(exc)

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if item is _END:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._buf = memoryview(item)
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left for ``n < 0``); b"" at the end."""
        if n is None or n < 0:
            parts = [bytes(self._buf)]
            self._buf = memoryview(b"")
            while self._next():
                parts.append(bytes(self._buf))
            self._buf = memoryview(b"")
            return b"".join(parts)
        if not self._buf and not self._next():
            return b""
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Stop the reading thread and wait for it (idempotent)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
