"""Small S3 object requests (HEAD, GET, PUT of a few bytes) without the SDK's per-call machinery.

A registry's hot paths (manifest PUT and GET, blob existence) are many tiny requests; boto3 spends
about 2 ms of CPU on each (event hooks, model serialization, response parsing), several times what
the request itself costs. Here botocore's own SigV4 signer signs, and each worker thread keeps one
keep-alive ``http.client`` connection (~0.3 ms of CPU a request; urllib3's pool costs twice that).
Throttling, 5xx answers and dropped connections are retried with jittered backoff, as boto3's
"standard" mode; every request made here is idempotent (whole-object PUTs, parts of a multipart
upload, HEADs, GETs), except that a create-only PUT (``If-None-Match: *``) retried after a lost answer
may be refused for having succeeded: its caller checks whose object it finds."""

from __future__ import annotations

import http.client
import os
import random
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.httpsession import get_cert_path

from dockyard.record import record

ATTEMPTS, BACKOFF_CAP = 8, 2.0
RETRY = {429, 500, 502, 503, 504}
# Bodies above this are sent as UNSIGNED-PAYLOAD (S3 allows it): an upload's pieces were hashed on
# arrival already (the blob's digest), and a second SHA-256 pass only for the signature costs a
# core-second per ~500 MB pushed. Smaller bodies are hashed into the signature by botocore.
SIGN_UP_TO = 1 << 20
_SIGNED, _UNSIGNED = ({"client_config": Config(s3={"payload_signing_enabled": sign})}
                      for sign in (True, False))


@record(frozen=True)
class Answer:
    """An object store's answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def metadata(self) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``), as boto3's ``Metadata``."""
        return {k[len("x-amz-meta-"):]: v for k, v in self.headers.items() if k.startswith("x-amz-meta-")}


class SignedHttp:
    """Signed path-style requests to one bucket; thread-safe (a connection per thread)."""

    def __init__(self, endpoint: str, bucket: str, region: str, credentials: Any,
                 timeout: float = 120.0) -> None:
        parts = urlsplit(endpoint)
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            # The CA bundle boto3 verifies against (AWS_CA_BUNDLE, else botocore's default).
            cafile = os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
            self._tls = ssl.create_default_context(cafile=cafile)
        self._netloc = parts.netloc
        self._path = f"{parts.path.rstrip('/')}/{quote(bucket)}/"
        self._url = f"{parts.scheme}://{parts.netloc}"
        self._timeout = timeout
        self._signer = S3SigV4Auth(credentials, "s3", region)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self._netloc, timeout=self._timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._netloc, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, key: str, body: bytes | bytearray = b"",
                headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> Answer:
        """``method`` on the object ``key``; the last answer after retries, or OSError when none came.

        ``query``: sub-resource parameters (``partNumber``, ``uploadId``), signed with the request."""
        path = self._path + quote(key, safe="/~")
        if query:
            path += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                   for k, v in sorted(query.items()))
        context = _UNSIGNED if len(body) > SIGN_UP_TO else _SIGNED
        for attempt in range(ATTEMPTS):
            signed = AWSRequest(method=method, url=self._url + path, data=body, headers=dict(headers or {}))
            signed.context.update(context)
            self._signer.add_auth(signed)  # per attempt: the signature carries the time
            conn = self._connection()
            try:
                conn.request(method, path, body=body if body or method == "PUT" else None,
                             headers=dict(signed.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()  # a keep-alive connection the store closed, or a real failure
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"{method} {key}: {exc}") from exc
                if attempt == 0:
                    continue  # most often a stale keep-alive connection: at once on a new one
            else:
                if resp.will_close:
                    self._drop()
                if resp.status not in RETRY or attempt == ATTEMPTS - 1:
                    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            time.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable: the last attempt returns or raises")
