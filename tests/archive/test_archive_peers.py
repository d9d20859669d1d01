"""Layers compressed by another implementation (containers/image via skopeo: Go gzip and zstd) verify
and unpack with ours to the same tree as the rootfs tarball they were imported from."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import HashingReader, apply_layer, open_decompressed
from tests.conftest import PEERS
from tests.peers import require

pytestmark = [pytest.mark.skopeo, pytest.mark.registry, pytest.mark.docker]
Snapshot = Callable[..., dict[str, tuple[object, ...]]]
PEERS_DIR = os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers")
IMAGE = "docker://127.0.0.1:5000/peers/busybox:local"


@pytest.fixture(scope="module")
def peers_env() -> dict[str, str]:
    require("skopeo")
    env = dict(os.environ, PEERS_DIR=PEERS_DIR, DOCKER_HOST=f"unix://{PEERS_DIR}/run/docker.sock")
    for script in ("start-registry.sh", "start-dockerd.sh", "import-busybox.sh"):
        subprocess.run(["bash", str(PEERS / script)], env=env, check=True, capture_output=True, timeout=180)
    return env


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_skopeo_compressed_layers_verify_and_unpack(peers_env: dict[str, str], shm: Path, snap: Snapshot,
                                                    fmt: str) -> None:
    layout = shm / "oci"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-compress", "--dest-compress-format",
                    fmt, IMAGE, f"oci:{layout}:latest"], env=peers_env, check=True, capture_output=True,
                   timeout=120)
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    (layer,) = manifest["layers"]
    assert layer["mediaType"].endswith("+" + fmt)
    ours = shm / "ours"
    with open(blobs / layer["digest"].split(":")[1], "rb") as fh:
        blob = HashingReader(fh)
        raw, kind = open_decompressed(blob)
        tar = HashingReader(raw)
        apply_layer(tar, ours)
    assert kind == fmt
    assert (blob.digest, blob.size) == (layer["digest"], layer["size"])
    assert tar.digest == config["rootfs"]["diff_ids"][0]
    source = Path(PEERS_DIR) / "images" / "busybox-amd64.tar"
    ref = shm / "ref"
    with open(source, "rb") as fh:
        apply_layer(fh, ref)
    assert snap(ours, dir_mtimes=False) == snap(ref, dir_mtimes=False)
