"""Registry error responses turned into ``RegistryError`` messages worded as Docker words them."""

from __future__ import annotations

import errno
import json
import socket
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

from dockyard.errors import AuthenticationError, RegistryError
from dockyard.registry.client import httpclient

_BODYLESS = {
    401: ("unauthorized: authentication required", "UNAUTHORIZED"),
    403: ("denied: requested access to the resource is denied", "DENIED"),
    404: ("not found", ""),
}


def rate_limit_note(headers: httpclient.Headers) -> str:
    """Docker Hub's ``RateLimit-*`` headers as a short note, or ``""`` when absent."""
    limit = headers.get("ratelimit-limit", "")
    remaining = headers.get("ratelimit-remaining", "")
    if not limit and not remaining:
        return ""
    parts = []
    if limit:
        count, _, window = limit.partition(";w=")
        parts.append(f"limit {count.strip()}" + (f" per {window.strip()}s" if window else ""))
    if remaining:
        parts.append(f"remaining {remaining.partition(';')[0].strip()}")
    source = headers.get("docker-ratelimit-source", "")
    if source:
        parts.append(f"source {source}")
    return "rate limit: " + ", ".join(parts)


def _describe_errors(body: bytes) -> tuple[str, str]:
    """(message, first code) from an OCI error body ``{"errors": [{"code", "message"}]}``."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list) or not errors:
        # Token servers answer {"details": "..."} or {"error": "..."}.
        if isinstance(doc, dict):
            for key in ("details", "error_description", "error", "message"):
                if isinstance(doc.get(key), str) and doc[key]:
                    return str(doc[key]), ""
        return "", ""
    texts: list[str] = []
    first_code = ""
    for err in errors:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code", "") or "UNKNOWN")
        first_code = first_code or code
        # Docker prints the code lower-cased with spaces, then the message: "manifest unknown: ...".
        label = code.lower().replace("_", " ")
        message = str(err.get("message", "") or "")
        texts.append(f"{label}: {message}" if message else label)
    return "; ".join(texts), first_code


def error_from_response(response: httpclient.Response, what: str) -> RegistryError:
    """A typed error for a failed response; ``what`` names the request (``"manifest for x:1"``)."""
    try:
        body = response.read()
    except httpclient.TransportError:
        body = b""
    status = response.status_code
    message, code = _describe_errors(body[:65536])
    if not message and status in _BODYLESS:  # HEAD answers carry no body: say what docker says
        message, code = _BODYLESS[status]
    if not message:
        reason = response.reason_phrase or httpclient.reason_phrase(status)
        message = f"unexpected status {status} {reason}".rstrip()
    text = f"{what}: {message}" if what else message
    if status == 429 or code == "TOOMANYREQUESTS":
        note = rate_limit_note(response.headers)
        return RegistryError(f"{text} ({note})" if note else text, status=status, code=code)
    if status == 401 or code in ("UNAUTHORIZED", "DENIED"):
        return AuthenticationError(text, status=status, code=code)
    return RegistryError(text, status=status, code=code)


# -- transport failures (no HTTP answer at all) ---------------------------------------------------

_CONNECT_ERRNOS = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
                   errno.ENETUNREACH: "network is unreachable"}
# What OpenSSL reports when a TLS client hello is answered by a plain HTTP server.
_PLAIN_HTTP_SSL = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
PLAIN_HTTP_ANSWER = "http: server gave HTTP response to HTTPS client"


def transient(exc: httpclient.TransportError) -> bool:
    """Whether trying again can help: a dropped, reset or slow connection can pass; a refused,
    unroutable or unresolvable host, or a TLS mismatch, will answer the same a second later."""
    return not isinstance(exc, httpclient.ConnectError | httpclient.ConnectTimeout
                          | httpclient.UnsupportedProtocol)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def describe_transport(exc: BaseException, method: str = "", url: str = "") -> str:
    """A transport failure worded as Docker's Go client words it:
    ``Get "http://h:9/v2/": dial tcp h:9: connect: connection refused``."""
    reason = ""
    parsed = urlsplit(url) if url else None
    host = (parsed.hostname or "") if parsed else ""
    port = (parsed.port or (443 if parsed.scheme == "https" else 80)) if parsed else 0
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for cause in _causes(exc):
        ssl = sys.modules.get("ssl")  # no TLS was spoken if it was never loaded
        if ssl is not None and isinstance(cause, ssl.SSLError) and (cause.reason or "") in _PLAIN_HTTP_SSL:
            reason = PLAIN_HTTP_ANSWER
        elif isinstance(cause, socket.gaierror):
            reason = f"dial tcp: lookup {host}: no such host"
        elif isinstance(cause, OSError) and cause.errno in _CONNECT_ERRNOS:
            reason = f"dial tcp {address}: connect: {_CONNECT_ERRNOS[cause.errno]}"
        if reason:
            break
    if not reason:
        if isinstance(exc, httpclient.ConnectTimeout):
            reason = f"dial tcp {address}: i/o timeout"
        elif isinstance(exc, httpclient.TimeoutException):
            reason = f"timeout ({type(exc).__name__})"
        else:
            reason = (str(exc) or type(exc).__name__).splitlines()[0]
    return f'{method.title()} "{url}": {reason}' if method and url else reason
