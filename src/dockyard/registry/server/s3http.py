"""Small S3 object requests (HEAD, GET, PUT of a few bytes) without the SDK's per-call machinery.

A registry's hot paths (manifest PUT and GET, blob existence) are many tiny requests; boto3 spends
about 2 ms of CPU on each (event hooks, model serialization, response parsing), three times what the
request itself costs. Here botocore's own SigV4 signer signs and one urllib3 pool sends. Throttling,
5xx answers and dropped connections are retried with jittered backoff, as boto3's "standard" mode."""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

ATTEMPTS, BACKOFF_CAP = 8, 2.0
RETRY = {429, 500, 502, 503, 504}
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Bodies above this are sent as UNSIGNED-PAYLOAD (S3 allows it): an upload's pieces were hashed on
# arrival already (the blob's digest), and a second SHA-256 pass only for the signature costs a
# core-second per ~500 MB pushed.
SIGN_UP_TO = 1 << 20


@dataclass(frozen=True)
class Answer:
    """An object store's answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def metadata(self) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``), as boto3's ``Metadata``."""
        return {k[len("x-amz-meta-"):]: v for k, v in self.headers.items() if k.startswith("x-amz-meta-")}


class SignedHttp:
    """Signed path-style requests to one bucket; thread-safe (urllib3's pool is)."""

    def __init__(self, endpoint: str, bucket: str, region: str, credentials: Any,
                 max_connections: int = 64, timeout: float = 120.0) -> None:
        self._base = f"{endpoint.rstrip('/')}/{bucket}/"
        self._signer = S3SigV4Auth(credentials, "s3", region)
        self._pool = urllib3.PoolManager(maxsize=max_connections, block=False, retries=False,
                                         timeout=urllib3.Timeout(connect=10, read=timeout))

    def request(self, method: str, key: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Answer:
        """``method`` on the object ``key``; the last answer after retries, or OSError when none came."""
        url = self._base + quote(key, safe="/~")
        if len(body) > SIGN_UP_TO:
            digest = "UNSIGNED-PAYLOAD"
        else:
            digest = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        for attempt in range(ATTEMPTS):
            signed = AWSRequest(method=method, url=url, data=body,
                                headers={**(headers or {}), "x-amz-content-sha256": digest})
            self._signer.add_auth(signed)  # per attempt: the signature carries the time
            try:
                resp = self._pool.request(method, url, body=body or None, redirect=False,
                                          headers=dict(signed.headers.items()), preload_content=True)
            except urllib3.exceptions.HTTPError as exc:
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"{method} {key}: {exc}") from exc
            else:
                if resp.status not in RETRY or attempt == ATTEMPTS - 1:
                    return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.data)
            time.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable: the last attempt returns or raises")
