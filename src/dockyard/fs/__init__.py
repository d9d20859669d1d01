"""Paths inside a root filesystem, resolved as if chrooted into it (the one in-root path walker)."""

from __future__ import annotations

from dockyard.fs.walk import MAX_LINKS, LinkReader, SymlinkLoop, secure_join, walk

__all__ = ["MAX_LINKS", "LinkReader", "SymlinkLoop", "secure_join", "walk"]
