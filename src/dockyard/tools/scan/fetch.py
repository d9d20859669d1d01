"""Fetch vulnerability data files from an HTTP base URL or a local directory, conditionally and verified.

    with Fetcher("https://osv-vulnerabilities.storage.googleapis.com", tmpdir) as f:
        got = f.get("PyPI/all.zip", previous_state)   # Fetched, NOT_MODIFIED or None (absent)

HTTP uses ``If-None-Match``/``If-Modified-Since`` from the previous state (a 304 costs no download).
A directory compares size and mtime. A download is checked against the digests its server offers:
``x-goog-hash: md5=...`` (Google Cloud Storage, where OSV publishes) and a ``FILE.sha256`` beside the
file (``sha256sum`` format) when the mirror has one.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from dockyard.errors import CorruptData, DigestMismatch, DockyardError, NotFound
from dockyard.record import field, record


class FetchError(DockyardError):
    """A vulnerability data source could not be read."""


@record(slots=True)
class Fetched:
    """A downloaded file (kept in a temporary file until the fetcher closes) and how to ask again."""

    path: Path
    state: dict[str, Any] = field(default_factory=dict)  # etag, last_modified (epoch), sha256, checked
    last_modified: float = 0.0


class _NotModified:
    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED: Final = _NotModified()


def _http_date(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0


class Fetcher:
    """Reads files below one base: ``http(s)://...`` or a directory."""

    def __init__(self, base: str, workdir: Path, *, timeout: float = 120.0) -> None:
        self.base = base.rstrip("/")
        self.is_http = base.startswith(("http://", "https://"))
        if not self.is_http and not Path(base).is_dir():
            raise NotFound(f"vulnerability data source {base}: no such directory (or use an http(s) URL)")
        self._tmp = tempfile.TemporaryDirectory(prefix="fetch-", dir=workdir)
        self._n = 0
        self._client: Any = None
        if self.is_http:
            from dockyard.registry.client import httpclient
            from dockyard.registry.client.trust import verifying_context

            self._client = httpclient.Client(verify=verifying_context(), timeout=timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._tmp.cleanup()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def text(self, rel: str) -> str | None:
        """A small file's text (a listing, a checksum); None when the source does not have it."""
        got = self.get(rel, {})
        if got is None or got is NOT_MODIFIED:
            return None
        assert isinstance(got, Fetched)
        return got.path.read_text("utf-8", "replace")

    def get(self, rel: str, previous: dict[str, Any], *,
            verify: bool = False) -> Fetched | _NotModified | None:
        """Download ``rel`` unless ``previous`` shows it unchanged; None if the source lacks it.
        ``verify``: check the file against a ``.sha256`` beside it, when there is one."""
        got = self._get_http(rel, previous) if self.is_http else self._get_dir(rel, previous)
        if isinstance(got, Fetched) and verify:
            want = self.text(rel + ".sha256")
            if want is not None:
                digest = (want.split() or [""])[0].lower()
                if digest != got.state["sha256"]:
                    raise DigestMismatch(f"sha256:{digest or '(empty)'}", f"sha256:{got.state['sha256']}",
                                         f"{self.where(rel)} against {rel}.sha256")
                got.state["checked"] = "sha256"
        return got

    def _temp(self) -> Path:
        self._n += 1
        return Path(self._tmp.name) / f"part-{self._n}"

    def _get_dir(self, rel: str, previous: dict[str, Any]) -> Fetched | _NotModified | None:
        src = Path(self.base) / rel
        try:
            st = src.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FetchError(f"{src}: cannot read: {exc.strerror or exc}") from None
        etag = f"{st.st_size}-{st.st_mtime_ns}"
        if previous.get("etag") == etag:
            return NOT_MODIFIED
        dest = self._temp()
        sha = hashlib.sha256()
        with src.open("rb") as fin, dest.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                sha.update(chunk)
                fout.write(chunk)
        return Fetched(dest, {"etag": etag, "last_modified": st.st_mtime, "sha256": sha.hexdigest()},
                       st.st_mtime)

    def _get_http(self, rel: str, previous: dict[str, Any]) -> Fetched | _NotModified | None:
        from dockyard.registry.client import httpclient

        url = self.where(quote(rel))  # "Rocky Linux/all.zip"
        headers = {}
        if previous.get("etag"):
            headers["If-None-Match"] = str(previous["etag"])
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = formatdate(float(previous["last_modified"]), usegmt=True)
        dest = self._temp()
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with self._client.stream("GET", url, headers=headers, follow_redirects=True) as resp:
                if resp.status_code == 304:
                    return NOT_MODIFIED
                if resp.status_code in (403, 404, 410):  # GCS answers 403 for a missing object too
                    return None
                if resp.status_code != 200:
                    raise FetchError(f"{url}: HTTP {resp.status_code}")
                with dest.open("wb") as out:
                    for chunk in resp.iter_raw():
                        sha.update(chunk)
                        md5.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                expected_len = resp.headers.get("content-length")
                etag = resp.headers.get("etag", "")
                last_modified = _http_date(resp.headers.get("last-modified"))
                goog = resp.headers.get("x-goog-hash", "")
                encoding = resp.headers.get("content-encoding", "")
        except httpclient.TransportError as exc:
            raise FetchError(f"{url}: {exc}") from None
        if expected_len and not encoding and int(expected_len) != size:
            raise CorruptData(f"{url}: got {size} of {expected_len} bytes")
        state: dict[str, Any] = {"etag": etag, "last_modified": last_modified, "sha256": sha.hexdigest()}
        for part in goog.split(","):
            kind, _, value = part.strip().partition("=")
            if kind == "md5" and value and not encoding:
                if base64.b64decode(value + "==") != md5.digest():
                    raise DigestMismatch(f"md5:{value}", "md5:" + base64.b64encode(md5.digest()).decode(),
                                         f"{url} against its x-goog-hash")
                state["checked"] = "md5"
        return Fetched(dest, state, last_modified)


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()
