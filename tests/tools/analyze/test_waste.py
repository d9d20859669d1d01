"""The removable-bytes metric beside dive's: each lower copy once, deletions at full size, blame and fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.analyze import analyze_image, to_json
from tests.builder.conftest import Builds, busybox_tar
from tests.tools.analyze.kit import make_image

MB = 1_000_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


def test_chown_layer_is_removable_once_where_dive_counts_twice(client: Client) -> None:
    n = 3 * MB
    files = [("app", None), ("app/a.bin", b"a" * (n - 1000)), ("app/b.txt", b"b" * 1000)]
    owned = [("app", None, 1000), ("app/a.bin", b"a" * (n - 1000), 1000), ("app/b.txt", b"b" * 1000, 1000)]
    make_image(client, "chown:1", [[("etc/os", b"base")], files, owned],
               ["FROM scratch", "COPY app /app # buildkit", "RUN /bin/sh -c chown -R 1000 /app # buildkit"])
    a = analyze_image(client, "chown:1")
    assert a.wasted == 2 * n  # dive's number, kept
    assert a.waste is not None and a.waste.total == n
    (layer,) = a.waste.layers
    assert (layer.index, layer.removable, layer.by_kind, layer.files) == (2, n, {"metadata-only": n}, 2)
    assert layer.fix.startswith("use COPY --chown=USER:GROUP")
    doc = to_json(a)
    assert doc["image"]["inefficientBytes"] == 2 * n and doc["removable"]["sizeBytes"] == n


def test_overwrite_duplicate_and_deletions(client: Client) -> None:
    layers = [
        [("etc", None), ("etc/conf", b"a" * 100), ("big", b"b" * 1000), ("d", None), ("d/x", b"x" * 50),
         ("d/e", None), ("d/e/y", b"y" * 70), ("keep", b"k" * 10), ("o", None), ("o/old", b"o" * 30)],
        [("etc/conf", b"c" * 300), ("keep", b"k" * 10)],
        [(".wh.big", b""), (".wh.d", b""), ("etc/conf", b"z" * 5), ("o", None), ("o/.wh..wh..opq", b""),
         ("o/new", b"n" * 4)],
    ]
    make_image(client, "t:1", layers, ["FROM scratch", "RUN edit", "RUN clean"])
    a = analyze_image(client, "t:1")
    assert a.waste is not None
    items = {(w.path, w.kind, w.size, w.layer, w.lower) for w in a.waste.items}
    assert items == {
        ("/etc/conf", "overwritten", 100, 1, 0),
        ("/keep", "duplicate", 10, 1, 0),
        ("/etc/conf", "overwritten", 300, 2, 1),
        ("/big", "deleted", 1000, 2, 0),
        ("/d/x", "deleted", 50, 2, 0),
        ("/d/e/y", "deleted", 70, 2, 0),  # a deleted directory counts everything it held below
        ("/o/old", "deleted", 30, 2, 0),  # so does an opaque one
    }
    assert a.waste.total == 100 + 10 + 300 + 1000 + 50 + 70 + 30
    # dive (test_dive checks these against it): every copy of /etc/conf and /keep, the one that stays
    # included, and the deleted file; of the deleted directories nothing (no entry of their own in layer 2)
    assert a.wasted == (100 + 300 + 5) + (10 + 10) + 1000
    top = a.waste.layers[0]
    assert (top.index, top.removable) == (2, 1450) and top.fix.startswith("delete the files in the same RUN")


@pytest.fixture()
def builds(tmp_path: Path) -> Iterator[Builds]:
    root = Path("/dev/shm") / f"dy-waste-{os.getpid()}-{os.urandom(4).hex()}"
    c = Client(root)
    with open(busybox_tar(), "rb") as f:
        c.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield Builds(c, tmp_path)
    c.close()
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


DOCKERFILE = """\
FROM busybox:local
COPY secrets.tar /tmp/secrets.tar
RUN head -c 2000000 /dev/urandom > /data.bin \\
    && mkdir /d && head -c 1000000 /dev/urandom > /d/r
RUN chown -R 1000:1000 /data.bin /d
RUN rm /tmp/secrets.tar
"""


@pytest.mark.slow
@pytest.mark.busybox
def test_built_image_blamed_on_dockerfile_lines(builds: Builds, tmp_path: Path) -> None:
    ctx = builds.context(DOCKERFILE, {"secrets.tar": b"s" * 500_000})
    builds.build(ctx, tags=["waste:1"])
    a = analyze_image(builds.client, "waste:1", DOCKERFILE)
    assert a.waste is not None
    assert a.wasted == 2 * 3 * MB + 500_000  # dive's: both copies of the chowned 3 MB, and the rm'd file
    assert a.waste.total == 3 * MB + 500_000
    by_line = {lw.line: lw for lw in a.waste.layers}
    assert set(by_line) == {5, 6}
    assert by_line[5].by_kind == {"metadata-only": 3 * MB} and "COPY --chown" in by_line[5].fix
    assert by_line[6].by_kind == {"deleted": 500_000} and ".dockerignore" in by_line[6].fix
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "--root", str(builds.client.root), "analyze", "waste:1",
         "-f", str(tmp_path / "Dockerfile"), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["removable"]["sizeBytes"] == 3_500_000
    assert [layer["dockerfileLine"] for layer in doc["removable"]["layers"]] == [5, 6]


@pytest.mark.dive
def test_dive_itself_reports_twice_the_chowned_bytes(client: Client, tmp_path: Path) -> None:
    from tests.tools.analyze.test_dive import dive_json

    n = 2 * MB
    make_image(client, "chown:2", [[("srv", None), ("srv/blob", b"x" * n)],
                                   [("srv", None, 1000), ("srv/blob", b"x" * n, 1000)]],
               ["COPY srv /srv # buildkit", "RUN /bin/sh -c chown -R 1000 /srv # buildkit"])
    image = dive_json(client, "chown:2", tmp_path)["image"]
    assert isinstance(image, dict) and image["inefficientBytes"] == 2 * n
    a = analyze_image(client, "chown:2")
    assert a.waste is not None and a.waste.total == n and a.waste.layers[0].by_kind == {"metadata-only": n}
