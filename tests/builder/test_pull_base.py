"""A base image missing from the store is pulled from its registry (Debian's distribution on :5000)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.builder.options import BuildOptions
from dockyard.client import Client
from tests.conftest import PEERS
from tests.peers import unavailable

pytestmark = [pytest.mark.registry, pytest.mark.docker]
REF = "127.0.0.1:5000/peers/busybox:local"


@pytest.mark.slow
def test_build_pulls_missing_base(tmp_path: Path) -> None:
    up = subprocess.run(["bash", str(PEERS / "import-busybox.sh")], capture_output=True, text=True)
    if up.returncode != 0:
        unavailable("registry", f"busybox not in the registry: {up.stderr.strip()}",
                    "bash scripts/peers/import-busybox.sh")
    root = Path("/dev/shm") / f"dy-pullbase-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {REF}\nRUN echo pulled > /p\n")
    try:
        with Client(root) as client:
            result = client.build(BuildOptions(context_dir=str(ctx), tags=["pulled:1"]))
            assert client.resolve(REF)  # the base is now in the store, by its name
            assert result.image_id == str(client.resolve("pulled:1"))
            assert client.image_config("pulled:1").history[-1].created_by.startswith("RUN /bin/sh -c echo")
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)
