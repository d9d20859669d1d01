"""Real clients against the in-process registry: skopeo, the Docker engine and buildah."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer
from tests.conftest import PEERS
from tests.peers import unavailable


def peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    environment = peers_env()
    for script in ("start-registry.sh", "start-dockerd.sh", "import-busybox.sh"):
        # Idempotent, but another test process may be starting the same peer right now: judge by
        # the result below rather than by the script's exit status.
        subprocess.run(["bash", str(PEERS / script)], capture_output=True, env=environment, timeout=300)
    try:
        httpx.get(f"http://{environment['PEERS_REGISTRY']}/v2/peers/busybox/tags/list", timeout=5)
    except httpx.HTTPError:
        unavailable("registry")
    return environment


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(storage=tmp_path_factory.mktemp("clients") / "storage") as server:
        yield server


def tags(registry: RegistryServer, repo: str) -> list[str]:
    return list(httpx.get(f"{registry.url}/v2/{repo}/tags/list").json()["tags"])


@pytest.mark.skopeo
@pytest.mark.registry
def test_skopeo_copy_in_and_out(env: dict[str, str], registry: RegistryServer, tmp_path: Path) -> None:
    source = f"docker://{env['PEERS_REGISTRY']}/peers/busybox:local"
    for fmt in ("v2s2", "oci"):
        dest = f"docker://{registry.address}/skopeo/busybox:{fmt}"
        run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", fmt,
             source, dest], env)
        info = json.loads(run(["skopeo", "inspect", "--tls-verify=false", "--raw", dest], env))
        expected = {"v2s2": "application/vnd.docker.distribution.manifest.v2+json",
                    "oci": "application/vnd.oci.image.manifest.v1+json"}[fmt]
        assert info["mediaType"] == expected
    assert sorted(tags(registry, "skopeo/busybox")) == ["oci", "v2s2"]
    out = tmp_path / "oci-out"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{registry.address}/skopeo/busybox:oci",
         f"oci:{out}:copy"], env)
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copy"
    # Second copy: every blob is already there (skopeo checks with HEAD and skips).
    log = run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", source,
               f"docker://{registry.address}/skopeo/busybox:again"], env)
    assert "skipped: already exists" in log or "Copying blob" in log


@pytest.mark.docker
@pytest.mark.registry
def test_docker_push_and_pull(env: dict[str, str], registry: RegistryServer) -> None:
    docker = env["DOCKER"]
    ref = f"{registry.address}/docker/busybox:pushed"
    run([docker, "tag", "busybox:local", ref], env)
    try:
        out = run([docker, "push", ref], env, timeout=180)
        assert "digest: sha256:" in out
        digest = out.split("digest: ")[1].split()[0]
        run([docker, "rmi", ref], env)
        pulled = run([docker, "pull", ref], env, timeout=180)
        assert digest in pulled
        local = json.loads(run([docker, "image", "inspect", ref], env))[0]
        original = json.loads(run([docker, "image", "inspect", "busybox:local"], env))[0]
        assert local["Id"] == original["Id"]
        # Pull by digest too.
        run([docker, "pull", f"{registry.address}/docker/busybox@{digest}"], env, timeout=180)
    finally:
        subprocess.run([docker, "rmi", "-f", ref, f"{registry.address}/docker/busybox"], env=env,
                       capture_output=True, timeout=60)


@pytest.mark.buildah
def test_buildah_push_and_pull(env: dict[str, str], registry: RegistryServer) -> None:
    for fmt in ("oci", "docker"):
        ref = f"{registry.address}/buildah/busybox:{fmt}"
        run(["buildah", "push", "--tls-verify=false", "--format", fmt, "localhost/busybox:local",
             f"docker://{ref}"], env, timeout=180)
        try:
            out = run(["buildah", "pull", "--tls-verify=false", f"docker://{ref}"], env, timeout=180)
            image_id = out.strip().splitlines()[-1]
            manifest = httpx.get(f"{registry.url}/v2/buildah/busybox/manifests/{fmt}", headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                          "application/vnd.docker.distribution.manifest.v2+json"}).json()
            # The image ID buildah computed from what it pulled is the config we stored.
            assert "sha256:" + image_id.removeprefix("sha256:") == manifest["config"]["digest"]
            if fmt == "docker":
                original = run(["buildah", "images", "--no-trunc", "--format", "{{.ID}}",
                                "localhost/busybox:local"], env).split()[0]
                assert image_id.removeprefix("sha256:") == original.removeprefix("sha256:")
        finally:
            subprocess.run(["buildah", "rmi", ref], env=env, capture_output=True, timeout=60)
    assert sorted(tags(registry, "buildah/busybox")) == ["docker", "oci"]



@pytest.mark.docker
@pytest.mark.registry
def test_docker_login_and_push_with_token_auth(env: dict[str, str], tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"dev:{hashed}\n")
    (tmp_path / "policy.json").write_text(json.dumps({"rules": [
        {"account": "dev", "repository": "team/*", "actions": ["pull", "push"]}]}))
    docker = env["DOCKER"]
    config_dir = tmp_path / "docker-config"  # keeps credentials out of the user's ~/.docker
    with RegistryServer(storage=tmp_path / "s", htpasswd=str(tmp_path / "htpasswd"),
                        token_policy=str(tmp_path / "policy.json")) as server:
        ref = f"{server.address}/team/busybox:auth"
        denied = f"{server.address}/other/busybox:auth"
        run([docker, "tag", "busybox:local", ref], env)
        run([docker, "tag", "busybox:local", denied], env)
        try:
            anonymous = subprocess.run([docker, "--config", str(config_dir), "push", ref], env=env,
                                       capture_output=True, text=True, timeout=120)
            assert anonymous.returncode != 0
            login = subprocess.run([docker, "--config", str(config_dir), "login", "-u", "dev",
                                    "--password-stdin", server.address], input="s3cret", env=env,
                                   capture_output=True, text=True, timeout=60)
            assert login.returncode == 0, login.stderr
            run([docker, "--config", str(config_dir), "push", ref], env, timeout=180)
            outside = subprocess.run([docker, "--config", str(config_dir), "push", denied], env=env,
                                     capture_output=True, text=True, timeout=120)
            assert outside.returncode != 0
            token = httpx.get(f"{server.url}/token", params={"scope": "repository:team/busybox:pull"},
                              auth=("dev", "s3cret")).json()["token"]
            listed = httpx.get(f"{server.url}/v2/team/busybox/tags/list",
                               headers={"Authorization": f"Bearer {token}"}).json()
            assert listed["tags"] == ["auth"]
        finally:
            subprocess.run([docker, "rmi", ref, denied], env=env, capture_output=True, timeout=60)


@pytest.mark.skopeo
@pytest.mark.registry
def test_skopeo_with_basic_auth(env: dict[str, str], tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"ci:{hashed}\n")
    with RegistryServer(storage=tmp_path / "s", htpasswd=str(tmp_path / "htpasswd")) as server:
        source = f"docker://{env['PEERS_REGISTRY']}/peers/busybox:local"
        dest = f"docker://{server.address}/ci/busybox:basic"
        denied = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                                 source, dest], env=env, capture_output=True, text=True, timeout=120)
        assert denied.returncode != 0
        run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", "ci:pw",
             source, dest], env)
        listed = httpx.get(f"{server.url}/v2/ci/busybox/tags/list", auth=("ci", "pw")).json()
        assert listed["tags"] == ["basic"]
