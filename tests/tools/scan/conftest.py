"""Fixtures for scan tests: a fresh store, the two-layer Debian-like image and the OSV fixture DB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.scan import VulnDB
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OSV, debian_layers


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


@pytest.fixture
def debian_image(client: Client) -> str:
    return make_image(client, "deb:1", debian_layers())


@pytest.fixture
def db(tmp_path: Path) -> Iterator[VulnDB]:
    src = tmp_path / "osv"
    src.mkdir()
    for rec in OSV:
        (src / f"{rec['id']}.json").write_text(json.dumps(rec))
    vdb = VulnDB(tmp_path / "vuln.db")
    assert vdb.import_path(src) == len(OSV)
    yield vdb
    vdb.close()
