"""Multi-platform images with the peers: the index dockyard pushes is read by skopeo, buildah and the
Docker CLI; an index buildah builds and pushes is pulled by dockyard; docker manifest / buildx
imagetools commands against the local registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builder.conftest import busybox_tar
from tests.registry.client.peers import PLAIN

pytestmark = pytest.mark.slow

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json, "
               "application/vnd.docker.distribution.manifest.list.v2+json")
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    config = tmp_path / "config.toml"
    config.write_text("")
    root = Path("/dev/shm") / f"dytest-mai-{uuid.uuid4().hex[:8]}"
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text("{}")  # buildah and skopeo want the file to exist
    yield {**os.environ, "DOCKYARD_ROOT": str(root), "DOCKER_CONFIG": str(tmp_path / "docker"),
           "DOCKYARD_CONFIG": str(config), "DOCKYARD_DAEMON_JSON": "",
           "CONTAINERS_REGISTRIES_CONF": str(PEERS_DIR / "containers" / "registries.conf"),
           "CONTAINERS_STORAGE_CONF": str(PEERS_DIR / "containers" / "storage.conf"),
           "CONTAINERS_CONF": str(PEERS_DIR / "containers" / "containers.conf")}
    subprocess.run(["rm", "-rf", str(root)], check=False)


def dy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, text=True, capture_output=True,
                          timeout=600)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def tool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} is not installed")
    done = subprocess.run(list(args), env=env, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def registry_index(repo: str, tag: str) -> tuple[str, dict[str, object]]:
    got = httpx.get(f"http://{PLAIN}/v2/{repo}/manifests/{tag}", headers={"Accept": INDEX_TYPES})
    assert got.status_code == 200
    return got.headers["Docker-Content-Digest"], json.loads(got.content)


def _two_platform_tag(env: dict[str, str], ref: str) -> None:
    for arch in ("amd64", "arm64"):
        dy(env, "import", "--platform", f"linux/{arch}", str(busybox_tar()), ref)


@pytest.mark.registry
@pytest.mark.skopeo
@pytest.mark.buildah
@pytest.mark.busybox
def test_peers_read_the_index_dockyard_pushes(env: dict[str, str], tmp_path: Path) -> None:
    repo = f"dytest/interop-{uuid.uuid4().hex[:8]}"
    ref = f"{PLAIN}/{repo}:multi"
    _two_platform_tag(env, ref)
    pushed = dy(env, "push", ref).stdout.splitlines()
    digest, index = registry_index(repo, "multi")
    assert pushed[-1].startswith(f"multi: digest: {digest} ")  # every platform went, and the index
    archs = sorted(m["platform"]["architecture"] for m in index["manifests"])  # type: ignore[attr-defined,index]
    assert archs == ["amd64", "arm64"]
    raw = tool(env, "skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout
    assert json.loads(raw) == index
    # A copy of every platform to another repository keeps the index byte for byte.
    tool(env, "skopeo", "copy", "-q", "--all", "--preserve-digests", "--src-tls-verify=false",
         "--dest-tls-verify=false", f"docker://{ref}", f"docker://{PLAIN}/{repo}-copy:multi")
    assert registry_index(f"{repo}-copy", "multi") == (digest, index)
    # buildah 1.28's `manifest inspect` of a remote ignores insecure registries: read it through a local list.
    probe = f"dytest-probe-{uuid.uuid4().hex[:8]}"
    tool(env, "buildah", "manifest", "create", probe)
    try:
        tool(env, "buildah", "manifest", "add", "--all", "--tls-verify=false", probe, f"docker://{ref}")
        seen = tool(env, "buildah", "manifest", "inspect", probe).stdout
    finally:
        subprocess.run(["buildah", "manifest", "rm", probe], env=env, capture_output=True, check=False)
    assert json.loads(seen)["manifests"] == index["manifests"]
    if not Path("/usr/bin/docker").exists():
        pytest.skip("Docker CLI not installed")
    docker_env = {**env, "DOCKER_CLI_EXPERIMENTAL": "enabled"}
    shown = tool(docker_env, "/usr/bin/docker", "manifest", "inspect", "--insecure", ref).stdout
    assert json.loads(shown)["manifests"] == index["manifests"]
    # dockyard's own readers of the same index.
    assert json.loads(dy(env, "manifest", "inspect", ref).stdout) == index
    tools = dy(env, "buildx", "imagetools", "inspect", ref).stdout
    assert f"Digest:    {digest}" in tools and "Platform:  linux/arm64" in tools


@pytest.mark.registry
@pytest.mark.buildah
def test_buildah_index_is_pulled_with_both_platforms(env: dict[str, str], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello").write_text("hi\n")
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    name = f"dytest-list-{uuid.uuid4().hex[:8]}"
    repo = f"dytest/buildah-{uuid.uuid4().hex[:8]}"
    ref = f"{PLAIN}/{repo}:multi"
    tool(env, "buildah", "build", "-q", "--manifest", name, "--platform", "linux/amd64,linux/arm64",
         "-f", str(ctx / "Containerfile"), str(ctx))
    try:
        tool(env, "buildah", "manifest", "push", "-q", "--all", "--tls-verify=false", name, f"docker://{ref}")
    finally:
        subprocess.run(["buildah", "manifest", "rm", name], env=env, capture_output=True, check=False)
    digest, _ = registry_index(repo, "multi")
    dy(env, "pull", "--all-platforms", ref)
    tree = dy(env, "images", "--tree").stdout
    assert "linux/amd64" in tree and "linux/arm64" in tree
    for arch in ("amd64", "arm64"):
        found = json.loads(dy(env, "image", "inspect", "--platform", f"linux/{arch}", ref).stdout)[0]
        assert found["Architecture"] == arch
    # The tag keeps buildah's index as it is: saving it writes the same digest.
    out = tmp_path / "saved.tar"
    dy(env, "save", "--format", "oci", "-o", str(out), ref)
    saved = json.loads(subprocess.run(["tar", "xOf", str(out), "index.json"], capture_output=True,
                                      check=True).stdout)
    assert [m["digest"] for m in saved["manifests"]] == [digest]


@pytest.mark.registry
@pytest.mark.busybox
def test_manifest_create_annotate_push(env: dict[str, str]) -> None:
    repo = f"dytest/parts-{uuid.uuid4().hex[:8]}"
    parts = []
    for arch in ("amd64", "arm64"):
        ref = f"{PLAIN}/{repo}:{arch}"
        dy(env, "import", "--platform", f"linux/{arch}", str(busybox_tar()), ref)
        dy(env, "push", ref)
        parts.append(ref)
    target = f"{PLAIN}/{repo}-list:1"
    assert dy(env, "manifest", "create", target, *parts).stdout == f"Created manifest list {target}\n"
    dy(env, "manifest", "annotate", "--variant", "v8", target, parts[1])
    local = json.loads(dy(env, "manifest", "inspect", target).stdout)
    assert local["manifests"][1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    digest = dy(env, "manifest", "push", "--purge", target).stdout.splitlines()[-1]
    assert registry_index(f"{repo}-list", "1")[0] == digest
    gone = subprocess.run([sys.executable, "-m", "dockyard", "manifest", "rm", target], env=env, text=True,
                          capture_output=True)
    assert gone.returncode == 1 and gone.stderr == f"Error: No such manifest: {target}\n"
    combined = f"{PLAIN}/{repo}-tools:1"
    dy(env, "buildx", "imagetools", "create", "-t", combined, *parts)
    _, index = registry_index(f"{repo}-tools", "1")
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]  # type: ignore[index]
