"""The guide's multi-arch recipe end to end: local bases for two platforms, ``buildx build --push``,
the registry's index digest is the one printed, and a fresh store pulls both platforms back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builder.conftest import busybox_tar
from tests.registry.client.peers import PLAIN

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json, "
               "application/vnd.docker.distribution.manifest.list.v2+json")


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")
    return {**os.environ, "DOCKYARD_ROOT": str(Path("/dev/shm") / f"dytest-{name}-{uuid.uuid4().hex[:8]}"),
            "DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKYARD_CONFIG": str(config),
            "DOCKYARD_DAEMON_JSON": ""}


@pytest.fixture
def envs(tmp_path: Path) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    a, b = _env(tmp_path, "ma-build"), _env(tmp_path, "ma-fresh")
    yield a, b
    for env in (a, b):
        subprocess.run(["umount", "-R", "-l", env["DOCKYARD_ROOT"]], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["rm", "-rf", env["DOCKYARD_ROOT"]], check=False)


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, text=True, capture_output=True,
                          timeout=600, cwd=cwd)


def ok(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = run(env, *args, cwd=cwd)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


@pytest.mark.registry
@pytest.mark.binfmt
@pytest.mark.busybox
@pytest.mark.slow
def test_buildx_build_push_two_platforms_from_local_bases(envs: tuple[dict[str, str], dict[str, str]],
                                                          tmp_path: Path) -> None:
    env, fresh = envs
    # Local bases: busybox:latest for amd64 (imported), then arm64 added to the same tag.
    ok(env, "import", "--platform", "linux/amd64", "--change", 'CMD ["sh"]', str(busybox_tar()), "busybox")
    added = run(env, "bootstrap", "busybox", "--platform", "linux/arm64")
    if added.returncode != 0:
        pytest.skip(f"no arm64 busybox-static package here: {added.stderr}")
    rows = ok(env, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert rows == ["busybox:latest"]  # one row per tag, both platforms under it
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG TARGETARCH\n"
                                    "RUN uname -m > /arch && echo $TARGETARCH >> /arch\n")
    repo = f"dytest/myapp-{uuid.uuid4().hex[:8]}"
    ref = f"{PLAIN}/{repo}:multi-arch"
    created = ok(env, "buildx", "create", "--use")
    assert "no builder instance" in created.stderr
    built = ok(env, "buildx", "build", "--progress=plain", "--platform", "linux/amd64,linux/arm64", "-t", ref,
               "--push", ".", cwd=ctx)
    assert "registry-1.docker.io" not in built.stderr  # the bases were local for both platforms
    printed = re.findall(r"exporting manifest list (sha256:[0-9a-f]{64})", built.stderr)
    remote = httpx.get(f"http://{PLAIN}/v2/{repo}/manifests/multi-arch", headers={"Accept": INDEX_TYPES})
    assert remote.status_code == 200
    assert printed == [remote.headers["Docker-Content-Digest"]]
    members = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
               for m in json.loads(remote.content)["manifests"]}
    assert sorted(members) == ["linux/amd64", "linux/arm64"]
    # Each platform's manifest is named as pushed, and no digest the registry does not hold is
    # printed (the local manifests before the push compressed their layers are other ones).
    shown = re.findall(r"pushing manifest for \S+@(sha256:[0-9a-f]{64}) \((linux/\w+)\)", built.stderr)
    assert {p: d for d, p in shown} == members
    printed_any = set(re.findall(r"manifest(?: list)?(?: for \S+@| )(sha256:[0-9a-f]{64})", built.stderr))
    assert printed_any == {*members.values(), printed[0]}, built.stderr
    # The local tag names the index as pushed.
    inspected = json.loads(ok(env, "image", "inspect", ref).stdout)[0]
    assert f"{PLAIN}/{repo}@{printed[0]}" in inspected["RepoDigests"]
    # A fresh store pulls both platforms back under one tag; each runs (arm64 under qemu).
    ok(fresh, "pull", "--all-platforms", ref)
    for platform, arch in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        out = ok(fresh, "run", "--rm", "--platform", platform, ref, "cat", "/arch").stdout.split()
        assert out == [arch, platform.split("/")[1]]
    absent = run(fresh, "run", "--rm", "--platform", "linux/s390x", ref, "true")
    assert absent.returncode != 0 and "has no linux/s390x variant locally" in absent.stderr


@pytest.mark.busybox
def test_tree_inspect_and_rmi_by_platform(tmp_path: Path) -> None:
    env = _env(tmp_path, "ma-tree")
    try:
        for arch in ("amd64", "arm64"):
            ok(env, "import", "--platform", f"linux/{arch}", str(busybox_tar()), "multi:1")
        ids = {a: json.loads(ok(env, "image", "inspect", "--platform", f"linux/{a}", "multi:1").stdout)[0]
               for a in ("amd64", "arm64")}
        assert {a: i["Architecture"] for a, i in ids.items()} == {"amd64": "amd64", "arm64": "arm64"}
        assert ids["arm64"]["RepoTags"] == ["multi:1"]
        ok(env, "create", "--platform", "linux/arm64", "--name", "user", "multi:1", "true")
        tree = ok(env, "images", "--tree").stdout.split("\n")
        # Docker 27's layout: the first column as wide as "└─ linux/amd64" counted in bytes (18).
        warning = ("WARNING: This is an experimental feature. The output may change and shouldn't be "
                   "depended on.")
        header = f"{'IMAGE':<18}   {'ID':<12}   DISK USAGE   CONTENT SIZE   IN USE"
        assert tree[:3] == [warning, "", header]
        size = r"\s+(\d+(?:\.\d+)?[kM]?B)"
        top = re.fullmatch(rf"multi:1\s+([0-9a-f]{{12}}){size}{size}     (.)   ", tree[3])
        amd = re.fullmatch(rf"├─ linux/amd64\s+{ids['amd64']['Id'][7:19]}{size}{size}     (.)   ", tree[4])
        arm = re.fullmatch(rf"└─ linux/arm64\s+{ids['arm64']['Id'][7:19]}{size}{size}     (.)   ", tree[5])
        assert top and amd and arm, tree
        assert top.group(1) not in (ids["amd64"]["Id"][7:19], ids["arm64"]["Id"][7:19])  # the index's
        # In use: the arm64 image (a container was created from it), so the entry too.
        assert (top.group(4), amd.group(3), arm.group(3)) == ("✔", " ", "✔")
        assert tree[6:] == ["", ""]
        ok(env, "rm", "user")
        missing = run(env, "image", "inspect", "--platform", "linux/s390x", "multi:1")
        assert missing.returncode == 1
        assert missing.stderr == ("Error: multi:1 has no linux/s390x variant locally "
                                  "(it has linux/amd64, linux/arm64)\n")
        removed = ok(env, "rmi", "--platform", "linux/arm64", "multi:1").stdout.splitlines()
        assert removed[:2] == [f"Untagged: multi:1 ({ids['arm64']['Id'][7:19]}, linux/arm64)",
                               f"Deleted: {ids['arm64']['Id']}"]
        assert [line.split()[:2] for line in ok(env, "images", "--tree").stdout.splitlines()[3:]] == [
            ["multi:1", ids["amd64"]["Id"][7:19]], ["└─", "linux/amd64"], []]
    finally:
        subprocess.run(["rm", "-rf", env["DOCKYARD_ROOT"]], check=False)


@pytest.mark.busybox
def test_missing_platform_error_names_image_platform_and_registry(tmp_path: Path) -> None:
    import socket

    env = _env(tmp_path, "ma-err")
    # A port bound but not listening: connections are refused, and no other test's server can take it
    # meanwhile (a port found free and let go was once taken by one, which reset the connection).
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    host = f"127.0.0.1:{closed.getsockname()[1]}"
    try:
        ok(env, "import", "--platform", "linux/amd64", str(busybox_tar()), f"{host}/base:1")
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {host}/base:1\nRUN true\n")
        built = run(env, "build", "--progress=plain", "--platform", "linux/amd64,linux/arm64", str(ctx))
        assert built.returncode == 1
        assert built.stderr.strip().splitlines()[-1].startswith(
            f"ERROR: failed to solve: {host}/base:1 has no linux/arm64 variant locally and {host} cannot be "
            f"reached (cannot reach registry {host}: ")
    finally:
        closed.close()
        subprocess.run(["rm", "-rf", env["DOCKYARD_ROOT"]], check=False)


def test_local_two_platform_build_names_its_index_once(tmp_path: Path) -> None:
    env = _env(tmp_path, "ma-local")
    try:
        for arch in ("amd64", "arm64"):
            ok(env, "import", "--platform", f"linux/{arch}", str(busybox_tar()), "base:1")
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM base:1\nLABEL made=here\n")
        built = ok(env, "build", "--progress=plain", "--platform", "linux/amd64,linux/arm64", "-t", "two:1",
                   str(ctx))
        # In the export step, as BuildKit's: not again after the progress (the push case names the
        # registry's index after it instead: it is another digest).
        printed = re.findall(r"exporting manifest list (sha256:[0-9a-f]{64})", built.stderr)
        assert len(printed) == 1, built.stderr
        tree = ok(env, "images", "--tree").stdout
        assert re.search(rf"two:1\s+{printed[0][7:19]}\s", tree), tree
    finally:
        subprocess.run(["rm", "-rf", env["DOCKYARD_ROOT"]], check=False)
