"""A full disk is named as such: on a real, small tmpfs holding the store, commands say "no space left
on device" with the store path, not "internal error: OSError" or "metadata database ... is unusable"."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.archive import apply_layer
from dockyard.errors import NoSpace
from dockyard.imageops import Store
from dockyard.imageops.importer import import_image
from dockyard.imageops.save import resolve_items, save_to_file
from dockyard.oci.digest import Digest
from dockyard.snapshot import SnapshotStore
from tests import tmpfs


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test alone."""
    yield from tmpfs.mounted("size=4m", "dy-diskfull-")


def dockyard(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKYARD_DEBUG": ""})


def rootfs_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = os.urandom(size)
        info = tarfile.TarInfo("data")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fill(fs: Path) -> None:
    """Write until the filesystem refuses even one more byte."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        piece = 64 << 10
        while piece:
            try:
                os.write(fd, bytes(piece))
            except OSError:
                piece //= 2
    finally:
        os.close(fd)


def assert_disk_full(p: subprocess.CompletedProcess[str], path: Path) -> None:
    assert p.returncode != 0
    line = p.stderr.strip()
    assert "\n" not in line, line  # one line: no traceback
    assert f"{path}" in line and line.endswith(": no space left on device"), line
    assert "internal error" not in line and "unusable" not in line


def test_load_with_too_little_space_names_the_disk_full(small_fs: Path, tmp_path: Path) -> None:
    source = Store(tmp_path / "source", fsync=False)
    image = import_image(source, io.BytesIO(rootfs_tar(6 << 20)), names=["big:1"])
    save_to_file(source, resolve_items(source, ["big:1"]), str(tmp_path / "big.tar"))
    source.close()
    store = small_fs / "store"
    p = dockyard(store, "load", "-i", str(tmp_path / "big.tar"))
    assert_disk_full(p, store / "content")
    assert p.stderr.startswith(f"Error: write {store}/content/ingest/")
    assert dockyard(store, "images", "-q").stdout.strip() == ""
    assert image.id  # the image was real, only the room was missing
    assert os.listdir(store / "content" / "ingest") == []  # nothing half-written is left behind


def test_tag_rmi_run_and_check_on_a_full_disk_say_so(small_fs: Path, tmp_path: Path) -> None:
    store = small_fs / "store"
    (tmp_path / "rootfs.tar").write_bytes(rootfs_tar(10_000))
    assert dockyard(store, "import", str(tmp_path / "rootfs.tar"), "small:1").returncode == 0
    fill(small_fs)
    for args in (("tag", "small:1", "small:2"), ("rmi", "small:1"), ("run", "--rm", "small:1", "/x"),
                 ("system", "check")):
        assert_disk_full(dockyard(store, *args), store / "metadata.db")
    (small_fs / "filler").unlink()
    assert dockyard(store, "tag", "small:1", "small:2").returncode == 0  # room again: all is well
    assert dockyard(store, "system", "check").returncode == 0


def test_unpacking_a_layer_onto_a_full_disk_names_the_snapshot_store(small_fs: Path) -> None:
    snaps = SnapshotStore(small_fs / "snapshots")
    layer = rootfs_tar(6 << 20)
    with pytest.raises(NoSpace) as exc:
        snaps.create(Digest("sha256:" + "a" * 64), lambda d: apply_layer(io.BytesIO(layer), d))
    message = str(exc.value)
    assert message.startswith(f"write {small_fs}/snapshots/tmp/new-aaaaaaaaaaaaaaaa.")
    assert "tar entry 'data'" in message and message.endswith("no space left on device")
    assert os.listdir(small_fs / "snapshots" / "tmp") == []  # the half-made snapshot is gone


def test_save_onto_a_full_disk_names_the_output(small_fs: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (tmp_path / "rootfs.tar").write_bytes(rootfs_tar(6 << 20))
    assert dockyard(store, "import", str(tmp_path / "rootfs.tar"), "big:1").returncode == 0
    out = small_fs / "big.tar"
    p = dockyard(store, "save", "-o", str(out), "big:1")
    assert_disk_full(p, out)
    assert p.stderr == f"Error: write {out}: no space left on device\n"
    assert os.listdir(small_fs) == []  # the partial temp file is removed
