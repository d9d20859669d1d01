"""Users, projects (with members and roles) and robot accounts, kept in a ``KV``.

A project is the first path component of a repository name (``team/app`` is in project ``team``).
Roles, each including the ones before: ``guest`` (pull), ``developer`` (push), ``maintainer`` (delete,
manage tags), ``admin`` (manage the project's members, robots and policies). A registry administrator
(``user add --admin``) may do everything everywhere. A public project lets anyone pull.

Robot accounts are named ``robot$<project>+<name>`` (as Harbor names them); they hold a random secret
(stored hashed), a set of actions in their one project, and an optional expiry time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import bcrypt

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.record import field, record

from ..auth import Access, PasswordCache
from .kv import KV, Record

ROLES = ("guest", "developer", "maintainer", "admin")
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "guest": frozenset({"pull"}),
    "developer": frozenset({"pull", "push"}),
    "maintainer": frozenset({"pull", "push", "delete"}),
    "admin": frozenset({"pull", "push", "delete"}),
}
ROBOT_ACTIONS = frozenset({"pull", "push", "delete"})
PROJECT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
ROBOT_PREFIX = "robot$"


def project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidArgument(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def robot_name(project: str, name: str) -> str:
    return f"{ROBOT_PREFIX}{project}+{name}"


@record
class Project:
    """A project's record: visibility, members and policies (``policies.py`` reads the policy fields)."""

    name: str
    public: bool = False
    members: dict[str, str] = field(default_factory=dict)  # user -> role
    immutable: list[str] = field(default_factory=list)  # tag globs that may not be overwritten
    quota: int | None = None  # bytes
    retention: dict[str, Any] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    created: float = 0.0

    @classmethod
    def from_record(cls, name: str, rec: Record) -> Project:
        return cls(name, bool(rec.get("public")), dict(rec.get("members") or {}),
                   list(rec.get("immutable") or []), rec.get("quota"), dict(rec.get("retention") or {}),
                   list(rec.get("webhooks") or []), float(rec.get("created") or 0))

    def record(self) -> Record:
        return {"public": self.public, "members": self.members, "immutable": self.immutable,
                "quota": self.quota, "retention": self.retention, "webhooks": self.webhooks,
                "created": self.created}


@record
class Robot:
    name: str
    project: str
    actions: frozenset[str]
    secret_hash: str
    expires: float | None
    created: float
    description: str = ""

    def record(self) -> Record:
        return {"project": self.project, "actions": sorted(self.actions), "secret": self.secret_hash,
                "expires": self.expires, "created": self.created, "description": self.description}


def _secret_hash(secret: str) -> str:
    # Robot secrets are 32 random bytes: a plain hash is enough (bcrypt guards guessable passwords).
    return hashlib.sha256(secret.encode()).hexdigest()


