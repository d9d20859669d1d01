"""Registry error responses turned into ``RegistryError`` messages worded as Docker words them."""

from __future__ import annotations

import json

import httpx

from dockyard.errors import AuthenticationError, RegistryError

_BODYLESS = {
    401: ("unauthorized: authentication required", "UNAUTHORIZED"),
    403: ("denied: requested access to the resource is denied", "DENIED"),
    404: ("not found", ""),
}


def rate_limit_note(headers: httpx.Headers) -> str:
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


def error_from_response(response: httpx.Response, what: str) -> RegistryError:
    """A typed error for a failed response; ``what`` names the request (``"manifest for x:1"``)."""
    try:
        body = response.read()
    except httpx.HTTPError:
        body = b""
    status = response.status_code
    message, code = _describe_errors(body[:65536])
    if not message and status in _BODYLESS:  # HEAD answers carry no body: say what docker says
        message, code = _BODYLESS[status]
    if not message:
        reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)
        message = f"unexpected status {status} {reason}".rstrip()
    text = f"{what}: {message}" if what else message
    if status == 429 or code == "TOOMANYREQUESTS":
        note = rate_limit_note(response.headers)
        return RegistryError(f"{text} ({note})" if note else text, status=status, code=code)
    if status == 401 or code in ("UNAUTHORIZED", "DENIED"):
        return AuthenticationError(text, status=status, code=code)
    return RegistryError(text, status=status, code=code)
