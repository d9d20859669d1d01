"""Fixtures for the executor tests: a busybox root on tmpfs, fresh overlay dirs, both backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.executor import NamespaceExecutor, RootfsSpec, RuncExecutor
from dockyard.executor.base import Executor
from tests.peers import require

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
BUSYBOX_TAR = PEERS_DIR / "images" / "busybox-amd64.tar"

# Extra groups so that supplementary group resolution has something to find.
EXTRA_GROUPS = "staff:x:50:app,nobody\naudio:x:29:app\nwheel:x:10:root\n"


def _root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("the executor needs root")


@pytest.fixture(scope="session")
def scratch_base() -> Iterator[Path]:
    """A session directory on tmpfs (extraction-heavy, and overlay upper dirs want xattrs)."""
    _root_required()
    base = Path(tempfile.mkdtemp(prefix="dockyard-exec-", dir="/dev/shm"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_lower(scratch_base: Path) -> Path:
    """The busybox image unpacked once, with a few extra groups."""
    if not BUSYBOX_TAR.exists():
        require("busybox")
    lower = scratch_base / "busybox"
    lower.mkdir()
    subprocess.run(["tar", "-xf", str(BUSYBOX_TAR), "-C", str(lower)], check=True)
    with open(lower / "etc" / "group", "a") as f:
        f.write(EXTRA_GROUPS)
    return lower


@pytest.fixture
def overlay(scratch_base: Path, busybox_lower: Path) -> RootfsSpec:
    """A fresh, empty upper directory over busybox."""
    run = Path(tempfile.mkdtemp(dir=scratch_base))
    (run / "upper").mkdir()
    (run / "work").mkdir()
    return RootfsSpec([busybox_lower], run / "upper", run / "work")


@pytest.fixture(scope="session")
def state_dir(scratch_base: Path) -> Path:
    path = scratch_base / "state"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def ns_executor(state_dir: Path) -> Iterator[NamespaceExecutor]:
    with NamespaceExecutor(state_dir) as ex:
        yield ex


@pytest.fixture(params=["namespace", pytest.param("runc", marks=pytest.mark.runc)])
def executor(request: pytest.FixtureRequest, ns_executor: NamespaceExecutor, state_dir: Path) -> Executor:
    """Each backend in turn: the tests hold both to the same behaviour."""
    if request.param == "namespace":
        return ns_executor
    require("runc")
    return RuncExecutor(state_dir)
