"""Access control: htpasswd Basic auth and a built-in token issuer (Docker's token specification).

Modes, chosen by ``Authorizer.create``:

- no htpasswd, no policy: everything is allowed;
- ``htpasswd`` only: HTTP Basic; any valid user may do anything (as distribution's htpasswd mode);
- ``policy`` (with users from ``htpasswd``): Bearer tokens from ``GET/POST /token``, ES256 JWTs (PyJWT;
  ``iss``, ``aud``, ``exp`` and ``nbf`` are checked); a token carries the granted ``access`` list,
  computed from the policy file. A request its token does
  not cover gets 401 with ``error="insufficient_scope"`` (a new token may help: anonymous, or the
  client asked for too little), or 403 ``DENIED`` when the policy refuses that user the action.

The policy file is JSON::

    {"anonymous_pull": false,          # or a list of repository globs anyone may pull
     "rules": [{"account": "alice", "repository": "alice/*", "actions": ["pull", "push", "delete"]},
               {"account": "*", "repository": "library/*", "actions": ["pull"]},
               {"account": "admin", "repository": "*", "actions": ["*"]}]}

``account`` ``"*"`` means any authenticated user; ``repository`` is an ``fnmatch`` glob; the
``registry:catalog:*`` scope is granted to accounts that have a rule with repository ``"*"``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import bcrypt
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

from .apierrors import ApiError

ACTIONS = ("pull", "push", "delete")


@record(frozen=True, slots=True)
class Access:
    """One scope item: ``repository:<name>:<actions>`` or ``registry:catalog:*``."""

    type: str
    name: str
    actions: frozenset[str]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scopes(values: list[str]) -> list[Access]:
    """Parse ``scope`` query values (each may hold several space-separated scopes)."""
    result: list[Access] = []
    for value in values:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name and actions:
                result.append(Access(kind, name, frozenset(a for a in actions.split(",") if a)))
    return result


class PasswordCache:
    """bcrypt checks that remember good (user, password, hash) triples by a salted hash.

    bcrypt is deliberately slow; with this each user pays once per process."""

    def __init__(self) -> None:
        self._salt = secrets.token_bytes(16)
        self._ok: set[bytes] = set()

    def check(self, user: str, password: str, hashed: bytes) -> bool:
        key = hashlib.sha256(self._salt + user.encode() + b"\0" + password.encode() + hashed).digest()
        if key in self._ok:
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            self._ok.add(key)
        return ok


class Credentials(Protocol):
    """Who may log in: an ``Htpasswd`` file, or the team directory."""

    def check(self, user: str, password: str) -> bool: ...


class Grants(Protocol):
    """What an account may do: a ``Policy`` file, or the team directory's roles."""

    def grant(self, account: str | None, wanted: Access) -> frozenset[str]: ...


class Htpasswd:
    """Users from an htpasswd file; only bcrypt entries (``htpasswd -B``) are accepted."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.users: dict[str, bytes] = {}
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"htpasswd file {self.path}: {exc.strerror or exc}") from exc
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise InvalidArgument(f"htpasswd file {self.path}, line {number}: not a bcrypt entry")
            self.users[user] = hashed.encode()
        self._checked = PasswordCache()

    def check(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        return hashed is not None and self._checked.check(user, password, hashed)


@record
class Policy:
    """Who may do what, from the policy file."""

    rules: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    anonymous: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InvalidArgument(f"token policy {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise InvalidArgument(f"token policy {path}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidArgument(f"token policy {path}: expected a JSON object")
        policy = cls()
        anonymous = data.get("anonymous_pull", False)
        if anonymous is True:
            policy.anonymous = ["*"]
        elif isinstance(anonymous, list):
            policy.anonymous = [str(glob) for glob in anonymous]
        for index, rule in enumerate(data.get("rules", [])):
            try:
                actions = frozenset(ACTIONS if "*" in rule["actions"] else rule["actions"])
                policy.rules.append((str(rule["account"]), str(rule["repository"]), actions))
            except (KeyError, TypeError) as exc:
                raise InvalidArgument(f"token policy {path}: rule {index}: needs account, repository "
                                      f"and actions") from exc
        return policy

    def grant(self, account: str | None, wanted: Access) -> frozenset[str]:
        """The subset of ``wanted.actions`` the account (None: anonymous) may have."""
        if wanted.type == "registry":
            if account is not None and wanted.name == "catalog" and any(
                    who in (account, "*") and repo == "*" for who, repo, _ in self.rules):
                return wanted.actions
            return frozenset()
        if wanted.type != "repository":
            return frozenset()
        allowed: set[str] = set()
        if any(fnmatch.fnmatchcase(wanted.name, glob) for glob in self.anonymous):
            allowed.add("pull")
        if account is not None:
            for who, glob, actions in self.rules:
                if who in (account, "*") and fnmatch.fnmatchcase(wanted.name, glob):
                    allowed |= actions
        return wanted.actions & frozenset(allowed)


class TokenIssuer:
    """Signs and verifies ES256 JWTs carrying Docker-style ``access`` claims (through PyJWT).

    ``clock`` stamps the claims of issued tokens; verification checks ``exp`` and ``nbf`` against
    the system time, as every other party verifying the token would."""

    def __init__(self, service: str, issuer: str = "dockyard-registry", ttl: int = 300,
                 key: ec.EllipticCurvePrivateKey | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.clock = clock
        self.key = key or ec.generate_private_key(ec.SECP256R1())

    def issue(self, subject: str, access: list[Access]) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 1,
            "exp": now + self.ttl, "jti": secrets.token_hex(16),
            "access": [{"type": a.type, "name": a.name, "actions": sorted(a.actions)} for a in access],
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "JWT"})

    def verify(self, token: str) -> dict[str, Any] | None:
        """The token's claims if we signed it, for this service, and it is valid now; else None."""
        try:
            claims = jwt.decode(token, self.key.public_key(), algorithms=["ES256"], audience=self.service,
                                issuer=self.issuer, options={"require": ["iss", "aud", "exp", "nbf"]})
        except jwt.InvalidTokenError:
            return None
        return claims if isinstance(claims, dict) else None


