"""Small S3 object requests (HEAD, GET, PUT of a few bytes) without the SDK's per-call machinery.

A registry's hot paths (manifest PUT and GET, blob existence) are many tiny requests; boto3 spends
about 2 ms of CPU on each (event hooks, model serialization, response parsing), several times what
the request itself costs. Here botocore's own SigV4 signer signs, and each worker thread keeps its
own keep-alive connections, spoken to directly (``dockyard.registry.http1``): a request is one
``sendall`` of its head (and body), its answer one or two ``recv`` into a buffer, the head split at
CRLFs. ``http.client`` cost ~250 us of CPU per request on loopback against ~40 us for the same
exchange on a bare socket (its header validation, a buffered file object and an ``email`` parser per
answer), and a manifest PUT makes three.
The Host header is given to the signer (it otherwise derives it from the URL twice per request).
``request_all`` sends several requests on as many connections before it reads any answer, so they run
at once in the store with no second thread. Throttling, 5xx answers and dropped connections are
retried with jittered backoff, as boto3's "standard" mode; every request made here is idempotent
(whole-object PUTs, parts of a multipart upload, HEADs, GETs), except that a create-only PUT
(``If-None-Match: *``) retried after a lost answer may be refused for having succeeded: its caller
checks whose object it finds."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import re
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import get_cert_path

from dockyard.record import record
from dockyard.registry import http1

ATTEMPTS, BACKOFF_CAP = 8, 2.0
RETRY = {429, 500, 502, 503, 504}
# Bodies above this are sent as UNSIGNED-PAYLOAD (S3 allows it): an upload's pieces were hashed on
# arrival already (the blob's digest), and a second SHA-256 pass only for the signature costs a
# core-second per ~500 MB pushed. Smaller bodies are hashed into the signature.
SIGN_UP_TO = 1 << 20
_PLAIN = re.compile(r"[A-Za-z0-9._~/-]*")  # what ``quote(key, safe="/~")`` leaves as it is


@record(frozen=True)
class Answer:
    """An object store's answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def metadata(self) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``), as boto3's ``Metadata``."""
        return {k[len("x-amz-meta-"):]: v for k, v in self.headers.items() if k.startswith("x-amz-meta-")}


@record(frozen=True)
class Call:
    """One request of ``request_all``: ``method`` on the object ``key``."""

    method: str
    key: str
    body: bytes | bytearray = b""
    headers: dict[str, str] | None = None


class _Connection:
    """One keep-alive connection to the store."""

    def __init__(self, sock: socket.socket) -> None:
        self.wire = http1.Wire(sock)

    def close(self) -> None:
        self.wire.close()

    def send(self, head: bytes, body: bytes | bytearray) -> None:
        self.wire.send_request(head, body)

    def receive(self, method: str) -> tuple[Answer, bool]:
        """The next answer, and whether the connection must be closed after it."""
        head = self.wire.head(method)
        body = self.wire.read(head)
        return Answer(head.status, head.headers(), body), head.close or bool(self.wire.buffer)


def _head(method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
    fields = list(headers.items())
    if length is not None:
        fields.append(("Content-Length", str(length)))
    return http1.request_head(method, path, fields)


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer, two of its steps fed what this client already holds: the payload's
    hash from the body's bytes (botocore's own ``payload`` builds a prepared copy of the whole request
    to find them: headers, URL and all; a body above ``SIGN_UP_TO`` is sent unsigned), and the signing
    key, which depends on the day alone, derived once per day (and secret) instead of four HMACs per
    request. The canonical request, the string to sign and the Authorization header are botocore's."""

    def __init__(self, credentials: Any, service: str, region: str) -> None:
        super().__init__(credentials, service, region)
        self._scope = (region, service, "aws4_request")
        self._key: tuple[str, str, bytes] | None = None  # (day, secret, signing key)

    def payload(self, request: AWSRequest) -> str:
        body = request.data
        if not isinstance(body, bytes | bytearray):
            return str(super().payload(request))
        if len(body) > SIGN_UP_TO:
            return UNSIGNED_PAYLOAD
        return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day, secret = str(request.context["timestamp"])[0:8], str(self.credentials.secret_key)
        known = self._key
        if known is None or known[0] != day or known[1] != secret:
            key = hmac.new(f"AWS4{secret}".encode(), day.encode(), "sha256").digest()
            for scope in self._scope:
                key = hmac.new(key, scope.encode(), "sha256").digest()
            known = self._key = (day, secret, key)
        return hmac.new(known[2], string_to_sign.encode(), "sha256").hexdigest()


