"""A real tmpfs of a test's own, limited in bytes or inodes: the full disk that disk-full tests meet."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted(options: str, prefix: str = "dy-tmpfs-") -> Iterator[Path]:
    """Yield a fresh tmpfs mounted with ``options`` (e.g. ``size=4m``), unmounted afterwards; skips the
    test where mounting is not allowed (not root)."""
    where = Path(tempfile.mkdtemp(prefix=prefix))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()
