"""The overlay fallbacks: where the kernel's overlayfs is refused (forced here with the probe's test
switch), builds mount their layers with fuse-overlayfs, say so in the log, and give the same image as
with overlayfs; without fuse-overlayfs either, ``auto`` settles on chroot with the copying snapshotter."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dockyard.executor import isolation
from dockyard.progress import VertexCompleted
from tests.builder.conftest import Builds

pytestmark = [pytest.mark.fuse_overlayfs, pytest.mark.slow]

# Owners, a whiteout, an opaque directory (removed and made again), COPY and USER.
DOCKERFILE = """\
FROM busybox:local
RUN mkdir -p /app/d && echo hi > /app/x && echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd \\
    && chown -R 1000:1000 /app && rm -rf /bin/vi && mkdir /opq && touch /opq/a
RUN rm -rf /opq && mkdir /opq && touch /opq/b
COPY f /app/f
USER app
RUN id -u > /app/me && touch /tmp/y && rm /app/x
"""


def _said(builds: Builds) -> list[str]:
    return [e.name for e in builds.events if isinstance(e, VertexCompleted) and "isolation:" in e.name]


@pytest.fixture()
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0 or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("fuse-overlayfs mounts need /dev/fuse (root here)")
    monkeypatch.setenv(isolation.REFUSE_OVERLAY_ENV, "1")


def test_refused_overlayfs_falls_back_to_fuse_overlayfs(builds: Builds, refused: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = builds.context(DOCKERFILE, {"f": "data\n"})
    with_fuse = builds.build(ctx, tags=["t:fuse"], source_date_epoch=1700000000)
    assert _said(builds) == ["[internal] isolation: namespaces (fuse-overlayfs; overlayfs: refused for this "
                             f"test ({isolation.REFUSE_OVERLAY_ENV}))"]
    monkeypatch.delenv(isolation.REFUSE_OVERLAY_ENV)
    kernel = builds.build(ctx, tags=["t:kernel"], source_date_epoch=1700000000, no_cache=True)
    assert _said(builds) == []
    assert with_fuse.image_id == kernel.image_id
    fs = builds.rootfs("t:fuse")
    assert (fs / "app" / "me").read_text() == "1000\n" and not (fs / "app" / "x").exists()
    assert sorted(os.listdir(fs / "opq")) == ["b"]


def test_run_steps_really_run_on_fuse_overlayfs(builds: Builds, refused: None) -> None:
    ctx = builds.context("FROM busybox:local\n"
                         "RUN awk '$5 == \"/\" {for (i = 7; i < NF; i++) if ($i == \"-\") print $(i + 1)}'"
                         " /proc/self/mountinfo > /fstype\n")
    builds.build(ctx, tags=["t:fstype"])
    assert (builds.rootfs("t:fstype") / "fstype").read_text() == "fuse.fuse-overlayfs\n"


def test_without_fuse_overlayfs_auto_copies(builds: Builds, refused: None, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("pasta",):  # what the build needs besides: not fuse-overlayfs
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bare))
    ctx = builds.context("FROM busybox:local\nRUN echo hi > /x\n")
    builds.build(ctx, tags=["t:copied"], isolation="auto")
    assert _said(builds) == ["[internal] isolation: chroot (copying snapshotter; overlayfs: refused for this "
                             f"test ({isolation.REFUSE_OVERLAY_ENV}); fuse-overlayfs is not installed "
                             "(apt-get install fuse-overlayfs))"]
    assert (builds.rootfs("t:copied") / "x").read_text() == "hi\n"
