"""Webhooks: signed JSON callbacks on push, delete, quota refusals and attached scan reports, retried
with backoff.

Each project keeps a list of hooks (``url``, ``secret``, ``events``). A delivery is a POST of the event
as JSON with ``X-Dockyard-Signature: sha256=<hex HMAC-SHA256 of the body keyed by the secret>`` and
``X-Dockyard-Event``; anything but a 2xx answer is retried after 1, 2, 4, ... times ``backoff`` seconds,
up to ``attempts`` tries. Every try is appended to the ``deliveries`` log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from dockyard.errors import InvalidArgument, NotFound

from .accounts import Directory, Project
from .audit import iso
from .kv import KV, Record

EVENTS = ("push", "delete", "quota_exceeded", "scan_completed")
LOG = "deliveries"
log = logging.getLogger("dockyard.registry")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def add_hook(directory: Directory, project_name: str, url: str, events: list[str],
             secret: str | None = None) -> Record:
    """Register a hook on a project; returns it with its secret (generated unless given)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"webhook URL {url!r}: expected an http:// or https:// URL")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise InvalidArgument(f"unknown webhook events {', '.join(unknown)}: "
                              f"expected some of {', '.join(EVENTS)}")
    project = directory.need_project(project_name)
    hook: Record = {"id": uuid.uuid4().hex[:12], "url": url, "events": list(events or EVENTS),
                    "secret": secret or secrets.token_urlsafe(24)}
    project.webhooks.append(hook)
    directory.save(project)
    return hook


def remove_hook(directory: Directory, project_name: str, hook_id: str) -> None:
    project = directory.need_project(project_name)
    kept = [h for h in project.webhooks if h.get("id") != hook_id]
    if len(kept) == len(project.webhooks):
        raise NotFound(f"project {project_name} has no webhook {hook_id}")
    project.webhooks = kept
    directory.save(project)


class Dispatcher:
    """Sends events to the hooks of a project in the background (on the server's event loop)."""

    def __init__(self, kv: KV, backoff: float = 1.0, attempts: int = 5, timeout: float = 10,
                 clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.backoff = backoff
        self.attempts = attempts
        self.timeout = timeout
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[bool]] = set()

    def notify(self, project: Project, event: str, payload: dict[str, Any]) -> int:
        """Start delivering ``event`` to every hook of the project that wants it; returns how many."""
        started = 0
        for hook in project.webhooks:
            if event not in hook.get("events", EVENTS):
                continue
            body = {"id": uuid.uuid4().hex, "type": event, "occurred_at": iso(self.clock()),
                    "project": project.name, **payload}
            task = asyncio.get_running_loop().create_task(self.deliver(hook, event, body))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            started += 1
        return started

    async def deliver(self, hook: Record, event: str, payload: dict[str, Any]) -> bool:
        """POST until a 2xx answer or out of tries; each try goes to the delivery log."""
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "dockyard-registry-webhook",
                   "X-Dockyard-Event": event, "X-Dockyard-Delivery": str(payload["id"]),
                   "X-Dockyard-Signature": sign(str(hook["secret"]), body)}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        for attempt in range(1, self.attempts + 1):
            status, error = 0, ""
            try:
                async with self._session.post(str(hook["url"]), data=body, headers=headers) as resp:
                    status = resp.status
                    await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = str(exc) or type(exc).__name__
            ok = 200 <= status < 300
            entry = {"time": iso(self.clock()), "hook": hook.get("id"), "url": hook["url"], "event": event,
                     "delivery": payload["id"], "attempt": attempt, "status": status, "ok": ok}
            if error:
                entry["error"] = error
            await asyncio.to_thread(self.kv.append, LOG, entry)
            if ok:
                return True
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning("webhook %s: %s not delivered after %d tries", hook["url"], event, self.attempts)
        return False

    async def drain(self) -> None:
        """Wait for the deliveries in flight (tests; shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
