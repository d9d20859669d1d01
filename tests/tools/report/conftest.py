"""Shared by the report tests: a three-layer image with vulnerable packages, its Dockerfile, a database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.scan import VulnDB
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OSV, debian_layers

DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
RUN apt-get upgrade -y && rm -rf /opt/old
RUN chown -R 1000 /srv
CMD run
"""
COMMANDS = ["COPY rootfs/ / # buildkit", "RUN /bin/sh -c apt-get upgrade -y && rm -rf /opt/old # buildkit",
            "RUN /bin/sh -c chown -R 1000 /srv # buildkit"]
CMD_ENTRY = 'CMD ["/bin/sh" "-c" "run"]'  # BuildKit's history text for the shell-form CMD (no layer)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


@pytest.fixture
def db(tmp_path: Path) -> Iterator[VulnDB]:
    src = tmp_path / "osv"
    src.mkdir()
    for rec in OSV:
        (src / f"{rec['id']}.json").write_text(json.dumps(rec))
    vdb = VulnDB(tmp_path / "vuln.db")
    vdb.import_path(src)
    yield vdb
    vdb.close()


@pytest.fixture
def image(client: Client) -> str:
    base, upgrade = debian_layers()
    blob = b"s" * 400_000
    owned: list[tuple[str, bytes | None, int]] = [("srv", None, 1000), ("srv/blob", blob, 1000)]
    layers = [[*base, ("srv", None), ("srv/blob", blob)], upgrade, owned]
    make_image(client, "report:1", layers, COMMANDS, empty_after=[CMD_ENTRY])
    return "report:1"
