"""Repository against a registry scripted in-process (a ``transport`` function), for what the peer
registries never do: bodies cut or cut short at chosen bytes, resumes answered with the whole body,
5xx on an upload's PUT, digests reported wrong, minimum chunk lengths, and bearer tokens checked per
request (reads and writes must send the right scope on their first try)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from dockyard.errors import CorruptData, DigestMismatch, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import describe
from dockyard.registry.client import RegistryClient, RegistryOptions, httpclient
from dockyard.registry.client.repository import PIECE, _RetryUpload

HOST = "127.0.0.1:9"  # never dialled: the mock transport answers
BLOB = b"abcdefghij"
DESC = describe(BLOB, mt.OCI_LAYER_GZIP)
WHERE = f"{HOST}/x/y"
Handler = Callable[[httpclient.Request], httpclient.Response]


class _Chunks:
    """A body given to ``iter_raw`` in exactly these pieces, optionally broken off after them."""

    def __init__(self, chunks: list[bytes], cut: bool = False, error: Exception | None = None) -> None:
        self.chunks = chunks
        cut_off = httpclient.RemoteProtocolError("peer closed connection (injected)") if cut else None
        self.error = error or cut_off

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error


@dataclass
class Scripted:
    """A registry answering ``/v2/`` with 200 and everything else with ``handler``; keeps a log."""

    handler: Handler
    options: RegistryOptions = field(default_factory=lambda: RegistryOptions(backoff=0.5))
    log: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def route(self, request: httpclient.Request) -> httpclient.Response:
        if request.url.path == "/v2/":
            return httpclient.Response(200, json={})
        self.log.append(f"{request.method} {request.url.raw_path}")
        return self.handler(request)

    def run(self, call: Callable[[RegistryClient], object]) -> object:
        client = RegistryClient(self.options, transport=self.route,
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

    def handler(request: httpclient.Request) -> httpclient.Response:
        ranges.append(request.headers.get("range"))
        return httpclient.Response(206, headers={"Content-Range": "bytes 4-9/10"},
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
    def handler(request: httpclient.Request) -> httpclient.Response:
        assert request.headers["range"] == "bytes=5-"
        return httpclient.Response(200, stream=_Chunks(chunks))

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

    def handler(request: httpclient.Request) -> httpclient.Response:
        ranges.append(request.headers.get("range"))
        return httpclient.Response(200, stream=_Chunks([BLOB]))

    out = io.BytesIO(b"x" * 15)
    assert _fetch(Scripted(handler), out) == [10]
    assert ranges == [None] and out.getvalue() == BLOB


def test_a_sink_without_seek_gets_the_blob_and_is_flushed() -> None:
    sink = _Sink()
    assert _fetch(Scripted(lambda request: httpclient.Response(200, stream=_Chunks([b"abcd", b"efghij"]))),
                  sink) == [4, 10]
    assert sink.data == BLOB and sink.flushed


def test_wrong_bytes_of_the_right_size_are_refused_and_the_file_emptied() -> None:
    wrong = b"0123456789"
    out = io.BytesIO()
    with pytest.raises(DigestMismatch) as caught:
        _fetch(Scripted(lambda request: httpclient.Response(200, stream=_Chunks([wrong]))), out)
    assert str(caught.value) == (f"digest mismatch (blob from {WHERE}): expected {DESC.digest}, "
                                 f"got {Digest.from_bytes(wrong)}")
    assert out.getvalue() == b""
    sink = _Sink()  # nothing to empty: the caller's writer discards it
    with pytest.raises(DigestMismatch):
        _fetch(Scripted(lambda request: httpclient.Response(200, stream=_Chunks([wrong]))), sink)
    assert sink.data == wrong and not sink.flushed


def test_more_bytes_than_the_descriptor_says_are_refused_at_once() -> None:
    out = io.BytesIO()
    with pytest.raises(DigestMismatch) as caught:
        _fetch(Scripted(lambda request: httpclient.Response(200, stream=_Chunks([b"abcdef", b"ghijk"]))), out)
    assert str(caught.value) == (f"digest mismatch (blob from {WHERE}): expected {DESC.digest}, "
                                 "got (more than the descriptor's 10 bytes)")
    assert out.getvalue() == b""


def _cut_every(n: int, cuts: int) -> tuple[Handler, list[str | None]]:
    """Answers Range requests with ``n`` more bytes each, the first ``cuts`` answers broken off after them."""
    ranges: list[str | None] = []

    def handler(request: httpclient.Request) -> httpclient.Response:
        ranges.append(request.headers.get("range"))
        start = int((ranges[-1] or "bytes=0-")[6:-1])
        part = BLOB[start:start + n] if len(ranges) <= cuts else BLOB[start:]
        status, headers = (206, {"Content-Range": f"bytes {start}-9/10"}) if start else (200, {})
        return httpclient.Response(status, headers=headers, stream=_Chunks([part], cut=len(ranges) <= cuts))

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
    answers = iter([httpclient.Response(200, stream=_Chunks([BLOB[:4]])), None])

    def short_first(request: httpclient.Request) -> httpclient.Response:
        return next(answers) or handler(request)

    script = Scripted(short_first)
    out = io.BytesIO()
    assert _fetch(script, out) == [4, 10] and out.getvalue() == BLOB
    assert ranges == ["bytes=4-"] and script.sleeps == []


def test_answers_that_stay_short_fail_after_the_retries() -> None:
    script = Scripted(lambda request: httpclient.Response(200, stream=_Chunks([])),
                      options=RegistryOptions(backoff=0.5, retries=2))
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value) == f"blob {DESC.digest} from {WHERE}: short read (0 of 10 bytes)"
    assert len(script.log) == 3 and script.sleeps == []


def test_a_missing_blob_is_an_error_at_once() -> None:
    def handler(request: httpclient.Request) -> httpclient.Response:
        return httpclient.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN",
                                                          "message": "blob unknown"}]})

    script = Scripted(handler)
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value).startswith(f"blob {DESC.digest} in {WHERE}")
    assert len(script.log) == 1 and script.sleeps == []


# -- uploads ------------------------------------------------------------------------------------

def _upload_handler(put_answers: list[httpclient.Response], *, head: int = 404,
                    post_headers: dict[str, str] | None = None, mount: int = 0,
                    seen: list[tuple[str, str]] | None = None) -> Handler:
    """HEAD answers ``head``; POST starts an upload (or answers a mount with ``mount``); PATCH takes a
    chunk; PUT gives the next of ``put_answers`` (the last one repeats)."""
    def handler(request: httpclient.Request) -> httpclient.Response:
        if seen is not None:
            seen.append((request.method, request.read().decode()))
        if request.method == "HEAD":
            return httpclient.Response(head)
        if request.method == "POST" and mount and "mount=" in str(request.url):
            return httpclient.Response(mount, headers={"Location": "/mounted/1"} if mount == 202 else {})
        if request.method == "POST":
            return httpclient.Response(202, headers={"Location": "/up/1", **(post_headers or {})})
        if request.method == "PATCH":
            return httpclient.Response(202, headers={"Location": request.url.path})
        return put_answers.pop(0) if len(put_answers) > 1 else put_answers[0]

    return handler


def _upload(script: Scripted, **kwargs: object) -> object:
    return script.repo(lambda repo: repo.upload_blob(DESC, lambda: io.BytesIO(BLOB), **kwargs))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_on_the_closing_put_starts_the_upload_again(status: int) -> None:
    script = Scripted(_upload_handler([httpclient.Response(status), httpclient.Response(201)]))
    assert _upload(script) == "uploaded"
    put = f"PUT /up/1?digest={DESC.digest.algorithm}%3A{DESC.digest.hex}"
    assert script.log == [f"HEAD /v2/x/y/blobs/{DESC.digest}", "POST /v2/x/y/blobs/uploads/", put,
                          "POST /v2/x/y/blobs/uploads/", put]
    assert script.sleeps == [0.5]
    assert script.notices == [f"upload of {DESC.digest.short}: status {status}; retrying in 0.5 s"]


def test_an_upload_failing_every_time_gives_up_after_the_retries() -> None:
    script = Scripted(_upload_handler([httpclient.Response(503)]),
                      options=RegistryOptions(backoff=0.5, retries=2))
    with pytest.raises(RegistryError) as caught:
        _upload(script, check_exists=False)
    assert str(caught.value) == f"upload of {DESC.digest} to {WHERE} failed: status 503"
    assert script.sleeps == [0.5, 1.0] and script.log.count("POST /v2/x/y/blobs/uploads/") == 3


@pytest.mark.parametrize("status", [201, 204])
def test_the_closing_put_may_answer_created_or_no_content(status: int) -> None:
    answer = httpclient.Response(status, headers={"Docker-Content-Digest": DESC.digest})
    script = Scripted(_upload_handler([answer]))
    assert _upload(script) == "uploaded" and script.sleeps == []


@pytest.mark.parametrize("status", [200, 202, 400])
def test_any_other_answer_to_the_closing_put_is_an_error_at_once(status: int) -> None:
    script = Scripted(_upload_handler([httpclient.Response(status)]))
    with pytest.raises(RegistryError) as caught:
        _upload(script)
    assert str(caught.value).startswith(f"upload of {DESC.digest} to {WHERE}")
    assert script.sleeps == [] and script.log.count("POST /v2/x/y/blobs/uploads/") == 1


def test_a_registry_reporting_another_digest_for_an_upload_is_refused() -> None:
    other = Digest.from_bytes(b"other")
    script = Scripted(_upload_handler([httpclient.Response(201, headers={"Docker-Content-Digest": other})]))
    with pytest.raises(DigestMismatch) as caught:
        _upload(script)
    assert str(caught.value) == (f"digest mismatch (blob uploaded to {WHERE}): expected {DESC.digest}, "
                                 f"got {other}")


def test_an_existing_blob_is_not_uploaded_unless_the_check_is_skipped() -> None:
    script = Scripted(_upload_handler([httpclient.Response(201)], head=200))
    assert _upload(script) == "exists"
    assert script.log == [f"HEAD /v2/x/y/blobs/{DESC.digest}"]
    script = Scripted(_upload_handler([httpclient.Response(201)], head=200))
    assert _upload(script, check_exists=False) == "uploaded"
    assert [line.split()[0] for line in script.log] == ["POST", "PUT"]


def test_mounts_skip_the_repository_itself_and_stop_at_the_first_answer() -> None:
    script = Scripted(_upload_handler([httpclient.Response(201)], mount=201))
    assert _upload(script, mount_from=["x/y", "a/b", "c/d"], check_exists=False) == "mounted"
    assert script.log == [f"POST /v2/x/y/blobs/uploads/?mount={DESC.digest.algorithm}%3A{DESC.digest.hex}"
                          "&from=a/b"]


def test_a_refused_mount_uploads_to_the_location_it_answered_in_whole_chunks() -> None:
    seen: list[tuple[str, str]] = []
    script = Scripted(_upload_handler([httpclient.Response(201)], mount=202, seen=seen,
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
    script = Scripted(_upload_handler([httpclient.Response(201)], seen=seen,
                                      post_headers={"OCI-Chunk-Min-Length": minimum}))
    assert _upload(script, chunk_size=4, check_exists=False) == "uploaded"
    assert [body for method, body in seen if method == "PATCH"] == bodies


def test_a_refused_upload_is_not_retried() -> None:
    def handler(request: httpclient.Request) -> httpclient.Response:
        return httpclient.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})

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

    def handler(request: httpclient.Request) -> httpclient.Response:
        sent.append((request.headers.get("content-type"), request.read()))
        return httpclient.Response(status, headers={"Docker-Content-Digest": reported} if reported else {})

    script = Scripted(handler)
    assert script.repo(lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST)) == MDIGEST
    assert sent == [(mt.OCI_MANIFEST, MANIFEST)] and script.log == ["PUT /v2/x/y/manifests/v1"]


def test_put_manifest_errors() -> None:
    def refused(request: httpclient.Request) -> httpclient.Response:
        return httpclient.Response(400, json={"errors": [{"code": "MANIFEST_INVALID", "message": "bad"}]})

    with pytest.raises(RegistryError) as caught:
        Scripted(refused).repo(lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST))
    assert str(caught.value).startswith(f"push manifest to {WHERE}:v1")
    other = Digest.from_bytes(b"other")
    with pytest.raises(DigestMismatch) as mismatch:
        Scripted(lambda request: httpclient.Response(201, headers={"Docker-Content-Digest": other})).repo(
            lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST))
    assert str(mismatch.value) == (f"digest mismatch (manifest pushed to {WHERE}): expected {MDIGEST}, "
                                   f"got {other}")


def test_get_manifest_reads_the_media_type_without_parameters_and_refuses_huge_ones() -> None:
    script = Scripted(lambda request: httpclient.Response(
        200, content=MANIFEST, headers={"Content-Type": f" {mt.OCI_MANIFEST} ; charset=utf-8"}))
    fetched = script.repo(lambda repo: repo.get_manifest("v1"))
    assert fetched.media_type == mt.OCI_MANIFEST and fetched.data == MANIFEST  # type: ignore[attr-defined]
    huge = b" " * ((4 << 20) + 1)
    with pytest.raises(CorruptData) as caught:
        Scripted(lambda request: httpclient.Response(200, content=huge)).repo(
            lambda repo: repo.get_manifest("v1"))
    assert str(caught.value) == f"manifest {WHERE}:v1: larger than {4 << 20} bytes"
    exact = MANIFEST + b" " * ((4 << 20) - len(MANIFEST))
    typed = {"Content-Type": mt.OCI_MANIFEST}
    fetched = Scripted(lambda request: httpclient.Response(200, content=exact, headers=typed)).repo(
        lambda repo: repo.get_manifest("v1"))
    assert fetched.data == exact  # type: ignore[attr-defined]


# -- scopes: each call sends the token it needs on its first try -----------------------------------

def test_every_call_asks_for_its_scope_before_the_registry_has_to_say() -> None:
    """Without the right scope up front a call still works, after a 401 and a second token: the 401s
    counted here are that wasted round trip."""
    unauthorized: list[str] = []
    challenge = f'Bearer realm="http://{HOST}/token",service="scripted"'

    def handler(request: httpclient.Request) -> httpclient.Response:
        if request.url.path == "/token":
            return httpclient.Response(200, json={"token": " ".join(request.url.params.get_list("scope"))})
        path = request.url.path
        mount = "mount=" in str(request.url)
        writes = request.method in ("PUT", "PATCH", "POST")
        need = ["repository:x/y:pull,push" if writes else "repository:x/y:pull"]
        if mount:
            need.append("repository:a/b:pull")
        granted = request.headers.get("authorization", "").removeprefix("Bearer ").split(" ")
        if not all(scope in granted for scope in need):
            unauthorized.append(f"{request.method} {path}")
            return httpclient.Response(
                401, headers={"WWW-Authenticate": f'{challenge},scope="{" ".join(need)}"'})
        if "/manifests/" in path:
            if request.method == "PUT":
                return httpclient.Response(201)
            return httpclient.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_MANIFEST,
                                                                 "Docker-Content-Digest": str(MDIGEST)})
        if path.endswith("/tags/list"):
            return httpclient.Response(200, json={"tags": ["v1"]})
        if mount:
            return httpclient.Response(201)
        if request.method == "POST":
            return httpclient.Response(202, headers={"Location": "/v2/x/y/blobs/uploads/1"})
        if request.method == "PUT":
            return httpclient.Response(201)
        if request.method == "PATCH":
            return httpclient.Response(202, headers={"Location": "/v2/x/y/blobs/uploads/1"})
        return httpclient.Response(200, stream=_Chunks([BLOB]))

    def ping_401(request: httpclient.Request) -> httpclient.Response:
        if request.url.path == "/v2/":
            return httpclient.Response(401, headers={"WWW-Authenticate": challenge})
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

    client = RegistryClient(RegistryOptions(backoff=0.01), transport=ping_401)
    with client:
        calls(client)
    assert unauthorized == []


# -- retries announced, failures below HTTP --------------------------------------------------------

def _first_503(ok: Handler) -> Handler:
    """Answers each method and path 503 the first time, then as ``ok`` does."""
    seen: set[str] = set()

    def handler(request: httpclient.Request) -> httpclient.Response:
        key = f"{request.method} {request.url.path}"
        if key not in seen:
            seen.add(key)
            return httpclient.Response(503)
        return ok(request)

    return handler


def _answers(request: httpclient.Request) -> httpclient.Response:
    """A registry holding BLOB and MANIFEST that takes every upload and refuses every mount."""
    if "/manifests/" in request.url.path:
        if request.method == "PUT":
            return httpclient.Response(201)
        return httpclient.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_MANIFEST,
                                                             "Docker-Content-Digest": str(MDIGEST)})
    if request.url.path.endswith("/tags/list"):
        return httpclient.Response(200, json={"tags": ["v1"]})
    if request.method == "POST":
        return httpclient.Response(202, headers={"Location": "/up/1"})
    if request.method == "PUT":
        return httpclient.Response(201)
    return httpclient.Response(200, stream=_Chunks([BLOB]))


BLOBS = f"https://{HOST}/v2/x/y/blobs"


@pytest.mark.parametrize(("call", "what"), [
    (lambda repo: repo.blob_exists(DESC.digest), f"HEAD {BLOBS}/{DESC.digest}"),
    (lambda repo: repo.get_blob_bytes(DESC), f"GET {BLOBS}/{DESC.digest}"),
    (lambda repo: repo.fetch_blob(DESC, io.BytesIO()), f"GET {BLOBS}/{DESC.digest}"),
    (lambda repo: repo.head_manifest("v1"), f"HEAD https://{HOST}/v2/x/y/manifests/v1"),
    (lambda repo: repo.put_manifest("v1", MANIFEST, mt.OCI_MANIFEST), f"PUT https://{HOST}/v2/x/y/manifests/v1"),
    (lambda repo: repo.tags(), f"GET https://{HOST}/v2/x/y/tags/list"),  # the query is left out
    (lambda repo: repo.mount_blob(DESC.digest, "a/b"), f"POST {BLOBS}/uploads/"),
    (lambda repo: repo.upload_blob(DESC, lambda: io.BytesIO(BLOB), check_exists=False),  # its PUT too
     f"POST {BLOBS}/uploads/: status 503; retrying in 0.5 s\nupload of {DESC.digest.short}"),
], ids=["blob_exists", "get_blob_bytes", "fetch_blob", "head_manifest", "put_manifest", "tags", "mount_blob",
        "upload_blob"])
def test_a_retried_request_is_announced_by_its_method_and_url(call: Callable[..., object], what: str) -> None:
    script = Scripted(_first_503(_answers))
    script.repo(call)
    assert script.notices == f"{what}: status 503; retrying in 0.5 s".split("\n")
    assert script.sleeps == [0.5] * len(script.notices)


def test_a_download_cut_by_a_timeout_says_so_in_docker_words() -> None:
    timeout = httpclient.ReadTimeout("timed out")
    answers = iter([httpclient.Response(200, stream=_Chunks([BLOB[:3]], error=timeout)),
                    httpclient.Response(206, headers={"Content-Range": "bytes 3-9/10"},
                                   stream=_Chunks([BLOB[3:]]))])
    script = Scripted(lambda request: next(answers))
    out = io.BytesIO()
    _fetch(script, out)
    assert out.getvalue() == BLOB
    assert script.notices == [f"download of {DESC.digest.short}: timeout (ReadTimeout); retrying in 0.5 s"]


def _failing(error: type[httpclient.TransportError], times: int, then: Handler = _answers,
             method: str = "GET") -> Handler:
    """Raises ``error`` instead of answering the first ``times`` requests of ``method``."""
    count = [0]

    def handler(request: httpclient.Request) -> httpclient.Response:
        if request.method == method and count[0] < times:
            count[0] += 1
            raise error("injected", request=request)
        return then(request)

    return handler


def test_a_download_the_session_gave_up_on_is_tried_again() -> None:
    """Two timeouts exhaust the session's own retries (1); the download then tries once more itself."""
    script = Scripted(_failing(httpclient.ReadTimeout, 2), options=RegistryOptions(backoff=0.5, retries=1))
    out = io.BytesIO()
    _fetch(script, out)
    assert out.getvalue() == BLOB and len(script.log) == 3
    url = f"{BLOBS}/{DESC.digest}"
    assert script.notices == [f"GET {url}: timeout (ReadTimeout); retrying in 0.5 s",
                              f'download of {DESC.digest.short}: Get "{url}": timeout (ReadTimeout); '
                              "retrying in 0.5 s"]


