"""A store with busybox:local for container tests, and a ``dy`` helper running the CLI on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.executor import cleanup_stale
from tests.builder.conftest import busybox_tar


def _monitors(root: Path) -> list[int]:
    pids = []
    for state in root.glob("containers/*/state.json"):
        mon = json.loads(state.read_text()).get("Monitor")
        if mon:
            pids.append(int(mon["Pid"]))
    return pids


@pytest.fixture()
def root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    path = Path("/dev/shm") / f"dy-ctr-{os.getpid()}-{os.urandom(4).hex()}"
    with Client(path) as client, open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield path
    ids = [p.name for p in path.glob("containers/*") if p.is_dir()]
    if ids:  # as a user would: their monitors then stop the processes and their networks
        subprocess.run([sys.executable, "-m", "dockyard", "--root", str(path), "rm", "-f", *ids],
                       capture_output=True, timeout=120, check=False)
    for pid in _monitors(path):  # any left over: ours, started by this test's containers
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    cleanup_stale(path / "exec")  # what killed monitors left (their pasta)
    subprocess.run(["umount", "-R", "-l", str(path)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


Dy = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture()
def dy(root: Path) -> Dy:
    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                              env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    return run


def until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()
