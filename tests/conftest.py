"""Shared test fixtures and paths; peer markers are checked here (see ``tests/peers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / "tests" / "data"
PEERS = REPO / "scripts" / "peers"


def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.peers import check_markers

    check_markers(item)
