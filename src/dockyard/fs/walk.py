"""Resolve a path inside a root, following symlinks without ever leaving the root.

The semantics of Go's ``securejoin`` and BuildKit's ``fs.RootPath``: ``..`` at the root stays at the
root, an absolute link target starts again from the root, a relative one from the link's directory,
missing components are kept as written (the result may not exist) and more than :data:`MAX_LINKS`
links is an error. :func:`walk` does the walk over any tree through a callback (a host directory, or
the layers of an overlay); :func:`secure_join` is the walk over a host directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from dockyard.errors import UnsafePath

# The kernel's MAXSYMLINKS: a path the container could not open is not resolved for it either.
MAX_LINKS = 40

# Called with the components resolved so far, the last one new: its link target if it is a symlink,
# else None (also when it does not exist). The list is the walker's own: read it, do not keep it.
LinkReader = Callable[[list[str]], "str | None"]


class SymlinkLoop(UnsafePath):
    """A path goes through more than :data:`MAX_LINKS` symlinks (a loop, most likely)."""


def walk(path: str, read_link: LinkReader, *, limit: int = MAX_LINKS) -> list[str]:
    """The components of ``path`` with every symlink followed inside the root ``read_link`` looks into."""
    # A stack of what is left, last component on top: pop() and extend() are O(1) at the end.
    pending = [p for p in reversed(path.split("/")) if p and p != "."]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:  # at the root, ".." is the root itself
                done.pop()
            continue
        done.append(part)
        target = read_link(done)
        if target is None:
            continue
        done.pop()
        links += 1
        if links > limit:
            raise SymlinkLoop(f"too many levels of symbolic links resolving {path}")
        if target.startswith("/"):
            done.clear()
        pending.extend(p for p in reversed(target.split("/")) if p and p != ".")
    return done


def secure_join(root: str | os.PathLike[str], path: str) -> str:
    """``root/path`` with symlinks resolved as if ``root`` were ``/``; the result never leaves ``root``."""
    base = os.path.abspath(root)
    # One lstat per component (the hot path of COPY): the host path of each prefix is kept, so a
    # component costs one string join, not a join of the whole prefix.
    prefixes = [base.rstrip("/")]  # "" for the host's /, so that joins never give "//etc"

    def read_link(parts: list[str]) -> str | None:
        del prefixes[len(parts):]  # ".." and absolute links shortened the walk since the last call
        current = prefixes[-1] + "/" + parts[-1]
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            prefixes.append(current)
            return None
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(current)
        prefixes.append(current)
        return None

    done = walk(path, read_link)
    return os.path.join(base, *done)
