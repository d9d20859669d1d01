"""The web UI (``registry serve --team --ui``): aiohttp routes at ``/`` and ``/ui/...`` on the API's port.

Sign-in makes a session (a random cookie, ``HttpOnly`` and ``SameSite=Strict``; its hash is kept in the
team store, so replicas share sessions); every form carries a token derived from the session, checked
on POST. What a user sees and may do follows the same roles as the token service.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dockyard.errors import DockyardError
from dockyard.oci.digest import InvalidDigest, validate

from ..apierrors import ApiError
from ..app import TAG_RE, Registry, check_name, remove_manifest
from ..hooks import Actor
from . import audit as audit_log
from . import ui_pages as pages
from .accounts import ROBOT_PREFIX, project_of
from .service import Team
from .ui_data import manifest_view, tag_rows, visible_repositories
from .usage import parse_size, project_usage

COOKIE = "dockyard_session"
SESSIONS = "sessions"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _reference_ok(ref: str) -> bool:
    """A well-formed tag or digest (anything else never reaches storage paths)."""
    if ":" not in ref:
        return TAG_RE.fullmatch(ref) is not None
    try:
        validate(ref)
    except InvalidDigest:
        return False
    return True


class _Refused(Exception):
    """A form posted without a live session or with a stale form token."""


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                 "script-src 'unsafe-inline'; form-action 'self'; img-src 'self'"})


class UI:
    """Pages and form actions over a team registry."""

    def __init__(self, team: Team, registry: Registry, session_ttl: float = 12 * 3600) -> None:
        self.team = team
        self.registry = registry
        self.session_ttl = session_ttl

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.home)
        app.router.add_get("/ui/login", self.login_form)
        app.router.add_post("/ui/login", self.login)
        app.router.add_post("/ui/logout", self._guard(self.logout))
        app.router.add_get("/ui/repo/{path:.+}", self.repo_page)
        app.router.add_post("/ui/repo/{path:.+}", self._guard(self.repo_action))
        app.router.add_get("/ui/audit", self.audit)
        app.router.add_get("/ui/replication", self.replication)
        app.router.add_get("/ui/users", self.users)
        app.router.add_post("/ui/users", self._guard(self.user_add))
        app.router.add_post("/ui/users/remove", self._guard(self.user_remove))
        app.router.add_post("/ui/projects/{name}/policy", self._guard(self.project_policy))
        app.router.add_get("/ui/projects", self.projects)
        app.router.add_post("/ui/projects", self._guard(self.project_create))
        app.router.add_get("/ui/projects/{name}", self.project)
        app.router.add_post("/ui/projects/{name}/{what:members|robots}", self._guard(self.project_add))
        app.router.add_post("/ui/projects/{name}/{what:members|robots}/remove",
                            self._guard(self.project_remove))

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Refused:
                page = pages.Page(None)
                return _html(pages.message(page, "Refused", "The form has expired or you are signed out: "
                                           "reload the page and try again."), 403)

        return guarded

    # -- sessions ----------------------------------------------------------------------------------

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    async def _session(self, request: web.Request) -> tuple[str | None, str]:
        token = request.cookies.get(COOKIE, "")
        if not token:
            return None, ""
        rec = await asyncio.to_thread(self.team.kv.get, SESSIONS, self._key(token))
        if rec is None or float(rec["expires"]) < self.team.clock():
            return None, ""
        return str(rec["user"]), token

    async def _page(self, request: web.Request) -> pages.Page:
        user, token = await self._session(request)
        csrf = hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest() if token else ""
        admin = await asyncio.to_thread(self.team.directory.is_admin, user)
        return pages.Page(user, csrf, admin)

    async def _form(self, request: web.Request, page: pages.Page) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not page.user or not hmac.compare_digest(form.get("csrf", ""), page.csrf):
            raise _Refused()
        return form

    def _actor(self, request: web.Request, page: pages.Page) -> Actor:
        return Actor(page.user, request.remote or "")

    def _sweep_sessions(self) -> None:
        """Forget sessions past their time (done at each sign-in, so the store does not grow)."""
        now = self.team.clock()
        for key, rec in self.team.kv.items(SESSIONS).items():
            if float(rec.get("expires", 0)) < now:
                self.team.kv.delete(SESSIONS, key)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return _html(pages.login(pages.Page(None), request.query.get("next", "/")))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user, password = str(form.get("username", "")), str(form.get("password", ""))
        next_url = str(form.get("next", "/"))
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"  # only ever back into this site
        ok = not user.startswith(ROBOT_PREFIX) and await asyncio.to_thread(
            self.team.directory.check, user, password)
        if not ok:
            await asyncio.to_thread(self.team.audit, user or None, "login_failed", "", request.remote or "")
            return _html(pages.login(pages.Page(None), next_url, "Wrong user name or password."), 401)
        token = secrets.token_urlsafe(32)
        await asyncio.to_thread(self._sweep_sessions)
        await asyncio.to_thread(self.team.kv.put, SESSIONS, self._key(token),
                                {"user": user, "expires": self.team.clock() + self.session_ttl})
        response = _redirect(next_url)
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=request.scheme == "https", max_age=int(self.session_ttl))
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        await self._form(request, page)
        token = request.cookies.get(COOKIE, "")
        await asyncio.to_thread(self.team.kv.delete, SESSIONS, self._key(token))
        response = _redirect("/")
        response.del_cookie(COOKIE, path="/")
        return response

    # -- repositories ------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        query = request.query.get("q", "").strip()
        number = int(request.query.get("page", "1")) if request.query.get("page", "1").isdigit() else 1
        repos, pages_total = await asyncio.to_thread(visible_repositories, self.team.storage,
                                                     self.team.directory, page.user, query, number)
        number = min(max(number, 1), pages_total)
        return _html(pages.repositories(page, repos, query, number, pages_total))

    def _split(self, path: str) -> tuple[str, list[str]]:
        repo, _, rest = path.partition("/-/")
        check_name(repo)
        return repo, [p for p in rest.split("/") if p] if rest else []

    async def _may(self, user: str | None, repo: str) -> frozenset[str]:
        return await asyncio.to_thread(self.team.directory.allowed, user, repo)

    async def _denied(self, request: web.Request, page: pages.Page) -> web.StreamResponse:
        if page.user is None:
            return _redirect("/ui/login?next=" + quote(request.path_qs))
        return _html(pages.message(page, "Not found", "No such repository, or you may not see it."), 404)

    async def repo_page(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        try:
            repo, rest = self._split(request.match_info["path"])
        except ApiError:
            return _html(pages.message(page, "Not found", "Not a repository name."), 404)
        allowed = await self._may(page.user, repo)
        if "pull" not in allowed:
            return await self._denied(request, page)
        may_delete = "delete" in allowed and self.registry.settings.delete_enabled
        if len(rest) == 2 and rest[0] == "manifest":
            if not _reference_ok(rest[1]):
                return _html(pages.message(page, "Not found", "Not a tag or digest."), 404)
            view = await asyncio.to_thread(manifest_view, self.team.storage, repo, rest[1])
            if view is None:
                return _html(pages.message(page, "Not found", f"{repo} has no manifest {rest[1]}."), 404)
            return _html(pages.manifest(page, view, may_delete))
        if rest:
            return _html(pages.message(page, "Not found", "No such page."), 404)
        return await self._tags(page, repo, may_delete)

    async def _tags(self, page: pages.Page, repo: str, may_delete: bool, flash: str = "", error: bool = False,
                    status: int = 200) -> web.StreamResponse:
        rows = await asyncio.to_thread(tag_rows, self.team.storage, self.team.kv, repo)
        return _html(pages.tags(page, repo, rows, may_delete, flash, error), status)

    async def repo_action(self, request: web.Request) -> web.StreamResponse:
        """Delete a tag (``tag``) or a manifest (``digest``) as the signed-in user may."""
        page = await self._page(request)
        form = await self._form(request, page)
        try:
            repo, rest = self._split(request.match_info["path"])
        except ApiError:
            return _html(pages.message(page, "Not found", "Not a repository name."), 404)
        if rest != ["delete"]:
            return _html(pages.message(page, "Not found", "No such action."), 404)
        allowed = await self._may(page.user, repo)
        if "pull" not in allowed:
            return await self._denied(request, page)
        if "delete" not in allowed or not self.registry.settings.delete_enabled:
            return await self._tags(page, repo, False, f"{page.user} may not delete in {repo}.", True, 403)
        actor = self._actor(request, page)
        storage, hooks = self.team.storage, self.registry.hooks
        tag, digest = form.get("tag", ""), form.get("digest", "")
        try:
            if tag and TAG_RE.fullmatch(tag):
                await hooks.deleting(actor, repo, tag, [tag])
                if not await asyncio.to_thread(storage.tag_delete, repo, tag):
                    return await self._tags(page, repo, True, f"{repo} has no tag {tag}.", True, 404)
                await hooks.deleted(actor, repo, tag)
                done = f"Deleted tag {tag}."
            elif ":" in digest and _reference_ok(digest) and await asyncio.to_thread(
                    storage.manifest_media_type, repo, digest) is not None:
                tags = [t for t, d in (await asyncio.to_thread(storage.tags, repo)).items() if d == digest]
                await hooks.deleting(actor, repo, digest, tags)
                await asyncio.to_thread(remove_manifest, storage, repo, digest)
                await hooks.deleted(actor, repo, digest)
                done = f"Deleted manifest {pages.short(digest)}."
            else:
                return await self._tags(page, repo, True, "Nothing to delete.", True, 404)
        except ApiError as exc:
            return await self._tags(page, repo, True, exc.message, True, exc.status)
        return await self._tags(page, repo, True, done)

    # -- audit and projects ------------------------------------------------------------------------

    async def _managed(self, user: str | None) -> set[str] | None:
        """Projects whose audit and settings the user may see (None: all of them)."""
        d = self.team.directory
        if await asyncio.to_thread(d.is_admin, user):
            return None
        found = await asyncio.to_thread(d.projects)
        return {p.name for p in found if p.members.get(user or "") in ("maintainer", "admin")}

    async def audit(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        if page.user is None:
            return _redirect("/ui/login?next=/ui/audit")
        wanted = request.query.get("project", "").strip()
        managed = await self._managed(page.user)

        def read() -> list[dict[str, Any]]:
            entries = [e for e in audit_log.entries(self.team.kv, wanted or None)
                       if managed is None or project_of(str(e.get("repository", ""))) in managed]
            return entries[-200:][::-1]

        return _html(pages.audit(page, await asyncio.to_thread(read), wanted))

    async def replication(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        if page.user is None:
            return _redirect("/ui/login?next=/ui/replication")
        if not page.admin:
            return _html(pages.message(page, "Refused", "Replication is for registry administrators."), 403)
        replicator = self.team.replication

        def read() -> list[tuple[Any, dict[str, Any] | None]]:
            return [(rule, replicator.status(rule.id)) for rule in replicator.rules()]

        return _html(pages.replication(page, await asyncio.to_thread(read)))

    async def users(self, request: web.Request, flash: str = "", error: bool = False,
                    status: int = 200) -> web.StreamResponse:
        page = await self._page(request)
        if page.user is None:
            return _redirect("/ui/login?next=/ui/users")
        if not page.admin:
            return _html(pages.message(page, "Refused", "Users are managed by registry administrators."), 403)
        found = await asyncio.to_thread(self.team.directory.users)
        return _html(pages.users(page, found, flash, error), status)

    async def _admin_form(self, request: web.Request) -> tuple[pages.Page, dict[str, str]] | None:
        page = await self._page(request)
        form = await self._form(request, page)
        return (page, form) if page.admin else None

    async def user_add(self, request: web.Request) -> web.StreamResponse:
        checked = await self._admin_form(request)
        if checked is None:
            return _html(pages.message(pages.Page(None), "Refused", "Only administrators add users."), 403)
        page, form = checked
        name = form.get("user", "").strip()
        try:
            await asyncio.to_thread(self.team.directory.user_add, name, form.get("password", ""),
                                    bool(form.get("admin")))
        except DockyardError as exc:
            return await self.users(request, str(exc), True, 400)
        await asyncio.to_thread(self.team.audit, page.user, "user_add", "", request.remote or "", user=name)
        return await self.users(request, f"User {name} added.")

    async def user_remove(self, request: web.Request) -> web.StreamResponse:
        checked = await self._admin_form(request)
        if checked is None:
            return _html(pages.message(pages.Page(None), "Refused", "Only administrators remove users."), 403)
        page, form = checked
        name = form.get("user", "")
        if name == page.user:
            return await self.users(request, "You cannot remove yourself.", True, 400)
        try:
            await asyncio.to_thread(self.team.directory.user_rm, name)
        except DockyardError as exc:
            return await self.users(request, str(exc), True, 400)
        await asyncio.to_thread(self.team.audit, page.user, "user_remove", "", request.remote or "",
                                user=name)
        return await self.users(request, f"User {name} removed.")

    async def project_policy(self, request: web.Request) -> web.StreamResponse:
        checked = await self._manage(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        page, form, name = checked
        d = self.team.directory
        try:
            quota = form.get("quota", "").strip()
            size = parse_size(quota) if quota else None

            def save() -> None:
                p = d.need_project(name)
                p.public = bool(form.get("public"))
                p.immutable = form.get("immutable", "").split()
                p.quota = size
                d.save(p)

            await asyncio.to_thread(save)
        except DockyardError as exc:
            return await self.project(request, str(exc), True, 400)
        await asyncio.to_thread(self.team.audit, page.user, "project_policy", name, request.remote or "",
                                public=bool(form.get("public")), immutable=form.get("immutable", ""),
                                quota=size)
        return await self.project(request, "Policies saved.")

    async def projects(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        if page.user is None:
            return _redirect("/ui/login?next=/ui/projects")
        user = page.user

        def read() -> list[tuple[Any, str | None, int]]:
            d = self.team.directory
            return [(p, d.role(user, p.name), project_usage(self.team.storage, p.name)) for p in d.projects()
                    if page.admin or p.public or user in p.members]

        return _html(pages.projects(page, await asyncio.to_thread(read)))

    async def project_create(self, request: web.Request) -> web.StreamResponse:
        page = await self._page(request)
        form = await self._form(request, page)
        if not page.admin:
            return _html(pages.message(page, "Refused", "Only registry administrators create projects."), 403)
        name = form.get("name", "").strip()
        try:
            await asyncio.to_thread(self.team.directory.project_create, name, bool(form.get("public")))
        except DockyardError as exc:
            return _html(pages.message(page, "Refused", str(exc)), 400)
        await asyncio.to_thread(self.team.audit, page.user, "project_create", name, request.remote or "")
        return _redirect(f"/ui/projects/{quote(name)}")

    async def project(self, request: web.Request, flash: str = "", error: bool = False,
                      status: int = 200) -> web.StreamResponse:
        page = await self._page(request)
        if page.user is None:
            return _redirect("/ui/login?next=" + quote(request.path))
        d = self.team.directory
        p = await asyncio.to_thread(d.project, request.match_info["name"])
        if p is None or not (page.admin or p.public or page.user in p.members):
            return _html(pages.message(page, "Not found", "No such project, or you may not see it."), 404)
        manage = await asyncio.to_thread(d.may_manage, page.user, p.name)
        robots = await asyncio.to_thread(d.robots, p.name) if manage or page.user in p.members else []
        return _html(pages.project(page, p, robots, manage, flash, error), status)

    async def _manage(self, request: web.Request
                      ) -> tuple[pages.Page, dict[str, str], str] | web.StreamResponse:
        page = await self._page(request)
        form = await self._form(request, page)
        name = request.match_info["name"]
        if not await asyncio.to_thread(self.team.directory.may_manage, page.user, name):
            return await self.project(request, f"{page.user} may not manage project {name}.", True, 403)
        return page, form, name

    async def project_add(self, request: web.Request) -> web.StreamResponse:
        checked = await self._manage(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        page, form, name = checked
        d = self.team.directory
        try:
            if request.match_info["what"] == "members":
                user, role = form.get("user", "").strip(), form.get("role", "")
                await asyncio.to_thread(d.member_add, name, user, role)
                note = f"{user} is now {role} of {name}."
                await asyncio.to_thread(self.team.audit, page.user, "member_add", name, request.remote or "",
                                        member=user, role=role)
            else:
                days = form.get("days", "").strip()
                expires = float(days) * 86400 if days.replace(".", "", 1).isdigit() else None
                actions = ["pull", "push"] if form.get("push") else ["pull"]
                robot, secret = await asyncio.to_thread(d.robot_create, name, form.get("name", "").strip(),
                                                        actions, expires)
                note = f"Robot {robot.name} created. Its secret, shown only now: {secret}"
                await asyncio.to_thread(self.team.audit, page.user, "robot_create", name,
                                        request.remote or "", robot=robot.name)
        except DockyardError as exc:
            return await self.project(request, str(exc), True, 400)
        return await self.project(request, note)

    async def project_remove(self, request: web.Request) -> web.StreamResponse:
        checked = await self._manage(request)
        if isinstance(checked, web.StreamResponse):
            return checked
        page, form, name = checked
        d = self.team.directory
        try:
            if request.match_info["what"] == "members":
                await asyncio.to_thread(d.member_rm, name, form.get("user", ""))
                note = f"{form.get('user')} removed."
            else:
                robot = form.get("name", "")
                if not robot.startswith(f"{ROBOT_PREFIX}{name}+"):
                    raise DockyardError(f"{robot} is not a robot of {name}")
                await asyncio.to_thread(d.robot_rm, robot)
                note = f"{robot} removed."
        except DockyardError as exc:
            return await self.project(request, str(exc), True, 400)
        await asyncio.to_thread(self.team.audit, page.user, f"{request.match_info['what'][:-1]}_remove", name,
                                request.remote or "")
        return await self.project(request, note)
