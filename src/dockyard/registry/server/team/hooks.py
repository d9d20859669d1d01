"""``TeamHooks``: the registry's write hooks filled in with project policies, records, audit and webhooks.

Store calls (SQLite, or bucket round trips) run on worker threads, never on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ..apierrors import ApiError
from ..hooks import Actor, Hooks
from .accounts import Project, project_of
from .artifacts import SCAN_TYPES
from .policies import check_delete, check_overwrite, quota_error
from .retention import MANIFESTS, PUSHES
from .service import Team
from .usage import project_holds, project_usage

T = TypeVar("T")


class TeamHooks(Hooks):
    def __init__(self, team: Team) -> None:
        self.team = team
        self._background: set[asyncio.Task[None]] = set()

    @staticmethod
    async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _project(self, repo: str) -> Project | None:
        return await self._run(self.team.directory.project, project_of(repo))

    def _later(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Record without making the client wait (a pull count, an audit line)."""
        task = asyncio.get_running_loop().create_task(self._run(fn, *args, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.team.webhooks.drain()

    async def _quota(self, actor: Actor, repo: str, project: Project, adding: int | None) -> None:
        if project.quota is None:
            return
        used = await self._run(project_usage, self.team.storage, project.name)
        error = quota_error(project, used, adding)
        if error is None:
            return
        await self._run(self.team.audit, actor.account, "quota_exceeded", repo, actor.source,
                        used=used, quota=project.quota, adding=adding)
        self.team.webhooks.notify(project, "quota_exceeded", {
            "repository": repo, "operator": actor.account, "used": used, "quota": project.quota,
            "adding": adding or 0})
        raise error

    async def upload(self, actor: Actor, repo: str, length: int | None) -> None:
        project = await self._project(repo)
        if project is not None:
            await self._quota(actor, repo, project, length)

    async def login_failed(self, actor: Actor) -> None:
        await self._run(self.team.audit, actor.account, "login_failed", "", actor.source)

    async def committing(self, actor: Actor, repo: str, digest: str, size: int) -> None:
        project = await self._project(repo)
        if project is None or project.quota is None:
            return
        if await self._run(project_holds, self.team.storage, project.name, digest):
            return
        await self._quota(actor, repo, project, size)

    async def manifest(self, actor: Actor, repo: str, ref: str, digest: str, manifest: dict[str, Any],
                       size: int) -> None:
        project = await self._project(repo)
        if project is None:
            return
        if ":" not in ref and project.immutable:
            current = await self._run(self.team.storage.tag_get, repo, ref)
            try:
                check_overwrite(project, repo, ref, current, digest)
            except ApiError as exc:
                await self._run(self.team.audit, actor.account, "push_refused", repo, actor.source,
                                tag=ref, digest=digest, reason=exc.message)
                raise
        await self._quota(actor, repo, project, size)

    async def pushed(self, actor: Actor, repo: str, ref: str, digest: str, media_type: str,
                     size: int, manifest: dict[str, Any]) -> None:
        team, now = self.team, self.team.clock()
        tag = None if ":" in ref else ref
        if tag is not None:
            await self._run(team.kv.put, PUSHES, f"{repo}:{tag}", {"digest": digest, "time": now,
                                                                   "by": actor.account})
        key = f"{repo}@{digest}"
        rec = await self._run(team.kv.get, MANIFESTS, key)
        if rec is None:
            await self._run(team.kv.put, MANIFESTS, key, {"time": now, "by": actor.account, "size": size,
                                                          "pulls": 0})
        await self._run(team.audit, actor.account, "push", repo, actor.source, tag=tag, digest=digest,
                        media_type=media_type)
        if tag is not None:
            self._later(team.replication.on_push, repo, tag)
        project = await self._project(repo)
        if project is not None:
            team.webhooks.notify(project, "push", {"repository": repo, "tag": tag, "digest": digest,
                                                   "media_type": media_type, "size": size,
                                                   "operator": actor.account})
            subject = manifest.get("subject")
            if manifest.get("artifactType") in SCAN_TYPES and isinstance(subject, dict):
                # A scan report attached to an image: the scan of that image is done.
                team.webhooks.notify(project, "scan_completed", {
                    "repository": repo, "digest": subject.get("digest"), "report": digest,
                    "artifact_type": manifest["artifactType"], "operator": actor.account})

    async def deleting(self, actor: Actor, repo: str, ref: str, tags: list[str]) -> None:
        project = await self._project(repo)
        if project is not None and project.immutable:
            try:
                check_delete(project, repo, tags)
            except ApiError as exc:
                await self._run(self.team.audit, actor.account, "delete_refused", repo, actor.source,
                                reference=ref, reason=exc.message)
                raise

    async def deleted(self, actor: Actor, repo: str, ref: str) -> None:
        tag, digest = (None, ref) if ":" in ref else (ref, None)
        await self._run(self.team.audit, actor.account, "delete", repo, actor.source, tag=tag, digest=digest)
        project = await self._project(repo)
        if project is not None:
            self.team.webhooks.notify(project, "delete", {"repository": repo, "tag": tag, "digest": digest,
                                                          "operator": actor.account})

    async def pulled(self, actor: Actor, repo: str, ref: str, digest: str) -> None:
        self._later(self._count_pull, f"{repo}@{digest}")

    def _count_pull(self, key: str) -> None:
        # Read-modify-write: replicas counting at the same instant may lose a count (it is a statistic).
        rec = self.team.kv.get(MANIFESTS, key) or {"time": self.team.clock()}
        rec["pulls"] = int(rec.get("pulls") or 0) + 1
        self.team.kv.put(MANIFESTS, key, rec)
