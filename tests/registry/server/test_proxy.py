"""Pull-through mirror (``proxy_remote``): Debian's docker-registry upstream, and tag TTL behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer

sys.path.insert(0, str(Path(__file__).parent))
from regkit import FakeClock, error_code, image_manifest, put_manifest, sha

from tests.conftest import PEERS
from tests.peers import unavailable

ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json, "
                    "application/vnd.docker.distribution.manifest.v2+json"}


def _peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def upstream_env() -> dict[str, str]:
    env = _peers_env()
    for args in (["start-registry.sh"], ["start-registry.sh", "auth"], ["import-busybox.sh"]):
        # Idempotent; judge by reachability, since another test process may be starting them too.
        subprocess.run(["bash", str(PEERS / args[0]), *args[1:]], env=env, capture_output=True,
                       timeout=300)
    for port in (5000, 5001):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
        except httpx.HTTPError:
            unavailable("registry" if port == 5000 else "registry_auth")
    return env


@pytest.mark.skopeo
@pytest.mark.registry
def test_mirror_of_distribution(upstream_env: dict[str, str], tmp_path: Path) -> None:
    upstream = "http://127.0.0.1:5000"
    expected = httpx.get(f"{upstream}/v2/peers/busybox/manifests/local", headers=ACCEPT)
    assert expected.status_code == 200
    with RegistryServer(storage=tmp_path / "mirror", proxy_remote=upstream) as mirror:
        got = httpx.get(f"{mirror.url}/v2/peers/busybox/manifests/local", headers=ACCEPT)
        assert got.status_code == 200 and got.content == expected.content
        assert got.headers["Docker-Content-Digest"] == expected.headers["Docker-Content-Digest"]
        manifest = json.loads(got.content)
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = httpx.get(f"{mirror.url}/v2/peers/busybox/blobs/{desc['digest']}")
            assert blob.status_code == 200 and sha(blob.content) == desc["digest"]
            # Now cached: served from the mirror's own storage (with Range support).
            path = tmp_path / "mirror" / "blobs" / "sha256" / desc["digest"][7:9] / desc["digest"][7:]
            assert path.stat().st_size == desc["size"]
            part = httpx.get(f"{mirror.url}/v2/peers/busybox/blobs/{desc['digest']}",
                             headers={"Range": "bytes=0-0"})
            assert part.status_code == 206
        missing = httpx.get(f"{mirror.url}/v2/peers/nothing/manifests/none")
        assert missing.status_code == 404
        pushed = httpx.post(f"{mirror.url}/v2/peers/busybox/blobs/uploads/")
        assert pushed.status_code == 405 and error_code(pushed) == "UNSUPPORTED"
        # A real client pulls through it.
        out = tmp_path / "pulled"
        subprocess.run(["skopeo", "copy", "--src-tls-verify=false",
                        f"docker://{mirror.address}/peers/busybox:local", f"dir:{out}"],
                       env=upstream_env, capture_output=True, check=True, timeout=120)
        assert (out / "manifest.json").read_bytes() == expected.content


@pytest.mark.docker
@pytest.mark.registry
def test_docker_pulls_through_the_mirror(upstream_env: dict[str, str], tmp_path: Path) -> None:
    docker = upstream_env["DOCKER"]
    with RegistryServer(storage=tmp_path / "mirror", proxy_remote="http://127.0.0.1:5000") as mirror:
        ref = f"{mirror.address}/peers/busybox:local"
        try:
            proc = subprocess.run([docker, "pull", ref], env=upstream_env, capture_output=True, text=True,
                                  timeout=180)
            assert proc.returncode == 0, proc.stderr
            inspect = json.loads(subprocess.run([docker, "image", "inspect", ref], env=upstream_env,
                                                capture_output=True, check=True, timeout=60).stdout)
            original = json.loads(subprocess.run([docker, "image", "inspect", "busybox:local"],
                                                 env=upstream_env, capture_output=True, check=True,
                                                 timeout=60).stdout)
            assert inspect[0]["Id"] == original[0]["Id"]
        finally:
            subprocess.run([docker, "rmi", ref], env=upstream_env, capture_output=True, timeout=60)


@pytest.mark.skopeo
@pytest.mark.registry
@pytest.mark.registry_auth
def test_mirror_of_an_upstream_with_basic_auth(upstream_env: dict[str, str], tmp_path: Path) -> None:
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--dest-creds", "peer:peerpass", "docker://127.0.0.1:5000/peers/busybox:local",
                    "docker://127.0.0.1:5001/peers/busybox:local"], env=upstream_env, capture_output=True,
                   check=True, timeout=120)
    with RegistryServer(storage=tmp_path / "anon", proxy_remote="http://127.0.0.1:5001") as anon:
        assert httpx.get(f"{anon.url}/v2/peers/busybox/manifests/local").status_code == 401
    with RegistryServer(storage=tmp_path / "m", proxy_remote="http://127.0.0.1:5001",
                        proxy_username="peer", proxy_password="peerpass") as mirror:
        got = httpx.get(f"{mirror.url}/v2/peers/busybox/manifests/local", headers=ACCEPT)
        assert got.status_code == 200
        layer = json.loads(got.content)["layers"][0]["digest"]
        assert sha(httpx.get(f"{mirror.url}/v2/peers/busybox/blobs/{layer}").content) == layer


def test_tag_ttl_and_offline_upstream(tmp_path: Path) -> None:
    upstream = RegistryServer(storage=tmp_path / "up").start()
    try:
        with httpx.Client(base_url=upstream.url) as up:
            first = image_manifest(up, "lib/app", [b"v1 layer"])
            put_manifest(up, "lib/app", "latest", first)
            clock = FakeClock()
            with RegistryServer(storage=tmp_path / "mirror", proxy_remote=upstream.url, proxy_tag_ttl=300,
                                clock=clock) as mirror, httpx.Client(base_url=mirror.url) as m:
                assert m.get("/v2/lib/app/manifests/latest").content == first
                assert m.get(f"/v2/lib/app/blobs/{sha(b'v1 layer')}").content == b"v1 layer"
                second = image_manifest(up, "lib/app", [b"v2 layer"])
                put_manifest(up, "lib/app", "latest", second)
                clock.advance(299)
                assert m.get("/v2/lib/app/manifests/latest").content == first  # within the TTL
                clock.advance(2)
                assert m.get("/v2/lib/app/manifests/latest").content == second  # asked upstream again
                m.get(f"/v2/lib/app/blobs/{sha(b'v2 layer')}")
                upstream.stop()
                clock.advance(301)
                # Upstream gone: the last known tag and every cached blob are still served.
                assert m.get("/v2/lib/app/manifests/latest").content == second
                assert m.get(f"/v2/lib/app/manifests/{sha(first)}").content == first
                assert m.get(f"/v2/lib/app/blobs/{sha(b'v2 layer')}").content == b"v2 layer"
                assert hashlib.sha256(m.get(f"/v2/lib/app/blobs/{sha(b'v1 layer')}").content).hexdigest() \
                    == sha(b"v1 layer")[7:]
    finally:
        upstream.stop()


@pytest.mark.docker
@pytest.mark.skopeo
@pytest.mark.registry
def test_registry_mirrors_entry_of_a_docker_engine(upstream_env: dict[str, str], tmp_path: Path) -> None:
    """A second dockerd (ours, on tmpfs) with ``registry-mirrors`` = the mirror: ``docker pull busybox:x``
    goes to the mirror as ``library/busybox``, which fetches it from docker-registry."""
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "docker://127.0.0.1:5000/peers/busybox:local",
                    "docker://127.0.0.1:5000/library/busybox:mirrored"], env=upstream_env,
                   capture_output=True, check=True, timeout=120)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    root = shm / f"dockyard-mirror-dockerd-{os.getpid()}"
    exec_root = Path(f"/tmp/dyd-{os.getpid()}")  # short: containerd socket paths have a length limit
    root.mkdir()
    sock = root / "docker.sock"
    env = {**upstream_env, "DOCKER_HOST": f"unix://{sock}"}
    docker = upstream_env["DOCKER"]
    dockerd: subprocess.Popen[bytes] | None = None
    with RegistryServer(storage=tmp_path / "mirror", proxy_remote="http://127.0.0.1:5000") as mirror:
        (root / "daemon.json").write_text(json.dumps({
            "data-root": str(root / "data"), "exec-root": str(exec_root), "pidfile": str(root / "pid"),
            "hosts": [f"unix://{sock}"], "storage-driver": "overlay2", "iptables": False,
            "ip-forward": False, "ip-masq": False, "bridge": "none",
            "registry-mirrors": [mirror.url]}))
        try:
            with open(root / "log", "wb") as log:
                dockerd = subprocess.Popen(["/usr/sbin/dockerd", "--config-file", str(root / "daemon.json")],
                                           stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            deadline = time.monotonic() + 30
            while subprocess.run([docker, "version"], env=env, capture_output=True).returncode != 0:
                alive = dockerd.poll() is None and time.monotonic() < deadline
                assert alive, (root / "log").read_text()[-2000:]
                time.sleep(0.3)
            pulled = subprocess.run([docker, "pull", "busybox:mirrored"], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert pulled.returncode == 0, pulled.stderr
            image = json.loads(subprocess.run([docker, "image", "inspect", "busybox:mirrored"], env=env,
                                              capture_output=True, check=True, timeout=60).stdout)[0]
            original = json.loads(subprocess.run([docker, "image", "inspect", "busybox:local"],
                                                 env=upstream_env, capture_output=True, check=True,
                                                 timeout=60).stdout)[0]
            assert image["Id"] == original["Id"]
            # It came through the mirror, which now holds a copy.
            assert httpx.head(f"{mirror.url}/v2/library/busybox/manifests/mirrored").status_code == 200
            assert (tmp_path / "mirror" / "repositories" / "library" / "busybox").is_dir()
        finally:
            if dockerd is not None:
                dockerd.terminate()
                try:
                    dockerd.wait(30)
                except subprocess.TimeoutExpired:
                    dockerd.kill()
                    dockerd.wait(10)
            mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
                      if str(root) in line or str(exec_root) in line]
            for line in reversed(mounts):
                subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
            subprocess.run(["rm", "-rf", str(root), str(exec_root)], capture_output=True)