def test_a_download_refused_at_connect_is_not_tried_again() -> None:
    script = Scripted(_failing(httpclient.ConnectError, 99))
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO())
    assert str(caught.value) == f'Get "{BLOBS}/{DESC.digest}": injected'
    assert len(script.log) == 1 and script.sleeps == [] and script.notices == []


def test_an_upload_whose_put_broke_off_starts_again() -> None:
    script = Scripted(_failing(httpclient.ReadError, 1, method="PUT"))
    assert _upload(script, check_exists=False) == "uploaded"
    assert [line.split("?")[0] for line in script.log] == ["POST /v2/x/y/blobs/uploads/", "PUT /up/1",
                                                           "POST /v2/x/y/blobs/uploads/", "PUT /up/1"]
    assert script.notices == [f'upload of {DESC.digest.short}: Put "https://{HOST}/up/1": injected; '
                              "retrying in 0.5 s"]


def test_an_upload_refused_at_connect_is_not_started_again() -> None:
    script = Scripted(_failing(httpclient.ConnectError, 99, method="PUT"))
    with pytest.raises(RegistryError):
        _upload(script, check_exists=False)
    assert len(script.log) == 2 and script.sleeps == []


def test_a_blob_source_shorter_than_its_descriptor_is_corrupt_data() -> None:
    script = Scripted(_upload_handler([httpclient.Response(201)], seen=[]))
    with pytest.raises(CorruptData) as caught:
        script.repo(lambda repo: repo.upload_blob(DESC, lambda: io.BytesIO(BLOB[:4]), check_exists=False))
    assert str(caught.value) == "blob source ended at byte 4, expected 10"


