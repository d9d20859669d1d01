"""Shared test fixtures and paths; peer markers are checked here (see ``tests/peers.py``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / "tests" / "data"
PEERS = REPO / "scripts" / "peers"


def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.peers import check_markers

    check_markers(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # What the S3 tests of this process wrote to the shared SeaweedFS peer goes (each xdist worker
    # runs this for its own tests). Only if they ran: the module is imported by them.
    s3kit = sys.modules.get("tests.registry.s3kit")
    if s3kit is not None:
        with contextlib.suppress(Exception):  # the peer may be gone by now: nothing to clean then
            s3kit.remove_used()
