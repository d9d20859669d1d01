"""Docker's json-file log: one JSON object a line, ``{"log": text, "stream": "stdout", "time": RFC 3339}``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from dockyard.executor.base import LineBuffer, OutputCallback
from dockyard.record import record


def now_rfc3339() -> str:
    """The current time as Docker writes it: UTC, nanoseconds, ``Z``."""
    ns = time.time_ns()
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of a time written by :func:`now_rfc3339` (or Docker)."""
    main, _, frac = text.rstrip("Z").partition(".")
    base = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


class LogWriter:
    """Appends a container's output to its json-file log, a line an entry (as Docker splits it)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.stdout = LineBuffer(self._emitter("stdout"))
        self.stderr = LineBuffer(self._emitter("stderr"))

    def _emitter(self, stream: str) -> OutputCallback:
        def emit(data: bytes) -> None:
            entry = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": now_rfc3339()}
            os.write(self._fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode())  # O_APPEND: whole
        return emit

    def close(self) -> None:
        self.stdout.flush()
        self.stderr.flush()
        os.close(self._fd)


@record(slots=True)
class LogEntry:
    text: str
    stream: str
    time: str


def read_entries(path: Path, offset: int = 0) -> tuple[list[LogEntry], int]:
    """The whole entries from byte ``offset`` on, and the offset after the last whole line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            raw = json.loads(line)
            out.append(LogEntry(str(raw["log"]), str(raw["stream"]), str(raw["time"])))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line (disk full?) is skipped, as Docker does
    return out, offset + end


def select(entries: list[LogEntry], *, since: float | None = None, until: float | None = None,
           tail: int | None = None) -> list[LogEntry]:
    """``--since``/``--until`` (epoch seconds) then ``--tail`` (the last N)."""
    chosen = [e for e in entries
              if (since is None or parse_rfc3339(e.time) >= since)
              and (until is None or parse_rfc3339(e.time) <= until)]
    if tail is not None:
        chosen = chosen[len(chosen) - tail:] if tail < len(chosen) else chosen
        if tail == 0:
            chosen = []
    return chosen


def follow(path: Path, offset: int, still_going: Callable[[], bool], poll: float = 0.1
           ) -> Iterator[LogEntry]:
    """Entries appended after ``offset`` until ``still_going()`` is false and nothing more came."""
    while True:
        going = still_going()
        entries, offset = read_entries(path, offset)
        yield from entries
        if not going:
            return
        if not entries:
            time.sleep(poll)

