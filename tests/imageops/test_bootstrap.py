"""``bootstrap``: a reproducible busybox image from busybox-static; debian via debootstrap (slow, opt-in)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.imageops import Store
from dockyard.imageops.bootstrap import (
    DOCKER_SETTINGS,
    bootstrap_busybox,
    bootstrap_debian,
    deb_arch,
    docker_settings,
)
from dockyard.oci.platform import Platform, host

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


def _debian_skeleton(root: Path) -> None:
    for d in ("etc/apt/apt.conf.d", "etc/dpkg/dpkg.cfg.d", "usr/sbin"):
        (root / d).mkdir(parents=True)


def _apt_config(parts: Path) -> dict[str, list[str]]:
    """What apt itself reads from a directory of apt.conf.d parts alone (``apt-config dump``);
    APT_CONFIG is read first, so the host's own parts stay out."""
    main = parts.parent / "only-these-parts.conf"
    main.write_text(f'Dir::Etc::Parts "{parts}";\n')
    proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True,
                          env={**os.environ, "APT_CONFIG": str(main)})
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key.removesuffix("::"), []).append(value.rstrip(";").strip('"'))
    return out


def test_docker_settings_are_written_and_apt_reads_them(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    _debian_skeleton(root)
    os.symlink("/etc/hostname", root / "etc/apt/apt.conf.d/docker-clean")  # never written through
    written = docker_settings(root)
    assert set(written) == {"usr/sbin/policy-rc.d", "etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
                            "etc/apt/apt.conf.d/docker-clean", "etc/apt/apt.conf.d/docker-gzip-indexes",
                            "etc/apt/apt.conf.d/docker-no-languages",
                            "etc/apt/apt.conf.d/docker-autoremove-suggests"}
    assert not (root / "etc/apt/apt.conf.d/docker-clean").is_symlink()
    policy = root / "usr/sbin/policy-rc.d"
    assert os.stat(policy).st_mode & 0o777 == 0o755
    assert subprocess.run([str(policy)], check=False).returncode == 101  # "do not start services"
    assert (root / "etc/dpkg/dpkg.cfg.d/docker-apt-speedup").read_text().split() == ["force-unsafe-io"]
    if shutil.which("apt-config") is None:
        pytest.skip("apt-config is not installed: cannot ask apt how it reads the settings")
    conf = _apt_config(root / "etc/apt/apt.conf.d")
    assert [v for v in conf["Acquire::Languages"] if v] == ["none"]  # apt keeps languages as a list
    assert conf["Acquire::GzipIndexes"] == ["true"]
    assert conf["Dir::Cache::pkgcache"] == [""] and conf["Dir::Cache::srcpkgcache"] == [""]
    assert conf["APT::AutoRemove::SuggestsImportant"] == ["false"]
    for hook in ("DPkg::Post-Invoke", "APT::Update::Post-Invoke"):
        assert any(v.startswith("rm -f /var/cache/apt/archives/*.deb") for v in conf[hook])


def test_docker_settings_skip_directories_the_release_lacks(tmp_path: Path) -> None:
    (tmp_path / "etc/apt/apt.conf.d").mkdir(parents=True)
    assert docker_settings(tmp_path) == ["etc/apt/apt.conf.d/docker-clean",
                                         "etc/apt/apt.conf.d/docker-gzip-indexes",
                                         "etc/apt/apt.conf.d/docker-no-languages",
                                         "etc/apt/apt.conf.d/docker-autoremove-suggests"]
    assert not (tmp_path / "etc/dpkg").exists() and not (tmp_path / "usr").exists()


def test_debian_rejects_bad_suite(tmp_shm: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid Debian suite"):
        bootstrap_debian(Store(tmp_shm, fsync=False), "../etc")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DOCKYARD_SLOW") != "1" or shutil.which("debootstrap") is None
                    or os.geteuid() != 0, reason="downloads ~40 MB from Debian: set DOCKYARD_SLOW=1")
def test_debian_bookworm_minbase(tmp_shm: str) -> None:
    # Through the CLI: the stages are rendered as build steps on stderr, the ID alone on stdout.
    argv = [sys.executable, "-m", "dockyard", "--root", tmp_shm, "bootstrap", "debian:bookworm",
            "--progress", "plain"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    titles = [line.split(" ", 1)[1] for line in proc.stderr.splitlines()
              if line.startswith("#") and " [" in line and "DONE" not in line]
    assert titles == [f"[1/5] debootstrap --variant=minbase bookworm {deb_arch(host())}",
                      "[2/5] apply Docker image settings (apt clean-up, no translations, gzip indexes)",
                      "[3/5] remove caches and logs", "[4/5] write the layer",
                      "[5/5] store the image as debian:bookworm"]
    assert proc.stderr.count(" DONE ") == 5
    store = Store(tmp_shm, fsync=False)
    rec = store.meta.get_image(proc.stdout.strip())
    assert rec is not None and store.meta.get_tag("docker.io/library/debian:bookworm") == rec.id
    assert rec.size > 50_000_000
    layer = store.meta.layer_blobs(rec.diff_ids[0])[0]
    with tarfile.open(store.content.path(layer.digest)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        for rel, _, _ in DOCKER_SETTINGS:
            assert rel in members, rel
        assert members["usr/sbin/policy-rc.d"].mode == 0o755
        assert not [n for n in members if n.startswith("var/cache/apt/") and n.endswith((".bin", ".deb"))]
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
