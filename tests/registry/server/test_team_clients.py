"""A robot account (``robot$team+ci``) logs in with ``docker login`` and ``dockyard login`` as CI would."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.registry.server import RegistryServer
from tests.conftest import PEERS

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import OCI_MANIFEST, PASSWORDS, seed


def peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.mark.slow
@pytest.mark.docker
def test_docker_login_and_push_as_a_robot(tmp_path: Path) -> None:
    env = peers_env()
    docker, config = env["DOCKER"], str(tmp_path / "docker-config")
    with RegistryServer(storage=tmp_path / "s", team=True) as srv:
        seed(srv)
        assert srv.team is not None
        srv.team.directory.project_create("other")
        robot, secret = srv.team.directory.robot_create("team", "ci", ["pull", "push"])
        ref, outside = f"{srv.address}/team/busybox:ci", f"{srv.address}/other/busybox:ci"
        for tag in (ref, outside):
            subprocess.run([docker, "tag", "busybox:local", tag], env=env, check=True, capture_output=True)
        try:
            wrong = subprocess.run([docker, "--config", config, "login", "-u", robot.name, "--password-stdin",
                                    srv.address], input="not-the-secret", env=env, capture_output=True,
                                   text=True, timeout=60)
            assert wrong.returncode != 0
            login = subprocess.run([docker, "--config", config, "login", "-u", robot.name, "--password-stdin",
                                    srv.address], input=secret, env=env, capture_output=True, text=True,
                                   timeout=60)
            assert login.returncode == 0, login.stderr
            push = subprocess.run([docker, "--config", config, "push", ref], env=env, capture_output=True,
                                  text=True, timeout=180)
            assert push.returncode == 0, push.stderr
            refused = subprocess.run([docker, "--config", config, "push", outside], env=env,
                                     capture_output=True, text=True, timeout=180)
            assert refused.returncode != 0
        finally:
            subprocess.run([docker, "rmi", ref, outside], env=env, capture_output=True, timeout=60)
        assert srv.storage.tags("team/busybox").keys() == {"ci"}
        assert not srv.storage.repo_exists("other/busybox")


def test_dockyard_login_as_a_robot(tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "s", team=True) as srv:
        seed(srv)
        assert srv.team is not None
        robot, secret = srv.team.directory.robot_create("team", "ci", ["pull"])
        env = {"DOCKER_CONFIG": str(tmp_path / "cfg"), "PATH": "/usr/bin:/bin"}

        def login(password: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "dockyard", "login", "-u", robot.name,
                                   "--password-stdin", srv.address], input=password, text=True,
                                  capture_output=True, timeout=60,
                                  env={**env, "PYTHONPATH": ":".join(sys.path)})

        bad = login("not-the-secret")
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        ok = login(secret)
        assert ok.returncode == 0, ok.stderr
        saved = json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"][srv.address]["auth"]
        assert base64.b64decode(saved).decode() == f"{robot.name}:{secret}"


def _oci_layout(root: Path, images: dict[str, bytes]) -> None:
    """An OCI image layout holding one single-layer image per tag (the layer: a tar of ``data``)."""
    import hashlib
    import io
    import tarfile

    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    index = []
    for tag, data in images.items():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("data.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        layer = blob(buf.getvalue(), "application/vnd.oci.image.layer.v1.tar")
        rootfs = {"type": "layers", "diff_ids": [layer["digest"]]}
        config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode(),
                      "application/vnd.oci.image.config.v1+json")
        manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                    "layers": [layer]}).encode(), OCI_MANIFEST)
        index.append({**manifest, "annotations": {"org.opencontainers.image.ref.name": tag}})
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": index}))


@pytest.mark.skopeo
def test_skopeo_push_past_the_quota_is_refused_and_keeps_nothing(tmp_path: Path) -> None:
    """skopeo streams each layer without a length: the registry weighs it when the upload finishes."""
    from dockyard.registry.server.team.usage import project_usage

    _oci_layout(tmp_path / "layout", {"big": os.urandom(1_500_000), "small": b"small" * 100})
    with RegistryServer(storage=tmp_path / "s", team=True) as srv:
        seed(srv)
        assert srv.team is not None
        project = srv.team.directory.need_project("team")
        project.quota = 1_000_000
        srv.team.directory.save(project)

        def copy(tag: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds",
                                   f"dev:{PASSWORDS['dev']}", f"oci:{tmp_path / 'layout'}:{tag}",
                                   f"docker://{srv.address}/team/app:{tag}"],
                                  capture_output=True, text=True, timeout=120)

        big = copy("big")
        assert big.returncode != 0 and "quota exceeded: project team uses" in big.stderr, big.stderr
        assert project_usage(srv.storage, "team") < 2000  # at most the config went in, never the layer
        assert "big" not in srv.storage.tags("team/app")
        small = copy("small")
        assert small.returncode == 0, small.stderr
        assert srv.storage.tags("team/app").keys() == {"small"}
