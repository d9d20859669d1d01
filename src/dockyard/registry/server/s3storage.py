"""``Storage`` on an S3 bucket (AWS, SeaweedFS, MinIO...): several registry processes may share one.

Same layout as ``FilesystemStorage`` under ``<prefix>/``, plus what a local disk gives for free:

    blobs/<alg>/<hex[:2]>/<hex>              the bytes, or a pointer to them (below); metadata ``mtime``:
                                             when written (our clock)
    touched/<alg>/<hex>                      when the blob was last referenced (restarts GC's grace)
    uploads/<id>/info                        {"repo", "started", "updated": when bytes last arrived}
    data/<id>/<offset:020d>                  the session's bytes, one piece per request that brought them
    data/<id>/commit                         the digest the session is being committed as
    gc-lease                                 which replica collects garbage, until when
    peer-key                                 random bytes: replicas sign requests to each other's blob
                                             caches with it (made by the first replica that wants it)
    repositories/<repo>/_tags/<tag>          empty; metadata ``digest``, ``mediatype`` (the manifest's)
    repositories/<repo>/_manifests/<alg>/<hex>   empty; metadata ``mediatype`` (earlier versions wrote
                                             both values as the object's bytes: still read)

An upload's bytes are pieces named by their offset, so any replica can continue or read back a session
(the running hash is re-read once when a session moves). A request's bytes go out as one multipart
upload of its piece (parts of ``part_size``), so a piece appears whole or not at all. Only the last
piece may be under S3's 5 MiB multipart minimum: the next request rewrites it at the head of its own.

Committing a session of one piece (a monolithic or single-PATCH push: the common case) copies nothing:
the blob's key becomes a *pointer*, an empty object whose metadata names the piece (``target``) and the
blob's size (``size``), created only if the key is free (``If-None-Match: *``). Before it, the session
writes its ``commit`` marker; the session's info is removed after. Whoever finds the key taken (the
same digest pushed twice at once) drops its own piece. The piece is live while the pointer names it:
``blob_delete`` removes the pointer, then the piece; ``sweep_data`` (run by GC) removes, after the
grace period, pieces of committed sessions that no pointer names (a lost race, a crash). A session of
several pieces (a chunked push) is joined into a plain blob object with server-side part copies.
Blob objects written by earlier versions (plain bytes) and their sessions (pieces under
``uploads/<id>/data/``) are read and continued as before.

Small objects (links, tags, manifests, existence) go through ``s3http``; streams, listings, multipart
control and the lease's conditional writes through boto3. Blobs and links this process wrote or found are
remembered for ``KNOWN_FOR`` seconds (content-addressed: a manifest PUT need not ask again); tags never.
Calls block: run them in the pool.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .s3config import S3Settings
from .s3http import Answer, Call, SignedHttp
from .storage import BlobInfo, UploadInfo, canonical_upload_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CACHE_ITEM, CACHE_BYTES = 1 << 20, 64 << 20  # blob_read keeps small blobs (manifests) in memory
MIN_PART = 5 << 20  # S3 refuses smaller multipart parts (except the last)
TOUCH_EVERY = 60.0  # seconds between two touches of one blob by one process
# How long an object this process wrote or found stays known to exist without asking again. Only
# content-addressed objects (blobs, repository links) are remembered, never tags; a delete through
# another replica is seen at most this late. A write is skipped only if this process made it itself:
# what it merely saw may be garbage another replica is about to collect.
KNOWN_FOR = TOUCH_EVERY
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_PIECE = re.compile(r"[0-9]{20}")  # a session's piece, named by its offset


def _split(digest: str) -> tuple[str, str]:
    algorithm, _, hexpart = digest.partition(":")
    return algorithm, hexpart


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


def _header_safe(value: str) -> bool:
    """Whether ``value`` can travel as object metadata (an HTTP header) unchanged."""
    return value.isascii() and value.isprintable() and value == value.strip()


def _link(found: tuple[bytes, dict[str, str]], field: str) -> str:
    """What a tag (``digest``) or revision link (``mediatype``) says.

    Written as an empty object with the value in its metadata: on SeaweedFS an object with no bytes is
    a filer entry alone, while any byte costs a volume write too (16 writers: ~1,500 empty PUTs/s
    against ~800 of 71 bytes), and a manifest PUT writes two of these. Objects written by earlier
    versions hold the value as their bytes, and are read as before."""
    body, metadata = found
    return body.decode() if body else metadata.get(field, "")


def _failed(what: str, exc: Exception) -> OSError:
    # The HTTP layer turns OSError into a 500 with this text; botocore has already retried.
    return OSError(errno.EIO, f"S3 {what}: {exc}")


class _Pieces(io.RawIOBase):
    """Reads a list of objects one after the other, as one stream."""

    def __init__(self, storage: S3Storage, keys: list[str]) -> None:
        self._storage = storage
        self._keys = list(keys)
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._body is None:
                if not self._keys:
                    return 0
                self._body = self._storage._get(self._keys.pop(0))["Body"]
            data = self._body.read(len(buffer))
            if data:
                buffer[:len(data)] = data
                return len(data)
            self._body.close()
            self._body = None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


class _Appender(io.RawIOBase):
    """Appends one request's bytes to an upload session as one new piece.

    The bytes go out a part (``part_size``) at a time as a multipart upload of the piece, completed on
    close; less than a part is one PUT. A last piece under ``MIN_PART`` is taken back first and rewritten
    at the head of the new one (same key), so every piece but the last can be a multipart part."""

    def __init__(self, storage: S3Storage, upload_id: str) -> None:
        self._storage = storage
        prefix, pieces = storage._session_pieces(upload_id)
        offset = sum(size for _, size in pieces)  # where the buffer starts in the session
        self._buffer = bytearray()
        if pieces and pieces[-1][1] < MIN_PART:
            key, size = pieces[-1]
            offset -= size
            self._buffer += storage._get(key)["Body"].read()
        self._key = f"{prefix}/{offset:020d}"
        self._fresh = False  # whether any byte arrived (else nothing is rewritten)
        self._multipart: str | None = None
        self._etags: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        self._fresh = self._fresh or len(data) > 0
        if len(self._buffer) >= self._storage.settings.part_size:
            self._send_part()
        return len(data)

    def flush(self) -> None:
        """Nothing: bytes are stored a part at a time, and the rest on close."""

    def _send_part(self) -> None:
        if self._multipart is None:
            self._multipart = self._storage._multipart_start(self._key)
        self._etags.append(self._storage._multipart_part(self._key, self._multipart, len(self._etags) + 1,
                                                         self._buffer))
        self._buffer = bytearray()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._multipart is not None:
                if self._buffer:
                    self._send_part()
                self._storage._multipart_complete(self._key, self._multipart, self._etags)
                self._multipart = None
            elif self._fresh:
                self._storage._put(self._key, bytes(self._buffer))
        finally:
            if self._multipart is not None:  # a part or the completion failed: nothing was stored
                self._storage._multipart_abort(self._key, self._multipart)
                self._multipart = None
            super().close()


class S3Storage:
    """``Storage`` on ``s3://bucket/prefix``; creates the bucket when it is missing."""

    remote = True  # every call is a network round trip: the registry makes them on its worker pool
    # A manifest's revision link (``_manifests``) also links it as a blob of its repository, so a
    # manifest PUT writes no ``_layers`` link for it: one object less per PUT (the store's work).
    MANIFEST_LINKS_BLOB = True

    def __init__(self, settings: S3Settings, clock: Callable[[], float] = time.time,
                 max_connections: int = 64) -> None:
        self.settings = settings
        self.clock = clock
        self.bucket = settings.bucket
        self._root = f"{settings.prefix}/" if settings.prefix else ""
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._cache_lock = threading.Lock()
        self._touches: dict[str, float] = {}  # digest -> when this process last touched it
        self._media: dict[tuple[str, str], str] = {}  # (repo, digest) -> media type this process linked
        self._known: OrderedDict[str, tuple[float, str, bool]] = OrderedDict()  # key -> (when, what, wrote)
        self._created: set[str] = set()  # sessions this process began (their pieces are under data/)
        # Where other replicas can ask this one's blob cache for a blob it committed (its ``peer=``
        # URL): written in the blob's metadata as ``origin``. None: not written.
        self.origin: str | None = None
        # A manifest's bytes are written here while the calling worker writes its revision link.
        self._side = ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-manifest")
        # "standard" retries: exponential backoff with jitter on 5xx, throttling and connection errors.
        config = Config(retries={"max_attempts": 8, "mode": "standard"}, max_pool_connections=max_connections,
                        connect_timeout=10, read_timeout=120, s3={"addressing_style": "path"},
                        signature_version="s3v4", parameter_validation=False,
                        # Digests already guard every byte; extra CRCs per request only cost CPU.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        session = boto3.session.Session(aws_access_key_id=settings.access_key,
                                        aws_secret_access_key=settings.secret_key)
        region = settings.region or "us-east-1"
        self.client: S3Client = session.client("s3", endpoint_url=settings.endpoint, region_name=region,
                                               config=config)
        credentials = session.get_credentials()
        # Small objects go through the light signed client; streams, listings, multipart and
        # conditional writes through boto3. Anonymous access (no credentials) stays on boto3.
        self._http = None if credentials is None else SignedHttp(
            self.client.meta.endpoint_url, self.bucket, region, credentials)
        self._ensure_bucket()

    def __repr__(self) -> str:
        return f"s3://{self.bucket}/{self.settings.prefix}"

    # -- object primitives -------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        from dockyard.errors import StoreError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if not _missing(exc) and exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise StoreError(f"registry storage {self!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"registry storage {self!r}: {exc}") from exc
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # another replica won
                raise StoreError(f"registry storage {self!r}: cannot create the bucket: {exc}") from exc

    def _key(self, *parts: str) -> str:
        return self._root + "/".join(parts)

    def _get(self, key: str, **extra: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object", key) from exc
            raise _failed(f"GET {key}", exc) from exc
        except BotoCoreError as exc:
            raise _failed(f"GET {key}", exc) from exc

    def _small(self, method: str, key: str, body: bytes = b"", metadata: dict[str, str] | None = None
               ) -> Answer | None:
        """A HEAD, GET or PUT through the light client; None when the object is missing."""
        assert self._http is not None
        answer = self._http.request(method, key, body, self._meta_headers(metadata))
        if answer.status == 404 and method != "PUT":
            return None
        self._check(method, key, answer)
        return answer

    @staticmethod
    def _meta_headers(metadata: dict[str, str] | None) -> dict[str, str]:
        return {f"x-amz-meta-{k}": v for k, v in (metadata or {}).items()}

    @staticmethod
    def _check(method: str, key: str, answer: Answer) -> None:
        """OSError unless the store answered 2xx."""
        if not 200 <= answer.status < 300:
            detail = answer.body[:300].decode(errors="replace").strip()
            raise OSError(errno.EIO, f"S3 {method} {key}: HTTP {answer.status} {detail}".rstrip())

    def _fetch(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        """A small object's bytes and metadata; None when it is missing."""
        if self._http is None:
            try:
                obj = self._get(key)
            except FileNotFoundError:
                return None
            return obj["Body"].read(), dict(obj.get("Metadata", {}))
        answer = self._small("GET", key)
        return None if answer is None else (answer.body, answer.metadata())

    def _read(self, key: str) -> bytes | None:
        found = self._fetch(key)
        return None if found is None else found[0]

    def _head(self, key: str) -> Any:
        """``{"ContentLength", "Metadata"}`` of an object, None when it is missing."""
        if self._http is not None:
            answer = self._small("HEAD", key)
            if answer is None:
                return None
            size = int(answer.headers.get("content-length", 0))
            return {"ContentLength": size, "Metadata": answer.metadata()}
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise _failed(f"HEAD {key}", exc) from exc
        except BotoCoreError as exc:
            raise _failed(f"HEAD {key}", exc) from exc

    def _put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        if self._http is not None:
            self._small("PUT", key, data, metadata)
            return
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata or {})
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"PUT {key}", exc) from exc

    def _put_new(self, key: str, data: bytes, metadata: dict[str, str]) -> bool:
        """Create ``key`` only if it does not exist; False when it does (412)."""
        if self._http is not None:
            headers = {"If-None-Match": "*", **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
            answer = self._http.request("PUT", key, data, headers)
            if answer.status in (409, 412):  # 409: a concurrent conditional write of the same key
                return False
            if not 200 <= answer.status < 300:
                detail = answer.body[:300].decode(errors="replace").strip()
                raise OSError(errno.EIO, f"S3 PUT {key}: HTTP {answer.status} {detail}".rstrip())
            return True
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata, IfNoneMatch="*")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise _failed(f"PUT {key}", exc) from exc
        except BotoCoreError as exc:
            raise _failed(f"PUT {key}", exc) from exc
        return True

    def _multipart_start(self, key: str) -> str:
        try:
            return str(self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"])
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"multipart {key}", exc) from exc

    def _multipart_part(self, key: str, upload_id: str, number: int, data: bytearray) -> str:
        """Upload one part; returns its ETag."""
        if self._http is not None:
            answer = self._http.request("PUT", key, data, query={"partNumber": str(number),
                                                                 "uploadId": upload_id})
            if not 200 <= answer.status < 300 or "etag" not in answer.headers:
                detail = answer.body[:300].decode(errors="replace").strip()
                raise OSError(errno.EIO, f"S3 part {number} of {key}: HTTP {answer.status} {detail}".rstrip())
            return answer.headers["etag"]
        try:
            return str(self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                               PartNumber=number, Body=bytes(data))["ETag"])
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"part {number} of {key}", exc) from exc

    def _multipart_complete(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts: Any = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]
        try:
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"multipart {key}", exc) from exc

    def _abort_pending(self, prefix: str) -> None:
        """Abort the multipart uploads under ``prefix`` that were never completed (their parts take room).
        Best effort: a store (or a key's policy) that does not list them is no reason to fail a delete."""
        try:
            found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])
        except (ClientError, BotoCoreError):
            return
        for pending in found:
            self._multipart_abort(str(pending["Key"]), str(pending["UploadId"]))

    def _multipart_abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- what this process knows exists (content-addressed objects only) ---------------------------

    def _recall(self, key: str, wrote: bool = False) -> str | None:
        """What was remembered of ``key`` if it was seen (``wrote``: written by this process) less
        than ``KNOWN_FOR`` seconds ago."""
        with self._cache_lock:
            hit = self._known.get(key)
        if hit is None or not 0 <= self.clock() - hit[0] < KNOWN_FOR or (wrote and not hit[2]):
            return None
        return hit[1]

    def _remember(self, key: str, what: str = "", wrote: bool = False) -> None:
        with self._cache_lock:
            self._known[key] = (self.clock(), what, wrote)
            self._known.move_to_end(key)
            while len(self._known) > 100_000:
                self._known.popitem(last=False)

    def _forget(self, keys: list[str]) -> None:
        with self._cache_lock:
            for key in keys:
                self._known.pop(key, None)

    def _delete(self, key: str) -> bool:
        if self._head(key) is None:
            return False
        self._delete_keys([key])
        return True

    def _delete_keys(self, keys: list[str]) -> None:
        self._forget(keys)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch: list[Any] = [{"Key": k} for k in keys[start:start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise _failed(f"DELETE {batch[0]['Key']}...", exc) from exc

    def _list(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        """Objects (and, with a delimiter, ``{"Prefix": ...}`` entries) under ``prefix``."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                yield from page.get("CommonPrefixes", [])  # type: ignore[misc]
                yield from page.get("Contents", [])  # type: ignore[misc]
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"LIST {prefix}", exc) from exc

    def _names(self, prefix: str) -> list[str]:
        """The next path component of everything under ``prefix`` (which ends with ``/``)."""
        names = []
        for entry in self._list(prefix, "/"):
            name = entry.get("Prefix") or entry.get("Key") or ""
            names.append(name[len(prefix):].rstrip("/"))
        return names

    # -- blobs -------------------------------------------------------------------------------------

    def _blob_key(self, digest: str) -> str:
        algorithm, hexpart = _split(digest)
        return self._key("blobs", algorithm, hexpart[:2], hexpart)

    def _touch_key(self, digest: str) -> str:
        algorithm, hexpart = _split(digest)
        return self._key("touched", algorithm, hexpart)

    def _stamp(self) -> dict[str, str]:
        return {"mtime": repr(self.clock())}

    def _committed(self) -> dict[str, str]:
        """Metadata of a blob a commit writes: its time, and the replica that has its bytes on disk."""
        stamp = self._stamp()
        if self.origin and _header_safe(self.origin):
            stamp["origin"] = self.origin
        return stamp

    def peer_key(self) -> bytes:
        """The bucket's key for requests between replicas' blob caches (made here when missing)."""
        key = self._key("peer-key")
        found = self._read(key)
        if not found:
            self._put_new(key, secrets.token_hex(32).encode(), {})
            found = self._read(key)
        if not found:
            raise OSError(errno.EIO, f"S3 {key}: written but not found")
        return found

    def _touched(self, digest: str) -> float:
        data = self._read(self._touch_key(digest))
        with contextlib.suppress(TypeError, ValueError):
            return float(data)  # type: ignore[arg-type]
        return 0.0

    def _located(self, digest: str, head: Any) -> tuple[int, str]:
        """(size, key of the bytes) of a blob from its key's HEAD (or GET): a pointer names a piece."""
        meta = head.get("Metadata", {})
        target = meta.get("target")
        if target and target.startswith("data/"):
            return int(meta.get("size", 0)), self._key(target)
        return int(head["ContentLength"]), self._blob_key(digest)

    def blob_stat(self, digest: str) -> BlobInfo | None:
        head = self._head(self._blob_key(digest))
        if head is None:
            return None
        written = float(head.get("Metadata", {}).get("mtime", 0) or 0)
        return BlobInfo(digest, self._located(digest, head)[0], max(written, self._touched(digest)), None)

    def blob_size(self, digest: str) -> int | None:
        """The blob's size (at most one request: serving needs no GC time)."""
        key = self._blob_key(digest)
        known = self._recall(key)
        if known is not None:
            return int(known)
        head = self._head(key)
        if head is None:
            return None
        size = self._located(digest, head)[0]
        self._remember(key, str(size))
        return size

    def known_in_use(self, repo: str, digest: str) -> bool:
        """True when this process saw, less than ``KNOWN_FOR`` ago, that ``repo`` links the blob and
        that it exists, and touched it less than ``TOUCH_EVERY`` ago. Memory only (no I/O, so callable
        on the event loop): a manifest PUT then needs no storage call for that reference at all."""
        if self._recall(self._repo_key(repo, "_layers", *_split(digest))) is None \
                or self._recall(self._blob_key(digest)) is None:
            return False
        with self._cache_lock:
            touched = self._touches.get(digest)
        return touched is not None and 0 <= self.clock() - touched < TOUCH_EVERY

    def _linked_head(self, repo: str, digest: str) -> Any:
        """The HEAD of the blob's key if it exists and ``repo`` links it, asked in the bucket now (nothing
        remembered): serving a blob must see a delete made through another replica at once."""
        if self._head(self._repo_key(repo, "_layers", *_split(digest))) is None \
                and self._head(self._repo_key(repo, "_manifests", *_split(digest))) is None:
            return None
        return self._head(self._blob_key(digest))

    def linked_blob_size(self, repo: str, digest: str) -> int | None:
        """The blob's size if it exists and ``repo`` links it (``_linked_head``)."""
        head = self._linked_head(repo, digest)
        return None if head is None else self._located(digest, head)[0]

    def linked_blob_url(self, repo: str, digest: str) -> tuple[int, str, str | None] | None:
        """(size, pre-signed GET URL of its bytes, the ``origin`` replica that committed it if it said)
        of a blob ``repo`` links, asked now (``_linked_head``)."""
        head = self._linked_head(repo, digest)
        if head is None:
            return None
        size, key = self._located(digest, head)
        return size, self._presign(key), head.get("Metadata", {}).get("origin") or None

    def blob_read(self, digest: str) -> bytes:
        """A small blob's bytes (manifests): content-addressed, so a copy kept here never goes stale."""
        with self._cache_lock:
            cached = self._cache.get(digest)
            if cached is not None:
                self._cache.move_to_end(digest)
                return cached
        found = self._fetch(self._blob_key(digest))
        target = None if found is None else found[1].get("target")
        if found is not None and target and target.startswith("data/"):
            found = self._fetch(self._key(target))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._blob_key(digest))
        data = found[0]
        if len(data) <= CACHE_ITEM:
            with self._cache_lock:
                self._cache[digest] = data
                self._cached_bytes += len(data)
                while self._cached_bytes > CACHE_BYTES:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= len(old)
        return data

    def _bytes_key(self, digest: str) -> str:
        head = self._head(self._blob_key(digest))
        if head is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._blob_key(digest))
        return self._located(digest, head)[1]

    def blob_open(self, digest: str) -> BinaryIO:
        return io.BufferedReader(_Pieces(self, [self._bytes_key(digest)]), 1 << 20)

    def _presign(self, key: str) -> str:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=self.settings.redirect_ttl)

    def blob_url(self, digest: str) -> str:
        """A pre-signed GET URL of the blob's bytes, valid for ``redirect_ttl`` seconds (one HEAD: the
        key may be a pointer; ``linked_blob_url`` asks nothing more than the link check does)."""
        return self._presign(self._bytes_key(digest))

    def blob_put(self, digest: str, data: bytes) -> None:
        # Small (manifests): writing the same bytes again costs less than asking first, unless this
        # process wrote or saw them a moment ago.
        key = self._blob_key(digest)
        if self._recall(key, wrote=True) == str(len(data)):
            return
        self._put(key, data, self._stamp())
        self._remember(key, str(len(data)), wrote=True)

    def blob_touch(self, digest: str) -> None:
        now = self.clock()
        # A manifest PUT touches every blob it references; once a minute per blob is enough (GC grace
        # periods are far longer) and saves a PUT per layer on busy pushes.
        with self._cache_lock:
            if 0 <= now - self._touches.get(digest, float("-inf")) < TOUCH_EVERY:
                return
            self._touches[digest] = now
            if len(self._touches) > 100_000:
                self._touches.clear()
        self._put(self._touch_key(digest), repr(now).encode())

    def blob_delete(self, digest: str) -> bool:
        """Delete the blob: its key first, then (a pointer's) piece, so no pointer ever names a gone piece."""
        head = self._head(self._blob_key(digest))
        found = head is not None
        if head is not None:
            self._delete_keys([self._blob_key(digest)])
            target = self._located(digest, head)[1]
            if target != self._blob_key(digest):
                session = target.rpartition("/")[0]
                self._delete_keys([str(e["Key"]) for e in self._list(session + "/")])
        self._delete_keys([self._touch_key(digest)])
        with self._cache_lock:
            self._cached_bytes -= len(self._cache.pop(digest, b""))
            self._touches.pop(digest, None)
        return found

    def blobs(self) -> Iterator[BlobInfo]:
        for entry in self._list(self._key("blobs") + "/"):
            parts = entry["Key"][len(self._key("blobs")) + 1:].split("/")
            if len(parts) != 3:
                continue
            digest = f"{parts[0]}:{parts[2]}"
            # The listing has no metadata: a blob GC may judge is looked at closely (blob_stat) anyway.
            info = self.blob_stat(digest)
            if info is not None:
                yield info

    # -- repository links --------------------------------------------------------------------------

    def _repo_key(self, repo: str, *parts: str) -> str:
        return self._key("repositories", repo, *parts)

    def link_blob(self, repo: str, digest: str) -> None:
        key = self._repo_key(repo, "_layers", *_split(digest))
        if self._recall(key, wrote=True) is None:
            self._put(key, b"")
            self._remember(key, wrote=True)

    def unlink_blob(self, repo: str, digest: str) -> bool:
        return self._delete(self._repo_key(repo, "_layers", *_split(digest)))

    def is_linked(self, repo: str, digest: str) -> bool:
        """A blob link, or a manifest's revision link (``MANIFEST_LINKS_BLOB``)."""
        key = self._repo_key(repo, "_layers", *_split(digest))
        if self._recall(key) is not None:
            return True
        if self._head(key) is None:
            return self.manifest_media_type(repo, digest) is not None
        self._remember(key)
        return True

    def _digests_under(self, prefix: str) -> list[str]:
        found = []
        for entry in self._list(prefix + "/"):
            algorithm, _, hexpart = entry["Key"][len(prefix) + 1:].partition("/")
            if hexpart and "/" not in hexpart:
                found.append(f"{algorithm}:{hexpart}")
        return found

    def linked_blobs(self, repo: str) -> list[str]:
        found = self._digests_under(self._repo_key(repo, "_layers"))
        return found + sorted(set(self.manifests(repo)) - set(found))

    # -- repositories, manifests, tags -------------------------------------------------------------

    def repositories(self) -> list[str]:
        found: list[str] = []
        pending = [""]
        while pending:
            path = pending.pop()
            names = self._names(self._key("repositories", path) if path else self._key("repositories") + "/")
            if path and ("_layers" in names or "_manifests" in names):
                found.append(path.rstrip("/"))
            pending.extend(f"{path}{name}/" for name in names if name and not name.startswith("_"))
        return sorted(found)

    def repo_exists(self, repo: str) -> bool:
        names = self._names(self._repo_key(repo) + "/")
        return "_layers" in names or "_manifests" in names

    @staticmethod
    def _link_body(media_type: str) -> tuple[bytes, dict[str, str]]:
        """(bytes, headers) of a revision link naming ``media_type``."""
        if _header_safe(media_type):  # an empty object: the cheapest write a store has (see _link)
            return b"", {"x-amz-meta-mediatype": media_type}
        return media_type.encode(), {}

    def _media_seen(self, repo: str, digest: str, media_type: str) -> None:
        with self._cache_lock:
            self._media[(repo, digest)] = media_type
            if len(self._media) > 10_000:
                self._media.clear()

    def manifest_link(self, repo: str, digest: str, media_type: str) -> None:
        key = self._repo_key(repo, "_manifests", *_split(digest))
        if self._recall(key, wrote=True) != media_type:
            body, headers = self._link_body(media_type)
            self._put(key, body, {k[len("x-amz-meta-"):]: v for k, v in headers.items()})
            self._remember(key, media_type, wrote=True)
        self._media_seen(repo, digest, media_type)

    def manifest_put(self, repo: str, digest: str, body: bytes, media_type: str) -> None:
        """A manifest's bytes and its revision link (which links it as a blob too), written at once:
        two round trips in the time of one (both requests sent, on two connections, before either
        answer is read: no second thread). Returns when both have landed, so a tag written after
        names a complete manifest. A crash between the two leaves a link without bytes, which reads
        as no manifest (GET by digest 404, GC skips it) until the client, which had no 201, pushes
        again."""
        if self._http is None:  # anonymous: boto3 only, the bytes on a thread of their own
            side = self._side.submit(self.blob_put, digest, body)
            try:
                self.manifest_link(repo, digest, media_type)
            finally:
                side.result()  # waited for even when the link failed: nothing of this call outlives it
            return
        blob, link = self._blob_key(digest), self._repo_key(repo, "_manifests", *_split(digest))
        calls = []
        if self._recall(blob, wrote=True) != str(len(body)):
            calls.append(Call("PUT", blob, body, self._meta_headers(self._stamp())))
        if self._recall(link, wrote=True) != media_type:
            calls.append(Call("PUT", link, *self._link_body(media_type)))
        for call, answer in zip(calls, self._http.request_all(calls), strict=True):
            self._check(call.method, call.key, answer)
        # Only what was written now is remembered as written (a skipped write must not renew the memory,
        # or a delete through another replica would never be seen while pushes keep coming).
        for call in calls:
            self._remember(call.key, str(len(body)) if call.key == blob else media_type, wrote=True)
        self._media_seen(repo, digest, media_type)

    def manifest_media_type(self, repo: str, digest: str) -> str | None:
        key = self._repo_key(repo, "_manifests", *_split(digest))
        known = self._recall(key)
        if known is not None:
            return known
        found = self._fetch(key)
        if found is None:
            return None
        media_type = _link(found, "mediatype")
        self._remember(key, media_type)
        return media_type

    def manifest_unlink(self, repo: str, digest: str) -> bool:
        return self._delete(self._repo_key(repo, "_manifests", *_split(digest)))

    def manifests(self, repo: str) -> list[str]:
        return self._digests_under(self._repo_key(repo, "_manifests"))

    def tag_get(self, repo: str, tag: str) -> str | None:
        found = self._fetch(self._repo_key(repo, "_tags", tag))
        return None if found is None else _link(found, "digest")

    def tag_set(self, repo: str, tag: str, digest: str) -> None:
        # One PUT of a whole object: concurrent pushes of a tag leave exactly one of them (the last).
        # An empty object whose metadata holds the digest and the manifest's media type: a pull by tag is
        # one GET (tag_resolve), and the store writes no data (see _link).
        with self._cache_lock:
            media_type = self._media.get((repo, digest))
        if media_type is None:
            media_type = self.manifest_media_type(repo, digest)
        meta = {"mediatype": media_type} if media_type and _header_safe(media_type) else {}
        if _header_safe(digest):
            self._put(self._repo_key(repo, "_tags", tag), b"", {"digest": digest, **meta})
        else:
            self._put(self._repo_key(repo, "_tags", tag), digest.encode(), meta)

    def tag_resolve(self, repo: str, tag: str) -> tuple[str, str | None] | None:
        """(digest, media type or None when the tag predates it) in one GET; None: no such tag."""
        found = self._fetch(self._repo_key(repo, "_tags", tag))
        if found is None:
            return None
        return _link(found, "digest"), found[1].get("mediatype")

    def tag_delete(self, repo: str, tag: str) -> bool:
        return self._delete(self._repo_key(repo, "_tags", tag))

    def tags(self, repo: str) -> dict[str, str]:
        result: dict[str, str] = {}
        prefix = self._repo_key(repo, "_tags") + "/"
        for entry in self._list(prefix):
            tag = entry["Key"][len(prefix):]
            found = self._fetch(entry["Key"]) if "/" not in tag else None
            if found is not None:
                result[tag] = _link(found, "digest")
        return result

    def referrer_add(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None:
        name = str(descriptor["digest"]).replace(":", "-")
        self._put(self._repo_key(repo, "_referrers", *_split(subject), name), json.dumps(descriptor).encode())

    def referrer_remove(self, repo: str, subject: str, digest: str) -> None:
        self._delete_keys([self._repo_key(repo, "_referrers", *_split(subject), digest.replace(":", "-"))])

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for entry in sorted(self._list(self._repo_key(repo, "_referrers", *_split(subject)) + "/"),
                            key=lambda e: str(e["Key"])):
            data = self._read(entry["Key"])
            with contextlib.suppress(TypeError, ValueError):
                found.append(json.loads(data))  # type: ignore[arg-type]
        return found

    # -- uploads -----------------------------------------------------------------------------------

    def _upload_key(self, upload_id: str, *parts: str) -> str:
        canonical = canonical_upload_id(upload_id)  # ids come from URLs: only the uuid form we hand out
        return self._key("uploads", canonical or "-invalid-", *parts)

    def _data_key(self, upload_id: str, *parts: str) -> str:
        return self._key("data", canonical_upload_id(upload_id) or "-invalid-", *parts)

    def _piece_entries(self, prefix: str) -> list[dict[str, Any]]:
        """Listing entries of the pieces under ``prefix`` (no ``commit`` marker), in offset order."""
        found = [e for e in self._list(prefix + "/") if _PIECE.fullmatch(str(e["Key"])[len(prefix) + 1:])]
        return sorted(found, key=lambda e: str(e["Key"]))

    def _session_entries(self, upload_id: str) -> tuple[str, list[dict[str, Any]]]:
        """(prefix the session's pieces are under, their entries): ``data/<id>``, or for a session an
        earlier version began, ``uploads/<id>/data``."""
        prefix = self._data_key(upload_id)
        entries = self._piece_entries(prefix)
        if not entries:
            with self._cache_lock:
                ours = canonical_upload_id(upload_id) in self._created
            if not ours:  # begun elsewhere: maybe by an earlier version
                old = self._upload_key(upload_id, "data")
                old_entries = self._piece_entries(old)
                if old_entries:
                    return old, old_entries
        return prefix, entries

    def _session_pieces(self, upload_id: str) -> tuple[str, list[tuple[str, int]]]:
        prefix, entries = self._session_entries(upload_id)
        return prefix, [(str(e["Key"]), int(e["Size"])) for e in entries]

    def _pieces(self, upload_id: str) -> list[tuple[str, int]]:
        """(key, size) of the session's pieces, in offset order."""
        return self._session_pieces(upload_id)[1]

    def upload_create(self, repo: str) -> UploadInfo:
        upload_id = str(uuid.uuid4())
        now = self.clock()
        self._put(self._upload_key(upload_id, "info"), json.dumps({"repo": repo, "started": now}).encode())
        with self._cache_lock:
            if len(self._created) > 10_000:
                self._created.clear()
            self._created.add(upload_id)
        return UploadInfo(upload_id, repo, 0, now, now)

    def upload_stat(self, upload_id: str) -> UploadInfo | None:
        if canonical_upload_id(upload_id) is None:
            return None
        info = self._read(self._upload_key(upload_id, "info"))
        if info is None:
            return None
        try:
            meta = json.loads(info)
            repo, started = str(meta["repo"]), float(meta["started"])
            updated = max(started, float(meta.get("updated", 0.0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        entries = self._session_entries(upload_id)[1]
        size = sum(int(e["Size"]) for e in entries)
        # Changes with every piece written or cut: tells a cached running hash is still valid.
        token = hashlib.sha256(repr(sorted((e["Key"], e.get("ETag"), e["Size"]) for e in entries))
                               .encode()).digest()
        return UploadInfo(str(uuid.UUID(upload_id)), repo, size, started, updated,
                          int.from_bytes(token[:8], "big"))

    def upload_append(self, upload_id: str) -> BinaryIO:
        return cast(BinaryIO, _Appender(self, upload_id))

    def upload_touch(self, upload_id: str) -> None:
        key = self._upload_key(upload_id, "info")
        data = self._read(key)
        if data is None:
            return
        meta = json.loads(data)
        meta["updated"] = self.clock()  # one object to read in upload_stat, not two
        self._put(key, json.dumps(meta).encode())

    def upload_truncate(self, upload_id: str, size: int) -> None:
        doomed = []
        offset = 0
        for key, length in self._pieces(upload_id):
            if offset >= size:
                doomed.append(key)
            elif offset + length > size:  # the piece that straddles the cut keeps its head
                self._put(key, self._get(key, Range=f"bytes=0-{size - offset - 1}")["Body"].read())
            offset += length
        self._delete_keys(doomed)

    def upload_read(self, upload_id: str) -> BinaryIO:
        return io.BufferedReader(_Pieces(self, [k for k, _ in self._pieces(upload_id)]), 1 << 20)

    def _points_to(self, digest: str, piece: str) -> bool:
        """Whether the blob's key is a pointer to ``piece``."""
        head = self._head(self._blob_key(digest))
        return head is not None and self._located(digest, head)[1] == piece

    def upload_commit(self, upload_id: str, digest: str) -> None:
        """Make the session's bytes the blob and end the session: a session of one piece by a pointer
        to it (nothing copied), several by a server-side join."""
        target = self._blob_key(digest)
        prefix, pieces = self._session_pieces(upload_id)
        if len(pieces) == 1 and prefix == self._data_key(upload_id):
            piece, size = pieces[0]
            # The marker first: whoever removes the session later asks the blob whether it needs the piece.
            self._put(self._data_key(upload_id, "commit"),
                      json.dumps({"digest": digest, "at": self.clock()}).encode())
            meta = {**self._committed(), "target": piece[len(self._root):], "size": str(size)}
            # A refusal may answer our own retried write (its first answer lost): whose pointer is it?
            if self._put_new(target, b"", meta) or self._points_to(digest, piece):
                self._remember(target, str(size), wrote=True)
                self._delete_keys([self._upload_key(upload_id, "info")])
                return
            self.blob_touch(digest)  # the same digest pushed at once elsewhere: its blob stays
        elif self._head(target) is not None:
            self.blob_touch(digest)
        elif not pieces:
            self._put(target, b"", self._committed())
        elif len(pieces) == 1:
            self._copy(pieces[0][0], target)
        else:
            self._join(target, [k for k, _ in pieces])
        self.upload_delete(upload_id)

    def _copy(self, source: str, target: str) -> None:
        try:
            self.client.copy_object(Bucket=self.bucket, Key=target,
                                    CopySource={"Bucket": self.bucket, "Key": source},
                                    Metadata=self._committed(), MetadataDirective="REPLACE")
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"COPY {source}", exc) from exc

    def _join(self, target: str, keys: list[str]) -> None:
        try:
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=target,
                                                         Metadata=self._committed())
            upload_id = upload["UploadId"]
            try:
                parts = []
                for number, key in enumerate(keys, 1):
                    result = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": key})
                    parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})  # type: ignore[typeddict-item]
            except BaseException:
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
                raise
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"multipart {target}", exc) from exc

    def _committed_piece(self, keys: list[str], marker: str) -> bool:
        """Whether a session's ``commit`` marker names a blob that is a pointer to one of its pieces."""
        data = self._read(marker)
        try:
            digest = str(json.loads(data or b"")["digest"])
        except (ValueError, KeyError, TypeError):
            return False
        head = self._head(self._blob_key(digest))
        return head is not None and self._located(digest, head)[1] in keys

    def upload_delete(self, upload_id: str) -> bool:
        data = [str(e["Key"]) for e in self._list(self._data_key(upload_id) + "/")]
        keys = [str(e["Key"]) for e in self._list(self._upload_key(upload_id) + "/")]
        info = self._upload_key(upload_id, "info")
        marker = self._data_key(upload_id, "commit")
        if marker in data and self._committed_piece(data, marker):
            data = []  # committed (the process died before it removed the info): the piece is the blob's
        self._abort_pending(self._data_key(upload_id) + "/")  # a request's piece cut short by a kill
        # The info object last: while it exists the session is still there for upload_stat.
        self._delete_keys(data + [k for k in keys if k != info])
        self._delete_keys([k for k in keys if k == info])
        return info in keys

    def uploads(self) -> list[UploadInfo]:
        found = []
        for name in self._names(self._key("uploads") + "/"):
            info = self.upload_stat(name)
            if info is not None:
                found.append(info)
        return found

    def sweep_data(self, grace: float, now: float | None = None, dry_run: bool = False) -> list[str]:
        """Remove the pieces committed sessions left that no blob names, once ``grace`` seconds passed
        since the commit (a push that lost a race for its digest, a process killed mid-commit or
        mid-delete); returns the sessions' ids. A piece a pointer names is never touched."""
        now = self.clock() if now is None else now
        root = self._key("data") + "/"
        sessions: dict[str, list[dict[str, Any]]] = {}
        for entry in self._list(root):
            sessions.setdefault(str(entry["Key"])[len(root):].partition("/")[0], []).append(entry)
        swept = []
        for name, entries in sessions.items():
            keys = [str(e["Key"]) for e in entries]
            marker = self._data_key(name, "commit")
            if marker in keys:
                data = self._read(marker)
                try:
                    at = float(json.loads(data or b"")["at"])
                except (ValueError, KeyError, TypeError):
                    at = 0.0
                if now - at < grace or self._committed_piece(keys, marker):
                    continue
            elif self._read(self._upload_key(name, "info")) is not None:
                continue  # an open session: expiry decides
            elif time.time() - max(e["LastModified"].timestamp() for e in entries) < grace:
                continue  # no marker and no session: left by a blob delete cut short (store's clock)
            swept.append(name)
            if not dry_run:
                self._delete_keys(keys)
        return swept

    # -- the GC lease ------------------------------------------------------------------------------

    def lease(self, holder: str, seconds: float) -> bool:
        """Take (or renew) the garbage collector's lease for ``seconds``; False if another holds it.

        Conditional PUTs make the take-over atomic: If-None-Match when there is no lease, If-Match on
        the expired one's ETag, so two replicas can never both win."""
        key = self._key("gc-lease")
        body = json.dumps({"holder": holder, "until": self.clock() + seconds}).encode()
        try:
            current = self.client.get_object(Bucket=self.bucket, Key=key)
            etag, data = current["ETag"], current["Body"].read()
        except ClientError as exc:
            if not _missing(exc):
                raise _failed(f"GET {key}", exc) from exc
            etag, data = None, b""
        if etag is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                meta = json.loads(data)
                if meta["holder"] != holder and float(meta["until"]) > self.clock():
                    return False
        try:
            if etag is None:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            else:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfMatch=etag)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise _failed(f"PUT {key}", exc) from exc
        return True

    def release(self, holder: str) -> None:
        """Give the lease back if ``holder`` still has it."""
        data = self._read(self._key("gc-lease"))
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if data is not None and json.loads(data)["holder"] == holder:
                self._delete_keys([self._key("gc-lease")])
