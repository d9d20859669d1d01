"""Interoperability with the real engine and skopeo: our tars load and run in docker, docker's tars load
here with the same image ID, skopeo reads our OCI archives."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.conftest import PEERS
from tests.peers import require, unavailable

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
ENV = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock"}


def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKER, *args], env=ENV, input=stdin, capture_output=True, check=False,
                          timeout=120)


@pytest.fixture(scope="module")
def engine() -> None:
    require("docker")
    if docker("image", "inspect", "busybox:local").returncode != 0:
        subprocess.run(["bash", str(PEERS / "import-busybox.sh")], capture_output=True, check=False)
    if docker("image", "inspect", "busybox:local").returncode != 0:
        unavailable("docker", "busybox:local is not in docker", "bash scripts/peers/import-busybox.sh")


@pytest.fixture
def client() -> Iterator[Client]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-interop-") as d:
        c = Client(d, fsync=False)
        yield c
        c.close()


@pytest.mark.docker
def test_docker_save_loads_with_the_same_id(engine: None, client: Client, tmp_path: Path) -> None:
    out = tmp_path / "docker.tar"
    assert docker("save", "-o", str(out), "busybox:local").returncode == 0
    want = docker("image", "inspect", "-f", "{{.Id}}", "busybox:local").stdout.decode().strip()
    with open(out, "rb") as f:
        results = client.load(f, source=str(out))
    assert [(str(r.image_id), r.names) for r in results] == [(want, ("busybox:local",))]
    assert str(client.resolve("busybox:local")) == want


@pytest.mark.docker
@pytest.mark.busybox
def test_our_save_loads_and_runs_in_docker(engine: None, client: Client, tmp_path: Path) -> None:
    busybox = PEERS_DIR / "images" / "busybox-amd64.tar"
    tag = f"dockyard-interop-{os.getpid()}:1"
    with open(busybox, "rb") as f:
        rec = client.import_image(f, changes=['CMD ["sh"]', "ENV FROM_DOCKYARD=1"], names=[tag])
    out = tmp_path / "ours.tar"
    client.save([tag], str(out))
    try:
        loaded = docker("load", "-i", str(out))
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.decode().strip() == f"Loaded image: {tag}"
        assert docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.decode().strip() == rec.id
        run = docker("run", "--rm", "--network", "none", tag, "sh", "-c", "echo $FROM_DOCKYARD")
        assert run.returncode == 0, run.stderr
        assert run.stdout == b"1\n"
    finally:
        docker("rmi", "-f", tag)


@pytest.mark.skopeo
@pytest.mark.busybox
def test_skopeo_reads_our_oci_archive(client: Client, tmp_path: Path) -> None:
    busybox = PEERS_DIR / "images" / "busybox-amd64.tar"
    with open(busybox, "rb") as f:
        rec = client.import_image(f, names=["skopeo-test:1"])
    out = tmp_path / "oci.tar"
    client.save(["skopeo-test:1"], str(out), fmt="oci")
    proc = subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{out}"], capture_output=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert config["rootfs"]["diff_ids"] == [str(d) for d in rec.diff_ids]
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{out}"], capture_output=True,
                         check=True, timeout=60)
    assert json.loads(raw.stdout)["config"]["digest"] == rec.id


@pytest.mark.docker
@pytest.mark.skopeo
def test_skopeo_oci_archive_of_a_docker_image_loads(engine: None, client: Client, tmp_path: Path) -> None:
    out = tmp_path / "skopeo.tar"
    proc = subprocess.run(["skopeo", "copy", "-q", "--src-daemon-host", ENV["DOCKER_HOST"],
                           "docker-daemon:busybox:local", f"oci-archive:{out}:busybox:local"],
                          capture_output=True, check=False, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", "busybox:local").stdout)
    with open(out, "rb") as f:
        results = client.load(f, source=str(out))
    # skopeo rewrites the config as an OCI config (a new ID) and gzips the layers; diff IDs stay.
    (result,) = results
    assert result.names == ("busybox:local",)
    assert [str(d) for d in client.image_record(str(result.image_id)).diff_ids] == layers


@pytest.mark.buildah
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_buildah_archives_load(client: Client, tmp_path: Path, transport: str) -> None:
    env = {**ENV, "CONTAINERS_STORAGE_CONF": str(PEERS_DIR / "containers" / "storage.conf")}
    have = subprocess.run(["buildah", "inspect", "--type", "image", "-f", "{{.FromImageID}}",
                           "localhost/busybox:local"], capture_output=True, check=False, env=env, timeout=60)
    if have.returncode != 0:
        unavailable("buildah", "localhost/busybox:local is not in containers-storage",
                    "bash scripts/peers/import-busybox.sh")
    out = tmp_path / "buildah.tar"
    dest = f"{transport}:{out}:bb:buildah"
    push = subprocess.run(["buildah", "push", "-q", "localhost/busybox:local", dest],
                          capture_output=True, check=False, env=env, timeout=120)
    assert push.returncode == 0, push.stderr
    with open(out, "rb") as f:
        (result,) = client.load(f, source=str(out))
    assert "bb:buildah" in result.names
    if transport == "docker-archive":  # the config is kept byte for byte: the same ID
        assert str(result.image_id) == "sha256:" + have.stdout.decode().strip()
