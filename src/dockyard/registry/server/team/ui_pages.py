"""The web UI's pages as HTML strings: server-rendered, escaped, readable on a phone, usable by keyboard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from .accounts import ROLES, Project, Robot
from .ui_assets import CSS, SCRIPT
from .ui_data import ManifestView, TagRow


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(stamp)) + " UTC" if stamp else "—"


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def repo_url(repo: str, *rest: str) -> str:
    return "/ui/repo/" + quote(repo) + ("/-/" + "/".join(quote(r, safe=":") for r in rest) if rest else "")


class Page:
    """One page: its layout, the signed-in user, and the form token of their session."""

    def __init__(self, user: str | None, csrf: str = "", admin: bool = False) -> None:
        self.user = user
        self.csrf = csrf
        self.admin = admin

    def form(self, action: str, body: str, confirm: str = "", cls: str = "inline") -> str:
        attr = f' data-confirm="{escape(confirm)}"' if confirm else ""
        return (f'<form class="{cls}" method="post" action="{escape(action)}"{attr}>'
                f'<input type="hidden" name="csrf" value="{escape(self.csrf)}">{body}</form>')

    def render(self, title: str, body: str, flash: str = "", error: bool = False) -> str:
        nav = ['<a href="/">Repositories</a>']
        if self.user:
            nav += ['<a href="/ui/projects">Projects</a>', '<a href="/ui/audit">Audit log</a>']
        if self.admin:
            nav += ['<a href="/ui/users">Users</a>', '<a href="/ui/replication">Replication</a>']
        account = (f'<span>{escape(self.user)}</span>' + self.form("/ui/logout", '<button>Sign out</button>')
                   if self.user else '<a href="/ui/login">Sign in</a>')
        kind = "flash error" if error else "flash"
        note = f'<p class="{kind}" role="status">{escape(flash)}</p>' if flash else ""
        return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{escape(title)} · dockyard registry</title><style>{CSS}</style></head><body>"
                '<a class="skip" href="#main">Skip to content</a>'
                f'<header><a href="/">dockyard registry</a><nav aria-label="Main">{"".join(nav)}</nav>'
                f'{account}</header><main id="main">{note}{body}</main>'
                f"<script>{SCRIPT}</script></body></html>")


def login(page: Page, next_url: str, error: str = "") -> str:
    body = ('<h1>Sign in</h1><div class="card"><form method="post" action="/ui/login">'
            f'<input type="hidden" name="next" value="{escape(next_url)}">'
            '<p><label for="username">User</label><br><input id="username" name="username" '
            'autocomplete="username" required autofocus></p>'
            '<p><label for="password">Password</label><br><input id="password" name="password" '
            'type="password" autocomplete="current-password" required></p>'
            '<p><button type="submit" id="sign-in">Sign in</button></p></form></div>')
    return page.render("Sign in", body, error, error=bool(error))


def repositories(page: Page, repos: list[str], query: str, number: int, pages: int) -> str:
    search = ('<form role="search" method="get" action="/"><label for="q">Search repositories</label> '
              f'<input id="q" name="q" value="{escape(query)}"> <button>Search</button></form>')
    items = "".join(f'<li><a href="{repo_url(r)}">{escape(r)}</a></li>' for r in repos)
    listing = f"<ul>{items}</ul>" if repos else '<p class="muted">No repositories you may see.</p>'

    def link(n: int, label: str) -> str:
        return f'<a href="/?{urlencode({"q": query, "page": n})}" rel="{label.lower()}">{label}</a>'

    pager = '<nav class="pager" aria-label="Pages">'
    if number > 1:
        pager += link(number - 1, "Prev")
    pager += f"<span>Page {number} of {pages}</span>"
    if number < pages:
        pager += link(number + 1, "Next")
    pager += "</nav>"
    return page.render("Repositories", f"<h1>Repositories</h1>{search}<div class=card>{listing}</div>{pager}")


def tags(page: Page, repo: str, rows: list[TagRow], may_delete: bool, flash: str = "",
         error: bool = False) -> str:
    head = ("<tr><th>Tag</th><th>Digest</th><th>Platforms</th><th>Size</th><th>Pushed</th><th>Pulls</th>"
            + ("<th>Actions</th>" if may_delete else "") + "</tr>")
    body = []
    for row in rows:
        actions = ""
        if may_delete:
            actions = "<td>" + page.form(repo_url(repo, "delete"),
                                         f'<input type="hidden" name="tag" value="{escape(row.tag)}">'
                                         f'<button class="danger" aria-label="Delete tag {escape(row.tag)}">'
                                         "Delete tag</button>",
                                         confirm=f"Delete tag {row.tag}?") + "</td>"
        platforms = "".join(f'<span class="badge">{escape(p)}</span>' for p in row.platforms) or "—"
        body.append(f'<tr><td data-label="Tag"><a href="{repo_url(repo, "manifest", row.tag)}">'
                    f"{escape(row.tag)}</a></td>"
                    f'<td data-label="Digest"><code title="{escape(row.digest)}">{short(row.digest)}'
                    f'</code></td><td data-label="Platforms">{platforms}</td>'
                    f'<td data-label="Size">{size_text(row.size)}</td>'
                    f'<td data-label="Pushed">{when(row.pushed)}</td><td data-label="Pulls">{row.pulls}</td>'
                    f"{actions}</tr>")
    table = (f'<table class="stack" id="tags"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
             if rows else '<p class="muted">No tags.</p>')
    return page.render(repo, f"<h1>{escape(repo)}</h1><h2>Tags</h2>{table}", flash, error)


def _kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    def text(v: Any) -> str:
        return json.dumps(v) if isinstance(v, (list, dict)) else str(v)

    rows = "".join(f"<tr><th scope=row>{escape(k)}</th><td><code>{escape(text(v))}</code></td></tr>"
                   for k, v in pairs if v not in (None, "", [], {}))
    return f"<table>{rows}</table>"


def manifest(page: Page, view: ManifestView, may_delete: bool) -> str:
    repo = view.repo
    parts = [f'<h1>{escape(repo)}:{escape(view.ref if ":" not in view.ref else short(view.ref))}</h1>',
             '<div class="card">' + _kv_table([("Digest", view.digest), ("Media type", view.media_type),
                                               ("Tags", ", ".join(view.tags)),
                                               ("Size", size_text(view.size))]) + "</div>"]
    if view.vulnerabilities is not None:
        counts = ", ".join(f"{n} {escape(k)}" for k, n in sorted(view.vulnerabilities.items())) \
            or "none found"
        parts.append(f'<h2>Vulnerabilities</h2><p class="card" id="vulnerabilities">{counts}</p>')
    if view.children:
        rows = "".join(
            f'<tr><td><a href="{repo_url(repo, "manifest", str(m.get("digest")))}">'
            f'<code>{short(str(m.get("digest")))}</code></a></td>'
            f'<td>{escape(str((m.get("platform") or {}).get("os", "")))}/'
            f'{escape(str((m.get("platform") or {}).get("architecture", "")))}</td>'
            f'<td>{size_text(int(m.get("size") or 0))}</td></tr>' for m in view.children)
        parts.append(f"<h2>Platforms</h2><table><tr><th>Manifest</th><th>Platform</th><th>Size</th></tr>"
                     f"{rows}</table>")
    if view.config:
        cfg = view.config.get("config") or {}
        parts.append("<h2>Config</h2><div class=card>" + _kv_table([
            ("Platform", f"{view.config.get('os', '')}/{view.config.get('architecture', '')}"),
            ("Created", view.config.get("created")), ("Entrypoint", cfg.get("Entrypoint")),
            ("Cmd", cfg.get("Cmd")), ("Env", cfg.get("Env")), ("WorkingDir", cfg.get("WorkingDir")),
            ("User", cfg.get("User")), ("Labels", cfg.get("Labels"))]) + "</div>")
    if view.layers:
        rows = "".join(f'<tr><td data-label="#">{i}</td><td data-label="Digest"><code>{short(layer.digest)}'
                       f'</code></td><td data-label="Size">{size_text(layer.size)}</td>'
                       f'<td data-label="Command"><code>{escape(layer.command)}</code></td></tr>'
                       for i, layer in enumerate(view.layers, 1))
        parts.append('<h2>Layers</h2><table class="stack" id="layers"><thead><tr><th>#</th><th>Digest</th>'
                     f"<th>Size</th><th>Command</th></tr></thead><tbody>{rows}</tbody></table>")
    if view.referrers:
        rows = "".join(
            f'<tr><td data-label="Type">{escape(str(r.get("artifactType", "")))}</td>'
            f'<td data-label="Digest"><a href="{repo_url(repo, "manifest", str(r["digest"]))}">'
            f'<code>{short(str(r["digest"]))}</code></a></td>'
            f'<td data-label="Size">{size_text(int(r.get("size") or 0))}</td></tr>' for r in view.referrers)
        parts.append('<h2>Referrers</h2><table class="stack" id="referrers"><thead><tr><th>Artifact type</th>'
                     f"<th>Digest</th><th>Size</th></tr></thead><tbody>{rows}</tbody></table>")
    else:
        parts.append('<h2>Referrers</h2><p class="muted">No signatures, SBOMs or attestations.</p>')
    if may_delete:
        parts.append("<h2>Delete</h2>" + page.form(
            repo_url(repo, "delete"), f'<input type="hidden" name="digest" value="{escape(view.digest)}">'
            '<button class="danger">Delete manifest and its tags</button>',
            confirm=f"Delete manifest {short(view.digest)} and every tag on it?"))
    parts.append(f"<h2>Manifest</h2><pre>{escape(view.raw)}</pre>")
    return page.render(f"{repo}@{short(view.digest)}", "".join(parts))


def audit(page: Page, entries: list[dict[str, Any]], project: str) -> str:
    rows = "".join(
        f'<tr><td data-label="Time">{escape(str(e.get("time", ""))[:19])}</td>'
        f'<td data-label="Who">{escape(str(e.get("who")))}</td><td data-label="Action">'
        f'{escape(str(e.get("action")))}</td>'
        f'<td data-label="Repository">{escape(str(e.get("repository")))}</td>'
        f'<td data-label="Reference"><code>{escape(str(e.get("tag") or short(str(e.get("digest") or ""))))}'
        f'</code></td><td data-label="Source">{escape(str(e.get("source", "")))}</td></tr>'
        for e in entries)
    search = ('<form method="get" action="/ui/audit"><label for="project">Project</label> '
              f'<input id="project" name="project" value="{escape(project)}"> <button>Filter</button></form>')
    table = ('<table class="stack" id="audit"><thead><tr><th>Time (UTC)</th><th>Who</th><th>Action</th>'
             f"<th>Repository</th><th>Reference</th><th>Source</th></tr></thead><tbody>{rows}</tbody></table>")
    shown = table if entries else "<p>Nothing yet.</p>"
    return page.render("Audit log", f"<h1>Audit log</h1>{search}{shown}")


def projects(page: Page, items: list[tuple[Project, str | None, int]]) -> str:
    rows = "".join(f'<tr><td data-label="Project"><a href="/ui/projects/{quote(p.name)}">{escape(p.name)}</a>'
                   f'</td><td data-label="Access">{"public" if p.public else "private"}</td>'
                   f'<td data-label="Your role">{escape(role or "—")}</td>'
                   f'<td data-label="Usage">{size_text(used)}'
                   f'{" of " + size_text(p.quota) if p.quota is not None else ""}</td></tr>'
                   for p, role, used in items)
    create = ""
    if page.admin:
        create = "<h2>New project</h2>" + page.form(
            "/ui/projects", '<label for="name">Name</label> <input id="name" name="name" required> '
            '<label><input type="checkbox" name="public" value="1"> public</label> <button>Create</button>')
    return page.render("Projects", '<h1>Projects</h1><table class="stack"><thead><tr><th>Project</th>'
                       "<th>Access</th><th>Your role</th><th>Usage</th></tr></thead>"
                       f"<tbody>{rows}</tbody></table>{create}")


def project(page: Page, p: Project, robots: list[Robot], manage: bool, flash: str = "",
            error: bool = False) -> str:
    base = f"/ui/projects/{quote(p.name)}"
    members = "".join(
        f'<tr><td data-label="User">{escape(u)}</td><td data-label="Role">{escape(r)}</td>'
        + (("<td>" + page.form(f"{base}/members/remove",
                               f'<input type="hidden" name="user" value="{escape(u)}">'
                               f'<button class="danger">Remove</button>', confirm=f"Remove {u}?") + "</td>")
           if manage else "") + "</tr>" for u, r in sorted(p.members.items()))
    parts = [f"<h1>Project {escape(p.name)}</h1>", '<div class="card">' + _kv_table([
        ("Access", "public" if p.public else "private"), ("Quota", size_text(p.quota) if p.quota else "none"),
        ("Immutable tags", ", ".join(p.immutable)), ("Retention", p.retention),
        ("Webhooks", ", ".join(str(h.get("url")) for h in p.webhooks))]) + "</div>",
        policy_form(page, p) if manage else "",
        f'<h2>Members</h2><table class="stack" id="members"><tbody>{members}</tbody></table>']
    if manage:
        options = "".join(f"<option>{r}</option>" for r in ROLES)
        parts.append(page.form(f"{base}/members", '<label for="member">User</label> '
                               '<input id="member" name="user" required> <label for="role">Role</label> '
                               f'<select id="role" name="role">{options}</select> '
                               "<button>Add member</button>",
                               cls="card"))
    bots = "".join(
        f'<tr><td data-label="Robot"><code>{escape(b.name)}</code></td>'
        f'<td data-label="Actions">{escape(",".join(sorted(b.actions)))}</td>'
        f'<td data-label="Expires">{when(b.expires)}</td>'
        + (("<td>" + page.form(f"{base}/robots/remove", f'<input type="hidden" name="name" '
                               f'value="{escape(b.name)}"><button class="danger">Remove</button>',
                               confirm=f"Remove {b.name}?") + "</td>") if manage else "") + "</tr>"
        for b in robots)
    parts.append(f'<h2>Robot accounts</h2><table class="stack" id="robots"><tbody>{bots}</tbody></table>')
    if manage:
        parts.append(page.form(f"{base}/robots", '<label for="robot">Name</label> '
                               '<input id="robot" name="name" required> '
                               '<label><input type="checkbox" name="push" value="1" checked> push</label> '
                               '<label for="days">Expires in days</label> '
                               '<input id="days" name="days" size="4" inputmode="numeric"> '
                               "<button>Create robot</button>", cls="card"))
    return page.render(f"Project {p.name}", "".join(parts), flash, error)


def message(page: Page, title: str, text: str) -> str:
    return page.render(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def replication(page: Page, rules: list[tuple[Any, dict[str, Any] | None]]) -> str:
    """Rules and how their last run went."""
    rows = []
    for rule, status in rules:
        if status is None:
            state = "never ran"
        else:
            state = f"{when(float(status['run_at']))}: {status['copied']} copied, {status['failed']} failed"
            if status.get("last_error"):
                state += f" ({status['last_error']})"
        rows.append(f'<tr><td data-label="Rule"><code>{escape(rule.id)}</code></td>'
                    f'<td data-label="Filter">{escape(rule.repositories)}:{escape(rule.tags)}</td>'
                    f'<td data-label="Target">{escape(rule.target)}</td>'
                    f'<td data-label="Trigger">{escape(rule.trigger)}</td>'
                    f'<td data-label="Last run">{escape(state)}</td></tr>')
    table = ('<table class="stack" id="replication"><thead><tr><th>Rule</th><th>Filter</th><th>Target</th>'
             f'<th>Trigger</th><th>Last run</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return page.render("Replication", "<h1>Replication</h1>" + (table if rules else "<p>No rules.</p>"))


def users(page: Page, found: dict[str, dict[str, Any]], flash: str = "", error: bool = False) -> str:
    """Registry users (administrators only): add, remove."""
    rows = "".join(
        f'<tr><td data-label="User">{escape(name)}</td>'
        f'<td data-label="Administrator">{"yes" if rec.get("admin") else "no"}</td>'
        f'<td data-label="Created">{when(rec.get("created"))}</td><td>'
        + page.form("/ui/users/remove", f'<input type="hidden" name="user" value="{escape(name)}">'
                    '<button class="danger">Remove</button>', confirm=f"Remove user {name}?")
        + "</td></tr>" for name, rec in found.items())
    add = page.form("/ui/users", '<label for="new-user">User</label> '
                    '<input id="new-user" name="user" required> '
                    '<label for="new-password">Password</label> <input id="new-password" name="password" '
                    'type="password" autocomplete="new-password" required minlength="8"> '
                    '<label><input type="checkbox" name="admin" value="1"> administrator</label> '
                    "<button>Add user</button>", cls="card")
    return page.render("Users", '<h1>Users</h1><table class="stack" id="users"><thead><tr><th>User</th>'
                       "<th>Administrator</th><th>Created</th><th></th></tr></thead>"
                       f"<tbody>{rows}</tbody></table>{add}", flash, error)


def policy_form(page: Page, p: Project) -> str:
    """A project's visibility, immutable tags and quota, for its admins."""
    public = " checked" if p.public else ""
    quota = str(p.quota) if p.quota is not None else ""
    return page.form(f"/ui/projects/{quote(p.name)}/policy",
                     f'<label><input type="checkbox" name="public" value="1"{public}> public</label> '
                     '<label for="immutable">Immutable tags</label> <input id="immutable" name="immutable" '
                     f'value="{escape(" ".join(p.immutable))}" placeholder="v* release-*"> '
                     '<label for="quota">Quota</label> <input id="quota" name="quota" '
                     f'value="{escape(quota)}" placeholder="10GB"> <button>Save policies</button>',
                     cls="card")
