"""imageops.push against distribution 2.8, and interop with skopeo, buildah and the Docker engine."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import NotFound, RegistryError
from dockyard.image import LayerBlob
from dockyard.imageops import Store
from dockyard.imageops.commit import commit_image, store_layer
from dockyard.imageops.pull import pull
from dockyard.imageops.push import PushResult, push
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.platform import Platform
from dockyard.oci.reference import parse_normalized
from dockyard.progress import Event
from dockyard.registry.client import RegistryClient, RegistryOptions
from tests.peers import require
from tests.registry.client.peers import PLAIN, delete_blob, make_tar, peer, start_peer_registries

pytestmark = [pytest.mark.registry, pytest.mark.registry_auth]
FAST = RegistryOptions(backoff=0.01)


@pytest.fixture(scope="module", autouse=True)
def _registries() -> None:
    start_peer_registries()


def _new_store() -> Store:
    return Store(Path("/dev/shm") / f"dytest-push-{uuid.uuid4().hex[:8]}", fsync=False)


@pytest.fixture
def store() -> Iterator[Store]:
    s = _new_store()
    yield s
    s.close()
    os.system(f"rm -rf {s.root}")


@pytest.fixture
def other_store() -> Iterator[Store]:
    s = _new_store()
    yield s
    s.close()
    os.system(f"rm -rf {s.root}")


def _built_image(store: Store, name: str, n: int = 2, size: int = 300_000, arch: str = "amd64") -> str:
    """A locally built image: uncompressed layers, as a build leaves them; returns its ID."""
    diff_ids = []
    for i in range(n):
        tar = make_tar({f"layer{i}/data": os.urandom(size // 2) + bytes(size // 2),
                        f"layer{i}/hello.txt": b"hello %d\n" % i})
        diff_ids.append(store_layer(store, tar).diff_id)
    config = {"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
              "history": [{"created_by": f"RUN step {i}"} for i in range(n)]}
    return str(commit_image(store, json.dumps(config).encode(), names=[name]).id)


def _repo() -> str:
    return f"{PLAIN}/dytest/push-{uuid.uuid4().hex[:8]}"


def _count_compressions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The diff IDs every push from here on compresses (streams) a layer of."""
    from dockyard.imageops import push as push_module

    streamed: list[str] = []
    real = push_module.stream_layer

    def stream_layer(store: Store, diff_id: str, *args: Any, **kwargs: Any) -> LayerBlob:
        streamed.append(diff_id)
        return real(store, diff_id, *args, **kwargs)

    monkeypatch.setattr(push_module, "stream_layer", stream_layer)
    return streamed


def test_push_keeps_no_compressed_copy_and_later_pushes_compress_nothing(
        store: Store, other_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """As docker's push: the compressed bytes of a first push are not kept. The store remembers the
    digest and size each layer had; a second push finds it in the registry, a push to another
    repository mounts it, and neither compresses anything."""
    name = f"{_repo()}:v1"
    image_id = _built_image(store, name)
    record = store.meta.get_image(image_id)
    assert record is not None
    blobs_before = {b.digest for b in store.content.walk()}
    streamed = _count_compressions(monkeypatch)
    events: list[Event] = []
    with RegistryClient(FAST) as rc:
        first = push(store, rc, parse_normalized(name), progress=events.append)
        assert set(first.layers.values()) == {"uploaded"} and sorted(streamed) == sorted(record.diff_ids)
        assert first.media_type == mt.DOCKER_MANIFEST
        assert [e.name for e in events if e.name != "Pushing"].count("Pushed") == 2
        assert {b.digest for b in store.content.walk()} - blobs_before == {first.digest}  # the manifest only
        assert not [f for f in store.meta.all_layer_blobs() if f.media_type != mt.OCI_LAYER]
        manifest = json.loads(rc.repository(PLAIN, parse_normalized(name).path).get_manifest("v1").data)
        assert [store.meta.pushed_layer(d, "gzip") for d in record.diff_ids] == \
            [(layer["digest"], layer["size"]) for layer in manifest["layers"]]
        again = push(store, rc, parse_normalized(name))
        assert set(again.layers.values()) == {"exists"} and again.digest == first.digest
        elsewhere = f"{_repo()}:v2"
        mounted = push(store, rc, parse_normalized(elsewhere), source=name)
        assert set(mounted.layers.values()) == {"mounted"} and mounted.digest == first.digest
        assert len(streamed) == 2  # neither compressed a layer again
        assert manifest["mediaType"] == mt.DOCKER_MANIFEST
        assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.DOCKER_LAYER_GZIP}
        assert manifest["config"] == {"mediaType": mt.DOCKER_CONFIG, "digest": image_id,
                                      "size": len(store.content.read(image_id))}
        # and back: a fresh store pulls the same image ID
        got = pull(other_store, rc, parse_normalized(elsewhere))
        assert got.image_id == image_id and got.digest == mounted.digest


