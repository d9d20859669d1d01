"""Multi-platform tags: importing another platform adds to a tag, the index names every platform."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator

import pytest

from dockyard.errors import NotFound
from dockyard.imageops import Store, gc, platforms
from dockyard.imageops.images import list_images, prune, remove, remove_platform, resolve
from dockyard.imageops.importer import import_image
from dockyard.oci import mediatypes as mt
from dockyard.oci.platform import Platform, host
from tests.imageops.test_import import rootfs

NAME = "docker.io/library/multi:latest"


@pytest.fixture
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-platforms-") as d:
        s = Store(d, fsync=False)
        yield s
        s.close()


def _import(store: Store, arch: str, content: bytes = b"x") -> str:
    rec = import_image(store, io.BytesIO(rootfs({"f": content + arch.encode()})), names=["multi"],
                       platform=Platform("linux", arch))
    return str(rec.id)


def test_a_second_platform_joins_the_tag_as_an_index(store: Store) -> None:
    amd = _import(store, "amd64")
    arm = _import(store, "arm64")
    held = {m.platform: str(m.image_id) for m in store.meta.tag_platforms(NAME)}
    assert held == {"linux/amd64": amd, "linux/arm64": arm}
    index = platforms.index_for(store, NAME)
    assert index is not None
    doc = json.loads(store.content.read(index))
    assert doc["mediaType"] == mt.OCI_INDEX
    listed = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in doc["manifests"]}
    assert set(listed) == {"linux/amd64", "linux/arm64"}
    for digest in listed.values():  # each manifest is stored and names its platform's config
        assert json.loads(store.content.read(digest))["config"]["digest"] in (amd, arm)
    assert str(platforms.resolve_platform(store, "multi", "linux/arm64")) == arm
    assert str(platforms.resolve_platform(store, "multi", "linux/amd64")) == amd
    # A platform-less lookup gets this host's platform.
    assert str(resolve(store, "multi")) == (arm if host().architecture == "arm64" else amd)
    with pytest.raises(NotFound, match="multi has no linux/s390x variant locally"):
        platforms.resolve_platform(store, "multi", "linux/s390x")
    # One row per tag; nothing dangling that a prune could take.
    rows = [s for s in list_images(store) if s.repo_tags == ["multi:latest"]]
    assert len(rows) == 1 and len(list_images(store)) == 1
    prune(store)
    gc.collect(store)
    assert store.meta.get_image(amd) and store.meta.get_image(arm)
    assert store.content.exists(index) and all(store.content.exists(d) for d in listed.values())


def test_the_same_platform_again_replaces_only_itself(store: Store) -> None:
    _import(store, "amd64")
    arm = _import(store, "arm64")
    amd2 = _import(store, "amd64", b"new")
    held = {m.platform: str(m.image_id) for m in store.meta.tag_platforms(NAME)}
    assert held == {"linux/amd64": amd2, "linux/arm64": arm}


def test_removing_platforms_and_the_tag(store: Store) -> None:
    amd = _import(store, "amd64")
    arm = _import(store, "arm64")
    items = remove_platform(store, "multi", "linux/arm64")
    assert arm in {i.deleted for i in items} and store.meta.get_image(arm) is None
    assert store.meta.tag_platforms(NAME) == [] and str(store.meta.get_tag(NAME)) == amd
    with pytest.raises(NotFound, match="multi:latest has no linux/arm64 variant locally"):
        remove_platform(store, "multi", "linux/arm64")
    arm = _import(store, "arm64")
    items = remove(store, "multi")
    assert {i.deleted for i in items} >= {amd, arm}
    assert store.meta.images() == []


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_and_load_keep_the_index(store: Store, fmt: str) -> None:
    from dockyard.imageops.load import load_into
    from dockyard.imageops.save import resolve_save, save

    amd = _import(store, "amd64")
    arm = _import(store, "arm64")
    index = platforms.index_for(store, NAME)
    items, indexes = resolve_save(store, ["multi"])
    assert {str(i.image_id) for i in items} == {amd, arm} and indexes == {"multi:latest": index}
    with tempfile.TemporaryFile() as f, tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        save(store, items, f.fileno(), fmt=fmt, indexes=indexes)  # type: ignore[arg-type]
        f.seek(0)
        other = Store(d, fsync=False)
        results = load_into(other, f)
        assert [r.replaced for r in results] == [(), ()]  # the second platform joins, replacing nothing
        held = {m.platform: str(m.image_id) for m in other.meta.tag_platforms(NAME)}
        assert held == {"linux/amd64": amd, "linux/arm64": arm}
        assert platforms.index_for(other, NAME) == index  # the very index saved
        other.close()
