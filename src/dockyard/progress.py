"""Progress events: what long operations report, for the CLI (or any caller) to render.

The library calls a ``ProgressSink`` with immutable events and never renders them itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["started", "running", "done", "cached", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class Event:
    """One step of an operation changed state or advanced.

    ``id`` names the step (a layer digest, a build vertex); ``total``/``current`` are bytes or items,
    0 when unknown. ``log`` carries a line of output (e.g. a RUN step's stdout).
    """

    id: str
    name: str
    status: Status = "running"
    current: int = 0
    total: int = 0
    log: bytes = b""
    stream: int = 1
    extra: dict[str, str] = field(default_factory=dict)


ProgressSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """A sink that ignores every event."""
