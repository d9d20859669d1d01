"""Errors the registry answers with: the distribution spec's codes as HTTP responses."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

_DEFAULT_MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "TAG_INVALID": "manifest tag did not match URI",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "RANGE_INVALID": "invalid content range",
}


class ApiError(Exception):
    """One spec error: HTTP status, code, message and optional detail and extra headers."""

    def __init__(self, status: int, code: str, message: str = "", detail: object = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, code.lower())
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{status} {code}: {self.message}")

    def response(self) -> web.Response:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        body = json.dumps({"errors": [error]}).encode()
        headers = {"Docker-Distribution-API-Version": "registry/2.0", **self.headers}
        return web.Response(status=self.status, body=body, content_type="application/json",
                            headers=headers)
