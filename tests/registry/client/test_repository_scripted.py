"""Repository against a registry scripted in-process (``httpx.MockTransport``), for what the peer
registries never do: bodies cut or cut short at chosen bytes, resumes answered with the whole body,
5xx on an upload's PUT, digests reported wrong, minimum chunk lengths, and bearer tokens checked per
request (reads and writes must send the right scope on their first try)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from dockyard.errors import CorruptData, DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import describe
from dockyard.registry.client import RegistryClient, RegistryOptions

HOST = "127.0.0.1:9"  # never dialled: the mock transport answers
BLOB = b"abcdefghij"
DESC = describe(BLOB, mt.OCI_LAYER_GZIP)
WHERE = f"{HOST}/x/y"
Handler = Callable[[httpx.Request], httpx.Response]


class _Chunks(httpx.SyncByteStream):
    """A body given to ``iter_raw`` in exactly these pieces, optionally broken off after them."""

    def __init__(self, chunks: list[bytes], cut: bool = False) -> None:
        self.chunks = chunks
        self.cut = cut

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.cut:
            raise httpx.RemoteProtocolError("peer closed connection (injected)")


@dataclass
class Scripted:
    """A registry answering ``/v2/`` with 200 and everything else with ``handler``; keeps a log."""

    handler: Handler
    options: RegistryOptions = field(default_factory=lambda: RegistryOptions(backoff=0.5))
    log: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        self.log.append(f"{request.method} {request.url.raw_path.decode()}")
        return self.handler(request)

    def run(self, call: Callable[[RegistryClient], object]) -> object:
        client = RegistryClient(self.options, transport=httpx.MockTransport(self.route),
                                sleep=self.sleeps.append)
        with client, client.reporting(self.notices.append):
            return call(client)

    def repo(self, call: Callable[..., object]) -> object:
        return self.run(lambda client: call(client.repository(HOST, "x/y")))


def _fetch(script: Scripted, out: object, desc: Descriptor = DESC) -> list[int]:
    progress: list[int] = []
    script.repo(lambda repo: repo.fetch_blob(desc, out, progress.append))
    return progress


class _Sink:
    """A writer without ``seekable`` (like a content-store writer) that notes whether it was flushed."""

    def __init__(self) -> None:
        self.data = b""
        self.flushed = False

    def write(self, data: bytes) -> int:
        assert not self.flushed
        self.data += data
        return len(data)

    def flush(self) -> None:
        self.flushed = True


# -- downloads ----------------------------------------------------------------------------------

def test_resume_reads_the_held_bytes_from_the_start_of_the_file() -> None:
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        return httpx.Response(206, headers={"Content-Range": "bytes 4-9/10"},
                              stream=_Chunks([b"efg", b"hij"]))

    out = io.BytesIO()
    out.write(BLOB[:4])  # the file position is after the held bytes
    assert _fetch(Scripted(handler), out) == [7, 10]
    assert ranges == ["bytes=4-"] and out.getvalue() == BLOB


@pytest.mark.parametrize(("chunks", "progress"), [
    ([b"ab", b"cde", b"fghij"], [10]),           # the held prefix ends exactly at a chunk's end
    ([b"abc", b"defgh", b"ij"], [8, 10]),        # ... or inside a chunk
    ([b"abcdefghij"], [10]),
])
def test_a_server_ignoring_range_has_the_held_prefix_skipped(chunks: list[bytes],
                                                             progress: list[int]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["range"] == "bytes=5-"
        return httpx.Response(200, stream=_Chunks(chunks))

    out = io.BytesIO(BLOB[:5])
    script = Scripted(handler)
    assert _fetch(script, out) == progress
    assert out.getvalue() == BLOB and script.log == [f"GET /v2/x/y/blobs/{DESC.digest}"]


def test_a_file_holding_the_whole_blob_is_not_fetched_again() -> None:
    script = Scripted(lambda request: pytest.fail("fetched"))
    out = io.BytesIO(BLOB)
    assert _fetch(script, out) == [] and out.getvalue() == BLOB and script.log == []


def test_a_file_holding_more_than_the_blob_is_emptied_and_fetched_whole() -> None:
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        return httpx.Response(200, stream=_Chunks([BLOB]))

    out = io.BytesIO(b"x" * 15)
    assert _fetch(Scripted(handler), out) == [10]
    assert ranges == [None] and out.getvalue() == BLOB


def test_a_sink_without_seek_gets_the_blob_and_is_flushed() -> None:
    sink = _Sink()
    assert _fetch(Scripted(lambda request: httpx.Response(200, stream=_Chunks([b"abcd", b"efghij"]))),
                  sink) == [4, 10]
    assert sink.data == BLOB and sink.flushed


def test_wrong_bytes_of_the_right_size_are_refused_and_the_file_emptied() -> None:
    wrong = b"0123456789"
    out = io.BytesIO()
    with pytest.raises(DigestMismatch) as caught:
        _fetch(Scripted(lambda request: httpx.Response(200, stream=_Chunks([wrong]))), out)
    assert str(caught.value) == (f"digest mismatch (blob from {WHERE}): expected {DESC.digest}, "
                                 f"got {Digest.from_bytes(wrong)}")
    assert out.getvalue() == b""
    sink = _Sink()  # nothing to empty: the caller's writer discards it
    with pytest.raises(DigestMismatch):
        _fetch(Scripted(lambda request: httpx.Response(200, stream=_Chunks([wrong]))), sink)
    assert sink.data == wrong and not sink.flushed


def test_more_bytes_than_the_descriptor_says_are_refused_at_once() -> None:
    out = io.BytesIO()
    with pytest.raises(DigestMismatch) as caught:
        _fetch(Scripted(lambda request: httpx.Response(200, stream=_Chunks([b"abcdef", b"ghijk"]))), out)
    assert str(caught.value) == (f"digest mismatch (blob from {WHERE}): expected {DESC.digest}, "
                                 "got (more than the descriptor's 10 bytes)")
    assert out.getvalue() == b""


def _cut_every(n: int, cuts: int) -> tuple[Handler, list[str | None]]:
    """Answers Range requests with ``n`` more bytes each, the first ``cuts`` answers broken off after them."""
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        start = int((ranges[-1] or "bytes=0-")[6:-1])
        part = BLOB[start:start + n] if len(ranges) <= cuts else BLOB[start:]
        status, headers = (206, {"Content-Range": f"bytes {start}-9/10"}) if start else (200, {})
        return httpx.Response(status, headers=headers, stream=_Chunks([part], cut=len(ranges) <= cuts))

    return handler, ranges


def test_broken_downloads_resume_with_growing_waits() -> None:
    handler, ranges = _cut_every(2, cuts=4)  # retries=4: the fifth try may still succeed
    script = Scripted(handler)
    out = io.BytesIO()
    assert _fetch(script, out) == [2, 4, 6, 8, 10]
    assert out.getvalue() == BLOB
    assert ranges == [None, "bytes=2-", "bytes=4-", "bytes=6-", "bytes=8-"]
    assert script.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert script.notices == [f"download of {DESC.digest.short}: peer closed connection (injected); "
                              f"retrying in {s:g} s" for s in (0.5, 1, 2, 4)]


def test_a_download_broken_too_often_fails_naming_the_attempts() -> None:
    handler, ranges = _cut_every(1, cuts=99)
    script = Scripted(handler)
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value) == (f"blob {DESC.digest} from {WHERE}: download failed after 5 attempts: "
                                 "peer closed connection (injected)")
    assert len(ranges) == 5 and script.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_a_clean_but_short_answer_is_resumed_without_waiting() -> None:
    handler, ranges = _cut_every(4, cuts=0)
    answers = iter([httpx.Response(200, stream=_Chunks([BLOB[:4]])), None])

    def short_first(request: httpx.Request) -> httpx.Response:
        return next(answers) or handler(request)

    script = Scripted(short_first)
    out = io.BytesIO()
    assert _fetch(script, out) == [4, 10] and out.getvalue() == BLOB
    assert ranges == ["bytes=4-"] and script.sleeps == []


def test_answers_that_stay_short_fail_after_the_retries() -> None:
    script = Scripted(lambda request: httpx.Response(200, stream=_Chunks([])),
                      options=RegistryOptions(backoff=0.5, retries=2))
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value) == f"blob {DESC.digest} from {WHERE}: short read (0 of 10 bytes)"
    assert len(script.log) == 3 and script.sleeps == []


def test_a_missing_blob_is_an_error_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})

    script = Scripted(handler)
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value).startswith(f"blob {DESC.digest} in {WHERE}")
    assert len(script.log) == 1 and script.sleeps == []


# -- uploads ------------------------------------------------------------------------------------

def _upload_handler(put_answers: list[httpx.Response], *, head: int = 404,
                    post_headers: dict[str, str] | None = None, mount: int = 0,
                    seen: list[tuple[str, str]] | None = None) -> Handler:
    """HEAD answers ``head``; POST starts an upload (or answers a mount with ``mount``); PATCH takes a
    chunk; PUT gives the next of ``put_answers`` (the last one repeats)."""
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append((request.method, request.read().decode()))
        if request.method == "HEAD":
            return httpx.Response(head)
        if request.method == "POST" and mount and "mount=" in str(request.url):
            return httpx.Response(mount, headers={"Location": "/mounted/1"} if mount == 202 else {})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/up/1", **(post_headers or {})})
        if request.method == "PATCH":
            return httpx.Response(202, headers={"Location": request.url.path})
        return put_answers.pop(0) if len(put_answers) > 1 else put_answers[0]

    return handler


def _upload(script: Scripted, **kwargs: object) -> object:
    return script.repo(lambda repo: repo.upload_blob(DESC, lambda: io.BytesIO(BLOB), **kwargs))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_on_the_closing_put_starts_the_upload_again(status: int) -> None:
    script = Scripted(_upload_handler([httpx.Response(status), httpx.Response(201)]))
    assert _upload(script) == "uploaded"
    put = f"PUT /up/1?digest={DESC.digest.algorithm}%3A{DESC.digest.hex}"
    assert script.log == [f"HEAD /v2/x/y/blobs/{DESC.digest}", "POST /v2/x/y/blobs/uploads/", put,
                          "POST /v2/x/y/blobs/uploads/", put]
    assert script.sleeps == [0.5]
    assert script.notices == [f"upload of {DESC.digest.short}: status {status}; retrying in 0.5 s"]


def test_an_upload_failing_every_time_gives_up_after_the_retries() -> None:
    script = Scripted(_upload_handler([httpx.Response(503)]), options=RegistryOptions(backoff=0.5, retries=2))
    with pytest.raises(RegistryError) as caught:
        _upload(script, check_exists=False)
    assert str(caught.value) == f"upload of {DESC.digest} to {WHERE} failed: status 503"
    assert script.sleeps == [0.5, 1.0] and script.log.count("POST /v2/x/y/blobs/uploads/") == 3


@pytest.mark.parametrize("status", [201, 204])
def test_the_closing_put_may_answer_created_or_no_content(status: int) -> None:
    answer = httpx.Response(status, headers={"Docker-Content-Digest": DESC.digest})
    script = Scripted(_upload_handler([answer]))
    assert _upload(script) == "uploaded" and script.sleeps == []


@pytest.mark.parametrize("status", [200, 202, 400])
def test_any_other_answer_to_the_closing_put_is_an_error_at_once(status: int) -> None:
    script = Scripted(_upload_handler([httpx.Response(status)]))
    with pytest.raises(RegistryError) as caught:
        _upload(script)
    assert str(caught.value).startswith(f"upload of {DESC.digest} to {WHERE}")
    assert script.sleeps == [] and script.log.count("POST /v2/x/y/blobs/uploads/") == 1


def test_a_registry_reporting_another_digest_for_an_upload_is_refused() -> None:
    other = Digest.from_bytes(b"other")
    script = Scripted(_upload_handler([httpx.Response(201, headers={"Docker-Content-Digest": other})]))
    with pytest.raises(DigestMismatch) as caught:
        _upload(script)
    assert str(caught.value) == (f"digest mismatch (blob uploaded to {WHERE}): expected {DESC.digest}, "
                                 f"got {other}")


def test_an_existing_blob_is_not_uploaded_unless_the_check_is_skipped() -> None:
    script = Scripted(_upload_handler([httpx.Response(201)], head=200))
    assert _upload(script) == "exists"
    assert script.log == [f"HEAD /v2/x/y/blobs/{DESC.digest}"]
    script = Scripted(_upload_handler([httpx.Response(201)], head=200))
    assert _upload(script, check_exists=False) == "uploaded"
    assert [line.split()[0] for line in script.log] == ["POST", "PUT"]


def test_mounts_skip_the_repository_itself_and_stop_at_the_first_answer() -> None:
    script = Scripted(_upload_handler([httpx.Response(201)], mount=201))
    assert _upload(script, mount_from=["x/y", "a/b", "c/d"], check_exists=False) == "mounted"
    assert script.log == [f"POST /v2/x/y/blobs/uploads/?mount={DESC.digest.algorithm}%3A{DESC.digest.hex}"
                          "&from=a/b"]


def test_a_refused_mount_uploads_to_the_location_it_answered_in_whole_chunks() -> None:
    seen: list[tuple[str, str]] = []
    script = Scripted(_upload_handler([httpx.Response(201)], mount=202, seen=seen,
                                      post_headers={"OCI-Chunk-Min-Length": "8"}))
    assert _upload(script, mount_from=["a/b", "c/d"], chunk_size=4, check_exists=False) == "uploaded"
    # the mount's upload has no minimum chunk length: chunks of 4, to the mount's Location
    assert [line.split("?")[0] for line in script.log] == [
        "POST /v2/x/y/blobs/uploads/", "PATCH /mounted/1", "PATCH /mounted/1", "PATCH /mounted/1",
        "PUT /mounted/1"]
    assert [body for method, body in seen if method == "PATCH"] == ["abcd", "efgh", "ij"]


@pytest.mark.parametrize(("minimum", "bodies"), [("6", ["abcdef", "ghij"]), ("x6", ["abcd", "efgh", "ij"]),
                                                 ("3", ["abcd", "efgh", "ij"])])
def test_chunks_grow_to_the_registrys_minimum_length(minimum: str, bodies: list[str]) -> None:
    seen: list[tuple[str, str]] = []
    script = Scripted(_upload_handler([httpx.Response(201)], seen=seen,
                                      post_headers={"OCI-Chunk-Min-Length": minimum}))
    assert _upload(script, chunk_size=4, check_exists=False) == "uploaded"
    assert [body for method, body in seen if method == "PATCH"] == bodies


def test_a_refused_upload_is_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})

    script = Scripted(handler)
    with pytest.raises(RegistryError) as caught:
        _upload(script, check_exists=False)
    assert str(caught.value).startswith(f"start upload to {WHERE}") and script.sleeps == []
    assert script.log == ["POST /v2/x/y/blobs/uploads/"]


# -- manifests ----------------------------------------------------------------------------------

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}, "layers": []}).encode()
MDIGEST = Digest.from_bytes(MANIFEST)


@pytest.mark.parametrize(("status", "reported"), [
    (200, ""), (201, str(MDIGEST)), (202, "sha256:not-a-digest")])
def test_put_manifest_accepts_2xx_and_returns_the_digest_of_the_bytes(status: int, reported: str) -> None:
    sent: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers.get("content-type"), request.read()))
        return httpx.Response(status, headers={"Docker-Content-Digest": reported} if reported else {})

    script = Scripted(handler)
    assert script.repo(lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST)) == MDIGEST
    assert sent == [(mt.OCI_MANIFEST, MANIFEST)] and script.log == ["PUT /v2/x/y/manifests/v1"]


def test_put_manifest_errors() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"errors": [{"code": "MANIFEST_INVALID", "message": "bad"}]})

    with pytest.raises(RegistryError) as caught:
        Scripted(refused).repo(lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST))
    assert str(caught.value).startswith(f"push manifest to {WHERE}:v1")
    other = Digest.from_bytes(b"other")
    with pytest.raises(DigestMismatch) as mismatch:
        Scripted(lambda request: httpx.Response(201, headers={"Docker-Content-Digest": other})).repo(
            lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST))
    assert str(mismatch.value) == (f"digest mismatch (manifest pushed to {WHERE}): expected {MDIGEST}, "
                                   f"got {other}")


def test_get_manifest_reads_the_media_type_without_parameters_and_refuses_huge_ones() -> None:
    script = Scripted(lambda request: httpx.Response(
        200, content=MANIFEST, headers={"Content-Type": f" {mt.OCI_MANIFEST} ; charset=utf-8"}))
    fetched = script.repo(lambda repo: repo.get_manifest("v1"))
    assert fetched.media_type == mt.OCI_MANIFEST and fetched.data == MANIFEST  # type: ignore[attr-defined]
    huge = b" " * ((4 << 20) + 1)
    with pytest.raises(CorruptData) as caught:
        Scripted(lambda request: httpx.Response(200, content=huge)).repo(lambda repo: repo.get_manifest("v1"))
    assert str(caught.value) == f"manifest {WHERE}:v1: larger than {4 << 20} bytes"
    exact = MANIFEST + b" " * ((4 << 20) - len(MANIFEST))
    typed = {"Content-Type": mt.OCI_MANIFEST}
    fetched = Scripted(lambda request: httpx.Response(200, content=exact, headers=typed)).repo(
        lambda repo: repo.get_manifest("v1"))
    assert fetched.data == exact  # type: ignore[attr-defined]


# -- scopes: each call sends the token it needs on its first try -----------------------------------

def test_every_call_asks_for_its_scope_before_the_registry_has_to_say() -> None:
    """Without the right scope up front a call still works, after a 401 and a second token: the 401s
    counted here are that wasted round trip."""
    unauthorized: list[str] = []
    challenge = f'Bearer realm="http://{HOST}/token",service="scripted"'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": " ".join(request.url.params.get_list("scope"))})
        path = request.url.path
        mount = "mount=" in str(request.url)
        writes = request.method in ("PUT", "PATCH", "POST")
        need = ["repository:x/y:pull,push" if writes else "repository:x/y:pull"]
        if mount:
            need.append("repository:a/b:pull")
        granted = request.headers.get("authorization", "").removeprefix("Bearer ").split(" ")
        if not all(scope in granted for scope in need):
            unauthorized.append(f"{request.method} {path}")
            return httpx.Response(401, headers={"WWW-Authenticate": f'{challenge},scope="{" ".join(need)}"'})
        if "/manifests/" in path:
            if request.method == "PUT":
                return httpx.Response(201)
            return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_MANIFEST,
                                                                 "Docker-Content-Digest": str(MDIGEST)})
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["v1"]})
        if mount:
            return httpx.Response(201)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/x/y/blobs/uploads/1"})
        if request.method == "PUT":
            return httpx.Response(201)
        if request.method == "PATCH":
            return httpx.Response(202, headers={"Location": "/v2/x/y/blobs/uploads/1"})
        return httpx.Response(200, stream=_Chunks([BLOB]))

    def ping_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return handler(request)

    def calls(client: RegistryClient) -> None:
        repo = client.repository(HOST, "x/y")
        assert repo.get_manifest("v1").digest == MDIGEST
        assert repo.head_manifest("v1") is not None
        assert repo.tags() == ["v1"]
        assert repo.blob_exists(DESC.digest)
        assert repo.get_blob_bytes(DESC) == BLOB
        repo.fetch_blob(DESC, io.BytesIO())
        repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST)
        assert repo.mount_blob(DESC.digest, "a/b") is None
        for chunk_size in (0, 4):
            assert repo.upload_blob(DESC, lambda: io.BytesIO(BLOB), check_exists=False,
                                    chunk_size=chunk_size) == "uploaded"
        stream = repo.upload_stream(iter([BLOB]), lambda: DESC)
        assert stream == DESC

    client = RegistryClient(RegistryOptions(backoff=0.01), transport=httpx.MockTransport(ping_401))
    with client:
        calls(client)
    assert unauthorized == []
