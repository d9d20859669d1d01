"""``save``: docker (OCI layout + manifest.json) and OCI formats, reproducible, round trip through load."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from dockyard.errors import CorruptData, InvalidArgument, NotFound
from dockyard.imageops import Store
from dockyard.imageops.importer import import_image
from dockyard.imageops.load import load_into
from dockyard.imageops.save import resolve_items, save, save_to_file


def rootfs(n: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(3):
            data = f"file {i} of {n}\n".encode() * 100
            info = tarfile.TarInfo(f"dir{n}/f{i}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def stores() -> Iterator[tuple[Store, Store]]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-save-") as d:
        a, b = Store(f"{d}/a", fsync=False), Store(f"{d}/b", fsync=False)
        yield a, b
        a.close()
        b.close()


def _save_bytes(store: Store, refs: list[str], fmt: str = "docker") -> bytes:
    with tempfile.TemporaryFile(dir="/dev/shm") as f:
        save(store, resolve_items(store, refs), f.fileno(), fmt=fmt)  # type: ignore[arg-type]
        f.seek(0)
        return f.read()


def test_round_trip_keeps_ids_and_tags(stores: tuple[Store, Store]) -> None:
    a, b = stores
    one = import_image(a, io.BytesIO(rootfs(1)), names=["one:1", "alias:x"], changes=['CMD ["sh"]'])
    two = import_image(a, io.BytesIO(rootfs(2)), names=["two:2"])
    data = _save_bytes(a, ["one:1", "alias:x", "two:2"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert [m["RepoTags"] for m in manifest] == [["one:1", "alias:x"], ["two:2"]]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/one:1"
    results = load_into(b, io.BytesIO(data))
    assert [(r.image_id, r.names) for r in results] == [(one.id, ("one:1", "alias:x")), (two.id, ("two:2",))]


def test_oci_format_and_determinism(stores: tuple[Store, Store]) -> None:
    a, b = stores
    rec = import_image(a, io.BytesIO(rootfs(3)), names=["three:3"])
    first = _save_bytes(a, ["three:3"], "oci")
    assert first == _save_bytes(a, ["three"], "oci")  # a repository without tag: all its tags
    with tarfile.open(fileobj=io.BytesIO(first)) as tf:
        assert "manifest.json" not in tf.getnames()
        assert all(m.mtime == 0 for m in tf.getmembers())
    assert [r.image_id for r in load_into(b, io.BytesIO(first))] == [rec.id]
    assert b.meta.get_tag("docker.io/library/three:3") == rec.id


def test_save_by_id_has_no_tags_and_to_file_is_atomic(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    rec = import_image(a, io.BytesIO(rootfs(4)), names=["four:4"])
    items = resolve_items(a, [rec.id.hex[:12]])
    assert [(i.image_id, i.names) for i in items] == [(rec.id, [])]
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        path = os.path.join(d, "out.tar")
        size = save_to_file(a, items, path)
        assert os.path.getsize(path) == size
        assert os.listdir(d) == ["out.tar"]
        with pytest.raises(NotFound, match="No such image: nope:1"):
            save_to_file(a, resolve_items(a, ["nope:1"]), path)
        assert os.listdir(d) == ["out.tar"]


def test_bad_format(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    rec = import_image(a, io.BytesIO(rootfs(5)))
    with pytest.raises(InvalidArgument, match="invalid format"):
        save(a, resolve_items(a, [rec.id]), 1, fmt="zip")  # type: ignore[arg-type]


def test_save_load_save_gives_the_same_bytes(stores: tuple[Store, Store]) -> None:
    a, b = stores
    import_image(a, io.BytesIO(rootfs(6)), names=["six:6"])
    first = _save_bytes(a, ["six:6"])
    load_into(b, io.BytesIO(first))
    assert _save_bytes(b, ["six:6"]) == first


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_a_corrupt_layer_fails_the_save_naming_image_and_layer(stores: tuple[Store, Store], fmt: str) -> None:
    a, _ = stores
    rec = import_image(a, io.BytesIO(rootfs(1)), names=["app:1"])
    layer = a.meta.layer_blobs(rec.diff_ids[0])[0]
    path = a.content.path(layer.digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x20  # one flipped bit, same size: only the digest can tell
    path.write_bytes(bytes(raw))
    out = os.path.join(os.path.dirname(a.root), "app.tar")
    with pytest.raises(CorruptData) as exc:
        save_to_file(a, resolve_items(a, ["app:1"]), out, fmt=fmt)  # type: ignore[arg-type]
    assert str(exc.value).startswith(f"image app:1: layer {rec.diff_ids[0]}: blob {layer.digest} is corrupt")
    assert not os.path.exists(out) and os.listdir(os.path.dirname(out)) == ["a"]  # no temp file left
    # Moved aside, not forgotten: nothing serves it any more, and a second save says why.
    assert a.content.quarantined() == [layer.digest] and not a.content.exists(layer.digest)
    with pytest.raises(NotFound, match="quarantined as corrupt"):
        save_to_file(a, resolve_items(a, ["app:1"]), out, fmt=fmt)  # type: ignore[arg-type]
