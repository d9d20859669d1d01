"""What the HTTP API tells (and asks) around its writes; the default says yes and records nothing.

``team.hooks.TeamHooks`` fills these in: policies refuse by raising ``ApiError``, the rest records
(audit, push times, pull counts) and notifies (webhooks)."""

from __future__ import annotations

from typing import Any

from dockyard.record import record


@record(frozen=True, slots=True)
class Actor:
    """Who made a request: the account (None: anonymous or auth off) and the client's address."""

    account: str | None
    source: str


class Hooks:
    """Called by ``app.Registry``; each method may raise ``ApiError`` to refuse the request."""

    async def upload(self, actor: Actor, repo: str, length: int | None) -> None:
        """Blob bytes are about to be accepted (``length`` when the client declared it)."""

    async def committing(self, actor: Actor, repo: str, digest: str, size: int) -> None:
        """A finished upload of ``size`` bytes is about to become blob ``digest`` of ``repo`` (refusing
        drops the upload: its bytes are never kept)."""

    async def login_failed(self, actor: Actor) -> None:
        """The token endpoint refused a user name and password (``actor.account``: the name tried)."""

    async def manifest(self, actor: Actor, repo: str, ref: str, digest: str, manifest: dict[str, Any],
                       size: int) -> None:
        """A valid manifest is about to be stored under ``ref``."""

    async def pushed(self, actor: Actor, repo: str, ref: str, digest: str, media_type: str,
                     size: int, manifest: dict[str, Any]) -> None:
        """A manifest was stored."""

    async def deleting(self, actor: Actor, repo: str, ref: str, tags: list[str]) -> None:
        """A tag or manifest (with these tags) is about to be deleted."""

    async def deleted(self, actor: Actor, repo: str, ref: str) -> None:
        """A tag or manifest was deleted."""

    async def pulled(self, actor: Actor, repo: str, ref: str, digest: str) -> None:
        """A manifest was served (GET)."""
