"""``Client``: store-root resolution, laziness, and one end-to-end pass through its API."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.config import default_root, resolve_root
from dockyard.errors import NotFound
from tests.content.storekit import make_image, make_tar, root

__all__ = ["root"]


def test_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env"
    assert resolve_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("DOCKYARD_ROOT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = Path("/var/lib/dockyard") if default_root() == Path("/var/lib/dockyard") else (
        tmp_path / "xdg" / "dockyard")
    assert resolve_root() == expected


def test_constructing_a_client_touches_nothing(root: Path) -> None:
    c = Client(root)
    assert c.images() == []
    with pytest.raises(NotFound):
        c.resolve("x")
    assert c.check().ok and c.gc().blobs_removed == []
    assert not (root / "content").exists()


def test_end_to_end(root: Path) -> None:
    with Client(root, fsync=True) as c:
        rec = make_image(c, [make_tar({"hello": b"world"})], names=["demo:1"])
        assert c.image_record("demo:1").id == rec.id
        assert c.image_config("demo:1").diff_ids == rec.diff_ids
        assert c.disk_usage().images_size == rec.size
    with Client(root) as again:  # a second process-like client sees everything committed
        assert [s.repo_tags for s in again.images()] == [["demo:1"]]
        again.system_prune(all=True)
        assert again.images(all=True) == []
        assert list(again.store.content.walk()) == []
