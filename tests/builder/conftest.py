"""Build-test fixtures: a store on tmpfs holding busybox (from the peers' reproducible rootfs tar)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.builder.engine import build
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.client import Client
from dockyard.progress import ProgressEvent, VertexCompleted, VertexStarted
from tests.peers import require

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
BUSYBOX_TAR = PEERS_DIR / "images" / "busybox-amd64.tar"


def busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        require("busybox")  # makes it with scripts/peers/make-busybox-rootfs.sh
    return BUSYBOX_TAR


@pytest.fixture()
def client() -> Iterator[Client]:
    """A fresh store on tmpfs with ``busybox:local`` imported (the same bytes, so the same image ID)."""
    root = Path("/dev/shm") / f"dy-build-{os.getpid()}-{os.urandom(4).hex()}"
    c = Client(root)
    with open(busybox_tar(), "rb") as f:
        c.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield c
    c.close()
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


class Builds:
    """Run builds of small contexts and look at what they made."""

    def __init__(self, client: Client, tmp: Path) -> None:
        self.client = client
        self.tmp = tmp
        self.events: list[ProgressEvent] = []

    def context(self, dockerfile: str, files: dict[str, str | bytes] | None = None,
                name: str = "ctx") -> Path:
        ctx = self.tmp / name
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text(dockerfile)
        for rel, data in (files or {}).items():
            path = ctx / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        return ctx

    def build(self, ctx: Path, **kwargs: object) -> BuildResult:
        self.events = []
        opts = BuildOptions(context_dir=str(ctx), progress=self.events.append, **kwargs)  # type: ignore[arg-type]
        return build(self.client.store, opts)

    def statuses(self) -> dict[str, str]:
        """Step title -> final status of the last build."""
        return {e.name: e.outcome for e in self.events if isinstance(e, VertexCompleted)}

    def timeline(self) -> list[tuple[str, str]]:
        """(step title, "started" or the outcome) of the last build's steps, in order."""
        return [(e.name, "started" if isinstance(e, VertexStarted) else e.outcome) for e in self.events
                if isinstance(e, VertexStarted | VertexCompleted)]

    def rootfs(self, image: str) -> Path:
        """The image's files, unpacked onto a plain directory."""
        from dockyard.archive import apply_layer, open_decompressed
        from dockyard.imageops.layers import open_form, stored_forms

        dest = self.tmp / f"fs-{image.replace('/', '_').replace(':', '_')}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        config = self.client.image_config(image)
        for diff_id in config.diff_ids:
            blob = stored_forms(self.client.store, diff_id)[0]  # a blob, or the tar of a build's snapshot
            with open_form(self.client.store, blob.digest)[0] as f:
                raw, _ = open_decompressed(f)
                apply_layer(raw, dest)
        return dest


@pytest.fixture()
def builds(client: Client, tmp_path: Path) -> Builds:
    return Builds(client, tmp_path)
