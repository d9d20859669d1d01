"""``dockyard report`` on an image dockyard built from busybox: RUN steps (with a build argument in their
history), a builder stage, and the lines, fixes and lint findings the report ties together."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import PEERS_DIR

pytestmark = [pytest.mark.busybox, pytest.mark.slow]

DOCKERFILE = """\
FROM busybox:local AS tools
RUN mkdir /out && head -c 200000 /dev/zero > /out/tool

FROM busybox:local
ARG LEVEL=1
RUN mkdir /data && head -c 300000 /dev/zero > /data/big
COPY --from=tools /out/tool /usr/local/bin/tool
RUN chmod -R 700 /data
RUN rm -f /data/big
CMD echo ready
"""


def test_report_of_a_busybox_build(tmp_path: Path) -> None:
    root = Path("/dev/shm") / f"dy-report-{os.getpid()}-{os.urandom(4).hex()}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    dy = [sys.executable, "-m", "dockyard", "--root", str(root)]
    try:
        with open(PEERS_DIR / "images" / "busybox-amd64.tar", "rb") as tar:
            subprocess.run([*dy, "import", "-", "busybox:local"], stdin=tar, check=True, capture_output=True)
        subprocess.run([*dy, "build", "-q", "-t", "app:1", str(ctx)], check=True, capture_output=True,
                       timeout=300)
        proc = subprocess.run([*dy, "report", "app:1", "-f", str(ctx / "Dockerfile"), "--format", "json"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        # busybox's own layer, then lines 6 (RUN with the ARG in its history), 7, 8, 9
        assert [layer["dockerfileLine"] for layer in doc["layers"]] == [None, 6, 7, 8, 9]
        assert not [n for n in doc["notes"] if "history" in n]
        by_line = {e["line"]: e for e in doc["byLine"]}
        # the chmod copies /data/big (metadata only), the rm deletes it: both are on their lines
        assert by_line[8]["removableBytes"] == 300_000 and "chmod" in by_line[8]["fixes"][0]
        assert by_line[9]["removableBytes"] == 300_000
        assert "DL3025" in by_line[10]["lint"]
        html = tmp_path / "report.html"
        subprocess.run([*dy, "report", "app:1", "-f", str(ctx / "Dockerfile"), "-o", str(html)], check=True,
                       timeout=120)
        assert html.read_text().count('<rect class="bar"') >= 5
    finally:
        subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)
