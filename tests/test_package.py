"""The package's public face: ``dockyard.Client`` without paying for it at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dockyard


def test_client_is_exported_lazily() -> None:
    code = ("import sys, dockyard; assert 'dockyard.client' not in sys.modules; "
            "print(dockyard.Client.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Client"
    with pytest.raises(AttributeError):
        _ = dockyard.NoSuchThing  # type: ignore[attr-defined]


def test_python_m_dockyard_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "dockyard", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("dockyard version")