def basic_credentials(header: str) -> tuple[str, str] | None:
    """Decode ``Basic <base64(user:password)>``."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Authorizer:
    """Decides each request; raises ``ApiError`` (401 with a challenge, or 403) when refused."""

    def __init__(self, htpasswd: Credentials | None = None, policy: Grants | None = None,
                 issuer: TokenIssuer | None = None, realm: str = "") -> None:
        self.htpasswd = htpasswd
        self.policy = policy
        self.issuer = issuer
        self.realm = realm

    @property
    def enabled(self) -> bool:
        return self.htpasswd is not None or self.policy is not None

    @property
    def token_mode(self) -> bool:
        return self.policy is not None

    def _challenge(self, needed: list[Access], base_url: str, error: str = "") -> dict[str, str]:
        if not self.token_mode:
            return {"WWW-Authenticate": 'Basic realm="dockyard-registry"'}
        assert self.issuer is not None
        # Unless a realm is configured, point at our own /token as the client reached us.
        realm = self.realm or f"{base_url}/token"
        parts = [f'realm="{realm}"', f'service="{self.issuer.service}"']
        if needed:
            parts.append(f'scope="{" ".join(a.scope() for a in needed)}"')
        if error:
            parts.append(f'error="{error}"')
        return {"WWW-Authenticate": "Bearer " + ",".join(parts)}

    def check(self, authorization: str, needed: list[Access], base_url: str = "") -> str | None:
        """Allow or raise; returns the account name (None when anonymous or auth is off)."""
        if not self.enabled:
            return None
        if not self.token_mode:
            assert self.htpasswd is not None
            creds = basic_credentials(authorization)
            if creds is None or not self.htpasswd.check(*creds):
                raise ApiError(401, "UNAUTHORIZED", headers=self._challenge(needed, base_url))
            return creds[0]
        assert self.issuer is not None
        scheme, _, token = authorization.partition(" ")
        claims = self.issuer.verify(token.strip()) if scheme.lower() == "bearer" else None
        if claims is None:
            raise ApiError(401, "UNAUTHORIZED", headers=self._challenge(needed, base_url))
        granted: dict[tuple[str, str], set[str]] = {}
        for item in claims.get("access") or []:
            key = (str(item.get("type")), str(item.get("name")))
            granted.setdefault(key, set()).update(item.get("actions") or [])
        account = str(claims.get("sub") or "") or None
        for want in needed:
            have = granted.get((want.type, want.name), set())
            if want.actions <= have:
                continue
            assert self.policy is not None
            if account is not None and not want.actions <= self.policy.grant(account, want):
                # A new token would not help: this user may not do this at all.
                raise ApiError(403, "DENIED", f"{account} may not {','.join(sorted(want.actions))} "
                               f"{want.type} {want.name}")
            raise ApiError(401, "UNAUTHORIZED", "insufficient scope for " + want.scope(),
                           headers=self._challenge(needed, base_url, "insufficient_scope"))
        return account

    def token(self, authorization: str, scopes: list[str], service: str,
              form_user: str | None = None, form_password: str | None = None) -> dict[str, Any]:
        """The token endpoint: authenticate (or go anonymous) and grant what the policy allows."""
        assert self.issuer is not None and self.policy is not None
        if service and service != self.issuer.service:
            raise ApiError(400, "UNSUPPORTED", f"unknown service {service!r}")
        creds = basic_credentials(authorization) if authorization else None
        if creds is None and form_user is not None:
            creds = (form_user, form_password or "")
        account: str | None = None
        if creds is not None:
            if self.htpasswd is None or not self.htpasswd.check(*creds):
                raise ApiError(401, "UNAUTHORIZED", "invalid username or password",
                               headers={"WWW-Authenticate": 'Basic realm="dockyard-registry"'})
            account = creds[0]
        access = []
        for want in parse_scopes(scopes):
            actions = self.policy.grant(account, want)
            if actions:
                access.append(Access(want.type, want.name, actions))
        token = self.issuer.issue(account or "", access)
        return {"token": token, "access_token": token, "expires_in": self.issuer.ttl,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
