"""Path handling inside a root filesystem, as if chrooted into it.

Every write the build makes into an image goes through ``secure_join``, so a symlink in the image
(``/app -> /``, ``../../etc``) is resolved inside the root and never leads a write outside it.
"""

from __future__ import annotations

import os
import stat

from dockyard.errors import UnsafePath
from dockyard.fs import secure_join

__all__ = ["clean_path", "mkdir_all", "secure_join"]


def clean_path(path: str) -> str:
    """Lexically clean an absolute path like Go's ``path.Clean`` (``/a/../b/`` -> ``/b``)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def mkdir_all(root: str, path: str, mode: int = 0o755, uid: int = -1, gid: int = -1) -> str:
    """Create ``path`` (inside ``root``) and missing parents; return its host path.

    New directories get ``mode`` and, if given, ``uid``/``gid``; existing ones are left alone.
    """
    parts = [p for p in clean_path(path).split("/") if p]
    current = "/"
    host = root
    for part in parts:
        current = os.path.join(current, part)
        host = secure_join(root, current)
        try:
            st = os.stat(host)
        except FileNotFoundError:
            _make_missing(root, host, mode, uid, gid)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"cannot create directory {current}: a file of that name exists")
    return host


def _make_missing(root: str, host: str, mode: int, uid: int, gid: int) -> None:
    """Create ``host`` and its missing parents; all of them lie inside ``root`` already resolved."""
    missing: list[str] = []
    current = host
    while current != root and not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    for path in reversed(missing):
        os.mkdir(path, mode)
        os.chmod(path, mode)
        if uid >= 0 or gid >= 0:
            os.lchown(path, uid, gid)
