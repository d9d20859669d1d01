"""imageops.pull against distribution 2.8: tags, digests, indexes, mirrors, skips, failures."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.errors import CorruptData, DigestMismatch, InvalidArgument, NotFound, RegistryError
from dockyard.imageops import Store
from dockyard.imageops.pull import pull, pull_all_tags, pull_platforms
from dockyard.oci.digest import Digest
from dockyard.oci.platform import Platform, host
from dockyard.oci.reference import parse_normalized
from dockyard.progress import Event
from dockyard.registry.client import RegistryClient, RegistryOptions, httpclient
from tests.registry.client.peers import (
    PLAIN,
    SampleImage,
    build_image,
    make_image,
    start_peer_registries,
    upload_image,
    upload_index,
)

pytestmark = [pytest.mark.registry, pytest.mark.registry_auth]
FAST = RegistryOptions(backoff=0.01)


@pytest.fixture(scope="module", autouse=True)
def _registries() -> None:
    start_peer_registries()


@pytest.fixture
def store() -> Iterator[Store]:
    root = Path("/dev/shm") / f"dytest-pull-{uuid.uuid4().hex[:8]}"
    s = Store(root, fsync=False)
    yield s
    s.close()
    os.system(f"rm -rf {root}")  # snapshots may hold read-only dirs; rm copes


def _image(n: int = 2, **kw: object) -> SampleImage:
    files = [{f"d{i}/f{j}": os.urandom(2000) + bytes(30000) for j in range(3)} for i in range(n)]
    return make_image(files, **kw)  # type: ignore[arg-type]


def _repo() -> str:
    return f"dytest/pull-{uuid.uuid4().hex[:8]}"


def test_pull_by_tag_then_again_then_by_digest(store: Store) -> None:
    image = _image(3)
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    events: list[Event] = []
    with RegistryClient(FAST) as rc:
        ref = parse_normalized(f"{PLAIN}/{repo}:v1")
        first = pull(store, rc, ref, progress=events.append)
        assert first.new and first.image_id == image.image_id and first.digest == image.digest
        assert store.meta.get_tag(f"{PLAIN}/{repo}:v1") == image.image_id
        assert store.meta.get_repo_digest(f"{PLAIN}/{repo}", image.digest) == image.image_id
        record = store.meta.get_image(image.image_id)
        # Docker's image size: bytes of file content (and symlink targets), not of the tars.
        assert record is not None and record.size == sum(_content_size(t) for _, t in image.layers)
        # every layer unpacked into its snapshot, content intact
        snapshot = store.snapshots.path(_chain(image, 0))
        assert (snapshot / "d0" / "f0").read_bytes()[2000:] == bytes(30000)
        names = {e.name for e in events}
        wanted = {"Pulling fs layer", "Downloading", "Download complete", "Extracting", "Pull complete"}
        assert wanted <= names
        events.clear()
        again = pull(store, rc, ref, progress=events.append)
        assert not again.new and again.layers == ["exists"] * 3
        assert not [e for e in events if e.name == "Downloading"]
        by_digest = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}@{image.digest}"))
        assert by_digest.image_id == image.image_id


def _content_size(layer_tar: bytes) -> int:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tf:
        return sum(m.size if m.isreg() else len(m.linkname) if m.issym() else 0 for m in tf.getmembers())


def _chain(image: SampleImage, i: int) -> str:
    from dockyard.image import chain_ids

    return chain_ids(["sha256:" + hashlib.sha256(t).hexdigest() for _, t in image.layers])[i]


def test_shared_layers_are_not_downloaded_again(store: Store) -> None:
    base = _image(1)
    top = make_image([{"top": b"x" * 5000}])
    derived = build_image([*base.layers, *top.layers])
    repo = _repo()
    upload_image(PLAIN, repo, "base", base)
    upload_image(PLAIN, repo, "derived", derived)
    events: list[Event] = []
    with RegistryClient(FAST) as rc:
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:base"))
        result = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:derived"), progress=events.append)
    assert result.layers == ["exists", "pulled"]
    downloaded = {e.id for e in events if e.name == "Downloading"}
    assert downloaded == {hashlib.sha256(top.layers[0][0]).hexdigest()[:12]}
    base_id = hashlib.sha256(base.layers[0][0]).hexdigest()[:12]
    assert [e.name for e in events if e.id == base_id] == ["Already exists"]


def test_index_pulls_the_wanted_platform(store: Store) -> None:
    amd = _image(1)
    arm = _image(1, arch="arm64", variant="v8", oci=True)
    repo = _repo()
    upload_index(PLAIN, repo, "multi", [(amd, "linux/amd64"), (arm, "linux/arm64/v8")])
    with RegistryClient(FAST) as rc:
        ref = parse_normalized(f"{PLAIN}/{repo}:multi")
        got = pull(store, rc, ref, platform=Platform("linux", "arm64"))
        assert got.image_id == arm.image_id and got.platform.architecture == "arm64"
        got = pull(store, rc, ref, platform=Platform("linux", "amd64"))
        assert got.image_id == amd.image_id
        with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
            pull(store, rc, ref, platform=Platform("linux", "s390x"))
        single = _repo()
        upload_image(PLAIN, single, "v1", amd)
        with pytest.raises(NotFound, match="does not match the specified platform"):
            pull(store, rc, parse_normalized(f"{PLAIN}/{single}:v1"), platform=Platform("linux", "arm64"))


def test_plain_pull_updates_only_the_host_entry_of_a_multi_platform_tag(store: Store) -> None:
    amd, arm = _image(1), _image(1, arch="arm64", variant="v8", oci=True)
    repo = _repo()
    name = f"{PLAIN}/{repo}:multi"
    first = upload_index(PLAIN, repo, "multi", [(amd, "linux/amd64"), (arm, "linux/arm64/v8")])
    native = str(host())
    assert native == "linux/amd64"  # the test's registry index serves this host first
    with RegistryClient(FAST) as rc:
        ref = parse_normalized(name)
        got = pull_platforms(store, rc, ref)  # --all-platforms keeps every platform and the index
        assert sorted(r.image_id for r in got) == sorted([amd.image_id, arm.image_id])
        held = {m.platform: m.image_id for m in store.meta.tag_platforms(name)}
        assert held == {"linux/amd64": amd.image_id, "linux/arm64": arm.image_id}
        assert store.meta.tag_index(name) == str(Digest.from_bytes(first))
        # A plain pull of the same tag keeps arm64 (it used to leave amd64 alone under the tag).
        again = pull(store, rc, ref)
        assert again.image_id == amd.image_id and not again.new
        assert {m.platform: m.image_id for m in store.meta.tag_platforms(name)} == held
        assert store.meta.tag_index(name) == str(Digest.from_bytes(first))
        # The registry moves amd64 on: a plain pull replaces that entry only, and the new index is kept.
        amd2 = _image(1)
        second = upload_index(PLAIN, repo, "multi", [(amd2, "linux/amd64"), (arm, "linux/arm64/v8")])
        moved = pull(store, rc, ref)
        assert moved.image_id == amd2.image_id and moved.new
        assert {m.platform: m.image_id for m in store.meta.tag_platforms(name)} == {
            "linux/amd64": amd2.image_id, "linux/arm64": arm.image_id}
        assert store.meta.get_tag(name) == amd2.image_id
        assert store.meta.tag_index(name) == str(Digest.from_bytes(second))
        # A tag that is a single manifest in the registry is the whole tag again.
        upload_image(PLAIN, repo, "multi", amd)
        pull(store, rc, ref)
        assert store.meta.tag_platforms(name) == [] and store.meta.get_tag(name) == amd.image_id


def test_all_tags(store: Store) -> None:
    repo = _repo()
    images = {"a": _image(1), "b": _image(1)}
    for tag, image in images.items():
        upload_image(PLAIN, repo, tag, image)
    with RegistryClient(FAST) as rc:
        results = pull_all_tags(store, rc, parse_normalized(f"{PLAIN}/{repo}"))
    assert [(r.reference.tag, r.image_id) for r in results] == [(t, i.image_id) for t, i in images.items()]


class _Hook:
    def __init__(self, hook: object) -> None:
        self.inner = httpclient.Network(verify=None)
        self.hook = hook

    def __call__(self, request: httpclient.Request) -> httpclient.Response:
        response = self.inner(request)
        replaced = self.hook(request, response)  # type: ignore[operator]
        return replaced if replaced is not None else response


def _no_leftovers(store: Store, image: SampleImage) -> None:
    assert store.meta.get_image(image.image_id) is None
    assert store.meta.tags() == []
    assert store.content.ingest_files() == []
    for blob, _ in image.layers:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        assert not store.content.exists(digest) or store.content.verify(digest) == digest


def test_corrupt_layer_fails_without_partial_image_or_corrupt_blob(store: Store) -> None:
    image = _image(3)
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    bad = "sha256:" + hashlib.sha256(image.layers[1][0]).hexdigest()

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.url.path.endswith(bad):
            response.read()
            zeros = [bytes(len(image.layers[1][0]))]
            return httpclient.Response(200, stream=zeros, request=request)
        return None

    with RegistryClient(FAST, transport=_Hook(hook)) as rc, pytest.raises(DigestMismatch):
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    _no_leftovers(store, image)
    assert not store.content.exists(bad)


def test_layer_whose_diff_id_lies_is_refused(store: Store) -> None:
    liar = build_image(_image(1).layers, diff_ids=["sha256:" + "0" * 64])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", liar)
    with RegistryClient(FAST) as rc, pytest.raises(DigestMismatch, match="diff ID"):
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert store.meta.get_image(liar.image_id) is None
    assert store.meta.all_layer_blobs() == []


def test_schema1_and_rate_limit_are_clear_errors(store: Store) -> None:
    repo = _repo()

    def schema1(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if "/manifests/" in request.url.path:
            response.read()
            body = b'{"schemaVersion":1,"name":"x","tag":"v1","fsLayers":[],"history":[],"signatures":[]}'
            return httpclient.Response(200, content=body, request=request, headers={
                "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
        return None

    with RegistryClient(FAST, transport=_Hook(schema1)) as rc, pytest.raises(CorruptData, match="schema 1"):
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))

    def limited(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if "/manifests/" in request.url.path:
            response.read()
            body = (b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. '
                    b'You may increase the limit by authenticating and upgrading"}]}')
            return httpclient.Response(429, content=body, request=request, headers={
                "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"})
        return None

    with RegistryClient(FAST, transport=_Hook(limited)) as rc, pytest.raises(RegistryError) as info:
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert "toomanyrequests: You have reached your pull rate limit" in str(info.value)
    assert "rate limit: limit 100 per 21600s, remaining 0" in str(info.value)


def test_mirrors_tried_in_order_then_origin(store: Store) -> None:
    image = _image(1)
    official = f"dytest{uuid.uuid4().hex[:8]}"  # an "official" Hub image: docker.io/library/<name>
    upload_image(PLAIN, f"library/{official}", "v1", image)
    # Docker Hub names resolved through mirrors: a dead one first, then the local registry
    dead = "http://127.0.0.1:9"
    hub = RegistryOptions(backoff=0.01, retries=0, mirrors={"docker.io": (dead, f"http://{PLAIN}")})
    with RegistryClient(hub) as rc:
        got = pull(store, rc, parse_normalized(f"{official}:v1"))
    assert got.image_id == image.image_id
    assert store.meta.get_tag(f"docker.io/library/{official}:v1") == image.image_id
    # a mirror without the image (the auth registry refuses anonymous access) is skipped for the origin
    other = _repo()
    upload_image(PLAIN, other, "v1", image)
    opts = RegistryOptions(backoff=0.01, retries=0, mirrors={PLAIN: (dead, "http://127.0.0.1:5001")})
    with RegistryClient(opts) as rc:
        assert pull(store, rc, parse_normalized(f"{PLAIN}/{other}:v1")).image_id == image.image_id


def test_registry_options_from_config_files(tmp_path: Path) -> None:
    from dockyard.config import registry_options

    toml = tmp_path / "config.toml"
    toml.write_text('registry-mirrors = ["https://m1.example/"]\n'
                    'insecure-registries = ["reg.example:5000"]\n'
                    '[mirrors]\n"127.0.0.1:5000" = ["http://127.0.0.1:5002"]\n')
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"registry-mirrors": ["https://m2.example"], "insecure-registries": ["10.0.0.0/8"],'
                      ' "debug": true}')
    opts = registry_options(toml, daemon)
    assert opts.mirrors_for("docker.io") == ("https://m1.example", "https://m2.example")
    assert opts.mirrors_for("index.docker.io") == ("https://m1.example", "https://m2.example")
    assert opts.mirrors_for("127.0.0.1:5000") == ("http://127.0.0.1:5002",)
    assert opts.is_insecure("reg.example:5000") and opts.is_insecure("10.2.3.4:5000")
    toml.write_text("registry-mirrors = 'x'")
    with pytest.raises(InvalidArgument, match="registry-mirrors must be a list"):
        registry_options(toml, "")


def test_unreadable_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    from dockyard.config import registry_options

    with pytest.raises(InvalidArgument, match=f"^config file {tmp_path} is a directory, not a file$"):
        registry_options(tmp_path, "")
    bad = tmp_path / "config.toml"
    bad.write_bytes(b'insecure-registries = []\nname = "caf\xe9"\n')
    with pytest.raises(InvalidArgument, match=r"config.toml:2:12: not UTF-8 text .*: byte 0xe9$"):
        registry_options(bad, "")


def test_interrupted_pull_leaves_nothing_half_done(store: Store) -> None:
    image = make_image([{f"f{j}": os.urandom(1 << 20) for j in range(3)} for _ in range(3)])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    seen: list[Event] = []

    def ctrl_c(event: Event) -> None:  # Ctrl-C arrives while a layer is half downloaded
        seen.append(event)
        if event.name == "Downloading" and 0 < event.current < event.total:
            raise KeyboardInterrupt

    with RegistryClient(FAST) as rc, pytest.raises(KeyboardInterrupt):
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"), progress=ctrl_c)
    assert any(e.name == "Downloading" for e in seen)
    _no_leftovers(store, image)
    assert store.snapshots.incomplete() == []
    # the next pull completes normally
    with RegistryClient(FAST) as rc:
        assert pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1")).image_id == image.image_id


def test_python_api_client_pull_and_push_with_progress_callbacks(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.client import Client

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("DOCKYARD_CONFIG", str(config))
    monkeypatch.setenv("DOCKYARD_DAEMON_JSON", "")
    image = _image(2)
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    events: list[Event] = []
    root = Path("/dev/shm") / f"dytest-api-{uuid.uuid4().hex[:8]}"
    try:
        with Client(root, progress=events.append, fsync=False) as client:
            result = client.pull(f"{PLAIN}/{repo}:v1")
            assert result.image_id == image.image_id
            assert client.resolve(f"{PLAIN}/{repo}:v1") == image.image_id
            assert {e.name for e in events} >= {"Downloading", "Pull complete"}
            client.tag(f"{PLAIN}/{repo}:v1", f"{PLAIN}/{repo}-copy:v2")
            events.clear()
            pushed = client.push(f"{PLAIN}/{repo}-copy:v2")
            assert pushed.digest == image.digest  # the pulled manifest is pushed unchanged
            assert {e.name for e in events} >= {"Preparing"}
    finally:
        os.system(f"rm -rf {root}")


def test_blob_missing_on_the_mirror_comes_from_the_origin(store: Store, tmp_path: Path) -> None:
    from dockyard.registry.server import RegistryServer

    image = _image(2)
    repo = _repo()
    upload_image(PLAIN, repo, "other", image)  # the origin has the blobs, but no "v1" tag
    with RegistryServer(storage=tmp_path / "mirror") as mirror:
        upload_image(mirror.address, repo, "v1", image)
        gone = "sha256:" + hashlib.sha256(image.layers[1][0]).hexdigest()
        assert httpx.delete(f"{mirror.url}/v2/{repo}/blobs/{gone}").status_code == 202
        opts = RegistryOptions(backoff=0.01, retries=0, mirrors={PLAIN: (mirror.url,)})
        with RegistryClient(opts) as rc:
            got = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert got.image_id == image.image_id and got.layers == ["pulled", "pulled"]
    assert store.content.exists(gone)


def test_a_retry_is_announced_in_the_pull_progress(store: Store) -> None:
    image = _image(1)
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    layer = "sha256:" + hashlib.sha256(image.layers[0][0]).hexdigest()
    failures = [503]

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.url.path.endswith(layer) and failures:
            response.read()
            return httpclient.Response(failures.pop(), request=request)
        return None

    events: list[Event] = []
    with RegistryClient(FAST, transport=_Hook(hook)) as rc:
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"), progress=events.append)
    notes = [e.name for e in events if not e.id]
    assert notes == [f"GET http://{PLAIN}/v2/{repo}/blobs/{layer}: status 503; retrying in 0.01 s"]


def test_pull_decompresses_hashes_and_extracts_on_threads_of_their_own(store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from typing import Any

    from dockyard.archive import compression
    from dockyard.imageops import pull as pull_module

    # Thread objects, not get_ident(): an ident is reused once its thread ends; the sets keep each
    # thread object alive, so two threads never compare equal.
    decompressing: set[threading.Thread] = set()
    extracting: set[threading.Thread] = set()
    real_read = compression._GzipReader.read
    real_apply = pull_module.apply_layer_overlay

    def read(self: compression._GzipReader, n: int = -1) -> bytes:
        decompressing.add(threading.current_thread())
        return real_read(self, n)

    def apply(stream: Any, target: Path) -> Any:
        extracting.add(threading.current_thread())
        return real_apply(stream, target)

    hashing: set[threading.Thread] = set()
    real_hash = compression.HashingReader.read

    def hash_read(self: compression.HashingReader, n: int = -1) -> bytes:
        hashing.add(threading.current_thread())
        return real_hash(self, n)

    monkeypatch.setattr(compression._GzipReader, "read", read)
    monkeypatch.setattr(compression.HashingReader, "read", hash_read)
    monkeypatch.setattr(pull_module, "apply_layer_overlay", apply)
    image = _image(1)
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    with RegistryClient(FAST) as rc:
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert (store.snapshots.path(_chain(image, 0)) / "d0" / "f1").read_bytes()[2000:] == bytes(30000)
    assert decompressing and extracting and hashing  # a fresh download: only the diff ID is hashed
    assert not decompressing & extracting and not hashing & extracting and not hashing & decompressing


class _Held:
    """A blob's body that sends its first ``part``, then waits for ``go`` (at most 5 s) for the rest."""

    def __init__(self, data: bytes, go: object, part: float = 0.5) -> None:
        self.data = data
        self.go = go
        self.part = part
        self.waited_out = False

    def __iter__(self) -> Iterator[bytes]:
        import threading

        assert isinstance(self.go, threading.Event)
        split = int(len(self.data) * self.part)
        yield self.data[:split]
        self.waited_out = not self.go.wait(5)
        yield self.data[split:]


