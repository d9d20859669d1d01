"""Render ``dockyard.progress`` events the way docker and BuildKit show progress.

``make_renderer(mode, stream)`` returns a ``Renderer``: a ``ProgressSink`` (call it with events, from
any thread) with ``close()``; it is also a context manager. Modes:

- ``plain`` (CI, pipes, ``--progress=plain``): BuildKit's plain lines for build steps
  (``#5 [2/3] RUN make`` / ``#5 0.123 output`` / ``#5 DONE 0.4s`` / ``#5 CACHED`` / ``#5 ERROR: ...``)
  and docker pull/push lines for layers (``a1b2c3d4e5f6: Pull complete``; the byte-progress statuses
  in ``PROGRESS_STATUSES`` are not printed, as docker prints none off a terminal).
- ``tty``: a live display drawn with rich (imported only in this mode): ``[+] Building 3.2s (7/9)``
  and `` => [2/5] RUN ...  1.2s`` lines with the last lines of a running step's output, or docker's
  per-layer lines ``a1b2c3d4e5f6: Downloading [====>    ]  12.3MB/45.6MB``.
- ``quiet``: nothing. ``auto``: ``tty`` when the stream is a terminal (and TERM is not dumb), else ``plain``.

If a build step failed, ``close()`` ends with BuildKit's summary (``------`` / `` > [2/3] RUN make:`` /
its last output lines / ``------``), in every mode (``quiet`` too: it is the one place a failed step's
output then shows); printing the error itself stays the command's job. A canceled step shows as
``CANCELED`` and has no summary. What each event means is documented in ``dockyard.progress``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Literal, Protocol, Self

from dockyard.cli.format import ellipsis, human_size
from dockyard.progress import (
    Event,
    ProgressEvent,
    VertexCompleted,
    VertexEvent,
    VertexLog,
    VertexStarted,
    VertexStatus,
)
from dockyard.record import field, record

Mode = Literal["auto", "tty", "plain", "quiet"]
Clock = Callable[[], float]

# Layer statuses docker shows with a progress bar; off a terminal docker prints none of them.
PROGRESS_STATUSES = frozenset({"Downloading", "Extracting", "Pushing", "Loading layer", "Saving",
                               "Importing", "Uploading"})
_LOG_LINES = 6  # BuildKit shows this many of a running step's last output lines
_TAIL_LINES = 10  # and repeats this many in the summary of a failed step


def _keep_tail(v: _Vertex, line: str) -> None:
    """Keep an output line (``0.123 text``: BuildKit's summary shows no ``#N``) for the summary."""
    v.tail.append(line)
    del v.tail[:-_TAIL_LINES]


def error_summary(vertices: list[_Vertex]) -> list[str]:
    """BuildKit's closing summary of failed steps: ``------`` / `` > NAME:`` / output / ``------``."""
    lines: list[str] = []
    for v in vertices:
        if v.error and not v.canceled:
            lines += ["------", f" > {v.name}:", *v.tail, "------"]
    return lines


class Renderer(Protocol):
    """A progress sink that must be closed (it may own a live display)."""

    def __call__(self, event: ProgressEvent) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Renderer: ...

    def __exit__(self, *exc: object) -> None: ...


def make_renderer(mode: Mode | str = "auto", stream: IO[str] | None = None, *, phase: str = "Building",
                  clock: Clock = time.monotonic, width: int | None = None,
                  height: int | None = None) -> Renderer:
    """A renderer for ``mode`` writing to ``stream`` (default stderr).

    ``phase`` is the verb of the tty header (``[+] Building``); ``clock``, ``width`` and ``height``
    (the terminal's, detected by default) exist for tests.
    """
    import sys

    out = stream if stream is not None else sys.stderr
    if mode == "auto":
        isatty = getattr(out, "isatty", None)
        mode = "tty" if isatty is not None and isatty() and os.environ.get("TERM") != "dumb" else "plain"
    if mode == "quiet":
        return QuietRenderer(out)
    if mode == "plain":
        return PlainRenderer(out, clock=clock)
    if mode == "tty":
        return TtyRenderer(out, phase=phase, clock=clock, width=width, height=height)
    from dockyard.errors import InvalidArgument

    raise InvalidArgument(f"invalid progress mode {mode!r}: expected auto, tty, plain or quiet")


class _Base:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the output; later events are ignored."""


def _is_vertex(event: ProgressEvent) -> bool:
    return not isinstance(event, Event)


_HEX64 = re.compile(r"(?:^|[:/])([0-9a-f]{64})(?:$|[/.])")


def _layer_id(event_id: str) -> str:
    """docker shows a layer by its 12-character short ID (also for ``sha256:...`` or a blob path)."""
    m = _HEX64.search(event_id)
    return m.group(1)[:12] if m else event_id


def _is_byte_progress(event: Event) -> bool:
    return event.status == "running" and event.total > 0 and event.name in PROGRESS_STATUSES


def buildkit_bytes(n: int) -> str:
    """BuildKit's ``%.2f`` of a byte count: ``37B``, ``2.30MB`` (SI units)."""
    if n < 1000:
        return f"{n}B"
    value = float(n)
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.2f}{units[i]}"


