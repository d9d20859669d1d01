"""The append-only audit log: who did what to which repository, when, and from where."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .accounts import ROBOT_PREFIX, project_of
from .kv import KV, Record

LOG = "audit"


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(kv: KV, who: str | None, action: str, repository: str = "", source: str = "",
           when: float | None = None, **details: Any) -> Record:
    """Append one entry (``who`` None: anonymous); ``details`` holds tag, digest, size, reason..."""
    when = time.time() if when is None else when
    kind = "robot" if who and who.startswith(ROBOT_PREFIX) else "user" if who else "anonymous"
    entry: Record = {"time": iso(when), "who": who or "anonymous", "kind": kind,
                     "action": action, "repository": repository, "source": source}
    entry.update({k: v for k, v in details.items() if v is not None})
    kv.append(LOG, entry)
    return entry


def entries(kv: KV, project: str | None = None, since: str | None = None) -> Iterator[Record]:
    """The log in order, optionally of one project and from an ISO time on."""
    for entry in kv.entries(LOG):
        if project is not None and project_of(str(entry.get("repository", ""))) != project:
            continue
        if since is not None and str(entry.get("time", "")) < since:
            continue
        yield entry