class Directory:
    """The accounts and projects of one registry; every read goes to the store, so CLI changes made
    while the server runs count at once."""

    def __init__(self, kv: KV, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.clock = clock
        self._checked = PasswordCache()
        self.rounds = 12  # bcrypt cost of new password hashes (tests lower it)

    # -- users -----------------------------------------------------------------------------------

    def user_add(self, name: str, password: str, admin: bool = False) -> None:
        if not USER_RE.fullmatch(name) or name.startswith(ROBOT_PREFIX):
            raise InvalidArgument(f"invalid user name {name!r}: letters, digits and . _ @ - (up to 64)")
        if self.kv.get("users", name) is not None:
            raise Conflict(f"user {name} already exists")
        self._set_user(name, password, admin)

    def _set_user(self, name: str, password: str, admin: bool) -> None:
        if len(password) < 8:
            raise InvalidArgument(f"password of {name}: at least 8 characters")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(self.rounds)).decode()
        self.kv.put("users", name, {"hash": hashed, "admin": admin, "created": self.clock()})

    def user_passwd(self, name: str, password: str) -> None:
        rec = self._user(name)
        self._set_user(name, password, bool(rec.get("admin")))

    def _user(self, name: str) -> Record:
        rec = self.kv.get("users", name)
        if rec is None:
            raise NotFound(f"no user {name}")
        return rec

    def user_rm(self, name: str) -> None:
        if not self.kv.delete("users", name):
            raise NotFound(f"no user {name}")
        for project in self.projects():
            if name in project.members:
                del project.members[name]
                self.save(project)

    def users(self) -> dict[str, Record]:
        return self.kv.items("users")

    def is_admin(self, name: str | None) -> bool:
        if name is None or name.startswith(ROBOT_PREFIX):
            return False
        rec = self.kv.get("users", name)
        return bool(rec and rec.get("admin"))

    def check(self, user: str, password: str) -> bool:
        """Whether the credentials are a user's password or a live robot's secret."""
        if user.startswith(ROBOT_PREFIX):
            robot = self.robot(user)
            return robot is not None and self._live(robot) and hmac.compare_digest(
                robot.secret_hash, _secret_hash(password))
        rec = self.kv.get("users", user)
        if rec is None:
            return False
        return self._checked.check(user, password, str(rec["hash"]).encode())

    # -- projects --------------------------------------------------------------------------------

    def project_create(self, name: str, public: bool = False) -> Project:
        if not PROJECT_RE.fullmatch(name) or len(name) > 255:
            raise InvalidArgument(f"invalid project name {name!r}: lower-case letters, digits and . _ -")
        if self.kv.get("projects", name) is not None:
            raise Conflict(f"project {name} already exists")
        project = Project(name, public=public, created=self.clock())
        self.save(project)
        return project

    def project(self, name: str) -> Project | None:
        rec = self.kv.get("projects", name)
        return Project.from_record(name, rec) if rec is not None else None

    def need_project(self, name: str) -> Project:
        project = self.project(name)
        if project is None:
            raise NotFound(f"no project {name}")
        return project

    def projects(self) -> list[Project]:
        return [Project.from_record(name, rec) for name, rec in self.kv.items("projects").items()]

    def save(self, project: Project) -> None:
        self.kv.put("projects", project.name, project.record())

    def project_rm(self, name: str) -> None:
        if not self.kv.delete("projects", name):
            raise NotFound(f"no project {name}")
        for robot in self.robots(name):
            self.kv.delete("robots", robot.name)

    def member_add(self, project_name: str, user: str, role: str) -> None:
        project = self.need_project(project_name)
        self._user(user)
        project.members[user] = check_role(role)
        self.save(project)

    def member_rm(self, project_name: str, user: str) -> None:
        project = self.need_project(project_name)
        if project.members.pop(user, None) is None:
            raise NotFound(f"{user} is not a member of {project_name}")
        self.save(project)

    def role(self, user: str | None, project_name: str) -> str | None:
        """The user's role in the project (``admin`` for registry administrators)."""
        if self.is_admin(user):
            return "admin"
        project = self.project(project_name)
        return project.members.get(user) if project is not None and user is not None else None

    # -- robots ----------------------------------------------------------------------------------

    def robot_create(self, project_name: str, name: str, actions: list[str],
                     expires_in: float | None = None, description: str = "") -> tuple[Robot, str]:
        """A new robot and its secret (shown once: only a hash of it is kept)."""
        self.need_project(project_name)
        if not USER_RE.fullmatch(name) or "+" in name:
            raise InvalidArgument(f"invalid robot name {name!r}: letters, digits and . _ @ -")
        wanted = frozenset(actions)
        if not wanted or not wanted <= ROBOT_ACTIONS:
            raise InvalidArgument(f"robot actions {','.join(sorted(wanted)) or '(none)'}: expected some of "
                                  f"{', '.join(sorted(ROBOT_ACTIONS))}")
        full = robot_name(project_name, name)
        if self.kv.get("robots", full) is not None:
            raise Conflict(f"robot {full} already exists")
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        robot = Robot(full, project_name, wanted, _secret_hash(secret),
                      now + expires_in if expires_in else None, now, description)
        self.kv.put("robots", full, robot.record())
        return robot, secret

    def robot(self, full_name: str) -> Robot | None:
        rec = self.kv.get("robots", full_name)
        if rec is None:
            return None
        return Robot(full_name, str(rec["project"]), frozenset(rec.get("actions") or []), str(rec["secret"]),
                     rec.get("expires"), float(rec.get("created") or 0), str(rec.get("description") or ""))

    def robots(self, project_name: str | None = None) -> list[Robot]:
        found = [self.robot(name) for name in self.kv.items("robots")]
        return [r for r in found if r is not None and project_name in (None, r.project)]

    def robot_rm(self, full_name: str) -> None:
        if not self.kv.delete("robots", full_name):
            raise NotFound(f"no robot {full_name}")

    def _live(self, robot: Robot) -> bool:
        return robot.expires is None or self.clock() < robot.expires

    # -- decisions -------------------------------------------------------------------------------

    def allowed(self, account: str | None, repository: str) -> frozenset[str]:
        """The actions ``account`` (None: anonymous) may take on a repository."""
        project_name = project_of(repository)
        if account is not None and account.startswith(ROBOT_PREFIX):
            robot = self.robot(account)
            if robot is None or not self._live(robot) or robot.project != project_name:
                return frozenset()
            return robot.actions
        if self.is_admin(account):
            return ROLE_ACTIONS["admin"]
        project = self.project(project_name)
        if project is None:
            return frozenset()
        actions: set[str] = {"pull"} if project.public else set()
        role = project.members.get(account) if account is not None else None
        if role is not None:
            actions |= ROLE_ACTIONS[role]
        return frozenset(actions)

    def grant(self, account: str | None, wanted: Access) -> frozenset[str]:
        """The token service's decision (``auth.Grants``): the catalog is for administrators."""
        if wanted.type == "registry":
            return wanted.actions if wanted.name == "catalog" and self.is_admin(account) else frozenset()
        if wanted.type != "repository":
            return frozenset()
        return wanted.actions & self.allowed(account, wanted.name)

    def may_manage(self, account: str | None, project_name: str) -> bool:
        """Whether the account may change the project's members, robots and policies."""
        return self.role(account, project_name) == "admin"