def _log_time(seconds: float) -> str:
    """BuildKit's log-line timestamp: 3 decimals under 10 s, 2 under 100 s, else 1."""
    prec = 3 if seconds < 10 else 2 if seconds < 100 else 1
    return f"{max(seconds, 0.0):.{prec}f}"


@record
class _Sub:
    """A step's sub-task (BuildKit status)."""

    name: str
    started: float
    current: int = 0
    total: int = 0
    completed: float | None = None


@record
class _Vertex:
    index: int
    name: str
    started: float
    completed: float | None = None
    cached: bool = False
    canceled: bool = False
    error: str = ""
    partial: str = ""
    partial_shown: bool = False
    logs: list[str] = field(default_factory=list)  # tty: recent output lines
    tail: list[str] = field(default_factory=list)  # last output lines, for the error summary
    subs: dict[str, _Sub] = field(default_factory=dict)


class QuietRenderer(_Base):
    """Prints nothing while the build runs (``-q`` / ``--progress=quiet``); on ``close()``, a failed
    step's summary with its last output lines, which nothing else shows in this mode."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._out = stream
        self._lock = threading.Lock()
        self._vertices: dict[str, _Vertex] = {}
        self._closed = False

    def __call__(self, event: ProgressEvent) -> None:
        if self._out is None or not _is_vertex(event):
            return
        with self._lock:
            if isinstance(event, VertexStarted | VertexCompleted) and event.id not in self._vertices:
                self._vertices[event.id] = _Vertex(index=0, name=event.name, started=0.0)
            v = self._vertices.get(event.id)
            if v is None:
                return
            if isinstance(event, VertexLog):
                text = v.partial + event.data.decode("utf-8", "replace")
                *lines, v.partial = text.split("\n")
                for line in lines:
                    _keep_tail(v, line)
            elif isinstance(event, VertexCompleted):
                if v.partial:
                    _keep_tail(v, v.partial)
                    v.partial = ""
                v.canceled = event.outcome == "canceled"
                if event.outcome in ("error", "canceled"):
                    v.error = event.error or event.outcome

    def close(self) -> None:
        with self._lock:
            if self._closed or self._out is None:
                return
            self._closed = True
            for line in error_summary(list(self._vertices.values())):
                self._out.write(line + "\n")
            self._out.flush()


# --------------------------------------------------------------------------------------------------
# plain


class PlainRenderer(_Base):
    """BuildKit's ``--progress=plain`` lines and docker's non-terminal pull/push lines."""

    def __init__(self, stream: IO[str], *, clock: Clock = time.monotonic) -> None:
        self._out = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._vertices: dict[str, _Vertex] = {}
        self._current: str | None = None
        self._not_first = False
        self._last_status: dict[str, str] = {}
        self._closed = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if self._closed:
                return
            if isinstance(event, Event):
                self._layer(event)
            else:
                self._vertex(event)
            self._out.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._current is not None:
                self._flush_partial(self._vertices[self._current])
            for line in error_summary(list(self._vertices.values())):
                self._write(line)
            self._out.flush()

    def _write(self, line: str) -> None:
        self._out.write(line + "\n")

    # docker pull / push
    def _layer(self, event: Event) -> None:
        if self._current is not None:
            # A non-build line interrupts the current step, as BuildKit's "#N ..." does.
            self._leave_current()
        if not event.id:
            self._write(event.name)
            self._last_status.clear()
            return
        if _is_byte_progress(event):
            return
        lid = _layer_id(event.id)
        if self._last_status.get(lid) == event.name:
            return
        self._last_status[lid] = event.name
        self._write(f"{lid}: {event.name}")

    # BuildKit
    def _vertex(self, event: VertexEvent) -> None:
        now = self._clock()
        v = self._vertices.get(event.id)
        if v is None:
            if not isinstance(event, VertexStarted | VertexCompleted):
                return  # the contract: a step starts (or completes) before anything else of it
            v = _Vertex(index=len(self._vertices) + 1, name=event.name, started=now)
            self._vertices[event.id] = v
        elif isinstance(event, VertexStarted) and v.completed is not None:
            # A step that runs again (a new interval) starts its clock again.
            v.completed, v.started = None, now
        self._switch_to(event.id, v)
        if isinstance(event, VertexStatus):
            self._sub(v, event, now)
        elif isinstance(event, VertexLog):
            self._log(v, event.data.decode("utf-8", "replace"), now)
        elif isinstance(event, VertexCompleted):
            self._complete(v, event, now)

    def _switch_to(self, vid: str, v: _Vertex) -> None:
        if self._current == vid:
            return
        if self._current is not None:
            self._leave_current()
        if self._not_first:
            self._write("")
        self._not_first = True
        self._write(f"#{v.index} {v.name}")
        self._current = vid

    def _leave_current(self) -> None:
        assert self._current is not None
        old = self._vertices[self._current]
        self._flush_partial(old, final=False)
        self._write(f"#{old.index} ...")
        self._current = None

    def _flush_partial(self, v: _Vertex, *, final: bool = True) -> None:
        """Print an unfinished output line; unless ``final``, keep it so its rest reprints it whole."""
        if v.partial and not v.partial_shown:
            self._write(v.partial)
        v.partial_shown = bool(v.partial) and not final
        if final:
            if v.partial:
                _keep_tail(v, v.partial.removeprefix(f"#{v.index} "))
            v.partial = ""

    def _log(self, v: _Vertex, text: str, now: float) -> None:
        pieces = text.split("\n")
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if last and piece == "":
                break
            if i == 0 and v.partial:
                line = v.partial + piece
                v.partial, v.partial_shown = "", False
            else:
                line = f"#{v.index} {_log_time(now - v.started)} {piece}"
            if last:
                v.partial = line  # no newline yet: wait for the rest of the line
            else:
                self._write(line)
                _keep_tail(v, line.removeprefix(f"#{v.index} "))

    def _sub(self, v: _Vertex, event: VertexStatus, now: float) -> None:
        name = event.text
        s = v.subs.get(name)
        if s is None:
            s = v.subs[name] = _Sub(name, now)
        s.current, s.total = event.current, event.total
        if not event.done:
            return
        s.completed = now
        self._flush_partial(v)
        size = ""
        if s.total:
            size = f" {buildkit_bytes(s.current)} / {buildkit_bytes(s.total)}"
        elif s.current:
            size = f" {buildkit_bytes(s.current)}"
        took = now - s.started
        tm = f" {took:.1f}s" if took > 0.01 else ""
        self._write(f"#{v.index} {name}{size}{tm} done")

    def _complete(self, v: _Vertex, event: VertexCompleted, now: float) -> None:
        self._flush_partial(v)
        v.completed = now
        if event.outcome == "canceled":
            v.canceled, v.error = True, event.error or "canceled"
            self._write(f"#{v.index} CANCELED")
        elif event.outcome == "error":
            v.error = event.error or event.name
            self._write(f"#{v.index} ERROR: {v.error}")
        elif event.outcome == "cached":
            v.cached = True
            self._write(f"#{v.index} CACHED")
        else:
            self._write(f"#{v.index} DONE {now - v.started:.1f}s")
        self._current = None


# --------------------------------------------------------------------------------------------------
# tty


@record
class _Layer:
    id: str
    status: str = ""
    current: int = 0
    total: int = 0
    progress: bool = False


def _wrap_height(jobs: list[tuple[str, str, bool]], limit: int) -> list[tuple[str, str, bool]]:
    """BuildKit's live view keeps to the terminal: drop the oldest finished jobs first, then the oldest."""
    if limit <= 0:
        return []
    if len(jobs) <= limit:
        return jobs
    extra = len(jobs) - limit
    kept: list[tuple[str, str, bool]] = []
    for job in jobs:
        if extra and job[2]:
            extra -= 1
            continue
        kept.append(job)
    return kept[len(kept) - limit:]


