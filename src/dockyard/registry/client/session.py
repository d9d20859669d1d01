"""One registry endpoint: finding its URL (ping), answering auth challenges, retrying, mapping errors.

A ``Session`` is shared by every thread working on that endpoint: bearer tokens are cached per scope
set and reused until they expire, then fetched again (with the refresh token when there is one).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING

from dockyard.errors import AuthenticationError, RegistryError
from dockyard.record import record
from dockyard.registry.auth.credentials import Credentials
from dockyard.registry.client import httpclient
from dockyard.registry.client.challenge import Challenge, parse_challenges
from dockyard.registry.client.errors import (
    PLAIN_HTTP_ANSWER,
    describe_transport,
    error_from_response,
    transient,
)
from dockyard.registry.client.options import RegistryOptions, is_loopback

if TYPE_CHECKING:
    import ssl

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
# Request bodies are given as a factory so a retry can send them again from the start.
Body = Callable[[], "bytes | Iterable[bytes] | IO[bytes]"]
Sleep = Callable[[float], None]
Notice = Callable[[str], None]  # told each wait before a retry ("... retrying in 2 s")


@record(slots=True)
class _Token:
    value: str
    expires_at: float


def _scope_key(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))


class Session:
    """HTTP access to one registry (or mirror) with authentication and retries.

    ``host`` is ``name[:port]``; ``base_url`` pins the scheme (mirrors are given as URLs); otherwise the
    ping tries HTTPS, then plain HTTP if the host is insecure or loopback (as Docker's engine); with
    ``localhost_plain_http`` a loopback host is tried over plain HTTP first (as BuildKit's resolver).
    """

    def __init__(self, clients: _Clients, host: str, *, options: RegistryOptions,
                 credentials: Credentials | None = None, base_url: str = "",
                 sleep: Sleep = time.sleep, notice: Notice | None = None) -> None:
        self.host = host
        self.options = options
        self.credentials = credentials
        self._clients = clients
        self._base_url = base_url.rstrip("/")
        self._insecure = options.is_insecure(host)
        self._challenge: Challenge | None = None
        self._pinged = False
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._sleep = sleep
        self._notice = notice or _ignore
        self.token_fetches = 0  # how many tokens were fetched (tests check reuse)

    # -- endpoint discovery ---------------------------------------------------------------------

    @property
    def http(self) -> httpclient.Client:
        insecure = self._insecure and self._base_url.startswith("https://")
        return self._clients.get(insecure)

    @property
    def base_url(self) -> str:
        self.ping()
        return self._base_url

    @property
    def challenge(self) -> Challenge | None:
        self.ping()
        return self._challenge

    def ping(self) -> None:
        """GET ``/v2/`` once to learn the scheme and the auth challenge."""
        if self._pinged:
            return
        with self._lock:
            if self._pinged:
                return
            # The scheme a registry is expected to speak comes first (and is retried); the other is
            # the fallback, whose failure is reported only when the first found a server of the other.
            if self._base_url:
                candidates = [self._base_url]
            elif self.options.localhost_plain_http and is_loopback(self.host):
                candidates = [f"http://{self.host}", f"https://{self.host}"]  # BuildKit's order for these
            elif self._insecure:
                candidates = [f"https://{self.host}", f"http://{self.host}"]
            else:
                candidates = [f"https://{self.host}"]
            plain_first = candidates[0].startswith("http://") and len(candidates) > 1
            primary = candidates[0] if plain_first else candidates[-1]
            errors: dict[str, str] = {}
            for base in candidates:
                client = self._clients.get(self._insecure and base.startswith("https://"))
                def get(c: httpclient.Client = client, b: str = base) -> httpclient.Response:
                    return c.get(f"{b}/v2/")

                try:
                    # HTTPS failing on an insecure host means "speaks plain HTTP": no retries for it.
                    response = self._with_retries(get, idempotent=base == primary, what=f"GET {base}/v2/")
                except httpclient.TransportError as exc:
                    errors[base] = describe_transport(exc, "GET", f"{base}/v2/")
                    continue
                if base != candidates[-1] and _wants_tls(response):
                    primary = candidates[-1]  # a TLS server: its answer over HTTPS tells more
                    errors[base] = f"GET {base}/v2/: {response.status_code}: the server speaks HTTPS"
                    continue
                self._base_url = base
                if response.status_code == 401:
                    self._challenge = self._pick_challenge(response)
                elif response.status_code >= 400 and response.status_code != 404:
                    # Some registries (and mirrors) answer /v2/ oddly; the real requests will tell.
                    pass
                self._pinged = True
                return
            last = errors.get(primary) or next(iter(errors.values()), "no endpoint")
            if last.endswith(PLAIN_HTTP_ANSWER) and not self._insecure:
                last += (f" (to reach {self.host} over plain HTTP, add it to insecure-registries in the "
                         "dockyard config or /etc/docker/daemon.json)")
            raise RegistryError(f"cannot reach registry {self.host}: {last}")

    def _pick_challenge(self, response: httpclient.Response) -> Challenge | None:
        found = parse_challenges(", ".join(response.headers.get_list("www-authenticate")))
        for scheme in ("bearer", "basic"):
            for ch in found:
                if ch.scheme == scheme:
                    return ch
        return None

    # -- authentication ---------------------------------------------------------------------------

    def _auth_header(self, scopes: tuple[str, ...], *, fresh: bool = False) -> str:
        challenge = self._challenge
        if challenge is None:
            return ""
        if challenge.scheme == "basic":
            creds = self.credentials
            if not creds:
                return ""
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if challenge.scheme == "bearer":
            return "Bearer " + self.token(scopes, fresh=fresh)
        return ""

    def token(self, scopes: Iterable[str], *, fresh: bool = False) -> str:
        """A bearer token for ``scopes`` from the token service, reused until it expires."""
        key = _scope_key(scopes)
        with self._token_lock:
            cached = self._tokens.get(key)
            if cached and not fresh and cached.expires_at > time.monotonic():
                return cached.value
            try:
                token = self._fetch_token(key)
            except httpclient.TransportError as exc:
                realm = self._challenge.realm if self._challenge else ""
                raise RegistryError(f"{self.host}: token service: "
                                    f"{describe_transport(exc, 'GET', _redact(realm))}") from exc
            self._tokens[key] = token
            return token.value

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        challenge = self._challenge
        assert challenge is not None
        realm = challenge.realm
        if not realm:
            raise AuthenticationError(f"{self.host}: bearer challenge without a realm")
        creds = self.credentials
        service = challenge.service
        self.token_fetches += 1
        response: httpclient.Response | None = None
        if creds and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "dockyard", "service": service, "scope": " ".join(scopes)}
            response = self._with_retries(lambda: self.http.post(realm, data=form), idempotent=True)
            if response.status_code in (404, 405):
                response = None  # not an OAuth2 server: fall back to the GET flow
        if response is None:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if service:
                params.append(("service", service))
            params.extend(("scope", s) for s in scopes)
            auth = (creds.username, creds.password) if creds and creds.username else None
            response = self._with_retries(
                lambda: self.http.get(realm, params=params, auth=auth), idempotent=True)
        if response.status_code != 200:
            raise error_from_response(response, f"{self.host}: token request failed") \
                if response.status_code not in (401, 403) else AuthenticationError(
                    f"{self.host}: {_token_error(response)}", status=response.status_code)
        try:
            doc = response.json()
        except ValueError:
            raise AuthenticationError(f"{self.host}: token service {realm} answered with invalid JSON")
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"{self.host}: token service {realm} returned no token")
        expires_in = doc.get("expires_in")
        # The token spec says 60 s when unspecified; refresh 5 s early so no request carries a stale one.
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        return _Token(value, time.monotonic() + max(lifetime - 5.0, 1.0))

    def login(self) -> Credentials | None:
        """Check this session's credentials; returns what to store (a refresh token if one was issued).

        Registries without auth accept anything, as docker does. A bearer registry's token service is
        asked for an offline token, which replaces the password when it comes back.
        """
        self.ping()
        creds = self.credentials
        challenge = self._challenge
        if challenge is None:
            return creds
        if challenge.scheme == "basic":
            headers = {"Authorization": self._auth_header(())}
            response = self._with_retries(lambda: self.http.get(f"{self._base_url}/v2/", headers=headers),
                                          idempotent=True)
            if response.status_code != 200:
                raise error_from_response(response, "")
            return creds
        if challenge.scheme != "bearer" or not challenge.realm:
            raise AuthenticationError(f"{self.host}: unsupported authentication scheme {challenge.scheme!r}")
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("service", challenge.service), ("client_id", "dockyard"), ("offline_token", "true")]
        auth = None
        if creds and creds.username:
            params.append(("account", creds.username))
            auth = (creds.username, creds.password)
        response = self._with_retries(lambda: self.http.get(challenge.realm, params=params, auth=auth),
                                      idempotent=True)
        if response.status_code != 200:
            raise AuthenticationError(_token_error(response), status=response.status_code)
        try:
            refresh = response.json().get("refresh_token")
        except (ValueError, AttributeError):
            refresh = None
        if isinstance(refresh, str) and refresh and creds:
            return Credentials(creds.username, "", refresh)
        return creds

    # -- requests ---------------------------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, scopes: Iterable[str] = (),
                headers: dict[str, str] | None = None, body: Body | None = None,
                params: dict[str, str] | None = None, stream: bool = False,
                follow_redirects: bool = False, retry: bool = True) -> httpclient.Response:
        """Send a request with auth and retries; returns the final response whatever its status.

        A 401 that names a scope (or says the token is stale) gets one fresh token and one more try.
        ``stream=True`` returns an unread response that the caller must close.
        """
        self.ping()
        key = _scope_key(scopes)
        url = path_or_url if "://" in path_or_url else f"{self._base_url}{path_or_url}"
        fresh = False
        for attempt in range(2):
            auth = self._auth_header(key, fresh=fresh)
            hdrs = dict(headers or {})
            if auth:
                hdrs["Authorization"] = auth

            def send(hdrs: dict[str, str] = hdrs) -> httpclient.Response:
                content = body() if body is not None else None
                req = self.http.build_request(method, url, headers=hdrs, params=params, content=content)
                return self.http.send(req, stream=stream, follow_redirects=follow_redirects)

            try:
                response = self._with_retries(send, idempotent=retry, what=f"{method} {_redact(url)}")
            except httpclient.TransportError as exc:
                # The cause stays attached: uploads restart on it, everyone else sees one line.
                raise RegistryError(describe_transport(exc, method, _redact(url))) from exc
            if response.status_code != 401 or attempt == 1:
                return response
            challenges = parse_challenges(", ".join(response.headers.get_list("www-authenticate")))
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            if self._challenge is None and challenges:
                self._challenge = self._pick_challenge(response)
            elif bearer is not None and self._challenge is not None and self._challenge.scheme == "bearer":
                extra = bearer.params.get("scope", "")
                if extra:
                    key = _scope_key((*key, *extra.split(" ")))
            else:
                return response
            response.close()
            fresh = True
        raise AssertionError("unreachable")

    def pause(self, delay: float, why: str) -> None:
        """Wait ``delay`` seconds before a retry, saying so first (``why`` names what failed)."""
        self._notice(f"{why}; retrying in {delay:.3g} s")
        self._sleep(delay)

    def _with_retries(self, send: Callable[[], httpclient.Response], *, idempotent: bool,
                      what: str = "request") -> httpclient.Response:
        """Call ``send``; on 429/5xx or a transport error that can pass, back off and try again (if
        allowed). A refused or unreachable host fails at once."""
        attempts = self.options.retries + 1 if idempotent else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = send()
            except httpclient.TransportError as exc:
                if last or not transient(exc):
                    raise
                self.pause(self.options.backoff * (2 ** attempt), f"{what}: {describe_transport(exc)}")
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            delay = self.options.backoff * (2 ** attempt)
            retry_after = response.headers.get("retry-after", "")
            if response.status_code == 429:
                if retry_after.strip().isdigit():
                    delay = float(retry_after)
                elif response.headers.get("ratelimit-remaining", "").startswith("0"):
                    return response  # a quota, not a burst: waiting seconds will not help
                if delay > MAX_RETRY_AFTER:
                    return response
            response.close()
            self.pause(delay, f"{what}: status {response.status_code}")
        raise AssertionError("unreachable")


def _token_error(response: httpclient.Response) -> str:
    err = error_from_response(response, "")
    text = str(err)
    if text.startswith("unexpected status"):
        return "unauthorized: incorrect username or password"
    return text


def _ignore(text: str) -> None:
    pass


def _redact(url: str) -> str:
    """A URL without its query (upload URLs carry state tokens)."""
    return url.split("?", 1)[0]


def _wants_tls(response: httpclient.Response) -> bool:
    """Whether a plain-HTTP answer is a TLS server's refusal of plain HTTP (Go's net/http answers 400
    "Client sent an HTTP request to an HTTPS server."; nginx 400 "The plain HTTP request was sent to
    HTTPS port")."""
    if response.status_code != 400:
        return False
    text = response.text.lower()
    return "http request to an https server" in text or "plain http request was sent to https port" in text


def _verifying() -> ssl.SSLContext:
    """The verifying TLS context, made when the first TLS connection needs it (``ssl`` is not loaded
    by a command that only speaks plain HTTP)."""
    from dockyard.registry.client.trust import verifying_context

    return verifying_context()


class _Clients:
    """The two shared connection pools: verifying TLS, and not (for insecure registries)."""

    def __init__(self, options: RegistryOptions, transport: httpclient.Transport | None = None) -> None:
        self._options = options
        self._transport = transport
        self._clients: dict[bool, httpclient.Client] = {}
        self._lock = threading.Lock()

    def get(self, insecure: bool) -> httpclient.Client:
        with self._lock:
            client = self._clients.get(insecure)
            if client is None:
                opts = self._options
                client = httpclient.Client(
                    verify=None if insecure else _verifying,
                    timeout=opts.timeout, connect_timeout=opts.connect_timeout,
                    max_idle=opts.max_connections, headers={"User-Agent": "dockyard/0.1"},
                    transport=self._transport)
                self._clients[insecure] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
