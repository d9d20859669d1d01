"""Read-ahead on a thread: ``ReadAhead(stream)`` reads ``stream`` in pieces on its own thread, so
whatever that stream does on the way (file reads, decompression, sha256: all release the GIL) runs
on one core while the consumer (a tar extraction) runs on another.

    with ReadAhead(HashingReader(raw)) as r:      # the hash is computed on the reading thread
        apply_layer_overlay(r, target)
        while r.read(1 << 20): pass
    # after EOF the wrapped stream is finished: its digest is final

An error of the wrapped stream is raised by the consumer's next ``read``; leaving the ``with`` block
stops the thread (a consumer that failed does not leave it reading).

``Pipe`` is the same hand-over the other way round, for a producer that pushes (a download):

    pipe = Pipe()
    # producer thread: pipe.write(chunk) ...; then pipe.close(), or pipe.fail(exc) on an error
    # consumer: pipe.read(n) ... (b"" after close(); raises the producer's exc after fail(exc))
    pipe.abandon()                  # consumer gives up: a blocked write raises PipeClosed
    pipe.abandon(discard=True)      # ... or returns, the producer's writes dropped from then on
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from dockyard.archive.reader import Readable

__all__ = ["Pipe", "PipeClosed", "ReadAhead"]

_END = object()


class _Pieces:
    """The consumer's side of a queue of byte pieces: ``read`` hands out a whole piece as it was
    queued (no copy) when it fits the request, else a slice of it."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._piece = b""
        self._pos = 0
        self._done = False

    def _get(self) -> object:
        return self._queue.get()

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._get()
        if item is _END:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._piece, self._pos = item, 0  # type: ignore[assignment]  # a piece: bytes
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left for ``n < 0``); b"" at the end."""
        if n is None or n < 0:
            parts = [self._piece[self._pos :]]
            while self._next():
                parts.append(self._piece)
            self._piece, self._pos = b"", 0
            return b"".join(parts)
        if self._pos >= len(self._piece) and not self._next():
            return b""
        if self._pos == 0 and len(self._piece) <= n:
            out = self._piece
            self._piece = b""
            return out
        out = self._piece[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class ReadAhead(_Pieces):
    """A readable over ``stream`` whose pieces of ``piece`` bytes are read ahead, ``depth`` deep."""

    def __init__(self, stream: Readable, piece: int = 1 << 20, depth: int = 4) -> None:
        super().__init__(depth)
        self._stream = stream
        self._piece_size = piece
        self._stop = threading.Event()
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
                data = self._stream.read(self._piece_size)
                if not data:
                    break
                if not self._put(bytes(data)):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised by its next read
            self._put(exc)

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


class PipeClosed(Exception):
    """Raised by ``Pipe.write`` once the consumer has abandoned the pipe."""


class Pipe(_Pieces):
    """Bytes handed from a producer thread to a consumer, at most ``depth`` writes queued.

    ``write`` keeps a reference to each piece (no copy): the producer must not change one after."""

    def __init__(self, depth: int = 32) -> None:
        super().__init__(depth)
        self._abandoned = threading.Event()
        self._discarding = False

    def _put(self, item: object) -> None:
        while True:
            if self._abandoned.is_set():
                raise PipeClosed("the reader of this pipe has gone")
            if self._discarding:
                return
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def write(self, data: bytes) -> int:
        """Queue ``data`` for the reader (waits while the queue is full); return its length."""
        if data and not self._discarding:
            self._put(data)
        return len(data)

    def drained(self) -> bool:
        """Nothing is queued: the reader has taken every piece written so far."""
        return self._queue.empty()

    def close(self) -> None:
        """The end: the reader's next read past the queued bytes returns b""."""
        self._put(_END)

    def fail(self, exc: BaseException) -> None:
        """The reader's next read past the queued bytes raises ``exc``."""
        try:
            self._put(exc)
        except PipeClosed:
            pass

    def abandon(self, *, discard: bool = False) -> None:
        """The reader is done (or failed): a producer waiting in ``write`` gets ``PipeClosed``, or
        with ``discard`` goes on with its writes dropped (to see how the producer itself ends); a
        read still waiting (on another thread of the consumer's) raises ``PipeClosed``."""
        if discard:
            self._discarding = True
        else:
            self._abandoned.set()
        while True:  # free the queue so that a blocked put wakes up and sees the flag
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _get(self) -> object:
        while True:
            if self._abandoned.is_set() or self._discarding:  # a reader still waiting is let go
                raise PipeClosed("this pipe has been abandoned")
            try:
                return self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
