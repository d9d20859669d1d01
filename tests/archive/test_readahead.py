"""``ReadAhead``: the wrapped stream is read on another thread; bytes, errors and early stops."""

from __future__ import annotations

import io
import os
import threading

import pytest

from dockyard.archive.readahead import ReadAhead
from dockyard.errors import CorruptData


class Recording(io.BytesIO):
    """Remembers which threads read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.threads: set[int] = set()
        self.reads = 0

    def read(self, n: int | None = -1) -> bytes:
        self.threads.add(threading.get_ident())
        self.reads += 1
        return super().read(n)


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) + 17])
def test_bytes_come_through_unchanged_in_any_read_size(size: int) -> None:
    data = os.urandom(size)
    for step in (1, 7, 4096, 1 << 20, -1):
        src = Recording(data)
        out = bytearray()
        with ReadAhead(src, piece=5000) as r:
            while chunk := r.read(step):
                out += chunk
                if step < 0:
                    break
            assert r.read(10) == b""
        assert bytes(out) == data
        assert src.threads and threading.get_ident() not in src.threads


def test_an_error_of_the_stream_reaches_the_reader_after_the_good_bytes() -> None:
    class Failing(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            if not data:
                raise CorruptData("gzip stream truncated")
            return data

    with ReadAhead(Failing(b"x" * 10_000), piece=4096) as r:
        assert r.read(10_000) == b"x" * 4096
        got = len(r.read(10_000)) + len(r.read(10_000))
        with pytest.raises(CorruptData, match="truncated"):
            r.read(10)
    assert got == 10_000 - 4096


def test_closing_early_stops_the_reading_thread() -> None:
    src = Recording(bytes(64 << 20))
    r = ReadAhead(src, piece=1 << 16, depth=2)
    assert len(r.read(100)) == 100
    r.close()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
    assert src.reads < 16  # it stopped reading ahead after a few pieces, not at the end


# -- Pipe: a producer thread pushes, the consumer reads ------------------------------------------

def _produce(pipe: object, pieces: list[bytes], end: BaseException | None = None) -> threading.Thread:
    from dockyard.archive.readahead import Pipe

    assert isinstance(pipe, Pipe)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            for piece in pieces:
                pipe.write(piece)
        except BaseException as exc:
            outcome.append(exc)
            return
        if end is None:
            pipe.close()
        else:
            pipe.fail(end)

    thread = threading.Thread(target=run)
    thread.outcome = outcome  # type: ignore[attr-defined]
    thread.start()
    return thread


@pytest.mark.parametrize("step", [1, 1000, 1 << 20, -1])
def test_pipe_hands_over_every_byte_in_order(step: int) -> None:
    from dockyard.archive.readahead import Pipe

    pieces = [os.urandom(n) for n in (0, 1, 5000, 70000, 3)]
    pipe = Pipe(depth=2)
    thread = _produce(pipe, pieces)
    out = bytearray()
    while chunk := pipe.read(step):
        out += chunk
    thread.join()
    assert bytes(out) == b"".join(pieces) and pipe.read(10) == b""


def test_pipe_raises_the_producers_error_after_its_bytes() -> None:
    from dockyard.archive.readahead import Pipe

    pipe = Pipe()
    thread = _produce(pipe, [b"abc"], CorruptData("bad blob"))
    assert pipe.read(10) == b"abc"
    with pytest.raises(CorruptData, match="bad blob"):
        pipe.read(10)
    thread.join()


def test_abandoned_pipe_stops_a_blocked_producer_or_drops_its_writes() -> None:
    from dockyard.archive.readahead import Pipe, PipeClosed

    pipe = Pipe(depth=1)
    thread = _produce(pipe, [b"x"] * 50)
    assert pipe.read(1) == b"x"
    pipe.abandon()
    thread.join(5)
    assert not thread.is_alive() and isinstance(thread.outcome[0], PipeClosed)  # type: ignore[attr-defined]
    # with discard the producer runs to its end (its own outcome is what counts), reads are over
    pipe = Pipe(depth=1)
    thread = _produce(pipe, [b"y"] * 50)
    assert pipe.read(1) == b"y"
    pipe.abandon(discard=True)
    thread.join(5)
    assert not thread.is_alive() and thread.outcome == []  # type: ignore[attr-defined]
    with pytest.raises(PipeClosed):
        pipe.read(1)


def test_a_reader_waiting_on_an_abandoned_pipe_is_let_go() -> None:
    from dockyard.archive.readahead import Pipe, PipeClosed

    pipe = Pipe()
    with ReadAhead(pipe) as ahead:  # its thread waits in pipe.read: nothing is written
        pipe.abandon()
        with pytest.raises(PipeClosed):
            ahead.read(1)


def test_whole_pieces_are_handed_on_without_a_copy() -> None:
    # A consumer asking for at least a piece gets the very object read (a layer's bytes pass two
    # read-aheads on a pull: a copy in each would be two extra passes over every byte).
    from dockyard.archive.readahead import Pipe

    pieces = [os.urandom(1000) for _ in range(5)]

    class Source:
        def __init__(self) -> None:
            self.left = list(pieces)

        def read(self, n: int = -1) -> bytes:
            return self.left.pop(0) if self.left else b""

    with ReadAhead(Source(), piece=1000) as r:
        got = [r.read(4096) for _ in range(5)]
    assert all(a is b for a, b in zip(got, pieces, strict=True))
    pipe = Pipe()
    thread = _produce(pipe, pieces)
    got = [pipe.read(1000) for _ in range(5)]
    thread.join()
    assert all(a is b for a, b in zip(got, pieces, strict=True))