class SignedHttp:
    """Signed path-style requests to one bucket; thread-safe (connections per thread)."""

    def __init__(self, endpoint: str, bucket: str, region: str, credentials: Any,
                 timeout: float = 120.0) -> None:
        parts = urlsplit(endpoint)
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            # The CA bundle boto3 verifies against (AWS_CA_BUNDLE, else botocore's default).
            cafile = os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
            self._tls = ssl.create_default_context(cafile=cafile)
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._netloc = parts.netloc
        self._path = f"{parts.path.rstrip('/')}/{quote(bucket)}/"
        self._url = f"{parts.scheme}://{parts.netloc}"
        self._timeout = timeout
        self._signer = _Signer(credentials, "s3", region)
        self._local = threading.local()

    def _connection(self, slot: int) -> _Connection:
        pool: list[_Connection | None] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = []
        while len(pool) <= slot:
            pool.append(None)
        conn = pool[slot]
        if conn is None:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except BaseException:
                sock.close()
                raise
            conn = pool[slot] = _Connection(sock)
        return conn

    def _drop(self, slot: int) -> None:
        pool: list[_Connection | None] = getattr(self._local, "pool", [])
        if slot < len(pool) and pool[slot] is not None:
            pool[slot].close()  # type: ignore[union-attr]
            pool[slot] = None

    def _send(self, slot: int, method: str, key: str, body: bytes | bytearray,
              headers: dict[str, str] | None, query: dict[str, str] | None) -> None:
        # Keys are mostly digests, tags and repository names: quoted only when they need it.
        path = self._path + (key if _PLAIN.fullmatch(key) else quote(key, safe="/~"))
        if query:
            path += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                   for k, v in sorted(query.items()))
        # The Host header given: botocore's signer would otherwise parse it out of the URL, twice.
        signed = AWSRequest(method=method, url=self._url + path, data=body,
                            headers={"Host": self._netloc, **(headers or {})})
        self._signer.add_auth(signed)  # per attempt: the signature carries the time
        length = len(body) if body or method in ("PUT", "POST") else None
        self._connection(slot).send(_head(method, path, dict(signed.headers.items()), length), body)

    def _receive(self, slot: int, method: str) -> Answer:
        answer, close = self._connection(slot).receive(method)
        if close:
            self._drop(slot)
        return answer

    def request(self, method: str, key: str, body: bytes | bytearray = b"",
                headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> Answer:
        """``method`` on the object ``key``; the last answer after retries, or OSError when none came.

        ``query``: sub-resource parameters (``partNumber``, ``uploadId``), signed with the request."""
        for attempt in range(ATTEMPTS):
            try:
                self._send(0, method, key, body, headers, query)
                answer = self._receive(0, method)
            except OSError as exc:
                self._drop(0)  # a keep-alive connection the store closed, or a real failure
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"{method} {key}: {exc}") from exc
                if attempt == 0:
                    continue  # most often a stale keep-alive connection: at once on a new one
            except BaseException:
                self._drop(0)  # an answer left half read would be taken for the next request's
                raise
            else:
                if answer.status not in RETRY or attempt == ATTEMPTS - 1:
                    return answer
            time.sleep(min(BACKOFF_CAP, 0.05 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def request_all(self, calls: list[Call]) -> list[Answer]:
        """Each call's answer (as ``request``), the calls sent on connections of their own before any
        answer is read: the store works on them at once. A call that fails or must be retried is then
        made again alone."""
        answers: list[Answer | None] = [None] * len(calls)
        sent: list[int] = []
        try:
            for slot, call in enumerate(calls):
                try:
                    self._send(slot, call.method, call.key, call.body, call.headers, None)
                    sent.append(slot)
                except OSError:
                    self._drop(slot)
            for slot in sent:
                try:
                    answer = self._receive(slot, calls[slot].method)
                except OSError:
                    self._drop(slot)
                else:
                    answers[slot] = None if answer.status in RETRY else answer
        except BaseException:
            for slot in sent:  # answers left unread would be taken for the next requests'
                self._drop(slot)
            raise
        return [answer if answer is not None else self.request(call.method, call.key, call.body, call.headers)
                for answer, call in zip(answers, calls, strict=True)]
