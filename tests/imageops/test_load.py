"""``load``: docker save (classic and 25+), OCI layouts, gzip'd archives; bad input fails cleanly."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import CorruptData, DigestMismatch, NotFound, UnsafePath
from dockyard.imageops import Store
from dockyard.imageops.load import load_into


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def layer_tar(n: int = 0, *, name: str = "") -> bytes:
    return make_tar({name or f"file{n}.txt": f"content {n}\n".encode() * (n + 1), "etc/x": b"x"})


def config_for(layers: list[bytes], **extra: object) -> bytes:
    diff_ids = [sha(gzip.decompress(x) if x[:2] == b"\x1f\x8b" else x) for x in layers]
    doc = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": [], **extra}
    return json.dumps(doc).encode()


def classic_archive(layers: list[bytes], tags: list[str], *, shared_link: bool = False) -> tuple[bytes, str]:
    config = config_for(layers)
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    paths = []
    for i, layer in enumerate(layers):
        lid = hashlib.sha256(f"id{i}".encode()).hexdigest()
        if shared_link and i > 0:
            links[f"{lid}/layer.tar"] = f"../{paths[0].split('/')[0]}/layer.tar"
        else:
            files[f"{lid}/layer.tar"] = layer
        files[f"{lid}/VERSION"] = b"1.0"
        files[f"{lid}/json"] = b"{}"
        paths.append(f"{lid}/layer.tar")
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    files[cfg_name] = config
    files["manifest.json"] = json.dumps([{"Config": cfg_name, "RepoTags": tags, "Layers": paths}]).encode()
    files["repositories"] = b"{}"
    return make_tar(files, links=links), sha(config)


def oci_archive(layers: list[bytes], name: str = "", *, docker_manifest: bool = False,
                tags: list[str] | None = None) -> tuple[bytes, str]:
    config = config_for(layers)
    files: dict[str, bytes] = {}
    descs = []
    for layer in layers:
        files[f"blobs/sha256/{sha(layer)[7:]}"] = layer
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if layer[:2] == b"\x1f\x8b" else "")
        descs.append({"mediaType": mt, "digest": sha(layer), "size": len(layer)})
    files[f"blobs/sha256/{sha(config)[7:]}"] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": descs}).encode()
    files[f"blobs/sha256/{sha(manifest)[7:]}"] = manifest
    ann = {"io.containerd.image.name": name} if name else {}
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
         "size": len(manifest), "annotations": ann}]}).encode()
    files["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    if docker_manifest:
        files["manifest.json"] = json.dumps([{
            "Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": tags or [],
            "Layers": [f"blobs/sha256/{sha(x)[7:]}" for x in layers]}]).encode()
    return make_tar(files), sha(config)


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else tmp_path_factory.getbasetemp()
    import tempfile

    with tempfile.TemporaryDirectory(dir=base, prefix="dockyard-test-load-") as d:
        s = Store(d, fsync=False)
        yield s
        s.close()


def load(store: Store, data: bytes, source: str = "test.tar") -> list[tuple[str, tuple[str, ...]]]:
    return [(str(r.image_id), r.names) for r in load_into(store, io.BytesIO(data), source=source)]


def test_classic_layout_gets_the_config_digest_as_id_and_its_tags(store: Store) -> None:
    data, image_id = classic_archive([layer_tar(0), layer_tar(1)], ["demo:1", "example.com/x/y:2"])
    assert load(store, data) == [(image_id, ("demo:1", "example.com/x/y:2"))]
    assert store.meta.get_tag("docker.io/library/demo:1") == image_id
    rec = store.meta.get_image(image_id)
    assert rec is not None and len(rec.diff_ids) == 2
    for diff_id in rec.diff_ids:
        assert store.meta.layer_blobs(diff_id)


def test_shared_layers_as_symlinks_and_gzip_wrapped_archive(store: Store) -> None:
    same = layer_tar(3)
    data, image_id = classic_archive([same, same], ["twice:latest"], shared_link=True)
    assert load(store, gzip.compress(data, 1)) == [(image_id, ("twice:latest",))]


@pytest.mark.parametrize("wrap", ["bz2", "xz", "zstd"])
def test_compressed_archives_as_docker_load_reads_them(store: Store, wrap: str) -> None:
    import bz2
    import lzma

    import zstandard

    data, image_id = classic_archive([layer_tar(4)], [f"wrapped:{wrap}"])
    compress = {"bz2": bz2.compress, "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}
    packed = compress[wrap](data)
    assert load(store, packed) == [(image_id, (f"wrapped:{wrap}",))]


def test_oci_layout_with_gzip_layers_verifies_diff_ids(store: Store) -> None:
    layers = [gzip.compress(layer_tar(0)), layer_tar(1)]
    data, image_id = oci_archive(layers, "docker.io/library/oci:v1")
    assert load(store, data) == [(image_id, ("oci:v1",))]
    rec = store.meta.get_image(image_id)
    assert rec is not None and rec.manifest_digest
    forms = store.meta.layer_blobs(rec.diff_ids[0])
    assert forms[0].media_type.endswith("+gzip") and forms[0].uncompressed_size == len(layer_tar(0))


def test_docker25_layout_and_untagged_oci(store: Store) -> None:
    data, image_id = oci_archive([layer_tar(5)], docker_manifest=True, tags=["d25:latest"])
    assert load(store, data) == [(image_id, ("d25:latest",))]
    data, other = oci_archive([layer_tar(6)])
    assert load(store, data) == [(other, ())]


def test_reload_is_idempotent(store: Store) -> None:
    data, image_id = classic_archive([layer_tar(0)], ["again:1"])
    assert load(store, data) == load(store, data) == [(image_id, ("again:1",))]
    assert len(store.meta.images()) == 1


def _assert_nothing_recorded(store: Store) -> None:
    assert store.meta.images() == []
    assert store.meta.tags() == []


def test_truncated_archive(store: Store) -> None:
    data, _ = classic_archive([layer_tar(0)], ["t:1"])
    with pytest.raises(CorruptData, match=r"^bad.tar: tar archive truncated"):
        load(store, data[:1500], "bad.tar")
    _assert_nothing_recorded(store)


def test_not_an_archive(store: Store) -> None:
    with pytest.raises(CorruptData, match=r"junk\.tar"):
        load(store, b"hello world, not a tar\n" * 100, "junk.tar")
    _assert_nothing_recorded(store)


def test_missing_manifest(store: Store) -> None:
    with pytest.raises(CorruptData, match=r"x.tar: no manifest.json or index.json"):
        load(store, make_tar({"abc/layer.tar": layer_tar(0)}), "x.tar")
    _assert_nothing_recorded(store)


def test_missing_layer_file(store: Store) -> None:
    cfg = config_for([layer_tar(0)])
    data = make_tar({"c.json": cfg, "manifest.json": json.dumps(
        [{"Config": "c.json", "RepoTags": ["m:1"], "Layers": ["nope/layer.tar"]}]).encode()})
    with pytest.raises(CorruptData, match=r"layer 'nope/layer.tar' is missing"):
        load(store, data)
    _assert_nothing_recorded(store)


def test_layer_that_does_not_match_its_diff_id(store: Store) -> None:
    cfg = config_for([layer_tar(0)])
    data = make_tar({"l/layer.tar": layer_tar(9), "c.json": cfg, "manifest.json": json.dumps(
        [{"Config": "c.json", "RepoTags": ["m:1"], "Layers": ["l/layer.tar"]}]).encode()})
    with pytest.raises(DigestMismatch, match=r"layer l/layer.tar: diff ID\): expected sha256:"):
        load(store, data)
    _assert_nothing_recorded(store)


def test_blob_whose_content_does_not_match_its_name(store: Store) -> None:
    data, _ = oci_archive([layer_tar(0)], "x:1")
    layer = layer_tar(0)
    # Rename one blob: its path promises a digest its bytes do not have.
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m)
            body = f.read() if f else b""
            if m.name == f"blobs/sha256/{sha(layer)[7:]}":
                body = layer_tar(7)
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    with pytest.raises(DigestMismatch, match=r"blobs/sha256/"):
        load(store, buf.getvalue())
    _assert_nothing_recorded(store)


def test_hostile_path_inside_a_layer(store: Store) -> None:
    evil = make_tar({"../../etc/evil": b"pwned"})
    data, _ = classic_archive([evil], ["evil:1"])
    with pytest.raises(UnsafePath, match=r"layer .*/layer.tar: member '../../etc/evil' points outside"):
        load(store, data)
    _assert_nothing_recorded(store)


def test_hostile_path_in_manifest(store: Store) -> None:
    data = make_tar({"manifest.json": json.dumps(
        [{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]).encode()})
    with pytest.raises(UnsafePath, match=r"points outside the archive"):
        load(store, data)


def test_platform_choice_in_nested_index(store: Store) -> None:
    data, image_id = oci_archive([layer_tar(0)], "multi:1")
    # Wrap the manifest in a nested index for two platforms of which only amd64 is present.
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("index.json")
        assert f is not None
        top = json.loads(f.read())
    man = dict(top["manifests"][0])
    man.pop("annotations")
    arm = dict(man, digest="sha256:" + "0" * 64, platform={"os": "linux", "architecture": "arm64"})
    man["platform"] = {"os": "linux", "architecture": "amd64"}
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [arm, man]}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m)
            body = f.read() if f else b""
            if m.name == "index.json":
                body = json.dumps({"schemaVersion": 2, "manifests": [
                    {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(nested),
                     "size": len(nested), "annotations": {"io.containerd.image.name": "multi:1"}}]}).encode()
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
        info = tarfile.TarInfo(f"blobs/sha256/{sha(nested)[7:]}")
        info.size = len(nested)
        dst.addfile(info, io.BytesIO(nested))
    results = load_into(store, io.BytesIO(buf.getvalue()))
    assert [str(r.image_id) for r in results] == [image_id]
    from dockyard.oci.platform import Platform

    with pytest.raises(NotFound, match="no image for platform linux/s390x"):
        load_into(store, io.BytesIO(buf.getvalue()), platform=Platform("linux", "s390x"))
