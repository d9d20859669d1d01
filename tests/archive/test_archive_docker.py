"""Docker is the reference: its saved layers (with whiteouts from overlay2) apply with ours to the
same filesystem `docker export` shows, and Docker imports our tars to the tree we wrote."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.archive import apply_layer, write_tree
from tests.conftest import PEERS
from tests.peers import require, unavailable

pytestmark = pytest.mark.docker
Snapshot = Callable[..., dict[str, tuple[object, ...]]]
PEERS_DIR = os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers")
DOCKER = "/usr/bin/docker"
# Paths the container runtime adds to every container (export shows them, layers do not have them).
RUNTIME_PATHS = (".dockerenv", "dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf",
                 "etc/mtab")


@pytest.fixture(scope="session")
def docker_env() -> dict[str, str]:
    env = dict(os.environ, PEERS_DIR=PEERS_DIR, DOCKER_HOST=f"unix://{PEERS_DIR}/run/docker.sock")
    require("docker")
    for script in ("start-dockerd.sh", "import-busybox.sh"):
        subprocess.run(["bash", str(PEERS / script)], env=env, check=True, capture_output=True, timeout=180)
    return env


def docker(env: dict[str, str], *args: str) -> str:
    return subprocess.run([DOCKER, *args], env=env, check=True, capture_output=True, text=True,
                          timeout=180).stdout.strip()


def without_runtime(snap: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    return {k: v for k, v in snap.items()
            if not any(k == p or k.startswith(p + "/") for p in RUNTIME_PATHS)}


@pytest.mark.slow
def test_docker_saved_layers_apply_like_docker_export(docker_env: dict[str, str], shm: Path,
                                                      snap: Snapshot) -> None:
    ctx = shm / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:local\n"
        "RUN mkdir -p /d/sub /d/keep && echo a > /d/a && echo b > /d/sub/b && ln /d/a /d/hard"
        " && ln -s /d/a /d/sym && echo k > /d/keep/k && chmod 4711 /d/a\n"
        "RUN rm -rf /d/sub /bin/ls && rm -rf /d/keep && mkdir /d/keep && echo n > /d/keep/new"
        " && rm /d/sym && mkdir /d/sym\n"
    )
    tag = "dockyard-archive-test:whiteouts"
    docker(docker_env, "build", "-q", "--network", "none", "-t", tag, str(ctx))
    cid = ""
    try:
        docker(docker_env, "save", "-o", str(shm / "img.tar"), tag)
        img = shm / "img"
        img.mkdir()
        with tarfile.open(shm / "img.tar") as tf:
            # Docker's own save output; the "data" filter where this Python has it (3.11.4+, Debian 12's
            # 3.11.2 does not).
            tf.extractall(img, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        manifest = json.loads((img / "manifest.json").read_text())
        ours = shm / "ours"
        for layer in manifest[0]["Layers"]:
            with open(img / layer, "rb") as fh:
                apply_layer(fh, ours)
        cid = docker(docker_env, "create", tag)
        subprocess.run(f"{DOCKER} export {cid} > {shm / 'export.tar'}", shell=True, env=docker_env,
                       check=True, timeout=120)
        ref = shm / "ref"
        with open(shm / "export.tar", "rb") as fh:
            apply_layer(fh, ref)
        assert not (ours / "d" / "sub").exists() and not (ours / "bin" / "ls").exists()
        assert sorted(os.listdir(ours / "d" / "keep")) == ["new"]  # opaque directory
        assert without_runtime(snap(ours, dir_mtimes=False)) == without_runtime(snap(ref, dir_mtimes=False))
    finally:
        if cid:
            docker(docker_env, "rm", cid)
        subprocess.run([DOCKER, "rmi", "-f", tag], env=docker_env, capture_output=True, timeout=60)


def test_docker_imports_our_tar(docker_env: dict[str, str], shm: Path, snap: Snapshot) -> None:
    rootfs = Path(PEERS_DIR) / "images" / "busybox-rootfs-amd64"
    if not rootfs.is_dir():
        unavailable("busybox", f"no {rootfs}")
    src = shm / "src"
    shutil.copytree(rootfs, src, symlinks=True)
    (src / "long" / ("x" * 150)).mkdir(parents=True)
    (src / "long" / ("x" * 150) / ("y" * 120)).write_text("long names need PAX")
    os.chown(src / "long", 3_000_000, 7)
    with open(shm / "ours.tar", "wb") as fh:
        write_tree(src, fh)
    tag = "dockyard-archive-test:import"
    docker(docker_env, "import", str(shm / "ours.tar"), tag)
    cid = ""
    try:
        cid = docker(docker_env, "create", tag, "/bin/sh")
        subprocess.run(f"{DOCKER} export {cid} > {shm / 'export.tar'}", shell=True, env=docker_env,
                       check=True, timeout=120)
        back = shm / "back"
        with open(shm / "export.tar", "rb") as fh:
            apply_layer(fh, back)
        assert without_runtime(snap(back, dir_mtimes=False)) == without_runtime(snap(src, dir_mtimes=False))
    finally:
        if cid:
            docker(docker_env, "rm", cid)
        subprocess.run([DOCKER, "rmi", "-f", tag], env=docker_env, capture_output=True, timeout=60)


@pytest.mark.parametrize("pax_first", [True, False], ids=["pax-first", "gnu-first"])
def test_docker_picks_the_same_name_as_we_do_from_pax_and_gnu_records(
    docker_env: dict[str, str], shm: Path, both_names: Callable[[bool], bytes], pax_first: bool
) -> None:
    data = both_names(pax_first)
    (shm / "both.tar").write_bytes(data)
    ours = shm / "ours"
    apply_layer(io.BytesIO(data), ours)
    tag = f"dockyard-archive-test:both-names-{int(pax_first)}"
    docker(docker_env, "import", str(shm / "both.tar"), tag)
    cid = ""
    try:
        cid = docker(docker_env, "create", tag, "/none")
        subprocess.run(f"{DOCKER} export {cid} > {shm / 'export.tar'}", shell=True, env=docker_env,
                       check=True, timeout=120)
        back = shm / "back"
        with open(shm / "export.tar", "rb") as fh:
            apply_layer(fh, back)
        theirs = {p.name: os.readlink(p) if p.is_symlink() else p.read_text() for p in back.iterdir()
                  if p.name in ("from-pax", "from-gnu", "from-ustar", "link")}
        assert theirs == {"from-gnu": "abc", "link": "gnu-target"}
        assert sorted(os.listdir(ours)) == sorted(theirs)
        assert os.readlink(ours / "link") == theirs["link"]
    finally:
        if cid:
            docker(docker_env, "rm", cid)
        subprocess.run([DOCKER, "rmi", "-f", tag], env=docker_env, capture_output=True, timeout=60)
