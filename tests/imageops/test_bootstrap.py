"""``bootstrap``: a reproducible busybox image from busybox-static; debian via debootstrap (slow, opt-in)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from dockyard.errors import InvalidArgument
from dockyard.imageops import Store
from dockyard.imageops.bootstrap import bootstrap_busybox, bootstrap_debian, deb_arch
from dockyard.oci.platform import Platform

needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None and not os.path.exists("/bin/busybox"),
                                   reason="busybox-static is not installed")


@pytest.fixture
def tmp_shm() -> Iterator[str]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-bootstrap-") as d:
        yield d


@needs_busybox
def test_busybox_is_reproducible_and_complete(tmp_shm: str) -> None:
    a, b = Store(f"{tmp_shm}/a", fsync=False), Store(f"{tmp_shm}/b", fsync=False)
    rec = bootstrap_busybox(a)
    assert bootstrap_busybox(b, names=["bb:1"]).id == rec.id
    assert a.meta.get_tag("docker.io/library/busybox:latest") == rec.id
    (blob,) = a.meta.layer_blobs(rec.diff_ids[0])
    with tarfile.open(fileobj=io.BytesIO(a.content.read(blob.digest))) as tf:
        members = {m.name.rstrip("/"): m for m in tf.getmembers()}
        passwd = tf.extractfile("etc/passwd").read()  # type: ignore[union-attr]
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert {m.mtime for m in members.values()} == {1_704_067_200}
    assert b"root:x:0:0:" in passwd and b"nobody:x:65534:" in passwd
    a.close()
    b.close()


def test_platform_names() -> None:
    assert deb_arch(Platform("linux", "arm64")) == "arm64"
    assert deb_arch(Platform("linux", "arm", "v7")) == "armhf"
    with pytest.raises(InvalidArgument, match="no Debian architecture"):
        deb_arch(Platform("windows", "amd64"))


def test_debian_rejects_bad_suite(tmp_shm: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid Debian suite"):
        bootstrap_debian(Store(tmp_shm, fsync=False), "../etc")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DOCKYARD_SLOW") != "1" or shutil.which("debootstrap") is None
                    or os.geteuid() != 0, reason="downloads ~40 MB from Debian: set DOCKYARD_SLOW=1")
def test_debian_bookworm_minbase(tmp_shm: str) -> None:
    store = Store(tmp_shm, fsync=False)
    rec = bootstrap_debian(store, "bookworm", names=["debian:bookworm"])
    assert store.meta.get_tag("docker.io/library/debian:bookworm") == rec.id
    assert rec.size > 50_000_000
    store.close()


def _arm64_configured() -> bool:
    import subprocess

    try:
        out = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return b"arm64" in out.stdout.split()


@pytest.mark.skipif(not _arm64_configured(), reason="needs dpkg --add-architecture arm64 && apt-get update")
@pytest.mark.slow
def test_busybox_for_arm64_from_the_mirror(tmp_shm: str) -> None:
    from dockyard.oci.config import ImageConfig

    a = Store(f"{tmp_shm}/a", fsync=False)
    rec = bootstrap_busybox(a, names=["bb:arm64"], platform=Platform("linux", "arm64"))
    config = ImageConfig.from_json(a.content.read(rec.id))
    assert (config.os, config.architecture) == ("linux", "arm64")
    assert "busybox-static" in config.history[0].created_by and "arm64" in config.history[0].created_by
    (blob,) = a.meta.layer_blobs(rec.diff_ids[0])
    with tarfile.open(fileobj=io.BytesIO(a.content.read(blob.digest))) as tf:
        elf = tf.extractfile("bin/busybox").read(20)  # type: ignore[union-attr]
        assert tf.getmember("bin/sh").linkname == "/bin/busybox"
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    a.close()