def test_a_layer_is_unpacked_while_it_downloads(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from typing import Any

    from dockyard.imageops import pull as pull_module

    # The registry holds back the second half of the layer until extraction has started: a pull that
    # downloads first and unpacks after would wait the 5 s out.
    image = make_image([{f"f{j}": os.urandom(300_000) for j in range(4)}])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    blob = image.layers[0][0]
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    extracting = threading.Event()
    real_apply = pull_module.apply_layer_overlay

    def apply(stream: Any, target: Path) -> Any:
        extracting.set()
        return real_apply(stream, target)

    monkeypatch.setattr(pull_module, "apply_layer_overlay", apply)
    bodies: list[_Held] = []

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.url.path.endswith(digest):
            response.read()
            bodies.append(_Held(blob, extracting))
            return httpclient.Response(200, stream=bodies[-1], request=request)
        return None

    with RegistryClient(FAST, transport=_Hook(hook)) as rc:
        got = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert got.layers == ["pulled"] and len(bodies) == 1
    assert not bodies[0].waited_out  # extraction began before the download ended
    # both the blob (verified) and the snapshot are in, and the snapshot holds the files
    assert store.content.verify(digest) == digest
    assert store.content.ingest_files() == []
    snapshot = store.snapshots.path(_chain(image, 0))
    assert sorted(p.name for p in snapshot.iterdir()) == ["f0", "f1", "f2", "f3"]
    assert store.meta.layer_by_blob(digest) is not None


def _text(n: int, seed: int) -> bytes:
    import random

    rng = random.Random(seed)
    words = [rng.randbytes(4).hex() for _ in range(500)]
    return " ".join(rng.choices(words, k=n // 9)).encode()[:n]


def _corrupt(blob: bytes) -> bytes:
    bad = bytearray(blob)
    for i in range(len(bad) // 20, len(bad) // 20 + 64):  # in the first of several files
        bad[i] ^= 0x55
    return bytes(bad)


def _failing_extraction(monkeypatch: pytest.MonkeyPatch) -> object:
    """An event set once an extraction has failed and given up reading its download (the held-back
    rest of a corrupt blob goes out then)."""
    import threading
    from typing import Any

    from dockyard.archive.readahead import Pipe

    gave_up = threading.Event()
    real_abandon = Pipe.abandon

    def abandon(self: Pipe, **kw: Any) -> None:
        real_abandon(self, **kw)
        gave_up.set()

    monkeypatch.setattr(Pipe, "abandon", abandon)
    return gave_up


def test_a_blob_corrupt_mid_stream_leaves_neither_blob_nor_snapshot(store: Store,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Flipped bytes in the first half: extraction fails while the download is still going (the rest
    # is held back until it has given up). The error is the blob's digest (the cause, known once the download
    # ends), and nothing of the layer is kept.
    image = make_image([{f"f{j}": _text(200_000, j) for j in range(6)}, {"g": b"x" * 1000}])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    blob = image.layers[0][0]
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    failed = _failing_extraction(monkeypatch)
    bodies: list[_Held] = []

    def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
        if request.url.path.endswith(digest):
            response.read()
            bodies.append(_Held(_corrupt(blob), failed, 0.8))
            return httpclient.Response(200, stream=bodies[-1], request=request)
        return None

    with RegistryClient(FAST, transport=_Hook(hook)) as rc, pytest.raises(DigestMismatch):
        pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert len(bodies) == 1 and not bodies[0].waited_out  # extraction failed before the download ended
    _no_leftovers(store, image)
    assert not store.content.exists(digest)
    assert not store.snapshots.exists(_chain(image, 0)) and store.snapshots.incomplete() == []
    assert store.meta.layer_by_blob(digest) is None


def test_a_corrupt_blob_on_the_mirror_comes_good_from_the_origin(store: Store, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.registry.server import RegistryServer

    image = make_image([{f"f{j}": _text(200_000, j) for j in range(6)}])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    blob = image.layers[0][0]
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    failed = _failing_extraction(monkeypatch)
    bodies: list[_Held] = []
    with RegistryServer(storage=tmp_path / "mirror") as mirror:
        upload_image(mirror.address, repo, "v1", image)
        port = mirror.address.rsplit(":", 1)[1]

        def hook(request: httpclient.Request, response: httpclient.Response) -> httpclient.Response | None:
            if request.url.path.endswith(digest) and str(request.url.port) == port:
                response.read()
                bodies.append(_Held(_corrupt(blob), failed, 0.8))
                return httpclient.Response(200, stream=bodies[-1], request=request)
            return None

        opts = RegistryOptions(backoff=0.01, retries=0, mirrors={PLAIN: (mirror.url,)})
        with RegistryClient(opts, transport=_Hook(hook)) as rc:
            got = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert got.image_id == image.image_id
    assert len(bodies) == 1 and not bodies[0].waited_out  # the mirror's copy failed mid-stream
    assert store.content.verify(digest) == digest
    assert (store.snapshots.path(_chain(image, 0)) / "f1").read_bytes() == _text(200_000, 1)


def test_the_download_hands_over_network_pieces_gathered_while_extraction_is_busy() -> None:
    # 64 KiB network reads go to the blob's file one by one, but to a busy extraction in pieces of
    # 1 MiB (each hand-over between threads costs more than the copy that joins them); an idle one
    # gets them at once.
    from dockyard.archive.readahead import Pipe
    from dockyard.imageops.pull import PIECE, _Tee

    class FakeWriter:
        def __init__(self) -> None:
            from dockyard.oci.digest import Hasher

            self.hasher = Hasher()
            self.writes = 0

        def write(self, data: bytes) -> int:
            self.writes += 1
            self.hasher.update(data)
            return len(data)

    writer = FakeWriter()
    pipe = Pipe(depth=1000)
    tee = _Tee(writer, pipe)  # type: ignore[arg-type]
    chunks = [os.urandom(1 << 16) for _ in range(40)]
    for chunk in chunks:  # nobody reads meanwhile: only the first piece goes over on its own
        tee.write(chunk)
    tee.flush()
    pipe.close()
    pieces = []
    while piece := pipe.read(1 << 30):
        pieces.append(piece)
    assert writer.writes == 40 and writer.hasher.size == 40 << 16
    assert b"".join(pieces) == b"".join(chunks)
    assert [len(p) for p in pieces] == [1 << 16, PIECE, PIECE, (40 << 16) - (1 << 16) - 2 * PIECE]


def test_an_empty_layer_is_stored_but_never_unpacked(store: Store) -> None:
    # An empty tar (two zero blocks: a RUN that changed nothing) adds no file to the stack: it gets
    # no snapshot, as in a build (unpack_layers skips it).
    import gzip

    from dockyard.image import EMPTY_LAYER, chain_ids
    from dockyard.imageops.unpack import unpack_layers
    from tests.registry.client.peers import make_tar

    empty = bytes(1024)
    assert "sha256:" + hashlib.sha256(empty).hexdigest() == EMPTY_LAYER
    tars = [make_tar({"a": b"below"}), empty, make_tar({"b": b"above"})]
    image = build_image([(gzip.compress(t, mtime=0), t) for t in tars])
    repo = _repo()
    upload_image(PLAIN, repo, "v1", image)
    with RegistryClient(FAST) as rc:
        pulled = pull(store, rc, parse_normalized(f"{PLAIN}/{repo}:v1"))
    assert pulled.layers == ["pulled"] * 3
    chains = chain_ids(["sha256:" + hashlib.sha256(t).hexdigest() for t in tars])
    assert [store.snapshots.exists(c) for c in chains] == [True, False, True]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    assert all(store.meta.layer_blobs(d) for d in diff_ids)  # every blob stored, the empty one too
    paths = unpack_layers(store, diff_ids)
    assert [sorted(os.listdir(p)) for p in paths] == [["b"], ["a"]]