def test_a_layer_pushed_before_but_gone_is_compressed_again_to_the_same_digest(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered digest the registry no longer has, and cannot mount (the blob was deleted from
    the repository it would come from): the layer is compressed and streamed again, into the upload
    the refused mount started, and comes out with the same digest (the compression depends on the
    bytes alone)."""
    name = f"{_repo()}:v1"
    image_id = _built_image(store, name, n=1)
    streamed = _count_compressions(monkeypatch)
    with RegistryClient(FAST) as rc:
        first = push(store, rc, parse_normalized(name))
        (digest,) = first.layers
        delete_blob(parse_normalized(name).path, digest)
        mounts: list[str] = []
        from dockyard.registry.client.repository import Repository

        real_mount = Repository.mount_blob

        def mount_blob(self: Repository, blob: str, source: str) -> str | None:
            location = real_mount(self, blob, source)
            mounts.append("mounted" if location is None else "refused")
            return location

        monkeypatch.setattr(Repository, "mount_blob", mount_blob)
        elsewhere = f"{_repo()}:v2"
        second = push(store, rc, parse_normalized(elsewhere), source=name)
        assert mounts == ["refused"] and second.layers == {digest: "uploaded"}
        assert second.digest == first.digest and len(streamed) == 2
        assert rc.repository(PLAIN, parse_normalized(elsewhere).path).blob_exists(digest)
    record = store.meta.get_image(image_id)
    assert record is not None and store.meta.pushed_layer(record.diff_ids[0], "gzip") == \
        (digest, _first_layer_size(elsewhere))


def _first_layer_size(name: str) -> int:
    """The size the manifest pushed as ``name`` gives its first layer."""
    with RegistryClient(FAST) as rc:
        ref = parse_normalized(name)
        manifest = json.loads(rc.repository(ref.domain, ref.path).get_manifest(ref.tag or "latest").data)
    return int(manifest["layers"][0]["size"])


def test_garbage_collection_forgets_push_records_of_layers_gone(store: Store) -> None:
    from dockyard.imageops.gc import collect

    name = f"{_repo()}:v1"
    image_id = _built_image(store, name, n=1)
    record = store.meta.get_image(image_id)
    assert record is not None
    with RegistryClient(FAST) as rc:
        push(store, rc, parse_normalized(name))
    assert store.meta.pushed_layer(record.diff_ids[0], "gzip") is not None
    collect(store)  # the image holds the layer: its record stays
    assert store.meta.pushed_layer(record.diff_ids[0], "gzip") is not None
    from dockyard.imageops.images import remove

    remove(store, image_id, force=True)
    collect(store)
    assert store.meta.pushed_layer(record.diff_ids[0], "gzip") is None


def test_push_zstd_and_chunked(store: Store, other_store: Store) -> None:
    name = f"{_repo()}:z"
    image_id = _built_image(store, name, n=1, size=3_000_000)
    with RegistryClient(FAST) as rc:
        result = push(store, rc, parse_normalized(name), compression="zstd", chunk_size=1 << 20)
        assert result.media_type == mt.OCI_MANIFEST
        manifest = json.loads(rc.repository(PLAIN, parse_normalized(name).path).get_manifest("z").data)
        assert manifest["layers"][0]["mediaType"] == mt.OCI_LAYER_ZSTD
        got = pull(other_store, rc, parse_normalized(name))
        assert got.image_id == image_id


def _push_with_progress(store: Store, tag: str, *, fail_stream: bool,
                        monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[str, int, int]], int, LayerBlob,
                                                                   list[str], PushResult]:
    """Push a built one-layer image; the layer's events, its tar size, its gzip form, the digests
    that went up through ``upload_blob`` and the result."""
    from dockyard.registry.client.repository import Repository

    name = f"{_repo()}:{tag}"
    image_id = _built_image(store, name, n=1, size=3_000_000)
    record = store.meta.get_image(image_id)
    assert record is not None
    (tar,) = store.meta.layer_blobs(record.diff_ids[0])
    whole: list[str] = []
    real_upload = Repository.upload_blob

    def upload_blob(self: Repository, desc: Descriptor, *args: Any, **kwargs: Any) -> Any:
        whole.append(str(desc.digest))
        return real_upload(self, desc, *args, **kwargs)

    def broken_stream(self: Repository, *args: Any, **kwargs: Any) -> Any:
        raise RegistryError("stream refused")

    monkeypatch.setattr(Repository, "upload_blob", upload_blob)
    if fail_stream:
        monkeypatch.setattr(Repository, "upload_stream", broken_stream)
    events: list[Event] = []
    with RegistryClient(FAST) as rc:
        pushed = push(store, rc, parse_normalized(name), progress=events.append)
        (digest,) = pushed.layers
        gz = LayerBlob(tar.diff_id, digest, mt.DOCKER_LAYER_GZIP, _first_layer_size(name))
        assert rc.repository(PLAIN, parse_normalized(name).path).blob_exists(gz.digest)
    seen = [(e.name, e.current, e.total) for e in events if e.id == record.diff_ids[0][7:19]]
    assert seen[0][0] == "Preparing" and seen[-1][0] == "Pushed" and pushed.layers == {gz.digest: "uploaded"}
    return seen, tar.size, gz, whole, pushed


def test_first_push_uploads_a_layer_while_compressing_it(store: Store,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A built layer goes up as it is compressed (docker's streamed push): "Pushing" counts its
    uncompressed bytes, and no whole-blob upload follows."""
    seen, tar_size, gz, whole, _ = _push_with_progress(store, "stream", fail_stream=False,
                                                       monkeypatch=monkeypatch)
    pushing = [(current, total) for name, current, total in seen if name == "Pushing"]
    compressing = [c for c, _ in pushing]
    assert len(compressing) >= 3 and compressing == sorted(compressing) and compressing[-1] == tar_size
    assert all(t == tar_size for _, t in pushing) and gz.size < tar_size
    assert str(gz.digest) not in whole  # only the config went up whole


def test_first_push_falls_back_to_an_ordinary_upload_when_streaming_fails(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen, tar_size, gz, whole, _ = _push_with_progress(store, "fallback", fail_stream=True,
                                                       monkeypatch=monkeypatch)
    pushing = [(current, total) for name, current, total in seen if name == "Pushing"]
    compressing = [c for c, t in pushing if t == tar_size]
    uploading = [c for c, t in pushing if t == gz.size]
    assert compressing[-1] == tar_size and uploading and uploading[-1] == gz.size
    assert pushing == [(c, tar_size) for c in compressing] + [(c, gz.size) for c in uploading]
    assert str(gz.digest) in whole


def test_first_push_falls_back_with_the_blob_kept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """When streaming fails the layer is compressed into the store for the ordinary upload (with its
    retries), and that blob stays for the next push; a streamed one is never written."""
    _, _, gz, _, _ = _push_with_progress(store, "kept", fail_stream=True, monkeypatch=monkeypatch)
    assert store.content.exists(gz.digest) and store.meta.layer_by_blob(gz.digest) is not None
    assert store.meta.pushed_layer(gz.diff_id, "gzip") is None
    monkeypatch.undo()  # the stream works again
    _, _, streamed, _, _ = _push_with_progress(store, "gone", fail_stream=False, monkeypatch=monkeypatch)
    assert not store.content.exists(streamed.digest) and store.meta.layer_by_blob(streamed.digest) is None
    assert store.meta.pushed_layer(streamed.diff_id, "gzip") == (streamed.digest, streamed.size)


def test_push_sends_the_config_alongside_the_layers(store: Store, other_store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The config does not wait for the layers (only the manifest does): a layer's upload can wait
    for the config to be up."""
    import threading

    from dockyard.registry.client.repository import Repository

    name = f"{_repo()}:cfg"
    image_id = _built_image(store, name, n=2)
    config_up = threading.Event()
    real_upload, real_stream = Repository.upload_blob, Repository.upload_stream

    def upload_blob(self: Repository, desc: Descriptor, *args: Any, **kwargs: Any) -> Any:
        outcome = real_upload(self, desc, *args, **kwargs)
        if desc.digest == image_id:
            config_up.set()
        return outcome

    waited: list[bool] = []

    def upload_stream(self: Repository, *args: Any, **kwargs: Any) -> Any:
        waited.append(config_up.wait(5))  # config after the layers: five seconds, then False
        return real_stream(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "upload_blob", upload_blob)
    monkeypatch.setattr(Repository, "upload_stream", upload_stream)
    with RegistryClient(FAST) as rc:
        pushed = push(store, rc, parse_normalized(name))
        assert len(pushed.layers) == 2 and set(pushed.layers.values()) == {"uploaded"}
        got = pull(other_store, rc, parse_normalized(name))
        assert got.image_id == image_id
    assert waited == [True, True]


def test_an_interrupted_push_does_not_wait_for_the_config(store: Store,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the layers ends the push at once, whatever the config's upload is doing."""
    import threading
    import time

    from dockyard.registry.client.repository import Repository

    name = f"{_repo()}:int"
    image_id = _built_image(store, name, n=1, size=3_000_000)
    release = threading.Event()
    real_upload = Repository.upload_blob

    def upload_blob(self: Repository, desc: Descriptor, *args: Any, **kwargs: Any) -> Any:
        if desc.digest == image_id:
            release.wait(10)  # a registry that does not answer
        return real_upload(self, desc, *args, **kwargs)

    def sink(event: Event) -> None:
        if event.name == "Pushing":
            raise KeyboardInterrupt

    monkeypatch.setattr(Repository, "upload_blob", upload_blob)
    try:
        with RegistryClient(FAST) as rc, pytest.raises(KeyboardInterrupt):
            start = time.monotonic()
            push(store, rc, parse_normalized(name), progress=sink)
        assert time.monotonic() - start < 5
    finally:
        release.set()


def test_push_of_unknown_image_reads_like_docker(store: Store) -> None:
    rc = RegistryClient(FAST)
    with rc, pytest.raises(NotFound, match="An image does not exist locally with the tag"):
        push(store, rc, parse_normalized(f"{_repo()}:nope"))


def test_pulled_image_pushes_with_its_original_digest(store: Store) -> None:
    name = f"{_repo()}:orig"
    with RegistryClient(FAST) as rc:
        pulled = pull(store, rc, parse_normalized(f"{PLAIN}/peers/busybox:local"))
        pushed = push(store, rc, parse_normalized(name), source=f"{PLAIN}/peers/busybox:local")
    assert pushed.digest == pulled.digest
    assert set(pushed.layers.values()) == {"mounted"}



def test_pulled_gzip_image_pushed_as_zstd_gets_a_new_manifest(store: Store, other_store: Store) -> None:
    """The stored manifest names gzip layers: asked for zstd, it must not be reused as is."""
    source = f"{PLAIN}/peers/busybox:local"
    name = f"{_repo()}:zstd"
    with RegistryClient(FAST) as rc:
        pulled = pull(store, rc, parse_normalized(source))
        pushed = push(store, rc, parse_normalized(name), source=source, compression="zstd")
        assert pushed.digest != pulled.digest and pushed.media_type == mt.OCI_MANIFEST
        manifest = json.loads(rc.repository(PLAIN, parse_normalized(name).path).get_manifest("zstd").data)
        assert {layer["mediaType"] for layer in manifest["layers"]} == {mt.OCI_LAYER_ZSTD}
        assert set(pushed.layers.values()) == {"uploaded"}
        assert pull(other_store, rc, parse_normalized(name)).image_id == pulled.image_id


# -- peers ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skopeo
def test_dockyard_push_then_skopeo_and_docker_pull(store: Store, tmp_path: Path) -> None:
    name = f"{_repo()}:interop"
    image_id = _built_image(store, name)
    with RegistryClient(FAST) as rc:
        pushed = push(store, rc, parse_normalized(name))
    info = json.loads(peer(f"skopeo inspect --tls-verify=false docker://{name}"))
    assert info["Digest"] == pushed.digest
    peer(f"skopeo copy -q --src-tls-verify=false docker://{name} dir:{tmp_path}/copy")
    layers = json.loads((tmp_path / "copy" / "manifest.json").read_text())["layers"]
    record = store.meta.get_image(image_id)
    assert record is not None
    for layer in layers:  # skopeo verified the digests; check the tars decompress to the diff IDs
        data = gzip.decompress((tmp_path / "copy" / layer["digest"].split(":")[1]).read_bytes())
        assert "sha256:" + hashlib.sha256(data).hexdigest() in record.diff_ids
    require("docker")
    peer(f"$DOCKER pull -q {name} >/dev/null")
    assert peer(f"$DOCKER image inspect -f '{{{{.Id}}}}' {name}").strip() == image_id
    peer(f"$DOCKER rmi {name} >/dev/null", check=False)


@pytest.mark.docker
@pytest.mark.skopeo
def test_skopeo_and_docker_push_then_dockyard_pull(store: Store) -> None:
    sk_name = f"{_repo()}:skopeo"
    peer(f"skopeo copy -q --dest-tls-verify=false containers-storage:localhost/busybox:local docker://{sk_name}")
    with RegistryClient(FAST) as rc:
        got = pull(store, rc, parse_normalized(sk_name))
        record = store.meta.get_image(got.image_id)
        assert got.new and record is not None
        assert (store.snapshots.path(_chain_top(record.diff_ids)) / "bin" / "busybox").is_file()
        require("docker")
        dk_name = f"{_repo()}:docker"
        peer(f"$DOCKER tag busybox:local {dk_name} && $DOCKER push -q {dk_name} >/dev/null "
             f"&& $DOCKER rmi {dk_name}")
        docker_id = peer("$DOCKER image inspect -f '{{.Id}}' busybox:local").strip()
        got = pull(store, rc, parse_normalized(dk_name))
        assert got.image_id == docker_id


@pytest.mark.slow
def test_buildah_two_platform_index_pulls_the_right_platform(store: Store) -> None:
    repo = _repo()
    list_name = f"dytest-list-{uuid.uuid4().hex[:8]}"
    script = f"""
set -e
for arch in amd64 arm64; do
  c=$(buildah from --arch $arch scratch)
  printf 'I am %s\\n' $arch > /tmp/{list_name}-$arch.txt
  buildah copy $c /tmp/{list_name}-$arch.txt /arch.txt >/dev/null
  buildah config --arch $arch --os linux $c
  buildah commit -q $c localhost/{list_name}:$arch >/dev/null
  buildah rm $c >/dev/null
  rm -f /tmp/{list_name}-$arch.txt
done
buildah manifest create localhost/{list_name}:list >/dev/null
buildah manifest add localhost/{list_name}:list containers-storage:localhost/{list_name}:amd64 >/dev/null
buildah manifest add --arch arm64 localhost/{list_name}:list \\
  containers-storage:localhost/{list_name}:arm64 >/dev/null
buildah manifest push -q --all --tls-verify=false localhost/{list_name}:list docker://{repo}:multi
buildah rmi localhost/{list_name}:list localhost/{list_name}:amd64 localhost/{list_name}:arm64 \\
  >/dev/null 2>&1 || true
"""
    peer(script)
    with RegistryClient(FAST) as rc:
        top = rc.repository(PLAIN, parse_normalized(repo).path).get_manifest("multi")
        assert top.media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST)
        arm = pull(store, rc, parse_normalized(f"{repo}:multi"), platform=Platform("linux", "arm64"))
        amd = pull(store, rc, parse_normalized(f"{repo}:multi"), platform=Platform("linux", "amd64"))
    assert arm.digest == amd.digest == top.digest  # docker shows the index digest
    assert (arm.platform.architecture, amd.platform.architecture) == ("arm64", "amd64")
    for result, arch in ((arm, "arm64"), (amd, "amd64")):
        record = store.meta.get_image(result.image_id)
        assert record is not None and record.architecture == arch
        top_layer = store.snapshots.path(_chain_top(record.diff_ids))
        assert (top_layer / "arch.txt").read_text() == f"I am {arch}\n"


def _chain_top(diff_ids: list[str]) -> str:
    from dockyard.image import chain_ids

    return chain_ids(diff_ids)[-1]


def test_a_corrupt_layer_never_reaches_the_registry_while_streaming(store: Store) -> None:
    """The layer's bytes go up as they are compressed, but the upload is closed only after the tar
    matched its diff ID: a stored tar that changed is quarantined and the registry never holds what
    it compressed to."""
    from dockyard.archive.compression import CompressingWriter, usable_cpus
    from dockyard.content.verify import CorruptBlob

    name = f"{_repo()}:bad"
    image_id = _built_image(store, name, n=1, size=3_000_000)
    record = store.meta.get_image(image_id)
    assert record is not None
    path = store.content.path(record.diff_ids[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with CompressingWriter(None, "gzip", threads=usable_cpus()) as cw:
        cw.write(bytes(data))
    would_be = cw.close().digest  # what the changed tar compresses to
    with RegistryClient(FAST) as rc:
        with pytest.raises(CorruptBlob, match="is corrupt in the local store"):
            push(store, rc, parse_normalized(name))
        repo = rc.repository(PLAIN, parse_normalized(name).path)
        assert not repo.blob_exists(would_be)
        with pytest.raises(RegistryError):
            repo.get_manifest("bad")
    assert store.content.quarantined() == [record.diff_ids[0]]
    assert store.meta.pushed_layer(record.diff_ids[0], "gzip") is None
