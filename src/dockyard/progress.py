"""Progress events: what long operations report, for the CLI (or any caller) to render.

The library calls a ``ProgressSink`` with immutable events and never renders them itself; a sink
may be called from several threads (stages build side by side), so it must be thread-safe.

Two families of events:

**Layers and messages** (pull, push, load, save, unpack): ``Event``.
  ``id`` names a layer (a digest, short or full, or a blob path); ``name`` is docker's status text
  (``Pulling fs layer``, ``Downloading``, ``Pull complete``, ``Pushed``...), ``status`` says where
  it stands and ``current``/``total`` count bytes (0 when unknown). An ``Event`` with an empty
  ``id`` is a message line (``latest: Pulling from library/busybox``) whose text is ``name``.

**Build steps** (BuildKit calls them vertices), each naming its step by ``id``:
  - ``VertexStarted(id, name)``: the step began; ``name`` is its title (``[2/5] RUN make``). A step
    may start again after it completed (a new interval: its clock restarts).
  - ``VertexLog(id, data, stream)``: output of a started step, in order; ``data`` is raw bytes and a
    line may arrive split across events; ``stream`` 1 is stdout, 2 stderr.
  - ``VertexStatus(id, text, current, total, done)``: a sub-task of a started step (BuildKit's
    "status": ``transferring context:``, ``writing image sha256:...``); repeated with new byte
    counts, the last one for a ``text`` has ``done=True``.
  - ``VertexCompleted(id, name, outcome, error)``: the step ended, exactly once per interval;
    ``outcome`` is ``done``, ``cached`` (a cache hit), ``error`` (``error`` is its one-line
    message) or ``canceled`` (the build was interrupted, or another step failed, while it ran). A
    step with nothing to do (a cache hit, the build definition, a FROM of a local image) completes
    without a ``VertexStarted`` before it.
  Order: for one ``id``, ``VertexStarted`` comes before its logs and statuses and
  ``VertexCompleted`` after them; events of different steps interleave freely. Only the
  instructions BuildKit shows are steps: RUN, COPY, ADD, WORKDIR (not ``/``) and FROM an image,
  titled ``[stage 2/4] RUN ...``; ENV, ARG, LABEL, CMD... are not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from dockyard.record import record

Status = Literal["started", "running", "done", "cached", "error"]
Outcome = Literal["done", "cached", "error", "canceled"]


@record(frozen=True, slots=True)
class Event:
    """A layer of a pull/push/load/save changed state or advanced, or (empty ``id``) a message."""

    id: str
    name: str
    status: Status = "running"
    current: int = 0
    total: int = 0


@record(frozen=True, slots=True)
class VertexStarted:
    """A build step began (or began again)."""

    id: str
    name: str


@record(frozen=True, slots=True)
class VertexLog:
    """Output of a running build step."""

    id: str
    data: bytes
    stream: int = 1


@record(frozen=True, slots=True)
class VertexStatus:
    """A sub-task of a running build step advanced (``done`` on its last report)."""

    id: str
    text: str
    current: int = 0
    total: int = 0
    done: bool = False


@record(frozen=True, slots=True)
class VertexCompleted:
    """A build step ended: done, cached, failed (``error`` says why) or canceled."""

    id: str
    name: str
    outcome: Outcome
    error: str = ""


VertexEvent = VertexStarted | VertexLog | VertexStatus | VertexCompleted
ProgressEvent = Event | VertexEvent
ProgressSink = Callable[[ProgressEvent], None]


def discard(event: ProgressEvent) -> None:
    """A sink that ignores every event."""
