"""The package's names are loaded on first use: each resolves, and decompressing loads no tar code."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dockyard.archive


def test_every_exported_name_resolves() -> None:
    assert sorted(dockyard.archive._EXPORTS) == sorted(dockyard.archive.__all__)
    for name in dockyard.archive.__all__:
        assert getattr(dockyard.archive, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dockyard.archive.nope  # noqa: B018


def test_decompressing_loads_neither_the_tar_writer_nor_the_differ() -> None:
    code = ("import sys; from dockyard.archive import open_decompressed; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('dockyard.archive'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["dockyard.archive", "dockyard.archive.compression"]