@pytest.mark.parametrize(("chunk_size", "progress"), [(0, [10]), (4, [4, 8, 10])])
def test_uploads_report_their_progress_in_bytes(chunk_size: int, progress: list[int]) -> None:
    done: list[int] = []
    script = Scripted(_upload_handler([httpclient.Response(201)], seen=[]))
    assert _upload(script, chunk_size=chunk_size, check_exists=False, progress=done.append) == "uploaded"
    assert done == progress


# -- what goes on the wire ---------------------------------------------------------------------------

def _wire(request: httpclient.Request) -> tuple[str, str, str | None, str | None, bytes]:
    """Method, path, Content-Type (in lower case: media types are case-insensitive), Content-Length (None
    when sent chunked) and body of a request."""
    body = request.read()
    length = request.headers.get("content-length")
    assert (length is None) == (request.headers.get("transfer-encoding") == "chunked")
    media_type = request.headers.get("content-type")
    return request.method, request.url.path, media_type and media_type.lower(), length, body


def test_an_upload_sends_an_empty_post_and_one_typed_put_of_known_length() -> None:
    sent: list[tuple[str, str, str | None, str | None, bytes]] = []
    ok = _upload_handler([httpclient.Response(201)], mount=202)

    def handler(request: httpclient.Request) -> httpclient.Response:
        sent.append(_wire(request))
        return ok(request)

    assert _upload(Scripted(handler), mount_from=["a/b"], check_exists=False) == "uploaded"
    assert _upload(Scripted(handler), check_exists=False) == "uploaded"
    octets = "application/octet-stream"
    assert sent == [("POST", "/v2/x/y/blobs/uploads/", None, "0", b""),  # the mount
                    ("PUT", "/mounted/1", octets, "10", BLOB),
                    ("POST", "/v2/x/y/blobs/uploads/", None, "0", b""),
                    ("PUT", "/up/1", octets, "10", BLOB)]


