"""A blob that goes bad in the store: export commands refuse it, naming image and layer; ``system
check`` reports it; ``--repair`` fetches it again from the registry the image came from."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.imageops import Store
from dockyard.registry.server import RegistryServer


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with RegistryServer(storage=tmp_path / "registry") as srv:
        yield srv.url.removeprefix("http://").rstrip("/")


def dockyard(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKYARD_DEBUG": "", "DOCKER_CONFIG": str(root) + "-docker"})


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("etc/hostname", b"box\n"), ("big", os.urandom(200_000))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.slow
def test_corrupt_layer_fails_save_and_push_and_repair_fetches_it_again(tmp_path: Path, registry: str) -> None:
    built, pulled = tmp_path / "built", tmp_path / "pulled"
    (tmp_path / "rootfs.tar").write_bytes(rootfs_tar())
    name = f"{registry}/team/app:1"
    assert dockyard(built, "import", str(tmp_path / "rootfs.tar"), name).returncode == 0
    assert dockyard(built, "push", name).returncode == 0
    p = dockyard(pulled, "pull", name)
    assert p.returncode == 0, p.stderr
    store = Store(pulled)
    record = store.meta.get_image(str(store.meta.get_tag(name)))
    assert record is not None
    diff_id = record.diff_ids[0]
    layer = store.meta.layer_blobs(diff_id)[0]
    good = store.content.path(layer.digest).read_bytes()
    flip_a_byte(store.content.path(layer.digest))

    out = tmp_path / "app.tar"
    p = dockyard(pulled, "save", "-o", str(out), name)
    assert p.returncode == 1 and not out.exists()
    assert p.stderr.startswith(f"Error: image {name}: layer {diff_id}: blob {layer.digest} is corrupt "
                               "in the local store (content hashes to sha256:")
    assert "\n" not in p.stderr.rstrip("\n")  # one line, no traceback
    assert store.content.quarantined() == [layer.digest]

    p = dockyard(pulled, "system", "check")
    assert p.returncode == 1
    assert f"problem: blob {layer.digest}: corrupt, kept in quarantine at " in p.stdout
    assert f"problem: image {record.id}: layer {diff_id} has no stored blob" in p.stdout

    p = dockyard(pulled, "system", "check", "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"repaired: fetched blob {layer.digest} again from {registry}/team/app" in p.stdout
    assert store.content.path(layer.digest).read_bytes() == good and store.content.quarantined() == []
    assert dockyard(pulled, "system", "check").returncode == 0
    assert dockyard(pulled, "save", "-o", str(out), name).returncode == 0

    # push reads through the same check: a registry that lacks the layer never gets the bad bytes.
    flip_a_byte(store.content.path(layer.digest))
    with RegistryServer(storage=tmp_path / "registry2") as srv:
        other = f"{srv.url.removeprefix('http://').rstrip('/')}/team/copy:1"
        assert dockyard(pulled, "tag", name, other).returncode == 0
        p = dockyard(pulled, "push", other)
        assert p.returncode == 1
        assert f"Error: image {other}: layer {diff_id}: blob {layer.digest} is corrupt" in p.stderr
        assert store.content.quarantined() == [layer.digest]
        assert dockyard(pulled, "system", "check", "--repair").returncode == 0
        assert dockyard(pulled, "push", other).returncode == 0

    # The config: read whole rather than streamed, but checked, named and quarantined the same way.
    flip_a_byte(store.content.path(record.id))
    p = dockyard(pulled, "save", "-o", str(out), name)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Error: image {name}: config: blob {record.id} is corrupt in the local store")
    assert store.content.quarantined() == [record.id]
    p = dockyard(pulled, "system", "check", "--repair")
    assert p.returncode == 0 and f"repaired: fetched blob {record.id} again" in p.stdout
    assert dockyard(pulled, "system", "check").returncode == 0
    assert dockyard(pulled, "save", "-o", str(out), name).returncode == 0
