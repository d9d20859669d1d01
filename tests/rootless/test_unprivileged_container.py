"""``dockyard build`` inside a ``docker run`` container with no --privileged, no added capabilities
and Docker's default seccomp profile: ``--isolation auto`` settles on chroot, says so, and builds the
reference multi-stage Dockerfile to the same image ID as a build outside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import DOCKER, DOCKER_HOST, PEERS_DIR, SCRIPTS

from .conftest import SRC, VENV

# One xdist worker for every rootless test: they share the test user's store and venv, which a
# second worker's session set-up would wipe or rebuild under them.
pytestmark = [pytest.mark.docker, pytest.mark.busybox, pytest.mark.xdist_group("rootless"), pytest.mark.slow]

REF = SCRIPTS / "ref"
BUSYBOX_TAR = PEERS_DIR / "images" / "busybox-amd64.tar"
EPOCH = "1700000000"


def _docker_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": DOCKER_HOST}


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-unpriv-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shell_image(work: Path) -> Iterator[str]:
    """A docker image of empty directories and merged-/usr symlinks; the host's /usr is bound in."""
    tar = work / "shell.tar"
    with tarfile.open(tar, "w") as out:
        for name in ("usr", "etc", "tmp", "dev", "proc", "sys", "w", "var", "var/tmp", "work"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name.endswith("tmp") else 0o755
            out.addfile(info)
        for name in ("bin", "sbin", "lib", "lib64"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{name}"
            out.addfile(info)
    tag = f"dockyard-rootless-shell:{os.getpid()}"
    subprocess.run([DOCKER, "import", str(tar), tag], env=_docker_env(), check=True, capture_output=True)
    yield tag
    subprocess.run([DOCKER, "rmi", "-f", tag], env=_docker_env(), capture_output=True)


def _outside(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args],
                          env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_build_in_unprivileged_docker_matches_outside(work: Path, shell_image: str,
                                                      rootless_python: Path) -> None:
    context = work / "ctx"
    subprocess.run([sys.executable, str(REF / "gen-context.py"), str(context)], check=True,
                   capture_output=True)
    outside = work / "outside"
    _outside(outside, "import", str(BUSYBOX_TAR), "busybox:local")
    _outside(outside, "save", "-o", str(work / "base.tar"), "busybox:local")
    expected = _outside(outside, "build", "-q", str(context)).strip()

    # The default store, /var/lib/dockyard, on the container's own root filesystem (overlayfs, which
    # refuses 0/0 whiteout devices: whiteouts are kept as .wh. files there).
    dy = f"{VENV}/bin/python -m dockyard"
    script = (f"{dy} load -i /w/base.tar && "
              f"{dy} build --progress plain --isolation auto --iidfile /w/iid /w/ctx")
    done = subprocess.run(
        [DOCKER, "run", "--rm", "--network=none", "-e", f"SOURCE_DATE_EPOCH={EPOCH}",
         "-v", "/usr:/usr:ro", "-v", f"{VENV}:{VENV}:ro", "-v", f"{SRC}:{SRC}:ro", "-v", f"{work}:/w",
         shell_image, "/bin/sh", "-c", script],
        env=_docker_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # auto names its choice, and why namespaces were out (Docker's seccomp profile refuses unshare).
    said = "[internal] isolation: chroot (copying snapshotter; namespaces: unshare: operation not permitted)"
    assert said in done.stderr
    assert (work / "iid").read_text().strip() == expected