def test_a_chunked_upload_restarts_whole_after_a_server_error_on_a_chunk_or_the_put() -> None:
    failed: set[str] = set()
    ok = _upload_handler([httpclient.Response(201)])

    def handler(request: httpclient.Request) -> httpclient.Response:
        if request.method in ("PATCH", "PUT") and request.method not in failed:
            failed.add(request.method)
            return httpclient.Response(503)
        return ok(request)

    script = Scripted(handler)
    assert _upload(script, chunk_size=4, check_exists=False) == "uploaded"
    assert [line.split()[0] for line in script.log] == ["POST", "PATCH",
                                                        "POST", "PATCH", "PATCH", "PATCH", "PUT",
                                                        "POST", "PATCH", "PATCH", "PATCH", "PUT"]
    assert script.notices == [f"upload of {DESC.digest.short}: status 503; retrying in {s:g} s"
                              for s in (0.5, 1)]


def test_blob_downloads_follow_redirects() -> None:
    def handler(request: httpclient.Request) -> httpclient.Response:
        if request.url.path.startswith("/v2/"):
            return httpclient.Response(307, headers={"Location": f"https://{HOST}/storage/blob"})
        return httpclient.Response(200, stream=_Chunks([BLOB]))

    script = Scripted(handler)
    out = io.BytesIO()
    _fetch(script, out)
    assert out.getvalue() == BLOB and script.log == [f"GET /v2/x/y/blobs/{DESC.digest}", "GET /storage/blob"]


