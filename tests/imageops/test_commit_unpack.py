"""Committing layers and images, converting layer compression once, unpacking to overlay lowerdirs."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.errors import DigestMismatch, NotFound
from dockyard.image import chain_ids
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.digest import Digest
from tests.content.storekit import client, make_image, make_tar, root

__all__ = ["client", "root"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_image_id_is_the_config_digest_and_names_are_normalised(client: Client) -> None:
    tar = make_tar({"a": b"hello"})
    rec = make_image(client, [tar], names=["busybox", "localhost:5000/x/y:v1"], labels={"a": "b"})
    raw = client.store.content.read(rec.id)
    assert rec.id == sha(raw)
    assert rec.diff_ids == [sha(tar)] and rec.size == 5 and rec.labels == {"a": "b"}  # docker's size
    assert client.store.meta.tags_for(rec.id) == ["docker.io/library/busybox:latest",
                                                  "localhost:5000/x/y:v1"]
    assert ImageConfig.from_json(raw).diff_ids == rec.diff_ids


def test_commit_refuses_missing_layers(client: Client) -> None:
    config = ImageConfig(diff_ids=[Digest("sha256:" + "e" * 64)])
    with pytest.raises(NotFound, match="is not in the local store"):
        client.commit_image(config)
    assert client.store.meta.images() == []


def test_commit_keeps_config_bytes_verbatim(client: Client) -> None:
    tar = make_tar({"a": b"x"})
    client.store_layer(tar)
    raw = b'{"architecture":"arm64","os":"linux",  "rootfs":{"type":"layers","diff_ids":["%s"]}}' % sha(
        tar).encode()
    rec = client.commit_image(raw, names=["x"])
    assert rec.id == sha(raw) and rec.architecture == "arm64"
    assert client.store.content.read(rec.id) == raw


def test_layer_blob_from_a_pull_computes_and_checks_the_diff_id(client: Client) -> None:
    tar = make_tar({"f": os.urandom(1000)})
    blob = gzip.compress(tar)
    layer = client.store_layer_blob(blob, expected=sha(blob), size=len(blob))
    assert layer.diff_id == sha(tar) and layer.digest == sha(blob)
    assert layer.media_type == mt.OCI_LAYER_GZIP and layer.uncompressed_size == len(tar)
    with pytest.raises(DigestMismatch, match="diff ID"):
        client.store_layer_blob(gzip.compress(tar + b"\0" * 512), diff_id=sha(tar))
    with pytest.raises(DigestMismatch):
        client.store_layer_blob(blob, expected=sha(b"something else"))
    # A blob already stored under its digest is not read again.
    assert client.store_layer_blob(b"", expected=sha(blob)) == layer


def test_compression_happens_once_and_is_remembered(client: Client) -> None:
    tar = make_tar({"f": b"y" * 50000})
    layer = client.store_layer(tar)
    assert layer.digest == layer.diff_id and layer.media_type == mt.OCI_LAYER
    gz = client.layer_blob(layer.diff_id, "gzip")
    assert gz.digest != layer.digest and gzip.decompress(client.store.content.read(gz.digest)) == tar
    assert client.layer_blob(layer.diff_id, "gzip") == gz  # reused, not recompressed
    zst = client.layer_blob(layer.diff_id, "zstd")
    assert zst.media_type == mt.OCI_LAYER_ZSTD
    docker = client.layer_blob(layer.diff_id, "gzip", docker_media_type=True)
    assert docker.media_type == mt.DOCKER_LAYER_GZIP and docker.digest == gz.digest
    assert len(client.store.meta.layer_blobs(layer.diff_id)) == 3


def test_first_compression_uses_every_core_and_gives_the_same_blob_on_any_machine(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from isal import isal_zlib

    from dockyard.archive import compression

    tar = make_tar({"a": os.urandom(1 << 20), "b": b"text " * 700_000})
    layer = client.store_layer(tar)
    seen: list[int] = []
    real = compression.CompressingWriter.__init__

    def spy(self: compression.CompressingWriter, *args: object, **kwargs: object) -> None:
        seen.append(int(kwargs.get("threads", 0)))  # type: ignore[call-overload]
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(compression.CompressingWriter, "__init__", spy)
    monkeypatch.setattr(compression.os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    gz = client.layer_blob(layer.diff_id, "gzip")
    assert seen == [3]
    block = compression.GZIP_BLOCK
    # The first block (random bytes) is stored as it is; the others are isal's level-1 members.
    members = [isal_zlib.compress(tar[i : i + block], 1, wbits=31) for i in range(block, len(tar), block)]
    blob = client.store.content.read(gz.digest)
    rest = b"".join(members)
    assert len(members) > 2 and blob.endswith(rest)
    first = blob[: len(blob) - len(rest)]
    assert gzip.decompress(first) == tar[:block] and len(first) == 10 + block + 5 * 17 + 8


def test_compressing_a_corrupt_layer_for_push_fails_naming_it_and_quarantines_it(client: Client) -> None:
    tar = make_tar({"f": os.urandom(50000)})
    layer = client.store_layer(tar)
    path = client.store.content.path(layer.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # inside the file's bytes: the tar still parses, the digest does not match
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=f"^layer {layer.diff_id}: blob {layer.digest} is corrupt"):
        client.layer_blob(layer.diff_id, "gzip")
    assert client.store.content.quarantined() == [layer.digest]
    assert [f.digest for f in client.store.meta.layer_blobs(layer.diff_id)] == [layer.digest]  # no gzip form


def test_unpack_gives_lowerdirs_top_first_with_overlay_whiteouts(client: Client) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay whiteouts (char devices) need root")
    base = make_tar({"etc/a": b"A", "etc/b": b"B"}, dirs=["etc"])
    top = make_tar({"etc/c": b"C"}, whiteouts=["etc/a"])
    rec = make_image(client, [base, top], names=["img"], compression="gzip")
    lower = client.unpack("img")
    chains = chain_ids(rec.diff_ids)
    assert lower == [client.store.snapshots.path(chains[1]), client.store.snapshots.path(chains[0])]
    assert (lower[1] / "etc" / "a").read_bytes() == b"A"
    assert (lower[0] / "etc" / "c").read_bytes() == b"C"
    wh = os.lstat(lower[0] / "etc" / "a")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert client.unpack(rec.id) == lower  # reused
    assert client.inspect("img")["GraphDriver"]["Data"]["LowerDir"] == str(lower[1])


def test_unpack_detects_a_corrupt_blob(client: Client, root: Path) -> None:
    tar = make_tar({"x": b"1" * 4096})
    rec = make_image(client, [tar], names=["img"])
    path = client.store.content.path(rec.diff_ids[0])
    data = bytearray(path.read_bytes())
    data[600] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        client.unpack("img")
    assert not client.store.snapshots.exists(rec.diff_ids[0])


def _tar_with_everything() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        def add(name: str, data: bytes = b"", **kw: object) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in kw.items():
                setattr(info, k, v)
            tf.addfile(info, io.BytesIO(data))

        add("d", type=tarfile.DIRTYPE, mode=0o755)
        add("d/" + "long" * 40, b"x" * 1000)  # a GNU long name entry before it
        add("d/small", b"abc")
        add("d/link", type=tarfile.SYMTYPE, linkname="small")  # 5 bytes, as lstat reports
        add("d/hard", type=tarfile.LNKTYPE, linkname="d/small")  # counted once
        add("d/fifo", type=tarfile.FIFOTYPE)
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("p/" + "é" * 120)  # a PAX header carries the name
        info.size = 7
        tf.addfile(info, io.BytesIO(b"1234567"))
    return buf.getvalue(), pax.getvalue()


def test_content_size_counts_like_docker(client: Client) -> None:
    from dockyard.imageops.commit import ContentSize

    gnu, pax = _tar_with_everything()
    for data, expected in ((gnu, 1000 + 3 + 5), (pax, 7)):
        for step in (1, 100, 511, 513, len(data)):
            counter = ContentSize()
            for i in range(0, len(data), step):
                counter.feed(data[i:i + step])
            assert counter.size == expected, step
    bad = ContentSize()
    bad.feed(os.urandom(2048))
    assert bad.size == -1
    layer = client.store_layer(gnu)
    assert layer.content_size == 1008
    rec = client.commit_image(ImageConfig(diff_ids=[layer.diff_id]), names=["sized"])
    assert client.images()[0].size == rec.size == 1008
    if os.geteuid() == 0:
        client.unpack("sized")
        assert client.store.snapshots.size(layer.diff_id) == 1008  # the unpacked tree agrees


def test_sizes_of_layers_stored_by_other_code_are_learnt(client: Client) -> None:
    from dockyard.image import LayerBlob

    tar = make_tar({"a": b"x" * 1234}, dirs=["d"])
    info = client.store.content.ingest(tar)
    # As an importer might record it: no content size.
    client.store.meta.add_layer_blob(LayerBlob(info.digest, info.digest, mt.OCI_LAYER, info.size, info.size))
    rec = client.commit_image(ImageConfig(diff_ids=[info.digest]), names=["learnt"])
    assert rec.size == 1234 and client.images()[0].size == 1234
