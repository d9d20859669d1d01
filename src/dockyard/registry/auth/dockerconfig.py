"""Docker's client config (``$DOCKER_CONFIG/config.json``, default ``~/.docker``): read and write logins.

Credentials live in ``auths`` (base64 ``user:password``, or an ``identitytoken``), or in a
``docker-credential-<name>`` helper chosen per registry by ``credHelpers`` or for all by ``credsStore``.
Docker Hub's key is ``https://index.docker.io/v1/``, as docker writes it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import AuthenticationError, CorruptData
from dockyard.record import field, record
from dockyard.registry.auth.credentials import Credentials, CredentialsProvider

if TYPE_CHECKING:
    import subprocess

HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_TOKEN_USER = "<token>"  # what helpers store as the user name of an identity token


def config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG", "")
    return Path(env) if env else Path.home() / ".docker"


def server_key(registry: str) -> str:
    """The key docker files a registry's login under (Hub: ``https://index.docker.io/v1/``)."""
    host = _bare(registry)
    return HUB_KEY if host in _HUB_NAMES else host


def _bare(key: str) -> str:
    """``https://host:port/v1/`` -> ``host:port`` (lower-cased)."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix):]
    return host.split("/", 1)[0].lower()


@record(slots=True)
class DockerConfig:
    """A loaded ``config.json``; unknown keys are kept when it is saved again."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> DockerConfig:
        p = Path(path) if path is not None else config_dir() / "config.json"
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return cls(p, {})
        except OSError as exc:
            raise AuthenticationError(f"cannot read {p}: {exc.strerror}")
        if not raw.strip():
            return cls(p, {})
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise CorruptData(f"{p}: invalid JSON: {exc}")
        if not isinstance(doc, dict):
            raise CorruptData(f"{p}: expected a JSON object")
        return cls(p, doc)

    @property
    def auths(self) -> dict[str, Any]:
        auths = self.doc.get("auths")
        return auths if isinstance(auths, dict) else {}

    def helper_for(self, registry: str) -> str:
        """The credential helper suffix for ``registry`` (``credHelpers``, then ``credsStore``), or ``""``."""
        helpers = self.doc.get("credHelpers")
        if isinstance(helpers, dict):
            want = _bare(server_key(registry))
            for key, value in helpers.items():
                if _bare(str(key)) == want and isinstance(value, str) and value:
                    return value
        store = self.doc.get("credsStore")
        return store if isinstance(store, str) else ""

    def _auth_entry(self, registry: str) -> tuple[str, dict[str, Any]] | None:
        want = _bare(server_key(registry))
        for key, value in self.auths.items():
            if _bare(str(key)) == want and isinstance(value, dict):
                return str(key), value
        return None

    def get(self, registry: str) -> Credentials | None:
        """Stored credentials for ``registry``, or None."""
        helper = self.helper_for(registry)
        if helper:
            found = helper_get(helper, server_key(registry))
            if found is not None:
                return found
        entry = self._auth_entry(registry)
        if entry is None:
            return None
        value = entry[1]
        username, password = str(value.get("username", "") or ""), str(value.get("password", "") or "")
        encoded = value.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise CorruptData(f"{self.path}: invalid auth entry for {entry[0]}")
        token = str(value.get("identitytoken", "") or "")
        creds = Credentials(username, password, token)
        return creds if creds else None

    def store(self, registry: str, creds: Credentials) -> None:
        """Save a login (in the helper if one is configured, else base64 in ``auths``) and write the file."""
        key = server_key(registry)
        helper = self.helper_for(registry)
        auths = dict(self.auths)
        existing = self._auth_entry(registry)
        if existing is not None:
            del auths[existing[0]]
        if helper:
            helper_store(helper, key, creds)
            auths[key] = {}
        else:
            entry: dict[str, Any] = {}
            if creds.username or creds.password:
                entry["auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            if creds.identity_token:
                entry["identitytoken"] = creds.identity_token
            auths[key] = entry
        self.doc["auths"] = auths
        self.save()

    def erase(self, registry: str) -> bool:
        """Forget ``registry``'s login; False if there was none."""
        found = False
        helper = self.helper_for(registry)
        if helper:
            found = helper_erase(helper, server_key(registry))
        existing = self._auth_entry(registry)
        if existing is not None:
            auths = dict(self.auths)
            del auths[existing[0]]
            self.doc["auths"] = auths
            self.save()
            found = True
        return found

    def save(self) -> None:
        """Write atomically, readable by the owner only (it holds secrets)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(self.doc, indent="\t").encode() + b"\n"
        import tempfile  # not at import: a build reads the config, only a login writes it

        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def provider(self) -> CredentialsProvider:
        """A ``CredentialsProvider`` reading this config (helpers are asked lazily)."""
        return self.get


# -- docker-credential-* helpers (the protocol of docker/docker-credential-helpers) -----------------

def _run_helper(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # not at import: a helper is asked only for a registry it serves

    program = f"docker-credential-{helper}"
    try:
        return subprocess.run([program, action], input=stdin, capture_output=True, text=True, timeout=60,
                              check=False)
    except FileNotFoundError:
        raise AuthenticationError(f"error getting credentials - err: exec: \"{program}\": executable file "
                                  "not found in $PATH")
    except subprocess.TimeoutExpired:
        raise AuthenticationError(f"credential helper {program} {action}: timed out")


def _helper_failure(helper: str, action: str, proc: subprocess.CompletedProcess[str]) -> AuthenticationError:
    text = (proc.stdout.strip() or proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()[0]
    return AuthenticationError(f"credential helper docker-credential-{helper} {action}: {text}")


def helper_get(helper: str, server: str) -> Credentials | None:
    proc = _run_helper(helper, "get", server)
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise _helper_failure(helper, "get", proc)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AuthenticationError(f"credential helper docker-credential-{helper} get: invalid JSON")
    username, secret = str(doc.get("Username", "") or ""), str(doc.get("Secret", "") or "")
    if username == _TOKEN_USER:
        return Credentials("", "", secret)
    creds = Credentials(username, secret)
    return creds if creds else None


def helper_store(helper: str, server: str, creds: Credentials) -> None:
    if creds.identity_token:
        doc = {"ServerURL": server, "Username": _TOKEN_USER, "Secret": creds.identity_token}
    else:
        doc = {"ServerURL": server, "Username": creds.username, "Secret": creds.password}
    proc = _run_helper(helper, "store", json.dumps(doc))
    if proc.returncode != 0:
        raise _helper_failure(helper, "store", proc)


def helper_erase(helper: str, server: str) -> bool:
    proc = _run_helper(helper, "erase", server)
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return False
        raise _helper_failure(helper, "erase", proc)
    return True
