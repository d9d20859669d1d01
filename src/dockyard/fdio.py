"""Writing to file descriptors."""

from __future__ import annotations

import os

__all__ = ["write_all"]


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may take less than it is given: a pipe, a
    signal, a full disk's last bytes)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