def pull_progress_bar(current: int, total: int, width: int = 120) -> str:
    """docker's JSONProgress text: ``[=====>      ]  2.621MB/26.02MB`` (the bar only when width > 110)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current, 4):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = f"[{'=' * pct}>{' ' * (50 - pct)}] " if width > 110 else ""
    numbers = f"{human_size(current, 4):>8}/{human_size(total, 4)}"
    if current > total:
        numbers = f"{human_size(current, 4):>8}"
    return bar + numbers


class TtyRenderer(_Base):
    """A live BuildKit/docker-style display drawn with rich on a terminal."""

    def __init__(self, stream: IO[str], *, phase: str = "Building", clock: Clock = time.monotonic,
                 width: int | None = None, height: int | None = None,
                 refresh_per_second: float = 8.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self._clock = clock
        self._phase = phase
        self._lock = threading.RLock()
        self._start = clock()
        self._end: float | None = None
        self._vertices: dict[str, _Vertex] = {}
        self._order: list[str] = []
        self._layers: dict[str, _Layer] = {}
        self._closed = False
        self.console = Console(file=stream, force_terminal=True, width=width, height=height,
                               highlight=False, soft_wrap=False)
        self._live = Live(console=self.console, get_renderable=self._renderable, auto_refresh=True,
                          refresh_per_second=refresh_per_second, transient=False, redirect_stdout=False,
                          redirect_stderr=False, vertical_overflow="visible")
        # Its refresh thread starts with the first event, not here: a build forks a helper process
        # before its first event, and only while it has no other thread (builder.prehash).
        self._live_lock = threading.Lock()
        self._live_started = False

    def _start_live(self) -> None:
        with self._live_lock:
            if not self._live_started:
                self._live_started = True
                self._live.start()

    def __call__(self, event: ProgressEvent) -> None:
        if not self._live_started:
            self._start_live()  # outside self._lock: the refresh thread takes rich's lock, then ours
        above: list[str] = []
        with self._lock:
            if self._closed:
                return
            if not isinstance(event, Event):
                self._vertex(event)
            elif not event.id:
                # A message: printed above the live area; layers after it start a new block, as docker.
                above = [self._layer_line(layer) for layer in self._layers.values()]
                self._layers.clear()
                above.append(event.name)
            else:
                self._layer(event)
        if above:
            # Printed outside our lock: rich's refresh thread holds its own lock while it asks us
            # for the display, so holding ours here could deadlock.
            self._live.console.print("\n".join(above), markup=False, highlight=False)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._end = self._clock()
        self._start_live()
        self._live.refresh()
        self._live.stop()
        summary = error_summary(list(self._vertices.values()))
        if summary:
            self.console.print("\n".join(summary), markup=False, highlight=False)

    # state
    def _vertex(self, event: VertexEvent) -> None:
        now = self._clock()
        v = self._vertices.get(event.id)
        if v is None:
            if not isinstance(event, VertexStarted | VertexCompleted):
                return  # the contract: a step starts (or completes) before anything else of it
            v = _Vertex(index=len(self._vertices) + 1, name=event.name.replace("\t", " "), started=now)
            self._vertices[event.id] = v
            self._order.append(event.id)
        elif isinstance(event, VertexStarted) and v.completed is not None:
            v.completed, v.started = None, now
        if isinstance(event, VertexStatus):
            s = v.subs.get(event.text)
            if s is None:
                s = v.subs[event.text] = _Sub(event.text, now)
            s.current, s.total = event.current, event.total
            if event.done:
                s.completed = now
            return
        if isinstance(event, VertexLog):
            text = v.partial + event.data.decode("utf-8", "replace")
            lines = text.split("\n")
            v.partial = lines.pop()
            v.logs.extend(line.replace("\r", "") for line in lines)
            del v.logs[:-_LOG_LINES]
            for line in lines:
                _keep_tail(v, f"{_log_time(now - v.started)} {line}")
        if isinstance(event, VertexCompleted):
            if v.partial:
                _keep_tail(v, f"{_log_time(now - v.started)} {v.partial}")
                v.partial = ""
            v.completed = now
            v.cached = event.outcome == "cached"
            v.canceled = event.outcome == "canceled"
            if event.outcome == "error":
                v.error = event.error or event.name
            elif v.canceled:
                v.error = event.error or "canceled"

    def _layer(self, event: Event) -> None:
        lid = _layer_id(event.id)
        layer = self._layers.get(lid)
        if layer is None:
            layer = self._layers[lid] = _Layer(lid)
        layer.status = event.name
        layer.current, layer.total = event.current, event.total
        layer.progress = event.name in PROGRESS_STATUSES and event.status == "running"

    # drawing
    def _layer_line(self, layer: _Layer) -> str:
        width = self.console.width
        bar = pull_progress_bar(layer.current, layer.total, width) if layer.progress else ""
        return f"{layer.id}: {layer.status} {bar}".rstrip() if bar else f"{layer.id}: {layer.status}"

    def _renderable(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            parts: list[Any] = []
            if self._vertices:
                parts.append(self._build_view())
            if self._layers:
                parts.append(Text("\n".join(self._layer_line(layer) for layer in self._layers.values())))
            return Group(*parts)

    def _build_view(self) -> Any:
        from rich.text import Text

        now = self._end if self._end is not None else self._clock()
        width = self.console.width
        done = sum(1 for v in self._vertices.values() if v.completed is not None)
        total = len(self._vertices)
        finished = " FINISHED" if self._end is not None and done == total else ""
        # (line, style, completed) per job; output lines of running steps count as running.
        jobs: list[tuple[str, str, bool]] = []
        for vid in self._order:
            v = self._vertices[vid]
            name = v.name
            if v.error:
                name = ("CANCELED " if v.canceled else "ERROR ") + name
            if v.cached:
                name = "CACHED " + name
            end = v.completed if v.completed is not None else now
            style = ("yellow" if v.canceled else "red" if v.error else
                     "blue" if v.completed is not None else "")
            jobs.append((self._job_line(name, "", end - v.started, width), style, v.completed is not None))
            for s in v.subs.values():
                size = ""
                if s.total:
                    size = f"{buildkit_bytes(s.current)} / {buildkit_bytes(s.total)}"
                elif s.current:
                    size = buildkit_bytes(s.current)
                s_end = s.completed if s.completed is not None else now
                jobs.append((self._job_line("=> " + s.name, size, s_end - s.started, width),
                             "blue" if s.completed is not None else "", s.completed is not None))
            if v.completed is None:
                shown = [*v.logs, v.partial] if v.partial else v.logs
                for line in shown[-_LOG_LINES:]:
                    jobs.append((ellipsis(f" => => # {line}", max(width - 1, 10)) + "\n", "dim", False))
        if self._end is None:
            jobs = _wrap_height(jobs, self.console.height - 2)
        text = Text(no_wrap=True, overflow="crop")
        text.append(f"[+] {self._phase} {now - self._start:.1f}s ({done}/{total}){finished}\n")
        for line, style, _ in jobs:
            text.append(line, style=style)
        text.rstrip()
        return text

    @staticmethod
    def _job_line(name: str, status: str, seconds: float, width: int) -> str:
        """One BuildKit job line: `` => NAME [STATUS]`` left, `` 1.2s`` right-aligned to the width."""
        seconds = 0.0 if seconds < 0.05 else seconds
        timer = f" {seconds:3.1f}s\n"  # BuildKit counts the newline in the timer's width
        pfx = " => "
        left = width - len(pfx) - len(timer) - 1
        show_status = bool(status) and left + len(status) > 20
        if show_status:
            left -= len(status) + 1
        if left < 12:  # too narrow to show anything useful
            return ""
        out = pfx + name[:left]
        if show_status:
            out += " " + status
        return f"{out:<{width - len(timer) - 1}} {timer}"
