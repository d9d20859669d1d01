"""What loading the registry client costs: httpx without the optional modules dockyard never uses."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import dockyard.registry.client
import httpx
httpx.Client().close()  # httpx loads httpcore (and with it, trio) only here
print(sorted(m for m in ("trio", "httpx._main", "pygments") if m in sys.modules))
import trio  # still importable by whoever wants it
print(trio.__name__)
"""


def test_the_client_loads_httpx_without_trio_or_httpx_cli() -> None:
    pytest.importorskip("trio")  # where trio is not installed there is nothing to avoid
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "trio"]
