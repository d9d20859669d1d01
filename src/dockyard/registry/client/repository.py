"""Blob and manifest operations on one repository of one registry (OCI distribution spec 1.1).

Blobs stream between the network and files in 1 MiB pieces; nothing holds a whole layer in memory.
Downloads are verified against their digest and resumed with ``Range`` after a broken connection;
uploads are monolithic (one PUT) or chunked (PATCHes of at least ``OCI-Chunk-Min-Length`` bytes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, Literal, Protocol
from urllib.parse import quote, urljoin

from dockyard.errors import CorruptData, DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import loads_object
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, Hasher, is_valid
from dockyard.oci.manifest import sniff_media_type
from dockyard.record import record
from dockyard.registry.client import httpclient
from dockyard.registry.client.errors import describe_transport, error_from_response, transient
from dockyard.registry.client.session import Session

PIECE = 1 << 20
MAX_MANIFEST = 4 << 20  # the distribution spec's recommended limit
Progress = Callable[[int], None]
UploadResult = Literal["exists", "mounted", "uploaded"]
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@record(frozen=True, slots=True)
class FetchedManifest:
    """A manifest or index as the registry served it: exact bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: Digest

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def _no_progress(done: int) -> None:
    pass


class Repository:
    """``name`` is the repository path as the API names it (``library/busybox``)."""

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.name = name
        self.pull_scope = f"repository:{name}:pull"
        self.push_scopes = (f"repository:{name}:pull,push",)

    def __repr__(self) -> str:
        return f"Repository({self.session.host}/{self.name})"

    @property
    def where(self) -> str:
        return f"{self.session.host}/{self.name}"

    # -- manifests --------------------------------------------------------------------------------

    def get_manifest(self, reference: str, accept: Sequence[str] = mt.MANIFEST_ACCEPT) -> FetchedManifest:
        """GET a manifest by tag or digest; a digest reference is verified against the bytes."""
        headers = {"Accept": ", ".join((*accept, mt.DOCKER_MANIFEST_V1_SIGNED))}
        response = self.session.request("GET", f"/v2/{self.name}/manifests/{reference}",
                                        scopes=(self.pull_scope,), headers=headers)
        if response.status_code == 404:  # docker: "manifest for x:y not found: manifest unknown: ..."
            raise error_from_response(response, f"{self._manifest_what(reference)} not found")
        if response.status_code != 200:
            raise error_from_response(response, self._manifest_what(reference))
        data = response.content
        if len(data) > MAX_MANIFEST:
            raise CorruptData(f"manifest {self.where}:{reference}: larger than {MAX_MANIFEST} bytes")
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        actual = Digest.from_bytes(data)
        if is_valid(reference) and actual != reference:
            raise DigestMismatch(reference, actual, f"manifest {self.where}")
        if media_type in ("", "application/json", "text/plain"):
            media_type = _sniff(data)
        return FetchedManifest(data, media_type, actual)

    def head_manifest(self, reference: str, accept: Sequence[str] = mt.MANIFEST_ACCEPT) -> Descriptor | None:
        """The descriptor of a manifest, or None if it does not exist."""
        response = self.session.request("HEAD", f"/v2/{self.name}/manifests/{reference}",
                                        scopes=(self.pull_scope,), headers={"Accept": ", ".join(accept)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_from_response(response, self._manifest_what(reference))
        digest = response.headers.get("docker-content-digest", "")
        if not is_valid(digest):
            return None
        size = int(response.headers.get("content-length", "0") or 0)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        return Descriptor(media_type, Digest(digest), size)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest or index under a tag or its digest; returns the digest the registry reports."""
        response = self.session.request(
            "PUT", f"/v2/{self.name}/manifests/{reference}", scopes=self.push_scopes,
            headers={"Content-Type": media_type}, body=lambda: data)
        if response.status_code not in (200, 201, 202):
            raise error_from_response(response, f"push manifest to {self.where}:{reference}")
        expected = Digest.from_bytes(data)
        reported = response.headers.get("docker-content-digest", "")
        if reported and is_valid(reported) and reported != expected:
            raise DigestMismatch(expected, reported, f"manifest pushed to {self.where}")
        return expected

    def tags(self) -> list[str]:
        """Every tag, following ``Link`` pagination."""
        out: list[str] = []
        url = f"/v2/{self.name}/tags/list?n=1000"
        while url:
            response = self.session.request("GET", url, scopes=(self.pull_scope,))
            if response.status_code != 200:
                raise error_from_response(response, f"list tags of {self.where}")
            try:
                doc = response.json()
            except ValueError:
                raise CorruptData(f"tag list of {self.where}: invalid JSON")
            out.extend(str(t) for t in (doc.get("tags") or []))
            match = _LINK_RE.search(response.headers.get("link", ""))
            url = urljoin(str(response.url), match.group(1)) if match else ""
        return out

    def _manifest_what(self, reference: str) -> str:
        sep = "@" if is_valid(reference) else ":"
        return f"manifest for {self.where}{sep}{reference}"

    # -- blobs: download --------------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        response = self.session.request("HEAD", f"/v2/{self.name}/blobs/{digest}",
                                        scopes=(self.pull_scope,), follow_redirects=True)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise error_from_response(response, f"blob {digest} in {self.where}")

    def get_blob_bytes(self, desc: Descriptor) -> bytes:
        """A small blob (a config) in memory, verified."""
        response = self.session.request("GET", f"/v2/{self.name}/blobs/{desc.digest}",
                                        scopes=(self.pull_scope,), follow_redirects=True)
        if response.status_code != 200:
            raise error_from_response(response, f"blob {desc.digest} in {self.where}")
        data = response.content
        actual = Digest.from_bytes(data, desc.digest.algorithm)
        if actual != desc.digest:
            raise DigestMismatch(desc.digest, actual, f"blob from {self.where}")
        return data

    def fetch_blob(self, desc: Descriptor, out: BinaryIO | _Sink, progress: Progress = _no_progress) -> None:
        """Stream a blob into ``out``, resuming after broken connections and verifying the digest.

        If ``out`` is a seekable file, bytes already in it (an earlier, interrupted attempt) are
        hashed and kept, and on a mismatch it is truncated to empty. Any object with ``write`` works
        otherwise (a content-store writer); one with a ``hasher`` (an ``oci.digest.Hasher`` that hashes
        what it writes, still empty) has its digest checked from that hash rather than hashing every
        byte twice. The rest is asked for with ``Range``; a server that ignores it has the bytes
        already held skipped. Raises ``DigestMismatch`` on a bad blob.
        """
        shared = getattr(out, "hasher", None)
        # A sink that hashes what it is given (a content-store writer) saves hashing it twice.
        hasher = shared if isinstance(shared, Hasher) and shared.size == 0 else Hasher(desc.digest.algorithm)
        owned = hasher is not shared
        file: BinaryIO | None = out if bool(getattr(out, "seekable", lambda: False)()) else None  # type: ignore[assignment]
        if file is not None and owned:
            file.seek(0)
            while piece := file.read(PIECE):
                hasher.update(piece)
            if hasher.size > desc.size:
                file.seek(0)
                file.truncate()
                hasher = Hasher(desc.digest.algorithm)
        options = self.session.options
        failures = 0
        try:
            while hasher.size < desc.size:
                try:
                    self._fetch_once(desc, out, hasher, progress, owned)
                except (httpclient.TransportError, RegistryError) as exc:
                    if not _passing(exc):
                        raise
                    failures += 1
                    if failures > options.retries:
                        raise RegistryError(f"blob {desc.digest} from {self.where}: download failed "
                                            f"after {failures} attempts: {_one_line(exc)}") from None
                    self.session.pause(options.backoff * (2 ** (failures - 1)),
                                       f"download of {desc.digest.short}: {_one_line(exc)}")
                    continue
                if hasher.size < desc.size:
                    # A clean response that ended early: count it like a broken connection.
                    failures += 1
                    if failures > options.retries:
                        raise RegistryError(f"blob {desc.digest} from {self.where}: short read "
                                            f"({hasher.size} of {desc.size} bytes)")
            actual = hasher.digest()
            if actual != desc.digest or hasher.size != desc.size:
                raise DigestMismatch(desc.digest, actual, f"blob from {self.where}")
        except DigestMismatch:
            if file is not None:
                file.seek(0)
                file.truncate()
            raise
        if hasattr(out, "flush"):
            out.flush()

    def _fetch_once(self, desc: Descriptor, out: BinaryIO | _Sink, hasher: Hasher,
                    progress: Progress, owned: bool = True) -> None:
        have = hasher.size
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self.session.request("GET", f"/v2/{self.name}/blobs/{desc.digest}",
                                        scopes=(self.pull_scope,), headers=headers, stream=True,
                                        follow_redirects=True)
        try:
            skip = 0
            if response.status_code == 200:
                skip = have  # the server ignored Range: drop what we already hold
            elif response.status_code == 206:
                start = _range_start(response.headers.get("content-range", ""))
                if start != have:
                    raise RegistryError(f"blob {desc.digest} from {self.where}: server sent bytes "
                                        f"from {start}, asked for {have}")
            else:
                response.read()
                raise error_from_response(response, f"blob {desc.digest} in {self.where}")
            for chunk in response.iter_raw():  # as the socket gives it: re-chunking halves the speed
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                if hasher.size + len(chunk) > desc.size:
                    raise DigestMismatch(desc.digest, f"(more than the descriptor's {desc.size} bytes)",
                                         f"blob from {self.where}")
                out.write(chunk)
                if owned:  # else ``out`` hashed it
                    hasher.update(chunk)
                progress(hasher.size)
        finally:
            response.close()

    # -- blobs: upload ----------------------------------------------------------------------------

    def mount_blob(self, digest: str, from_repo: str) -> str | None:
        """Ask the registry to link ``digest`` from ``from_repo``; None if mounted, else an upload URL."""
        response = self.session.request(
            "POST", f"/v2/{self.name}/blobs/uploads/?mount={quote(digest)}&from={quote(from_repo)}",
            scopes=(*self.push_scopes, f"repository:{from_repo}:pull"), body=lambda: b"")
        if response.status_code == 201:
            return None
        if response.status_code == 202:
            return self._location(response)
        raise error_from_response(response, f"mount {digest} into {self.where}")

    def mount_first(self, digest: str, sources: Sequence[str]) -> tuple[str, str | None]:
        """Mount ``digest`` from the first of ``sources`` that is another repository: (that source,
        None) when mounted; ("", upload URL) when the registry started an upload instead; ("", None)
        with no source to ask."""
        for source in sources:
            if source != self.name:
                location = self.mount_blob(digest, source)
                return ("", location) if location is not None else (source, None)
        return "", None

    def upload_blob(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], *,
                    mount_from: Sequence[str] = (), chunk_size: int = 0,
                    progress: Progress = _no_progress, check_exists: bool = True) -> UploadResult:
        """Make ``desc`` exist in this repository: skip if present, mount if possible, else upload.

        ``open_blob`` opens the blob's bytes from the start (called again for a retry).
        ``chunk_size`` 0 sends one PUT; otherwise PATCHes of that many bytes (raised to the
        registry's ``OCI-Chunk-Min-Length``).
        """
        if check_exists and self.blob_exists(desc.digest):
            return "exists"
        options = self.session.options
        attempt = 0
        while True:
            try:
                mounted, location = self.mount_first(desc.digest, mount_from)
                if mounted:
                    return "mounted"
                if location is None:
                    location, min_chunk = self._start_upload()
                else:
                    min_chunk = 0
                if chunk_size:
                    self._upload_chunked(desc, open_blob, location, max(chunk_size, min_chunk), progress)
                else:
                    self._upload_monolithic(desc, open_blob, location, progress)
                return "uploaded"
            except (RegistryError, _RetryUpload) as exc:
                if not isinstance(exc, _RetryUpload) and not _passing(exc):
                    raise
                attempt += 1
                if attempt > options.retries:
                    raise RegistryError(f"upload of {desc.digest} to {self.where} failed: {exc}") from None
                self.session.pause(options.backoff * (2 ** (attempt - 1)),
                                   f"upload of {desc.digest.short}: {exc}")

    def upload_stream(self, chunks: Iterator[bytes], finished: Callable[[], Descriptor], *,
                      location: str | None = None) -> Descriptor:
        """Upload a blob whose digest is known only at its end (compressed while it goes up).

        One PATCH sends ``chunks`` as they come (chunked transfer encoding), then ``finished()``
        gives the blob's descriptor for the closing PUT. ``location`` is an upload the registry has
        started already (its answer to a mount it could not do). No retry here: the caller falls
        back to ``upload_blob``.
        """
        if location is None:
            location, _ = self._start_upload()
        used = False

        def body() -> Iterator[bytes]:
            nonlocal used
            if used:  # asked again (an auth retry): the stream cannot be replayed
                raise _RetryUpload("stream upload needed a second try")
            used = True
            return chunks

        response = self.session.request("PATCH", location, scopes=self.push_scopes, body=body, retry=False,
                                        headers={"Content-Type": "application/octet-stream"})
        if response.status_code != 202:
            raise error_from_response(response, f"stream upload to {self.where}")
        desc = finished()
        response = self.session.request("PUT", _with_digest(self._location(response), desc.digest),
                                        scopes=self.push_scopes, body=lambda: b"", retry=False,
                                        headers={"Content-Type": "application/octet-stream"})
        self._check_put(response, desc)
        return desc

    def _start_upload(self) -> tuple[str, int]:
        response = self.session.request("POST", f"/v2/{self.name}/blobs/uploads/",
                                        scopes=self.push_scopes, body=lambda: b"")
        if response.status_code != 202:
            raise error_from_response(response, f"start upload to {self.where}")
        min_chunk = response.headers.get("oci-chunk-min-length", "")
        return self._location(response), int(min_chunk) if min_chunk.isdigit() else 0

    def _location(self, response: httpclient.Response) -> str:
        location = response.headers.get("location", "")
        if not location:
            raise RegistryError(f"upload to {self.where}: registry sent no Location")
        return str(urljoin(str(response.url), location))

    def _upload_monolithic(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], location: str,
                           progress: Progress) -> None:
        def body() -> Iterator[bytes]:
            return _read_pieces(open_blob, 0, desc.size, progress)

        response = self.session.request(
            "PUT", _with_digest(location, desc.digest), scopes=self.push_scopes, body=body, retry=False,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)})
        self._check_put(response, desc)

    def _upload_chunked(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], location: str,
                        chunk: int, progress: Progress) -> None:
        offset = 0
        while offset < desc.size:
            end = min(offset + chunk, desc.size)

            def body(start: int = offset, stop: int = end) -> Iterator[bytes]:
                return _read_pieces(open_blob, start, stop, progress)

            response = self.session.request(
                "PATCH", location, scopes=self.push_scopes, body=body, retry=False,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(end - offset),
                         "Content-Range": f"{offset}-{end - 1}"})
            if response.status_code in (500, 502, 503, 504):
                raise _RetryUpload(f"status {response.status_code}")
            if response.status_code != 202:
                raise error_from_response(response, f"upload chunk of {desc.digest} to {self.where}")
            location = self._location(response)
            offset = end
        response = self.session.request("PUT", _with_digest(location, desc.digest), scopes=self.push_scopes,
                                        body=lambda: b"", retry=False,
                                        headers={"Content-Type": "application/octet-stream"})
        self._check_put(response, desc)

    def _check_put(self, response: httpclient.Response, desc: Descriptor) -> None:
        if response.status_code in (500, 502, 503, 504):
            raise _RetryUpload(f"status {response.status_code}")
        if response.status_code not in (201, 204):
            raise error_from_response(response, f"upload of {desc.digest} to {self.where}")
        reported = response.headers.get("docker-content-digest", "")
        if reported and reported != desc.digest:
            raise DigestMismatch(desc.digest, reported, f"blob uploaded to {self.where}")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _RetryUpload(Exception):
    """The registry failed mid-upload with a 5xx; the whole upload starts again."""


def _read_pieces(open_blob: Callable[[], BinaryIO], start: int, stop: int,
                 progress: Progress) -> Iterator[bytes]:
    with open_blob() as f:
        f.seek(start)
        pos = start
        while pos < stop:
            piece = f.read(min(PIECE, stop - pos))
            if not piece:
                raise CorruptData(f"blob source ended at byte {pos}, expected {stop}")
            pos += len(piece)
            yield piece
            progress(pos)


def _passing(exc: Exception) -> bool:
    """A failure worth another try: a transport error that can pass (raised as is, or as the cause of
    the ``RegistryError`` a request wraps it in)."""
    cause = exc.__cause__ if isinstance(exc, RegistryError) else exc
    return isinstance(cause, httpclient.TransportError) and transient(cause)


def _one_line(exc: Exception) -> str:
    return str(exc) if isinstance(exc, RegistryError) else describe_transport(exc)


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={quote(digest)}"


def _range_start(content_range: str) -> int:
    match = re.match(r"\s*bytes\s+(\d+)-", content_range)
    return int(match.group(1)) if match else -1


def _sniff(data: bytes) -> str:
    try:
        return str(sniff_media_type(loads_object(data, "manifest")))
    except CorruptData:
        return ""