def test_a_partial_answer_without_content_range_is_refused() -> None:
    script = Scripted(lambda request: httpclient.Response(206, stream=_Chunks([BLOB[4:]])))
    with pytest.raises(RegistryError) as caught:
        _fetch(script, io.BytesIO(BLOB[:4]))
    assert str(caught.value) == f"blob {DESC.digest} from {WHERE}: server sent bytes from -1, asked for 4"


class _Reads(io.BytesIO):
    """A file that notes the sizes it was asked to read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_the_held_part_of_a_download_is_hashed_in_pieces() -> None:
    out = _Reads(BLOB[:4])
    _fetch(Scripted(lambda request: httpclient.Response(206, headers={"Content-Range": "bytes 4-9/10"},
                                                   stream=_Chunks([BLOB[4:]]))), out)
    assert out.getvalue() == BLOB and out.sizes == [PIECE, PIECE]


def test_a_blob_check_refused_names_the_blob() -> None:
    script = Scripted(lambda request: httpclient.Response(403))
    with pytest.raises(RegistryError) as caught:
        script.repo(lambda repo: repo.blob_exists(DESC.digest))
    assert str(caught.value).startswith(f"blob {DESC.digest} in {WHERE}: ")


def test_a_manifest_refused_or_untyped_or_not_matching_its_digest() -> None:
    def refused(request: httpclient.Request) -> httpclient.Response:
        return httpclient.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})

    with pytest.raises(RegistryError) as caught:
        Scripted(refused).repo(lambda repo: repo.get_manifest("v1"))
    assert str(caught.value) == f"manifest for {WHERE}:v1: denied: no"
    untyped = Scripted(lambda request: httpclient.Response(200, content=MANIFEST)).repo(
        lambda repo: repo.get_manifest("v1"))
    assert untyped.media_type == mt.OCI_MANIFEST  # type: ignore[attr-defined]
    other = Digest.from_bytes(b"other")
    with pytest.raises(DigestMismatch) as mismatch:
        Scripted(lambda request: httpclient.Response(200, content=MANIFEST)).repo(
            lambda repo: repo.get_manifest(other))
    assert str(mismatch.value) == f"digest mismatch (manifest {WHERE}): expected {other}, got {MDIGEST}"


def _stream_registry(sent: list[tuple[str, str, str | None, str | None, bytes]], *, patch: list[int],
                     put: list[int]) -> Handler:
    """PATCH and PUT answer the next of their statuses (the last one repeats); a 401 asks for a token."""
    patch, put = list(patch), list(put)  # not the caller's lists: pytest reuses parameters

    def handler(request: httpclient.Request) -> httpclient.Response:
        if request.url.path == "/token":
            return httpclient.Response(200, json={"token": "t"})
        sent.append(_wire(request))
        if request.method == "POST":
            return httpclient.Response(202, headers={"Location": "/up/1"})
        statuses = patch if request.method == "PATCH" else put
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == 401:
            return httpclient.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://{HOST}/token"'})
        return httpclient.Response(status, headers={"Location": "/up/2"} if status == 202 else {})

    return handler


def test_a_stream_upload_sends_typed_chunks_then_a_typed_empty_put() -> None:
    sent: list[tuple[str, str, str | None, str | None, bytes]] = []
    script = Scripted(_stream_registry(sent, patch=[202], put=[201]))
    assert script.repo(lambda repo: repo.upload_stream(iter([BLOB[:4], BLOB[4:]]), lambda: DESC)) == DESC
    octets = "application/octet-stream"
    assert sent == [("POST", "/v2/x/y/blobs/uploads/", None, "0", b""),
                    ("PATCH", "/up/1", octets, None, BLOB),  # sent chunked, as it comes
                    ("PUT", "/up/2", octets, "0", b"")]


@pytest.mark.parametrize(("patch", "put", "methods"), [
    ([401, 202], [201], ["POST", "PATCH"]),  # the stream is spent: never sent again (empty) after a 401
    ([202], [503, 201], ["POST", "PATCH", "PUT"]),  # a 5xx on the PUT is not retried: the caller re-uploads
])
def test_a_stream_upload_is_never_replayed(patch: list[int], put: list[int], methods: list[str]) -> None:
    sent: list[tuple[str, str, str | None, str | None, bytes]] = []
    script = Scripted(_stream_registry(sent, patch=patch, put=put))
    with pytest.raises(_RetryUpload):
        script.repo(lambda repo: repo.upload_stream(iter([BLOB]), lambda: DESC))
    assert [method for method, *_ in sent] == methods and script.sleeps == []
