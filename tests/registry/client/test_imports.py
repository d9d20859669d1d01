"""What loading the registry client costs: the standard library's http.client, not httpx."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import dockyard.registry.client
from dockyard.registry.client import RegistryClient
RegistryClient().session("127.0.0.1:5000").http
heavy = ("httpx", "httpcore", "h11", "anyio", "http.cookiejar", "dataclasses")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_the_registry_client_loads_no_httpx() -> None:
    # httpx with httpcore, h11 (dataclasses), anyio and http.cookiejar cost ~270M instructions at
    # start-up, ~40 % of the serial time of a build whose steps all come from a registry cache.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]"]
